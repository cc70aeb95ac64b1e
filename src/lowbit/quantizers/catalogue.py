"""The quantizer catalogue, read from the registry: what each method is, what it quantizes, which bits it takes.

Everything here is derived from the registered classes (nothing is listed by hand), so a quantizer registered
later shows up in ``lowbit quantizers`` and in the figure without edits.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_savefig
from .base import MAX_BITS
from .registry import get, get_class, names

APPLIES_TO = {"weight": "weights", "act": "activations", "both": "weights, activations"}
REQUIRED = "required"  # the catalogue's "default bits" of a quantizer whose constructor has no default

# Constructor arguments the figure uses so that every level is visible on x in [-2, 2] (named in the panel title).
# PACT's uncalibrated α = 10 would put all of [-2, 2] on its two lowest levels.
PLOT_KWARGS: dict[str, dict[str, Any]] = {"pact": {"alpha": 1.5}}


def allowed_bits(name: str) -> list[int]:
    """Bit widths 1..32 that ``get(name, bits=b)`` accepts with the other arguments at their defaults."""
    out = []
    for b in range(1, MAX_BITS + 1):
        try:
            get(name, bits=b)
        except ValueError:
            continue
        out.append(b)
    return out


def constructor_bits(name: str) -> int | None:
    """The bit width ``get(name)`` uses when none is given, or None when ``bits`` is required."""
    p = inspect.signature(get_class(name).__init__).parameters.get("bits")
    if p is not None and p.default is not inspect.Parameter.empty:
        return int(p.default)
    return None


def default_bits(name: str) -> int:
    """The bits the catalogue counts levels at and draws: the constructor's default, or for a quantizer that
    requires ``bits``, 2 if allowed, else its minimum."""
    b = constructor_bits(name)
    if b is not None:
        return b
    ok = allowed_bits(name)
    return 2 if 2 in ok else ok[0]


def format_bits(bits: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    runs: list[list[int]] = []
    for b in bits:
        if runs and b == runs[-1][-1] + 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs) or "none"


def catalogue() -> list[dict[str, Any]]:
    """One row per registered quantizer: name, kind, applies_to, bits, default_bits, max_levels, reference.

    ``default_bits`` is what ``get(name)`` uses without ``bits`` ("required" when it has no default);
    ``max_levels`` is counted at ``default_bits(name)`` (2 bits for the "required" ones), named in ``levels_at``.
    """
    rows = []
    for n in names():
        cls = get_class(n)
        b, own = default_bits(n), constructor_bits(n)
        rows.append(
            {
                "name": n,
                "kind": cls.kind,
                "applies_to": APPLIES_TO.get(cls.kind, cls.kind),
                "bits": format_bits(allowed_bits(n)),
                "default_bits": REQUIRED if own is None else own,
                "max_levels": get(n, bits=b).max_levels(),
                "levels_at": b,
                "reference": cls.reference,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of ``catalogue()`` rows."""
    cols = ["name", "kind", "applies_to", "bits", "default_bits", "max_levels", "reference"]
    head = ["name", "kind", "weights/activations", "bits allowed", "default bits", "levels", "reference"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        b = r.get("levels_at", r["default_bits"])
        cells = {**r, "max_levels": f"{r['max_levels']} at {b} bit{'' if b == 1 else 's'}"}
        lines.append("| " + " | ".join(str(cells[c]) for c in cols) + " |")
    return "\n".join(lines)


def transfer(name: str, lo: float = -2.0, hi: float = 2.0, n: int = 801) -> dict[str, Any]:
    """x, Q(x) and dQ/dx for quantizer ``name`` at ``default_bits`` (and ``PLOT_KWARGS``) on a (1, n) grid (one row
    = one output channel). Statistics set from data (steps, FSR, LSQ's s, TTQ's scales) come from the grid itself.
    """
    torch.manual_seed(0)  # binary_stochastic samples
    b, kw = default_bits(name), PLOT_KWARGS.get(name, {})
    q = get(name, bits=b, **kw)
    x = torch.linspace(lo, hi, n, dtype=torch.float64).reshape(1, -1).requires_grad_(True)
    q = q.double()
    y = q(x)
    y.sum().backward()
    return {
        "name": name,
        "bits": b,
        "kwargs": kw,
        "x": x.detach()[0],
        "y": y.detach()[0],
        "grad": x.grad[0],
        "kind": q.kind,
    }


def plot_transfer(path: str | Path, which: list[str] | None = None) -> Path:
    """Draw every quantizer's transfer function (x vs Q(x)) with its gradient pass region shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    which = which or names()
    cols = 4
    rows = (len(which) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, n in zip(axes.flat, which):
        t = transfer(n)
        x, y, g = t["x"].numpy(), t["y"].numpy(), t["grad"].numpy()
        ax.fill_between(x, -2.2, 2.2, where=g != 0, color="tab:orange", alpha=0.18, lw=0, label="dQ/dx ≠ 0")
        ax.plot(x, x, color="0.75", lw=0.8, ls="--")
        style = {"marker": ".", "ms": 1.5, "lw": 0} if n == "binary_stochastic" else {"lw": 1.5}
        ax.plot(x, y, color="tab:blue", **style)
        extra = "".join(f", {'α' if k == 'alpha' else k} = {v}" for k, v in t["kwargs"].items())
        ax.set_title(f"{n} ({t['bits']} bit, {t['kind']}{extra})", fontsize=9)
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(-2.2, 2.2)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(which) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        "lowbit quantizers: Q(x) on x in [-2, 2], statistics from the grid (PACT drawn with α = 1.5: its uncalibrated "
        "α = 10 would leave the chart), gradient pass region shaded",
        fontsize=9,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return path
