"""Report extra ``paired_comparisons``: a paper's claims checked on seed-paired differences (sentences computed
from the store, never written by hand).

Each claim compares a method with another on the same model, seed and other axes (a *paired* difference,
``method − against``, so seed-to-seed noise shared by the two cancels), and says what the paper expects:

    [report.extras.paired_comparisons]
    metric = "accuracy"
    x = "model"            # what the rows run over: an axis, or a model parameter (x_param = "depth")
    group = "block"        # optional model parameter splitting the rows into lines (Fig. 8's block types)
    figure = "change_vs_depth"   # optional: the differences vs x, one panel per claim
    levels_figure = "accuracy_by_depth"  # optional: the metric itself vs x, one panel per method (Fig. 8's form)
    heading = "What the paper claims, checked on these runs"   # optional: the section's title
    claims = [
      { method = "W2", against = "float", expect = "rises", text = "deeper networks lose less under W2" },
      { method = "A2", against = "float", expect = "falls", text = "deeper networks lose more under A2" },
      { method = "lip+clr", against = "retrain", expect = "higher", text = "L_Lip + CLR beats plain retraining" },
    ]

``expect``: ``higher`` / ``lower`` — the mean difference over every x is above / below 0; ``rises`` /
``falls`` — the difference at the last x (spec order) is above / below the one at the first x, for each group.
The verdict says "holds" or "does not hold", and, where the cells have one seed, that there is no spread to
judge the change against; with several seeds it says whether the change exceeds twice the paired standard error,
and a direction that does not is "not resolved (points the expected / other way, within noise)".
"""

from __future__ import annotations

import math
from typing import Any

from .document import Figure, Table, mean_sd
from .extras import Section, register_extra
from .results import JobResult, RunResults

EXPECTS = ("higher", "lower", "rises", "falls")


def _x_of(j: JobResult, x: str | None, x_param: str | None) -> Any:
    return j.config["model"].get(x_param) if x_param else j.axes.get(x)


def _pair_key(j: JobResult) -> tuple:
    return tuple(sorted((k, v) for k, v in j.axes.items() if k != "method"))


def _differences(res: RunResults, metric: str, claim: dict, x: str | None, x_param: str | None, group: str | None):
    """{(group, x): [paired differences]} for one claim."""
    mine = {_pair_key(j): j for j in res.select({"method": claim["method"]}, metric)}
    base = {_pair_key(j): j for j in res.select({"method": claim["against"]}, metric)}
    # a float parent has no extra axes (bits): pair it with every child that shares its model and seed (only a
    # reference without extra axes is shared this way; one with them must match the child's values exactly)
    base_loose = {key: j for key, j in base.items() if all(k in ("model", "seed") for k, _ in key)}
    out: dict[tuple, list[float]] = {}
    for key, j in mine.items():
        b = base.get(key) or base_loose.get(tuple((k, v) for k, v in key if k in ("model", "seed")))
        if b is None:
            continue
        g = j.config["model"].get(group) if group else None
        out.setdefault((g, _x_of(j, x, x_param)), []).append(j.metrics[metric] - b.metrics[metric])
    return out


def _x_order(res: RunResults, x: str | None, x_param: str | None, values) -> list:
    if x_param:
        return sorted(set(values), key=lambda v: (isinstance(v, str), v))
    return [v for v in res.spec.grid.get(x, []) if v in set(values)] or sorted(set(values), key=str)


def _fmt(values: list[float]) -> str:
    m, s = mean_sd(values)
    return f"{m:+.2f}" if s is None else f"{m:+.2f} ± {s:.2f}"


def _sign_note(v: list[float], expect: str) -> str:
    """ " (every pair)" when all pairs of a cell point the expected way, "" otherwise (or with one pair)."""
    if len(v) < 2:
        return ""
    return " (every pair)" if all((d > 0) if expect == "higher" else (d < 0) for d in v) else ""


def _clear(v: list[float], expect: str) -> bool:
    """Several pairs whose mean points the expected way by more than twice its standard error."""
    if len(v) < 2:
        return False
    m, s = mean_sd(v)
    return (m > 0 if expect == "higher" else m < 0) and abs(m) > 2 * (s or 0.0) / math.sqrt(len(v))


def _verdict(
    claim: dict, diffs: dict[tuple, list[float]], xs: list, groups: list, xname: str = "x", seeds: int = 0
) -> str:
    """``seeds``: how many seeds the claim's runs span (named in the sentence; the pairs per cell decide)."""
    expect, n = claim["expect"], max((len(v) for v in diffs.values()), default=0)
    label = f"{claim['method']} − {claim['against']}"
    if not diffs:  # a method this scale's grid leaves out
        return f"**{claim.get('text', label)}** — not evaluated (no pair of runs at this scale)."
    parts, holds, clear, clear_cells, against_cells = [], [], [], [], []
    if expect in ("higher", "lower"):
        allv = [d for v in diffs.values() for d in v]
        m, s = mean_sd(allv)
        ok = m > 0 if expect == "higher" else m < 0
        holds.append(ok)
        se = (s or 0.0) / math.sqrt(len(allv)) if len(allv) > 1 else None
        clear.append(se is not None and abs(m) > 2 * se)
        parts.append(f"mean {label} over {len(allv)} pair(s) {m:+.2f} points" + (f" (sd {s:.2f})" if s else ""))
        if len(diffs) > 1:  # the same difference at each x (and group): a pooled mean can hide where it holds
            cells = [(k, diffs[k]) for g in groups for xv in xs if (k := (g, xv)) in diffs]
            other = {"higher": "lower", "lower": "higher"}[expect]
            name = {k: f"{'' if k[0] is None else f'{k[0]} '}{xname}={k[1]}" for k, _ in cells}
            clear_cells = [name[k] for k, v in cells if _clear(v, expect)]
            against_cells = [name[k] for k, v in cells if _clear(v, other)]
            parts.append("per cell " + ", ".join(f"{name[k]}: {_fmt(v)}{_sign_note(v, expect)}" for k, v in cells))
    else:
        for g in groups:
            pts = [(xv, diffs[(g, xv)]) for xv in xs if (g, xv) in diffs]
            if len(pts) < 2:
                continue
            (x0, v0), (x1, v1) = pts[0], pts[-1]
            change = mean_sd(v1)[0] - mean_sd(v0)[0]
            ok = change > 0 if expect == "rises" else change < 0
            holds.append(ok)
            paired = len(v0) == len(v1) and len(v0) > 1
            if paired:
                m, s = mean_sd([b - a for a, b in zip(v0, v1)])
                clear.append(s is not None and abs(m) > 2 * s / math.sqrt(len(v0)))
            else:
                clear.append(False)
            where = f"{g}: " if g is not None else ""
            means = [mean_sd(v)[0] for _, v in pts]
            steps = " → ".join(f"{m:+.2f}" for m in means)
            up = [b >= a for a, b in zip(means, means[1:])]
            shape = "" if len(pts) == 2 or all(u == (expect == "rises") for u in up) else ", not monotone"
            parts.append(f"{where}{label} {steps} from {x0} to {x1} (change {change:+.2f}{shape})")
    if not holds:
        return f"**{claim.get('text', label)}** — not evaluated (fewer than two points)."
    verdict = "holds" if all(holds) else ("does not hold" if not any(holds) else "holds in part")
    if n > 1 and not all(clear) and verdict != "holds in part":
        # with seeds to judge by, a direction the paired standard error cannot separate from 0 is no verdict
        way = "the expected way" if verdict == "holds" else "the other way"
        verdict = f"not resolved (points {way}, within noise)"
        if clear_cells or against_cells:  # ... though some cells may be clear on their own
            where = [f"clear at {', '.join(clear_cells)}"] if clear_cells else []
            where += [f"clearly the other way at {', '.join(against_cells)}"] if against_cells else []
            part = "holds in part" if clear_cells else "does not hold in part"
            verdict = f"{part} ({'; '.join(where)}; pooled, within noise)"
    # what was judged: the pooled mean difference (higher/lower) or each group's change from its first x to its
    # last (rises/falls; the points between are shown, not tested)
    if expect in ("higher", "lower"):
        what = "the mean difference"
    else:
        what = "the change" if len(clear) == 1 else "every group's change"
    count = f"{seeds} seeds" if seeds > 1 else f"{n} pairs per cell"
    if n <= 1:
        noise = "one seed per cell: there is no spread to judge these changes against"
    elif all(clear):
        noise = f"{count}: {what} exceeds twice its paired standard error"
    elif len(clear) == 1:
        noise = f"{count}: {what} is within twice its paired standard error"
    else:
        noise = f"{count}: not {what} exceeds twice its paired standard error"
    return f"**{claim.get('text', label)}** — {verdict}: {'; '.join(parts)} ({noise})."


def check_options(opts: dict, methods: list[str]) -> None:
    """Every claim names two methods of the spec and an ``expect`` of EXPECTS (checked before any job runs; a
    method the scale's grid leaves out is simply not evaluated)."""
    claims = opts.get("claims")
    if not isinstance(claims, list) or not claims:
        raise ValueError(f"claims = {claims!r}: expected a list of tables (method, against, expect)")
    for c in claims:
        if not isinstance(c, dict) or c.get("expect") not in EXPECTS or not {"method", "against"} <= set(c):
            raise ValueError(
                f"claim {c!r}: expected a table with method, against and expect (one of {', '.join(EXPECTS)})"
            )
        check_claim_methods(c, methods)


@register_extra("paired_comparisons")
def paired_comparisons(
    res: RunResults,
    claims: list,
    metric: str = "accuracy",
    x: str = "model",
    x_param: str | None = None,
    group: str | None = None,
    figure: str | None = None,
    levels_figure: str | None = None,
    heading: str = "What the paper claims, checked on these runs",
) -> Section:
    check_options({"claims": claims}, list(res.spec.methods))
    per_claim = [_differences(res, metric, c, x, x_param, group) for c in claims]
    keys = {k for d in per_claim for k in d}
    xs = _x_order(res, x, x_param, [k[1] for k in keys])
    groups = sorted({k[0] for k in keys}, key=str) if group else [None]
    xname = x_param or x
    seeds = [
        len({j.axes["seed"] for j in res.select({"method": c["method"]}, metric) if "seed" in j.axes}) for c in claims
    ]
    sentences = [_verdict(c, d, xs, groups, xname, k) for c, d, k in zip(claims, per_claim, seeds)]
    header = ([group] if group else []) + [xname] + [f"{c['method']} − {c['against']}" for c in claims]
    body = []
    for g in groups:
        for xv in xs:
            cells = [_fmt(d[(g, xv)]) if (g, xv) in d else "—" for d in per_claim]
            if any(c != "—" for c in cells):
                body.append(([g] if group else []) + [xv] + cells)
    note = (
        f"Paired differences in {metric} points (the method minus its reference on the same model, seed and other "
        f"axes): mean ± sd over the pairs. {res.caption_facts(list(res.select(None, metric)))}."
    )
    table = Table(f"Seed-paired differences in {metric} (points)", header, body, note)
    figures = []
    if figure and keys:
        panels = [(f"{c['method']} − {c['against']}", d) for c, d in zip(claims, per_claim)]
        ylabel, what = f"{metric} difference (points)", f"Seed-paired {metric} differences"
        figures.append(_figure(res, figure, panels, xs, groups, xname, group, ylabel, what, zero=True))
    if levels_figure:  # Fig. 8's form: the metric itself vs x, one line per group, one panel per method
        levels = [(m, _levels(res, metric, m, x, x_param, group)) for m in res.spec.grid.get("method", [])]
        levels = [(m, d) for m, d in levels if d]
        lx = _x_order(res, x, x_param, [k[1] for _, d in levels for k in d])
        lg = sorted({k[0] for _, d in levels for k in d}, key=str) if group else [None]
        if levels:
            figures.append(_figure(res, levels_figure, levels, lx, lg, xname, group, metric, metric, zero=False))
    return Section(heading, sentences, [table], figures)


paired_comparisons.check_options = check_options  # type: ignore[attr-defined]  (speccheck calls it)
# the file names its options give, figures/NAME.png (speccheck: safepath.check_extra_names)
paired_comparisons.figure_names = lambda options: [  # type: ignore[attr-defined]
    (k, options[k], False) for k in ("figure", "levels_figure") if options.get(k) is not None
]


def _levels(res: RunResults, metric: str, method: str, x, x_param, group) -> dict[tuple, list[float]]:
    out: dict[tuple, list[float]] = {}
    for j in res.select({"method": method}, metric):
        g = j.config["model"].get(group) if group else None
        out.setdefault((g, _x_of(j, x, x_param)), []).append(j.metrics[metric])
    return out


def _figure(res, name, panels, xs, groups, xname, group, ylabel, what, zero) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...fileio import atomic_savefig

    numeric = all(isinstance(v, (int, float)) for v in xs)
    pos = {v: (v if numeric else i) for i, v in enumerate(xs)}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 0.6, 3.3), squeeze=False, sharey=True)
    for ax, (title, d) in zip(axes[0], panels):
        for g in groups:
            pts = [(xv, d[(g, xv)]) for xv in xs if (g, xv) in d]
            if not pts:
                continue
            st = [mean_sd(v) for _, v in pts]
            ax.errorbar(
                [pos[p[0]] for p in pts],
                [s[0] for s in st],
                yerr=[s[1] or 0 for s in st],
                marker="o",
                capsize=3,
                label=str(g) if group else None,
            )
        if zero:
            ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([pos[v] for v in xs], [str(v) for v in xs], fontsize=7)
        ax.set_xlabel(xname)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    # the legend goes on the last panel that drew a line: a panel whose claim had no pairs at this scale has none,
    # and matplotlib warns on an empty legend
    drawn = [ax for ax in axes[0] if ax.get_legend_handles_labels()[0]]
    if group and drawn:
        drawn[-1].legend(title=group, fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, res.figure_path(name), dpi=110)
    plt.close(fig)
    caption = (
        f"{what} vs {xname}"
        + (f" by {group}" if group else "")
        + f" (error bars: sd over seeds). {res.caption_facts(list(res.jobs.values()))}."
    )
    return Figure(f"figures/{name}.png", caption)


def check_claim_methods(claim: dict, methods: list[str]) -> None:
    """A claim's ``method`` and ``against`` must be methods of the spec (paired_comparisons, paired_intervals)."""
    for k in ("method", "against"):
        if claim[k] not in methods:
            raise ValueError(f"claim {k} = {claim[k]!r}: not a method of the spec; accepted: {', '.join(methods)}")
