"""Report extra ``paired_intervals``: "method at x vs its reference" cells as seed-paired differences with a 95 %
interval and n, and sentences that follow the intervals (issue 30, item 2).

Each pair is one seed's child against its own parent (the pairing of ``paired_comparisons``: same model, seed and
other axes; a parent without the child's extra axes, e.g. a float model without ``bits``, is shared by all its
children). For the n paired differences d_i of a cell:

    mean  m = (1/n) Σ d_i,   s = sqrt(Σ (d_i − m)² / (n − 1)),   95 % interval  m ± t_{0.975, n−1} · s / √n

(Student's t with n − 1 degrees of freedom). A cell whose interval holds 0 reads "no difference detectable at
n = N"; otherwise the sign and ``lower_is_better`` say which side is better. One pair gives no interval.

    [report.extras.paired_intervals]
    metric = "wer"
    lower_is_better = true
    x = "bits"                      # the axis the cells run over
    where = { model = "full" }      # optional filter on the axes
    group = "model"                 # optional axis splitting the cells (one block of rows per value)
    claims = [{ method = "INQ", against = "float" }]
"""

from __future__ import annotations

import math
from typing import Any

from .comparisons import _pair_key, check_claim_methods
from .document import Table, mean_sd
from .extras import Section, register_extra
from .results import JobResult, RunResults

LEVEL = 0.95
MIN_PAIRS = 5  # the bar for a cell the report may draw a conclusion from


def _t_pdf(t: float, nu: int) -> float:
    c = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
    return math.exp(c - (nu + 1) / 2 * math.log1p(t * t / nu))


def _t_mass(t: float, nu: int, steps: int = 4000) -> float:
    """P(0 ≤ T ≤ t) by Simpson's rule (the density is smooth; 4000 steps are exact to ~1e-10 for t ≤ 15)."""
    h = t / steps
    s = _t_pdf(0.0, nu) + _t_pdf(t, nu)
    s += sum((4 if i % 2 else 2) * _t_pdf(i * h, nu) for i in range(1, steps))
    return s * h / 3


def t_quantile(p: float, nu: int) -> float:
    """The two-sided ``p`` quantile of Student's t with ``nu`` degrees of freedom (P(|T| ≤ q) = p), by bisection."""
    if not 0 < p < 1 or nu < 1:
        raise ValueError(f"t_quantile(p={p}, nu={nu}): expected 0 < p < 1 and nu >= 1")
    lo, hi = 0.0, 1.0
    while 2 * _t_mass(hi, nu) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 2 * _t_mass(mid, nu) < p else (lo, mid)
    return (lo + hi) / 2


def paired_interval(diffs: list[float], level: float = LEVEL) -> tuple[float, float | None, float | None, int]:
    """(mean, low, high, n) of paired differences; low/high are None for one pair."""
    n = len(diffs)
    m, s = mean_sd(diffs)
    if s is None:
        return m, None, None, n
    half = t_quantile(level, n - 1) * s / math.sqrt(n)
    return m, m - half, m + half, n


def reading(method: str, against: str, m: float, lo, hi, n: int, lower_is_better: bool) -> str:
    """The words one cell's interval allows."""
    if lo is None:
        return f"one pair: no interval (n = {n})"
    if lo <= 0 <= hi:
        return f"no difference detectable at n = {n}"
    better = (m < 0) == lower_is_better
    return f"{method} {'better' if better else 'worse'} than {against} (n = {n})"


def _pairs(res: RunResults, metric: str, claim: dict, x: str, where: dict) -> dict[Any, list[tuple[Any, float]]]:
    """{x value: [(seed, child − parent)]} for one claim, the jobs filtered by ``where``.
    (x may be a tuple of axes: (group, x).)"""

    def sel(method):
        return [j for j in res.select({**where, "method": method}, metric)]

    base = {_pair_key(j): j for j in sel(claim["against"])}
    loose = {k: j for k, j in base.items() if all(a in ("model", "seed") for a, _ in k)}
    out: dict[Any, list[tuple[Any, float]]] = {}
    for j in sel(claim["method"]):
        key = _pair_key(j)
        b: JobResult | None = base.get(key) or loose.get(tuple((k, v) for k, v in key if k in ("model", "seed")))
        if b is not None:
            key = tuple(j.axes.get(a) for a in x) if isinstance(x, tuple) else j.axes.get(x)
            out.setdefault(key, []).append((j.axes.get("seed"), j.metrics[metric] - b.metrics[metric]))
    return out


def check_options(opts: dict, methods: list[str]) -> None:
    claims = opts.get("claims")
    if not isinstance(claims, list) or not claims:
        raise ValueError(f"claims = {claims!r}: expected a list of tables (method, against)")
    for c in claims:
        if not isinstance(c, dict) or not {"method", "against"} <= set(c):
            raise ValueError(f"claim {c!r}: expected a table with method and against")
        check_claim_methods(c, methods)


@register_extra("paired_intervals")
def paired_intervals(
    res: RunResults,
    claims: list,
    metric: str = "accuracy",
    lower_is_better: bool = False,
    x: str = "bits",
    where: dict | None = None,
    group: str | None = None,
    heading: str = "Seed-paired differences with 95 % intervals",
) -> Section:
    check_options({"claims": claims}, list(res.spec.methods))
    where = dict(where or {})
    body, sentences = [], []
    for c in claims:
        pairs = _pairs(res, metric, c, (group, x) if group else (None, x), where)
        gorder, order = res.spec.grid.get(group, []) if group else [None], res.spec.grid.get(x, [])
        rank = {
            k: (gorder.index(k[0]) if k[0] in gorder else len(gorder), order.index(k[1]) if k[1] in order else 0)
            for k in pairs
        }
        xs = sorted(pairs, key=lambda k: rank[k])
        groups: dict[str, list[str]] = {}
        for xv in xs:
            m, lo, hi, n = paired_interval([d for _, d in pairs[xv]])
            words = reading(c["method"], c["against"], m, lo, hi, n, lower_is_better)
            ci = "—" if lo is None else f"[{lo:+.2f}, {hi:+.2f}]"
            cell = [xv[0], xv[1]] if group else [xv[1]]
            body.append([f"{c['method']} − {c['against']}", *cell, n, f"{m:+.2f}", ci, words])
            label = "detectable" if lo is not None and not lo <= 0 <= hi else "undetectable"
            if lo is not None and label == "detectable":
                label = "better" if (m < 0) == lower_is_better else "worse"
            groups.setdefault(label, []).append((f"{group}={xv[0]} " if group else "") + f"{x}={xv[1]}")
        if not xs:
            sentences.append(f"**{c['method']} vs {c['against']}**: no pair of runs at this scale.")
            continue
        n_min = min(len(pairs[xv]) for xv in xs)
        parts = []
        for label, words in (
            ("better", f"{c['method']} is better than {c['against']}"),
            ("worse", f"{c['method']} is worse than {c['against']}"),
            ("undetectable", "no difference is detectable"),
        ):
            if groups.get(label):
                parts.append(f"{words} at {', '.join(groups[label])}")
        short = ""
        if n_min < MIN_PAIRS:
            short = f" (fewer than {MIN_PAIRS} pairs in some cells: read those as indicative only)"
        sentences.append(
            f"**{c['method']} vs {c['against']}** ({metric}, {'lower' if lower_is_better else 'higher'} is better; "
            f"95 % paired intervals, n = {n_min}..{max(len(v) for v in pairs.values())} seeds per cell): "
            + "; ".join(parts)
            + f".{short}"
        )
    note = (
        f"Each pair is one seed's run minus its own reference run (same model, seed and other axes); the interval is "
        f"mean ± t(0.975, n−1)·sd/√n. {res.caption_facts(list(res.select(where or None, metric)))}."
    )
    table = Table(
        f"Seed-paired differences in {metric} (method − reference), 95 % intervals",
        ["pair", *([group] if group else []), x, "n", "mean diff", "95 % interval", "reading"],
        body,
        note,
    )
    return Section(heading, sentences, [table], [])


paired_intervals.check_options = check_options  # type: ignore[attr-defined]  (speccheck calls it)
