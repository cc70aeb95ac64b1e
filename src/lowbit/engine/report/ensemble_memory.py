"""Report extra ``ensemble_memory``: what an ensemble stores against what it scores (seed §3.2-3.3, the
"quantization + ensemble" combination: N members at b bits store about as much as one float model at N = 32 / b).

Every ensemble job's memory is the sum of its members' ``weight_kib`` (the members are its parents in the store);
one row per (method, extra axes, members): members' weights as stored, the ratio to the baseline (by default the
single float model, ``E_float`` with one member), and the metric, mean ± std over the jobs of the row (the
rotations of the member list)::

    [report.extras.ensemble_memory]
    metric = "accuracy"
    where = { method = ["E_float", "E_INQ"] }
    baseline = { method = "E_float", members = 1 }
"""

from __future__ import annotations

from typing import Any

from .document import Table, mean_std
from .extras import Section, register_extra
from .results import JobResult, RunResults


def _kib(res: RunResults, job: JobResult) -> float | None:
    parents = [res.jobs.get(p) for p in job.config.get("parents", [])]
    if not parents or any(p is None or p.metrics.get("weight_kib") is None for p in parents):
        return None
    return sum(p.metrics["weight_kib"] for p in parents)


@register_extra("ensemble_memory")
def ensemble_memory(
    res: RunResults, metric: str = "accuracy", where: dict | None = None, baseline: dict | None = None
) -> Section:
    baseline = baseline or {"method": "E_float", "members": 1}
    jobs = [j for j in res.select(where, metric) if j.config["recipe"]["kind"] == "ensemble"]
    base = [k for k in (_kib(res, j) for j in res.select(baseline, metric)) if k is not None]
    base_kib = sum(base) / len(base) if base else None
    axes = ["method", *(a for a in res.spec.extra_axes if a != "rotation")]
    rows: dict[tuple, list[JobResult]] = {}
    for j in jobs:
        rows.setdefault(tuple(j.axes.get(a) for a in axes), []).append(j)
    keys = sorted(rows, key=lambda k: tuple(res.order(a, v) for a, v in zip(axes, k)))
    body: list[list[Any]] = []
    for k in keys:
        kib = [x for x in (_kib(res, j) for j in rows[k]) if x is not None]
        mean_kib = sum(kib) / len(kib) if kib else None
        ratio = f"{mean_kib / base_kib:.2f}x" if mean_kib is not None and base_kib else "—"
        fits = "yes" if mean_kib is not None and base_kib and mean_kib <= base_kib * (1 + 1e-9) else "no"
        label = res.key_label(tuple(axes), k)
        values = [j.metrics[metric] for j in rows[k]]
        body.append(
            [label, None if mean_kib is None else f"{mean_kib:.1f}", ratio, fits, mean_std(values), len(values)]
        )
    title = f"Ensembles against memory: {metric} and the members' weights as stored"
    blabel = ", ".join(f"{a}={v}" for a, v in baseline.items())
    note = (
        f"Memory: the sum of the members' weights as stored (b bits per INQ weight, 32 per other parameter); ratio "
        f"and 'fits' against the baseline ({blabel}). {res.caption_facts(jobs)}."
    )
    header = ["ensemble", "weights KiB", "vs baseline", "fits in the baseline", f"{metric} (mean ± std)", "runs"]
    return Section(tables=[Table(title, header, body, note)])
