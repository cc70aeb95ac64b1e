"""Figure extras of the application studies (classification, segmentation, speech; seed §3.1-3.3).

``score_vs_axis``: a metric against a numeric axis (weight bits, ensemble members), one line per value of
``lines`` (mean ± std over the jobs that share a point: seeds, or rotations of an ensemble's member list), each
line's ``baseline`` (jobs without the x axis, e.g. the float models: a dashed line at their mean) and the
paper's numbers (``reference = { "x value" = number }``, hollow markers)::

    [report.extras.score_vs_axis.figures.accuracy_vs_bits]
    title = "Top-1 accuracy vs INQ weight bits"
    metric = "accuracy"
    x = "bits"
    lines = "model"                # an axis or a list of axes
    where = { method = "INQ" }     # a value or a list of accepted values per axis
    baseline = { method = "float" }
    reference = { "2" = 42.61, "8" = 70.48 }
"""

from __future__ import annotations

from typing import Any

from .document import Figure, mean_sd
from .extras import Section, register_extra
from .results import RunResults

FIGURE_KEYS = ("title", "metric", "x", "lines", "where", "baseline", "reference", "ylabel")


def _mean_std(values: list[float]) -> tuple[float, float]:
    m, s = mean_sd(values)
    return m, s or 0.0


def _figure(res: RunResults, name: str, opts: dict[str, Any]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...fileio import atomic_savefig

    unknown = sorted(set(opts) - set(FIGURE_KEYS))
    if unknown:
        raise ValueError(f"report.extras.score_vs_axis.figures.{name}: unknown keys {unknown}; accepted: {FIGURE_KEYS}")
    metric, x = opts["metric"], opts["x"]
    lines = tuple([opts["lines"]] if isinstance(opts.get("lines"), str) else opts.get("lines", []))

    def key_of(j) -> tuple:
        return tuple(j.axes.get(a) for a in lines)

    jobs = [j for j in res.select(opts.get("where"), metric) if x in j.axes]
    base = [j for j in res.select(opts["baseline"], metric) if x not in j.axes] if "baseline" in opts else []
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = sorted({key_of(j) for j in jobs + base}, key=lambda k: tuple(res.order(a, v) for a, v in zip(lines, k)))
    for i, key in enumerate(keys):
        colour = f"C{i}"
        pts: dict[Any, list[float]] = {}
        for j in jobs:
            if key_of(j) == key:
                pts.setdefault(j.axes[x], []).append(j.metrics[metric])
        label = res.key_label(lines, key) if lines else metric
        if pts:
            xs = sorted(pts, key=lambda v: res.order(x, v))
            st = [_mean_std(pts[v]) for v in xs]
            means, stds = [m for m, _ in st], [s for _, s in st]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color=colour, label=label)
        bvals = [j.metrics[metric] for j in base if key_of(j) == key]
        if bvals:
            m, s = _mean_std(bvals)
            what = opts["baseline"].get("method", "baseline")
            ax.axhline(m, color=colour, ls="--", lw=1, label=f"{label} {what} ({m:.2f} ± {s:.2f}, n={len(bvals)})")
    ref = opts.get("reference", {})
    if ref:
        rx = sorted(ref, key=float)
        ax.plot([float(v) for v in rx], [ref[v] for v in rx], "D", mfc="none", color="k", label="paper")
    ax.set_xlabel(x)
    ax.set_ylabel(opts.get("ylabel", metric))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    title = opts.get("title", f"{metric} vs {x}")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, res.figure_path(name), dpi=110)
    plt.close(fig)
    facts = res.caption_facts(jobs + base)
    return Figure(f"figures/{name}.png", f"{title}: mean ± std per point; dashed: baseline mean. {facts}.")


@register_extra("score_vs_axis")
def score_vs_axis(res: RunResults, figures: dict | None = None) -> Section:
    """One figure per ``figures.NAME`` table (written to figures/NAME.png); see the module docstring."""
    return Section(figures=[_figure(res, name, opts) for name, opts in (figures or {}).items()])


def _figure_names(options: dict) -> list[tuple[str, object, bool]]:
    """The file names its options give (speccheck checks them: ``safepath.check_extra_names``): the keys of
    ``figures``, each written to figures/NAME.png."""
    figures = options.get("figures")
    return [("figures", name, True) for name in figures] if isinstance(figures, dict) else []


score_vs_axis.figure_names = _figure_names  # type: ignore[attr-defined]
