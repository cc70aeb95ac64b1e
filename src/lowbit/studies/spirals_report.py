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


def _paired(res: RunResults, method: str, against: str) -> dict[tuple, float]:
    """{(model, seed, extra axes...): method − against} on the same model and seed (a parent without extra axes,
    the float model, pairs with every child of its model and seed)."""
    base = {(j.axes["model"], j.axes.get("seed")): j for j in res.select({"method": against}, "accuracy")}
    out = {}
    for j in res.select({"method": method}, "accuracy"):
        b = base.get((j.axes["model"], j.axes.get("seed")))
        if b is not None:
            extra = tuple((a, v) for a, v in sorted(j.axes.items()) if a not in ("model", "method", "seed"))
            out[(j.axes["model"], j.axes.get("seed"), *extra)] = j.metrics["accuracy"] - b.metrics["accuracy"]
    return out


def _cells(diff: dict[tuple, float], where: dict[tuple, tuple], seeds: list) -> dict[tuple, list[float]]:
    """{(group, x): [differences in seed order]} for the cells ``where`` maps (model, extra...) -> (group, x) that
    have results (a run still in progress has some); only seeds present in every such cell, so each cell's list
    pairs with every other's by seed."""
    where = {k: gx for k, gx in where.items() if any((k[0], s, *k[1:]) in diff for s in seeds)}  # cells that ran
    common = [s for s in seeds if all((m, s, *e) in diff for (m, *e) in where)]
    return {gx: [diff[(m, s, *e)] for s in common] for (m, *e), gx in where.items() if common}


@register_extra("spirals_checks")
def checks(res: RunResults) -> Section:
    """The paper's observations (§3.2-3.3) as seed-paired differences, each with a verdict and whether the seeds
    can tell (``paired_comparisons``' rule: a change counts when it exceeds twice its paired standard error)."""
    from ..engine.report.comparisons import _verdict

    grid = set(res.spec.grid["model"])
    seeds = list(res.spec.grid.get("seed", [None]))
    n_seeds = len({j.axes.get("seed") for j in res.jobs.values()})
    diffs = {m: _paired(res, m, "float") for m in ("W2", "A2", "W2A2", "INQ")}
    diffs["W2 − A2"] = {k: v - diffs["A2"][k] for k, v in diffs["W2"].items() if k in diffs["A2"]}

    def have(*models: str) -> bool:
        return all(m in grid for m in models)

    lines: list[str] = []

    def claim(text: str, method: str, expect: str, where: dict[tuple, tuple], xname: str) -> None:
        cells = _cells(diffs[method], where, seeds)
        if not cells:
            return
        xs = list(dict.fromkeys(x for _, x in where.values()))
        groups = list(dict.fromkeys(g for g, _ in where.values()))
        against = "A2" if method == "W2 − A2" else "float"
        c = {"method": method.split(" − ")[0], "against": against, "expect": expect, "text": text}
        lines.append("- " + _verdict(c, cells, xs, groups, xname, n_seeds))

    plain = [m for m in ("128-3", "128-4", "256-3", "200-4", "128-6", "128-8") if m in grid]
    if plain:
        claim(
            "Weights vs activations: 2-bit activations cost more than 2-bit weights (W2 − A2 > 0)",
            "W2 − A2",
            "higher",
            {(m,): (None, m) for m in plain},
            "model",
        )
    for method in ("W2", "A2"):
        pairs = [(a, b) for a, b in (("128-3", "256-3"), ("128-4", "200-4")) if have(a, b)]
        if pairs:
            where = {(m,): (f"depth {a[-1]}", "narrow" if m == a else "wide") for a, b in pairs for m in (a, b)}
            claim(
                f"Wider helps {method}: the {method} loss shrinks from 128 units to 256 / 200",
                method,
                "rises",
                where,
                "width",
            )
    depth = [m for m in ("128-3", "128-4", "128-6", "128-8") if m in grid]
    if len(depth) >= 2:
        where = {(m,): (None, m) for m in depth}
        claim(
            "Deeper helps 2-bit weights: the W2 loss shrinks from " + f"{depth[0]} to {depth[-1]}",
            "W2",
            "rises",
            where,
            "model",
        )
        claim(
            "... but not 2-bit activations: the A2 loss does not shrink with depth (checked as: it grows)",
            "A2",
            "falls",
            where,
            "model",
        )
    pairs = [(a, b) for a, b in (("128-4", "res 128-4"), ("128-8", "res 128-8")) if have(a, b)]
    for method in ("A2", "W2A2"):
        if pairs:
            where = {(m,): (f"{a}", "plain" if m == a else "residual") for a, b in pairs for m in (a, b)}
            claim(f"Residual connections lose more under {method} than the plain nets", method, "falls", where, "block")
    bits = sorted({j.axes.get("bits") for j in res.select({"method": "INQ"}, "accuracy")} - {None})
    if len(bits) >= 2:
        where = {(m, ("bits", b)): (m, b) for m in res.spec.grid["model"] if m in grid for b in bits}
        claim(
            f"INQ: the loss from float shrinks with bits ({bits[0]} → {bits[-1]}), every model",
            "INQ",
            "rises",
            where,
            "bits",
        )
    if not lines:
        lines = [
            "Not evaluated at this scale: the checks compare models (128-3 vs 256-3, 128-3 ... 128-8, plain vs "
            f"residual) that the scale {res.spec.scale!r} does not train."
        ]
    intro = (
        f"Each claim is checked on seed-paired differences (a method minus the float model of the same model and "
        f"seed; {n_seeds} seed{'s' * (n_seeds != 1)}): the verdict says whether it holds and whether the seeds can "
        "tell (the change exceeds twice its paired standard error)."
    )
    return Section("Checks of the paper's observations (seed-paired)", [intro, *lines])
