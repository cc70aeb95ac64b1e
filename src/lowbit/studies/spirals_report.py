"""Report extras of the spirals study (Boo et al. §3, Figs. 1-2, 9-10): decision maps, the data, the checks.

- ``spirals_decision_maps``: rows = models, columns = methods (a method with an extra axis, e.g. INQ over
  bits, gives one column per value); colour = P(label 1) on the paper's quarter 0 < x, y < 1 from the saved
  models, black lines = the true band edges; one figure per group of methods.
- ``spirals_data``: core samples and noisy training samples with a legend; the count comes from the data.
- ``spirals_checks``: the paper's three observations, computed from the measured accuracies.
"""

from __future__ import annotations

from ..engine.report.document import Figure
from ..engine.report.extras import Section, register_extra
from ..engine.report.results import JobResult, RunResults, data_label


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _columns(res: RunResults, methods: list[str], model: str, seed: int) -> list[tuple[str, JobResult]]:
    """(label, job) for each method in ``methods`` at ``model``/``seed``, expanded over extra axes."""
    out = []
    for method in methods:
        jobs = [j for j in res.select({"model": model, "method": method}, "accuracy") if j.axes.get("seed") == seed]
        axes = [a for a in res.spec.extra_axes if any(a in j.axes for j in jobs)]
        jobs.sort(key=lambda j: tuple(res.order(a, j.axes.get(a)) for a in axes))
        out += [(res.key_label(("method", *axes), (method, *(j.axes.get(a) for a in axes))), j) for j in jobs]
    return out


@register_extra("spirals_decision_maps")
def decision_maps(res: RunResults, resolution: int = 160, groups: list | None = None, seed: int | None = None):
    import numpy as np
    import torch

    from ..data import spirals
    from ..fileio import atomic_savefig

    plt = _plt()
    groups = groups or [res.spec.grid["method"]]
    seed = res.spec.grid["seed"][0] if seed is None else seed
    pts, side = spirals.quarter_grid(resolution)
    truth = spirals.band_label(pts).reshape(side, side).numpy()
    ticks = np.linspace(0, 1, side)
    sec = Section()
    for gi, methods in enumerate(groups):
        models = [m for m in res.spec.grid["model"] if _columns(res, methods, m, seed)]
        if not models:
            continue
        cols = {m: _columns(res, methods, m, seed) for m in models}
        ncol = max(len(c) for c in cols.values())
        fig, axes = plt.subplots(len(models), ncol, figsize=(2.2 * ncol + 0.8, 2.1 * len(models)), squeeze=False)
        im = None
        for i, m in enumerate(models):
            for k in range(ncol):
                ax = axes[i][k]
                if k >= len(cols[m]):
                    ax.axis("off")
                    continue
                label, job = cols[m][k]
                model = res.load_model(job)
                with torch.no_grad():
                    p = torch.softmax(model.eval()(pts), 1)[:, 1].reshape(side, side).numpy()
                im = ax.imshow(p, origin="lower", extent=(0, 1, 0, 1), cmap="coolwarm", vmin=0, vmax=1)
                ax.contour(ticks, ticks, truth, levels=[0.5], colors="k", linewidths=0.5)
                ax.set_xticks([0, 0.5, 1])
                ax.set_yticks([0, 0.5, 1])
                ax.tick_params(labelsize=6)
                ax.set_title(f"{label} ({job.metrics['accuracy']:.1f}%)", fontsize=8)
                if k == 0:
                    ax.set_ylabel(f"{m}\ny", fontsize=8)
                if i == len(models) - 1:
                    ax.set_xlabel("x", fontsize=7)
        fig.tight_layout(rect=(0, 0, 0.9, 1))
        if im is not None:
            cax = fig.add_axes((0.91, 0.15, 0.015, 0.7))
            fig.colorbar(im, cax=cax).set_label("P(label 1)", fontsize=8)
        name = "decision_maps" if gi == 0 else f"decision_maps_{gi + 1}"
        atomic_savefig(fig, res.figure_path(name), dpi=110)
        plt.close(fig)
        jobs = [j for c in cols.values() for _, j in c]
        sec.figures.append(
            Figure(
                f"figures/{name}.png",
                f"Decision maps, P(label 1) on 0<x,y<1 ({side}x{side} grid) with the true band edges (black); "
                f"panel titles give the test accuracy. {res.caption_facts(jobs)}.",
            )
        )
    return sec


@register_extra("spirals_data")
def data_figure(res: RunResults, samples: int = 1000):
    import torch

    from ..data import spirals
    from ..fileio import atomic_savefig

    plt = _plt()
    train = res.load_data().train
    x, y = train.tensors
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:samples]
    cx, cy = spirals.core_samples()
    fig, ax = plt.subplots(figsize=(4.4, 4.4))
    for label, colour in ((0, "tab:blue"), (1, "tab:red")):
        sel = y[idx] == label
        ax.scatter(*x[idx][sel].T, s=2, alpha=0.35, color=colour, label=f"noisy training samples, label {label}")
        ax.scatter(*cx[cy == label].T, s=3, color=colour, marker="x", label=f"core samples, label {label}")
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=6, loc="lower left", markerscale=3)
    ax.set_title("spirals: core samples and noisy training samples", fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, res.figure_path("data"), dpi=110)
    plt.close(fig)
    n = min(samples, len(x))
    caption = (
        f"Core samples of the two spirals ({len(cx):,}, {len(cx) // 2:,} per label) and {n:,} of the {len(x):,} "
        f"noisy training samples; data {data_label(res.spec)}, subset seed 0."
    )
    return Section(figures=[Figure("figures/data.png", caption)])


def _acc(res: RunResults, model: str, method: str) -> float | None:
    v = [j.metrics["accuracy"] for j in res.select({"model": model, "method": method}, "accuracy")]
    return sum(v) / len(v) if v else None


@register_extra("spirals_checks")
def checks(res: RunResults) -> Section:
    """The paper's observations (wider helps; deeper helps weights, not activations; residuals hurt A2)."""
    acc = {(m, p): _acc(res, m, p) for m in res.spec.grid["model"] for p in ("float", "W2", "A2", "W2A2")}

    def pair(a: str, b: str, p: str) -> tuple[float, float] | None:
        x, y = acc.get((a, p)), acc.get((b, p))
        return None if x is None or y is None else (x, y)

    lines: list[str] = []
    wide = [
        (a, b, p, c) for a, b in (("128-3", "256-3"), ("128-4", "200-4")) for p in ("W2", "A2") if (c := pair(a, b, p))
    ]
    if wide:
        held = sum(c[1] > c[0] for *_, c in wide)
        detail = "; ".join(f"{p}: {a} {c[0]:.1f}% -> {b} {c[1]:.1f}%" for a, b, p, c in wide)
        lines.append(f"*Wider helps both* — holds in {held}/{len(wide)} comparisons ({detail}).")
    depth = [
        m
        for m in ("128-3", "128-4", "128-6", "128-8")
        if all(acc.get((m, p)) is not None for p in ("float", "W2", "A2"))
    ]
    if len(depth) >= 2:
        dw = [acc[(m, "float")] - acc[(m, "W2")] for m in depth]
        da = [acc[(m, "float")] - acc[(m, "A2")] for m in depth]
        lines.append(
            "*Deeper helps weights but not activations* — along "
            + " -> ".join(depth)
            + f": W2 drop from float {', '.join(f'{v:.1f}' for v in dw)}; A2 drop {', '.join(f'{v:.1f}' for v in da)}. "
            + ("The W2 drop shrinks with depth" if dw[-1] < dw[0] else "The W2 drop does not shrink with depth")
            + (" and the A2 drop does not." if da[-1] >= da[0] else "; the A2 drop shrinks too.")
        )
    res_rows = [
        (a, b, p, c, f)
        for a, b in (("128-4", "res 128-4"), ("128-8", "res 128-8"))
        for p in ("A2", "W2A2")
        if (c := pair(a, b, p)) and (f := pair(a, b, "float"))
    ]
    if res_rows:
        held = sum((f[1] - c[1]) > (f[0] - c[0]) for *_, c, f in res_rows)
        detail = "; ".join(
            f"{p}: drop {f[0] - c[0]:.1f} ({a}) vs {f[1] - c[1]:.1f} ({b})" for a, b, p, c, f in res_rows
        )
        lines.append(
            "*Residual connections hurt under activation quantization* (larger drop from float) — holds in "
            f"{held}/{len(res_rows)} comparisons ({detail})."
        )
    if not lines:
        lines = [
            "Not evaluated at this scale: the checks compare models (128-3 vs 256-3, 128-3 ... 128-8, plain vs "
            f"residual) that the scale {res.spec.scale!r} does not train."
        ]
    return Section("Checks of the paper's observations", [f"- {x}" if x.startswith("*") else x for x in lines])
