"""The evidence of a ``lowbit design`` run: ranking, pick, the paper's check, score vs depth (``design.py``).

``write_design_report(run_dir, candidates, target, meaningful)`` reads the run's ``spec.toml`` and store only
(``report.RunResults``), so it can be rebuilt at any time; it writes ``design.md`` and
``figures/proxy_score_vs_depth.png``. The proxy score of a candidate is the mean test accuracy (%) of its
target-precision job over the seeds; ties go to the smaller network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models.resnet_cifar import BLOCKS
from .design import PAPER_PICK, Candidate


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: float  # mean test accuracy (%) of the target-precision model over the seeds
    float_acc: float | None
    runs: int


def rank(run_dir: str | Path, candidates: list[Candidate], target: str) -> list[Ranked]:
    """Candidates with a finished target job, best proxy score first (ties: fewer parameters first)."""
    from .report import RunResults

    res = RunResults(run_dir)
    out = []
    for c in candidates:
        q = [j.metrics["accuracy"] for j in res.select({"model": c.label, "method": target}, "accuracy")]
        f = [j.metrics["accuracy"] for j in res.select({"model": c.label, "method": "float"}, "accuracy")]
        if q:
            out.append(Ranked(c, sum(q) / len(q), sum(f) / len(f) if f else None, len(q)))
    return sorted(out, key=lambda r: (-r.score, r.candidate.params))


def paper_check(ranked: list[Ranked], target: str, meaningful: bool) -> str:
    """The paper's W2A2 conclusion against this run's best depth per block type (basic, depthwise)."""
    best = {}
    for r in ranked:
        best.setdefault(r.candidate.block, r)
    parts = []
    for block, depth in PAPER_PICK.items():
        if block in best:
            got = best[block].candidate.depth
            verdict = "agrees" if got == depth else "differs"
            parts.append(f"{block}: best depth here {got} vs the paper's {depth} ({verdict})")
        else:
            parts.append(f"{block}: no {block} candidate ran")
    text = (
        f"Paper's check (Boo et al. §5.3: at W2A2 and ~1 M parameters on CIFAR-10 the best networks are depth 14 "
        f"with basic blocks and 38 with depthwise blocks): {'; '.join(parts)}."
    )
    if not meaningful:
        text += (
            f" This run is a short proxy ({target}, few epochs, a training subset): the paper trained 200 + 100 epochs "
            "on the full set, so agreement or disagreement here says little about the conclusion."
        )
    return text


def score_figure(ranked: list[Ranked], path: Path, target: str, caption_facts: str) -> None:
    """Proxy score against depth, one line per block type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_savefig

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for block in BLOCKS:
        pts = sorted((r.candidate.depth, r.score) for r in ranked if r.candidate.block == block)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=f"{block} blocks")
    ax.set_xlabel("depth L")
    ax.set_ylabel(f"{target} proxy test accuracy [%]")
    ax.set_title(f"Proxy score vs depth by block type ({target})", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.text(0.01, 0.005, caption_facts[:160], fontsize=5)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def write_design_report(run_dir: str | Path, candidates: list[Candidate], target: str, meaningful: bool) -> Path:
    """``design.md`` (ranking table, pick, paper's check) and ``figures/proxy_score_vs_depth.png``."""
    from ..fileio import atomic_write_text
    from .report import RunResults

    run_dir = Path(run_dir)
    ranked = rank(run_dir, candidates, target)
    if not ranked:
        raise ValueError(f"{str(run_dir)!r} holds no finished {target} job to rank")
    res = RunResults(run_dir)
    facts = res.caption_facts(list(res.jobs.values()))
    score_figure(ranked, run_dir / "figures" / "proxy_score_vs_depth.png", target, facts)
    pick = ranked[0]
    lines = [
        "# lowbit design",
        "",
        f"Pick: **{pick.candidate.label}** (cifar_resnet block={pick.candidate.block}, depth={pick.candidate.depth}, "
        f"width={pick.candidate.width}, {pick.candidate.params:,} parameters): {target} proxy accuracy "
        f"{pick.score:.2f} %.",
        "",
        f"| rank | model | block | depth | width D_init | parameters | float % | {target} % (proxy score) | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(ranked, 1):
        c = r.candidate
        fl = "—" if r.float_acc is None else f"{r.float_acc:.2f}"
        lines.append(
            f"| {i} | {c.label} | {c.block} | {c.depth} | {c.width} | {c.params:,} | {fl} | {r.score:.2f} | {r.runs} |"
        )
    lines += [
        "",
        f"Proxy score: test accuracy of the {target} model (retrained from its float parent) after the proxy training; "
        f"{facts}.",
        "",
        paper_check(ranked, target, meaningful),
        "",
        "![proxy score vs depth](figures/proxy_score_vs_depth.png)",
        "",
        f"Full tables: report.md. Run folder: {run_dir}.",
    ]
    path = run_dir / "design.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
