"""Tables, decision-map figures and the paper-claim check for the spirals study."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from .. import tomlio

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..data import spirals  # noqa: E402
from .report import Figure, Report, Table  # noqa: E402

QAT_COLS = ("float", "W2", "A2", "W2A2")
INQ_COLS = ("float", "INQ2", "INQ3", "INQ4")


def _band_boundaries(side: int) -> np.ndarray:
    pts, _ = spirals.quarter_grid(side)
    return spirals.band_label(pts).reshape(side, side).numpy()


def decision_maps(results: list[dict], cols: tuple[str, ...], path: Path, title: str) -> None:
    """Rows: models; columns: precisions; colour = P(label 1) on 0<x,y<1; black lines = true band edges."""
    n, m = len(results), len(cols)
    side = len(results[0]["results"]["float"]["map"])
    truth = _band_boundaries(side)
    fig, axes = plt.subplots(n, m, figsize=(2.1 * m, 2.1 * n), squeeze=False)
    for i, r in enumerate(results):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            res = r["results"][c]
            ax.imshow(np.array(res["map"]), origin="lower", extent=(0, 1, 0, 1), cmap="coolwarm", vmin=0, vmax=1)
            ax.contour(
                np.linspace(0, 1, side), np.linspace(0, 1, side), truth, levels=[0.5], colors="k", linewidths=0.5
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{c} ({res['accuracy']:.1f}%)", fontsize=8)
            if j == 0:
                ax.set_ylabel(r["model"], fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _acc(by: dict, model: str, prec: str) -> float | None:
    r = by.get(model)
    return None if r is None else r["results"][prec]["accuracy"]


def claim_checks(by: dict) -> list[str]:
    """The paper's three observations, checked on the measured accuracies (statements computed, not written)."""
    lines = []

    def cmp(a: str, b: str, prec: str) -> tuple[float, float] | None:
        x, y = _acc(by, a, prec), _acc(by, b, prec)
        return None if x is None or y is None else (x, y)

    # 1. wider helps both weight and activation quantization
    wide = []
    for narrow, wider in (("128-3", "256-3"), ("128-4", "200-4")):
        for prec in ("W2", "A2"):
            c = cmp(narrow, wider, prec)
            if c:
                wide.append((narrow, wider, prec, c))
    if wide:
        held = sum(c[1] > c[0] for *_, c in wide)
        detail = "; ".join(f"{p}: {a} {c[0]:.1f}% -> {b} {c[1]:.1f}%" for a, b, p, c in wide)
        lines.append(f"*Wider helps both* — holds in {held}/{len(wide)} comparisons ({detail}).")
    # 2. deeper helps weights but not activations
    depth = [m for m in ("128-3", "128-4", "128-6", "128-8") if m in by]
    if len(depth) >= 2:
        w = [_acc(by, m, "W2") for m in depth]
        a = [_acc(by, m, "A2") for m in depth]
        fw = [_acc(by, m, "float") for m in depth]
        dw = [f - x for f, x in zip(fw, w)]
        da = [f - x for f, x in zip(fw, a)]
        lines.append(
            "*Deeper helps weights but not activations* — along "
            + " -> ".join(depth)
            + f": W2 accuracy {', '.join(f'{v:.1f}' for v in w)} (drop from float {', '.join(f'{v:.1f}' for v in dw)});"
            f" A2 accuracy {', '.join(f'{v:.1f}' for v in a)} (drop {', '.join(f'{v:.1f}' for v in da)}). "
            + ("The W2 drop shrinks with depth" if dw[-1] < dw[0] else "The W2 drop does not shrink with depth")
            + (" and the A2 drop does not." if da[-1] >= da[0] else "; the A2 drop shrinks too.")
        )
    # 3. residual connections hurt under activation quantization
    res = []
    for plain, resid in (("128-4", "res 128-4"), ("128-8", "res 128-8")):
        for prec in ("A2", "W2A2"):
            c = cmp(plain, resid, prec)
            f = cmp(plain, resid, "float")
            if c and f:
                res.append((plain, resid, prec, c, f))
    if res:
        held = sum((f[1] - c[1]) > (f[0] - c[0]) for *_, c, f in res)
        detail = "; ".join(
            f"{p}: drop {f[0] - c[0]:.1f} (plain {a}) vs {f[1] - c[1]:.1f} (residual)" for a, _, p, c, f in res
        )
        lines.append(
            f"*Residual connections hurt under activation quantization* (larger accuracy drop from float) "
            f"— holds in {held}/{len(res)} comparisons ({detail})."
        )
    return lines


def build_report(out: Path, results: list[dict], cfg: dict) -> Path:
    by = {r["model"]: r for r in results}
    precs = list(results[0]["results"])
    table = Table(
        title="Accuracy (%) on the correct-answer test set, after retraining (seed 0, 1 run each)",
        columns=["model", "params", *precs],
        rows=[[r["model"], r["params"], *(r["results"][p]["accuracy"] for p in precs)] for r in results],
        note="W2/A2: 2-bit uniform weights / activations (L2-optimal step), retrained from the float model; "
        "INQb: incremental power-of-two quantization with b bits, portions 50/75/87.5/100%.",
    )
    before = Table(
        title="Accuracy (%) right after quantization, before retraining",
        columns=["model", "W2", "A2", "W2A2"],
        rows=[
            [r["model"], *(r["results"][p]["accuracy_before_retrain"] for p in ("W2", "A2", "W2A2"))] for r in results
        ],
    )
    figs = out / "figures"
    scale = cfg["scale"]
    common = f"spirals (r=0.1, sigma=r/3, 20k samples), FCDNN, seed 0, 1 run per cell, scale={scale}"
    decision_maps(results, QAT_COLS, figs / "decision_maps.png", f"{common}: float / 2-bit uniform W, A, W+A")
    decision_maps(results, INQ_COLS, figs / "decision_maps_inq.png", f"{common}: float / INQ 2, 3, 4 bits")
    data_fig(figs / "data.png")
    rep = Report(
        title="Spirals: weight vs activation quantization in FCDNNs (Boo et al. 2020, §3)",
        paragraphs=[
            "Two interleaved spirals (spec §8). Each float model is trained, then retrained from its float weights "
            "with 2-bit weights (W2), 2-bit activations (A2), both (W2A2), and INQ power-of-two weights.",
            "Checks of the paper's observations on these numbers:",
            *[f"- {line}" for line in claim_checks(by)],
        ],
        tables=[table, before],
        figures=[
            Figure(
                "figures/decision_maps.png",
                f"Decision maps, P(label 1) on 0<x,y<1 with true band edges: {common}; "
                "columns float / W2 / A2 / W2A2 (uniform, L2-optimal step).",
            ),
            Figure("figures/decision_maps_inq.png", f"Decision maps: {common}; columns float / INQ 2, 3, 4 bits."),
            Figure(
                "figures/data.png",
                "Core samples of the two spirals (1,000 per label) and 1,000 noisy training "
                "samples; spirals data set, seed 0.",
            ),
        ],
        config_text=tomlio.dumps(cfg),
    )
    md, _ = rep.write(out)
    return md


def data_fig(path: Path) -> None:
    x, y = spirals.core_samples()
    tr = spirals.train_set()
    idx = torch.randperm(len(tr), generator=torch.Generator().manual_seed(0))[:1000]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(*tr.tensors[0][idx].T, c=tr.tensors[1][idx], cmap="coolwarm", s=2, alpha=0.4)
    ax.scatter(*x.T, c=y, cmap="coolwarm", s=3)
    ax.set_aspect("equal")
    ax.set_title("spirals: core samples (dark) and noisy samples", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
