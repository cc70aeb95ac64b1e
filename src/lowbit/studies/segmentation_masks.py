"""Report extra ``segmentation_masks``: the Fig. 5-style picture of Boo et al. §5.1 (and Fig. 12, Appendix C).

One row per chosen test image; columns: the input, the ground truth, then the predicted foreground mask of each
named method (default: the float model, the W4 model, the A4 model), each titled with that image's Dice. The
masks are the jobs' saved test probabilities (``probs.safetensors``, ``evaluation.member_probs``) thresholded at
0.5, so nothing is re-run; a method with no finished job at the chosen seed is left out, and a study whose task is
not the binary ``segmentation`` (``segmentation_miou`` keeps per-image counts, not probabilities) gets no figure.
Options:

    [report.extras.segmentation_masks]
    methods = ["float", "W4", "A4"]   # method names of the spec, in column order
    images = [0, 1]                   # indices into the test set
    seed = 0                          # default: the grid's first seed
"""

from __future__ import annotations

from ..engine.report.document import Figure
from ..engine.report.extras import Section, register_extra
from ..engine.report.results import RunResults


def image_dice(pred, truth) -> float:
    """Dice (%) of one binary mask against the truth; 100 when both are empty."""
    inter = float((pred & truth).sum())
    total = float(pred.sum() + truth.sum())
    return 100.0 if total == 0 else 200.0 * inter / total


@register_extra("segmentation_masks")
def segmentation_masks(
    res: RunResults, methods: list | None = None, images: list | None = None, seed: int | None = None
) -> Section:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..engine.evaluation import member_probs
    from ..fileio import atomic_savefig

    methods = list(methods or ["float", "W4", "A4"])
    seed = res.spec.grid["seed"][0] if seed is None else seed
    unknown = [m for m in methods if m not in res.spec.methods]
    if unknown:
        raise ValueError(
            f"segmentation_masks: methods {unknown} are not methods of the spec; accepted: {sorted(res.spec.methods)}"
        )
    model = res.spec.grid["model"][0]
    cols = []
    for m in methods:
        jobs = [j for j in res.select({"model": model, "method": m, "seed": seed}) if j.metrics]
        if jobs:
            cols.append((m, jobs[0]))
    task = res.get_task()
    if not cols or task.name != "segmentation":  # the mIoU task keeps confusion counts, not masks: nothing to draw
        return Section()
    data = res.load_data()
    x, truth = data.test.tensors[0], data.test.tensors[1]
    images = list(range(min(2, len(x)))) if images is None else list(images)
    bad = [i for i in images if not (isinstance(i, int) and 0 <= i < len(x))]
    if bad:
        raise ValueError(f"segmentation_masks: images {bad} are not test image indices; accepted: 0..{len(x) - 1}")
    masks = {m: member_probs(task, data, res.job_dir(j)) > 0.5 for m, j in cols}
    ncol = 2 + len(cols)
    fig, axes = plt.subplots(len(images), ncol, figsize=(2.0 * ncol, 2.1 * len(images)), squeeze=False)
    for r, i in enumerate(images):
        g = truth[i].bool()
        panels = [("input", x[i, 0].numpy(), "gray"), ("truth", g.numpy(), "gray")]
        panels += [(f"{m} (Dice {image_dice(masks[m][i], g):.1f})", masks[m][i].numpy(), "gray") for m, _ in cols]
        for k, (title, img, cmap) in enumerate(panels):
            ax = axes[r][k]
            ax.imshow(img, cmap=cmap, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=7)
            if k == 0:
                ax.set_ylabel(f"test image {i}", fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, res.figure_path("segmentation_masks"), dpi=110)
    plt.close(fig)
    jobs = [j for _, j in cols]
    caption = (
        "What weight vs activation quantization does to the masks (Boo et al. Fig. 5): input, ground truth "
        "(foreground white), and each model's foreground mask (probability > 0.5) with its Dice on that image. "
        f"{res.caption_facts(jobs)}."
    )
    return Section(figures=[Figure("figures/segmentation_masks.png", caption)])
