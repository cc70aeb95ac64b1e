"""Report extra ``quantization_observations``: the seed paper's claims checked on the measured rows (sentences
computed from the store, never written by hand; seed §3.1-3.3).

- the bit sweep: the float mean and std over seeds, the best INQ width and its difference to float, and per width
  the seed-paired verdict (each INQ model minus its own float parent, 95 % t interval: better, worse, or no
  difference detectable at n pairs; the seed: 5-7 bits beat float);
- each ensemble method: the single model (members = 1), the best N and its gain, and the largest N::

    [report.extras.quantization_observations]
    metric = "score"
    lower_is_better = false
    model = "full"
    float = "float"          # method names of the spec
    inq = "INQ"              # over the bits axis
    ensembles = ["E_float", "E_INQ"]
"""

from __future__ import annotations

from ..engine.report.document import mean_sd
from ..engine.report.extras import Section, register_extra
from ..engine.report.paired_intervals import paired_interval
from ..engine.report.results import RunResults


def _mean_std(v: list[float]) -> tuple[float, float]:
    m, s = mean_sd(v)
    return m, s or 0.0


@register_extra("quantization_observations")
def observations(
    res: RunResults,
    metric: str = "accuracy",
    lower_is_better: bool = False,
    model: str | None = None,
    float: str = "float",  # noqa: A002  (the option is the method's name in the spec)
    inq: str = "INQ",
    ensembles: list | None = None,
) -> Section:
    model = model or res.spec.grid["model"][0]
    sign = -1.0 if lower_is_better else 1.0
    out: list[str] = []
    floats = {j.axes.get("seed"): j.metrics[metric] for j in res.select({"model": model, "method": float}, metric)}
    fl = list(floats.values())
    by_bits: dict = {}
    diffs: dict = {}  # bits -> [INQ − its own float parent (same seed)]
    for j in res.select({"model": model, "method": inq}, metric):
        by_bits.setdefault(j.axes.get("bits"), []).append(j.metrics[metric])
        if j.axes.get("seed") in floats:
            diffs.setdefault(j.axes.get("bits"), []).append(j.metrics[metric] - floats[j.axes.get("seed")])
    if fl and by_bits:
        f_mean, f_sd = _mean_std(fl)
        means = {b: _mean_std(v)[0] for b, v in by_bits.items()}
        best = max(means, key=lambda b: sign * means[b])
        verdict: dict[str, list[str]] = {"better": [], "worse": [], "none": [], "one pair": []}
        for b in sorted(diffs):
            m, lo, hi, n = paired_interval(diffs[b])
            key = "one pair" if lo is None else "none" if lo <= 0 <= hi else "better" if sign * m > 0 else "worse"
            verdict[key].append(f"{b} (n = {n})")
        words = [
            f"{what}: {', '.join(v)}"
            for what, v in (
                (f"{inq} better than its float parent", verdict["better"]),
                (f"{inq} worse", verdict["worse"]),
                ("no difference detectable", verdict["none"]),
                ("one pair, no interval", verdict["one pair"]),
            )
            if v
        ]
        out.append(
            f"{model}, {metric}: float {f_mean:.2f} (std {f_sd:.2f} over {len(fl)} seeds). Best {inq} mean: {best} "
            f"bits at {means[best]:.2f} ({means[best] - f_mean:+.2f}). Seed-paired 95 % intervals per width — "
            + "; ".join(words)
            + " (the seed: 5-7 bits beat float)."
        )
    for method in ensembles or []:
        groups: dict = {}
        for j in res.select({"model": model, "method": method}, metric):
            key = tuple((a, v) for a, v in j.axes.items() if a not in ("model", "method", "members", "rotation"))
            groups.setdefault(key, {}).setdefault(j.axes["members"], []).append(j.metrics[metric])
        for key, per_n in sorted(groups.items(), key=lambda kv: str(kv[0])):
            if 1 not in per_n or len(per_n) < 2:
                continue
            label = " ".join([method, *(f"{a}={v}" for a, v in key)])
            means = {n: _mean_std(v)[0] for n, v in per_n.items()}
            single, top = means[1], max(means)
            best = max((n for n in means if n > 1), key=lambda n: sign * means[n])
            out.append(
                f"{label}: single model {single:.2f}, best N = {best} at {means[best]:.2f} "
                f"({means[best] - single:+.2f}); N = {top}: {means[top]:.2f}."
            )
    return Section(heading="Checks against the seed's claims (computed from the rows)", paragraphs=out)
