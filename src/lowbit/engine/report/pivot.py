"""Tables as pivots of result rows, and metric-vs-axis figures (the spec's ``[[report.tables]]``/``figures``).

    [[report.tables]]
    title = "Test accuracy (%)"
    rows = "model"                 # an axis, or a list of axes (their values are joined into one label)
    columns = ["method", "bits"]   # column order = the order of the spec's axis lists
    value = "accuracy"             # a metric; cells are mean ± std over the jobs that share a cell (seeds)
    where = { seed = 0 }           # optional filter on axis values
    aggregate = "max"              # optional: "mean" (default: mean ± std), "max" / "min" (the best run of a cell,
                                   # e.g. the seed paper's "repeated 4 times and the optimal one selected")
    reference = { "128-3" = { float = 98.1 } }   # the paper's numbers: a "(paper)" column after each such column

    [[report.figures]]
    metric = "accuracy"
    x = "bits"                     # numeric or categorical axis on the x axis
    lines = "method"               # one line per value of this axis (optional); mean ± std error bars

A cell is ``mean ± std`` (sample std) with ``(n)`` when its count differs from the table's usual count; the
note under the table says n. Jobs of a cell without a result are named in it, ``[1 failed]``, ``[2 not run]``
(a job they need failed) or ``[1 pending]`` (not run yet), and a cell with none is ``missing [...]``: a failed
method keeps its column instead of vanishing from the table. Jobs without a value for a row/column axis (a float
model has no ``bits``) fill the slot with nothing, so "float" and "INQ bits=2" can be columns of one table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..safepath import default_figure_name
from .document import Figure, Table, mean_sd
from .results import RunResults


def _axes(v: str | list[str]) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v)


def _stats(values: list[float]) -> tuple[float, float | None, int]:
    return (*mean_sd(values), len(values))


def _cell(values: list[float], usual_n: int, absent: Counter | None = None, aggregate: str = "mean") -> str:
    why = " [" + ", ".join(f"{n} {status}" for status, n in absent.items()) + "]" if absent else ""
    if not values:
        return f"missing{why}" if absent else "—"
    if aggregate in ("max", "min"):
        best = max(values) if aggregate == "max" else min(values)
        return f"{best:.2f}" + (f" ({len(values)})" if len(values) != usual_n else "") + why
    m, s, n = _stats(values)
    text = f"{m:.2f}" if s is None else f"{m:.2f} ± {s:.2f}"
    return text + (f" ({n})" if n != usual_n else "") + why


Cells = dict[tuple, dict[tuple, list[float]]]
Absent = dict[tuple, dict[tuple, Counter]]


def _grouped(res: RunResults, spec: dict) -> tuple[tuple, tuple, Cells, Absent]:
    """The values of each (row key, column key) cell, and the statuses of its jobs without a result."""
    rows, cols, metric = _axes(spec["rows"]), _axes(spec["columns"]), spec["value"]
    cells: Cells = {}
    absent: Absent = {}
    for j in res.select(spec.get("where"), metric):
        r = tuple(j.axes.get(a) for a in rows)
        c = tuple(j.axes.get(a) for a in cols)
        cells.setdefault(r, {}).setdefault(c, []).append(j.metrics[metric])
    for u in res.select_unfinished(spec.get("where"), metric):
        r = tuple(u.axes.get(a) for a in rows)
        c = tuple(u.axes.get(a) for a in cols)
        absent.setdefault(r, {}).setdefault(c, Counter())[u.status] += 1
    return rows, cols, cells, absent


def _sorted_keys(res: RunResults, axes: tuple, keys) -> list[tuple]:
    return sorted(set(keys), key=lambda k: tuple(res.order(a, v) for a, v in zip(axes, k)))


def pivot_table(res: RunResults, spec: dict) -> Table:
    rows, cols, cells, absent = _grouped(res, spec)
    aggregate = spec.get("aggregate", "mean")
    row_keys = _sorted_keys(res, rows, [*cells, *absent])
    col_keys = _sorted_keys(res, cols, [c for part in (cells, absent) for r in part.values() for c in r])
    counts = Counter(len(v) for r in cells.values() for v in r.values())
    usual_n = counts.most_common(1)[0][0] if counts else 1
    ref: dict[str, dict[str, Any]] = spec.get("reference", {})
    ref_cols = {res.key_label(cols, c) for c in col_keys if any(res.key_label(cols, c) in v for v in ref.values())}
    header = [" / ".join(rows)]
    for c in col_keys:
        label = res.key_label(cols, c)
        header += [label] + ([f"{label} (paper)"] if label in ref_cols else [])
    body = []
    for r in row_keys:
        rl = res.key_label(rows, r)
        line: list[Any] = [rl]
        for c in col_keys:
            label = res.key_label(cols, c)
            line.append(_cell(cells.get(r, {}).get(c, []), usual_n, absent.get(r, {}).get(c), aggregate))
            if label in ref_cols:
                line.append(ref.get(rl, {}).get(label))
        body.append(line)
    jobs = res.select(spec.get("where"), spec["value"])
    how = "mean ± std over" if aggregate == "mean" else f"the best ({aggregate}) of"
    note = f"Each cell: {how} n = {usual_n} run(s) (other n in parentheses). {res.caption_facts(jobs)}."
    if absent:
        note += (
            " In brackets: the cell's jobs without a result — failed (see Failed jobs), not run (a job they need "
            "failed) or pending (not run yet)."
        )
    if spec.get("note"):
        note = f"{spec['note']} {note}"
    title = spec.get("title", f"{spec['value']} by {', '.join(rows)} and {', '.join(cols)}")
    return Table(title, header, body, note)


def metric_figure(res: RunResults, spec: dict, index: int) -> Figure:
    """A metric-vs-axis line plot, one line per value of ``lines``; writes figures/<file>.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...fileio import atomic_savefig

    metric, x = spec["metric"], spec["x"]
    lines = spec.get("lines")
    jobs = [j for j in res.select(spec.get("where"), metric) if x in j.axes]
    groups: dict[Any, dict[Any, list[float]]] = {}
    for j in jobs:
        groups.setdefault(j.axes.get(lines) if lines else None, {}).setdefault(j.axes[x], []).append(j.metrics[metric])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    xs_all = _sorted_keys(res, (x,), [(v,) for g in groups.values() for v in g])
    numeric = all(isinstance(k[0], (int, float)) for k in xs_all)
    pos = {k[0]: (k[0] if numeric else i) for i, k in enumerate(xs_all)}
    for line in _sorted_keys(res, (lines,), [(k,) for k in groups]) if lines else [(None,)]:
        pts = groups.get(line[0], {})
        if not pts:  # nothing (yet) to plot on this line: a partly finished run still gets its report
            continue
        xs = [k[0] for k in _sorted_keys(res, (x,), [(v,) for v in pts])]
        st = [_stats(pts[v]) for v in xs]
        ax.errorbar(
            [pos[v] for v in xs],
            [s[0] for s in st],
            yerr=[s[1] or 0 for s in st],
            marker="o",
            capsize=3,
            label=str(line[0]) if lines else metric,
        )
    ax.set_xticks([pos[k[0]] for k in xs_all], [str(k[0]) for k in xs_all])  # the axis values, as in the spec
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(title=lines, fontsize=8)
    title = spec.get("title", f"{metric} vs {x}")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    name = spec["file"] if "file" in spec else default_figure_name(f"{metric}_vs_{x}_{index}")
    atomic_savefig(fig, res.figure_path(name), dpi=110)
    plt.close(fig)
    caption = f"{title}: mean ± std over seeds. {res.caption_facts(jobs)}."
    missing = [u for u in res.select_unfinished(spec.get("where"), metric) if x in u.axes]
    if missing:
        caption += f" Not shown: {_missing_text(missing)} without a result."
    return Figure(f"figures/{name}.png", caption)


def _missing_text(jobs: list) -> str:
    """ "2 failed, 1 pending" for a list of ``Unfinished`` jobs."""
    return ", ".join(f"{n} {status}" for status, n in Counter(u.status for u in jobs).items()) + " job(s)"
