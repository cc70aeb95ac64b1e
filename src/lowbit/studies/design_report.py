"""The evidence of a ``lowbit design`` run: ranking, pick, the paper's check, score vs depth (``design.py``).

``write_design_report(run_dir, candidates, target, proxy, meaningful)`` reads the run's ``spec.toml`` and store only
(``report.RunResults``), so it can be rebuilt at any time; it writes ``design.md`` and
``figures/proxy_score_vs_depth.png``. The proxy score of a candidate is the mean accuracy (%) of its
target-precision job over the seeds, on the held-out validation images (or the test set when the run has none);
ties go to the smaller network.

How sure the ranking is: a score is an accuracy on n scoring images (``n_scored``), so two candidates whose scores
differ by less than two binomial standard errors of a difference, ``2·sqrt(p1(1-p1)/n + p2(1-p2)/n)``, are not
told apart by the run ("within noise"). The bound treats the two scores as independent; both are measured on the
same images, so the paired error is usually smaller, but seed-to-seed training noise (not in the bound) adds to it.
The band is left out when n is not known (the whole test set: ``--validation 0 --test-subset 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..models.resnet_cifar import BLOCKS
from .design import PAPER_PICK, Candidate, scored_on


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: float  # mean validation (or test) accuracy (%) of the target-precision model over the seeds
    float_acc: float | None
    runs: int


def rank(run_dir: str | Path, candidates: list[Candidate], target: str) -> list[Ranked]:
    """Candidates with a finished target job, best proxy score first (ties: fewer parameters first)."""
    from ..engine.report import RunResults

    res = RunResults(run_dir)
    out = []
    for c in candidates:
        q = [j.metrics["accuracy"] for j in res.select({"model": c.label, "method": target}, "accuracy")]
        f = [j.metrics["accuracy"] for j in res.select({"model": c.label, "method": "float"}, "accuracy")]
        if q:
            out.append(Ranked(c, sum(q) / len(q), sum(f) / len(f) if f else None, len(q)))
    return sorted(out, key=lambda r: (-r.score, r.candidate.params))


def n_scored(data: dict) -> int | None:
    """How many images each proxy score is measured on (None: the whole test set, size not recorded)."""
    n, cut = data.get("validation") or None, data.get("test_subset") or None
    return min(n, cut) if n and cut else n or cut


def noise_band(a: float, b: float, n: int) -> float:
    """Two standard errors (accuracy points) of the difference of two accuracies a, b (%) on n images each."""
    p, q = a / 100, b / 100
    return 200 * math.sqrt((p * (1 - p) + q * (1 - q)) / n)


def within_noise(best: Ranked, other: Ranked, n: int | None) -> bool:
    return n is not None and best.score - other.score < noise_band(best.score, other.score, n)


def paper_check(ranked: list[Ranked], proxy: str, meaningful: bool, n: int | None = None) -> str:
    """The paper's W2A2 conclusion against this run's best depth per block type (basic, depthwise); with ``n``
    scoring images, whether the paper's depth is within noise of the best one."""
    best: dict[str, Ranked] = {}
    for r in ranked:
        best.setdefault(r.candidate.block, r)
    parts = []
    for block, depth in PAPER_PICK.items():
        if block not in best:
            parts.append(f"{block}: no {block} candidate ran")
            continue
        top = best[block]
        if top.candidate.depth == depth:
            parts.append(f"{block}: best depth here {depth} ({top.score:.2f} %), as the paper's (agrees)")
            continue
        theirs = next((r for r in ranked if r.candidate.block == block and r.candidate.depth == depth), None)
        if theirs is None:
            parts.append(f"{block}: best depth here {top.candidate.depth}; the paper's depth {depth} did not run")
            continue
        head = f"{block}: best depth here {top.candidate.depth} ({top.score:.2f} %) vs the paper's {depth} "
        if n is None:
            parts.append(head + f"({theirs.score:.2f} %; differs)")
        else:
            band = noise_band(top.score, theirs.score, n)
            tied = within_noise(top, theirs, n)
            verdict = "differs, but within noise" if tied else "differs, beyond noise"
            parts.append(head + f"({theirs.score:.2f} %; {verdict}: two standard errors are {band:.1f} points)")
    text = (
        f"Paper's check (Boo et al. §5.3: at W2A2 and ~1 M parameters on CIFAR-10 the best networks are depth 14 "
        f"with basic blocks and 38 with depthwise blocks): {'; '.join(parts)}."
    )
    if not meaningful:
        text += (
            f" Not meaningful here: this run is a short proxy ({proxy}), while the paper trained 200 + 100 epochs on "
            "all of CIFAR-10 at ~1 M parameters and W2A2; agreement or disagreement says little about its conclusion."
        )
    return text


def scored_text(data: dict) -> str:
    n = data.get("validation")
    return f"validation ({n:,} held-out training images, never trained on; the test set is not read)" if n else "test"


def score_figure(ranked: list[Ranked], path: Path, target: str, subtitle: str, scored: str = "test") -> None:
    """Proxy score (solid) and float accuracy (dashed) against depth, one colour per block type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_savefig

    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for k, block in enumerate(BLOCKS):
        rows = sorted((r.candidate.depth, r.score, r.float_acc) for r in ranked if r.candidate.block == block)
        if not rows:
            continue
        depth, score, flt = zip(*rows)
        ax.plot(depth, score, marker="o", color=f"C{k}", label=f"{block}: {target}")
        if all(f is not None for f in flt):
            ax.plot(depth, flt, marker=".", ls="--", color=f"C{k}", alpha=0.6, label=f"{block}: float")
    ax.set_xlabel("depth L (width D_init chosen to fit the budget)")
    ax.set_ylabel(f"proxy {scored} accuracy [%]")
    ax.set_title(f"Proxy score vs depth by block type ({target})\n{subtitle}", fontsize=8)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def write_design_report(
    run_dir: str | Path, candidates: list[Candidate], target: str, proxy: str, meaningful: bool
) -> Path:
    """``design.md`` (ranking table, pick, paper's check) and ``figures/proxy_score_vs_depth.png``; ``proxy``
    says what the proxy training was (e.g. "2 epochs on 2,000 CIFAR-10 training images, seed 0")."""
    from ..engine.report import RunResults
    from ..engine.safepath import inside
    from ..fileio import atomic_write_text

    run_dir = Path(run_dir)
    ranked = rank(run_dir, candidates, target)
    if not ranked:
        raise ValueError(f"{str(run_dir)!r} holds no finished {target} job to rank")
    res = RunResults(run_dir)
    facts = res.caption_facts(list(res.jobs.values()))
    scored = scored_on(res.spec.data)
    n = n_scored(res.spec.data)
    score_figure(ranked, res.figure_path("proxy_score_vs_depth"), target, proxy, scored)
    pick = ranked[0]
    lines = [
        "# lowbit design",
        "",
        f"Pick: **{pick.candidate.label}** (cifar_resnet block={pick.candidate.block}, depth={pick.candidate.depth}, "
        f"width={pick.candidate.width}, {pick.candidate.params:,} parameters): {target} proxy accuracy "
        f"{pick.score:.2f} %.",
        "",
    ]
    if n is not None:
        tied = [r.candidate.label for r in ranked[1:] if within_noise(pick, r, n)]
        lines += [
            f"How sure: each score is an accuracy on {n:,} images; "
            + (
                f"{len(tied)} other candidate(s) score within two standard errors of the pick ({', '.join(tied)}), "
                "so this run does not tell them apart from it — more scoring images, seeds or proxy epochs would."
                if tied
                else "every other candidate scores more than two standard errors below the pick."
            ),
            "",
        ]
    noise_col = n is not None
    head = f"| rank | model | block | depth | width D_init | parameters | float % | {target} % (proxy score) | runs |"
    lines += [head + (" within noise of the pick |" if noise_col else ""), "|---" * (9 + noise_col) + "|"]
    for i, r in enumerate(ranked, 1):
        c = r.candidate
        fl = "—" if r.float_acc is None else f"{r.float_acc:.2f}"
        row = f"| {i} | {c.label} | {c.block} | {c.depth} | {c.width} | {c.params:,} | {fl} | {r.score:.2f} "
        row += f"| {r.runs} |"
        if noise_col:
            row += " (pick) |" if i == 1 else (" yes |" if within_noise(pick, r, n) else " no |")
        lines.append(row)
    lines += [
        "",
        f"Proxy score: {scored_text(res.spec.data)} accuracy of the {target} model (retrained from its float parent) "
        "after the proxy training "
        f"({proxy}); {facts}.",
        "",
        paper_check(ranked, proxy, meaningful, n),
        "",
        "![proxy score vs depth](figures/proxy_score_vs_depth.png)",
        "",
        f"Full tables: report.md. Run folder: {run_dir}.",
    ]
    path = inside(run_dir, "design.md")  # links in the folder were checked by RunResults; this is the last word
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
