"""Report extra ``mixed_bits``: where a ``mixed`` method put the bits (the allocation each job wrote to its
``mixed.json``), as a table and a per-layer bar chart::

    [report.extras.mixed_bits]
    x = "bits"              # the axis the budget runs over (budget_bits = "${bits}"); one panel per model and value
    figure = "bits_per_layer"

One row per (model, method, x): the weight bits of every allocated layer, averaged over the seeds (the random
control draws differently per seed), the predicted bytes against the budget, and the jobs' mean metric.
"""

from __future__ import annotations

import json
from typing import Any

from .document import Figure, Table, mean_std
from .extras import Section, register_extra
from .results import JobResult, RunResults


def _record(res: RunResults, job: JobResult) -> dict | None:
    path = res.job_dir(job) / "mixed.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


@register_extra("mixed_bits")
def mixed_bits(
    res: RunResults, x: str | None = None, figure: str | None = "bits_per_layer", metric: str = "accuracy"
) -> Section:
    jobs = [j for j in res.jobs.values() if j.config["recipe"]["kind"] == "mixed"]
    groups: dict[tuple, list[tuple[JobResult, dict]]] = {}
    for j in jobs:
        rec = _record(res, j)
        if rec is not None:
            key = (j.axes["model"], j.axes.get(x) if x else None, j.axes["method"])
            groups.setdefault(key, []).append((j, rec))
    if not groups:
        return Section("Where the bits went", ["No mixed-precision job has finished yet."])
    keys = sorted(
        groups, key=lambda k: (res.order("model", k[0]), res.order(x, k[1]) if x else 0, res.order("method", k[2]))
    )
    rows: list[list[Any]] = []
    bars: dict[tuple, dict[str, dict[str, float]]] = {}  # (model, x) -> method -> layer -> mean bits
    for k in keys:
        recs = groups[k]
        layers = list(recs[0][1]["allocation"]["bits"])
        mean = {n: sum(r["allocation"]["bits"][n] for _, r in recs) / len(recs) for n in layers}
        bars.setdefault((k[0], k[1]), {})[k[2]] = mean
        pred = sum(r["allocation"]["predicted_bytes"] for _, r in recs) / len(recs)
        budget = recs[0][1]["allocation"]["budget_bytes"]
        values = [j.metrics[metric] for j, _ in recs if j.metrics.get(metric) is not None]
        label = " ".join(str(v) for v in (k[0], k[2]) if v is not None) + (f" {x}={k[1]}" if x else "")
        bits = " ".join(f"{mean[n]:.3g}" for n in layers)
        rows.append([label, bits, f"{pred:.0f} / {budget}", mean_std(values) if values else "—", len(recs)])
    note = (
        "Weight bits per allocated layer in the model's layer order (mean over seeds), bytes as lowbit.summary counts "
        f"them (predicted / budget). {res.caption_facts(jobs)}."
    )
    table = Table(
        "Mixed precision: weight bits per layer", ["job", "bits per layer", "bytes", metric, "runs"], rows, note
    )
    figures = [_figure(res, figure, bars, x)] if figure else []
    return Section("Where the bits went", [], [table], figures)


mixed_bits.figure_names = lambda options: (  # type: ignore[attr-defined]  (speccheck: safepath.check_extra_names)
    [("figure", options.get("figure", "bits_per_layer"), False)] if options.get("figure", "bits_per_layer") else []
)


def _figure(res: RunResults, name: str, bars: dict, x: str | None) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...fileio import atomic_savefig

    panels = list(bars)
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 2.2 * len(panels) + 0.4), squeeze=False)
    for ax, key in zip(axes[:, 0], panels):
        methods = list(bars[key])
        layers = list(next(iter(bars[key].values())))
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            ax.bar(
                [li + (i - (len(methods) - 1) / 2) * width for li in range(len(layers))],
                [bars[key][m][n] for n in layers],
                width,
                label=str(m),
            )
        ax.set_xticks(range(len(layers)), layers, fontsize=6, rotation=60 if len(layers) > 8 else 0)
        ax.set_ylabel("weight bits")
        ax.set_title(f"{key[0]}" + (f", {x}={key[1]} budget" if x else ""), fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=7, ncol=len(bars[panels[0]]))
    fig.tight_layout()
    atomic_savefig(fig, res.figure_path(name), dpi=110)
    plt.close(fig)
    facts = res.caption_facts(list(res.jobs.values()))
    return Figure(
        f"figures/{name}.png", f"Weight bits per layer of the mixed-precision jobs (mean over seeds). {facts}."
    )
