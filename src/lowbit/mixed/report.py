"""The sensitivity heat map (layers × candidate bits, one panel per role), drawn like lowbit's other figures:
matplotlib's Agg backend, written atomically (``fileio.atomic_savefig``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import Sensitivity

LABELS = {
    "loss_delta": "loss change (layer alone quantized)",
    "metric_delta": "metric change (points)",
    "hutchinson": "½·Tr(H)/n·‖Δ‖² (HAWQ-V2)",
    "perturbation": "‖Δ‖²",
}


def heat_map(sens: Sensitivity, path: Path, column: str = "loss_delta") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..fileio import atomic_savefig

    roles = [r for r in ("weight", "act") if any(x["role"] == r for x in sens.rows)]
    fig, axes = plt.subplots(
        1,
        len(roles),
        figsize=(1.0 + 1.1 * len(sens.candidates) * len(roles) + 2.5, 0.9 + 0.32 * len(sens.layers)),
        squeeze=False,
    )
    for ax, role in zip(axes[0], roles):
        grid = np.full((len(sens.layers), len(sens.candidates)), np.nan)
        for r in sens.rows:
            if r["role"] == role and r[column] is not None:
                grid[sens.layers.index(r["layer"]), sens.candidates.index(r["bits"])] = r[column]
        im = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(sens.candidates)), [str(b) for b in sens.candidates])
        ax.set_yticks(range(len(sens.layers)), sens.layers, fontsize=7)
        ax.set_xlabel("bits")
        ax.set_title(f"{'weights' if role == 'weight' else 'layer inputs'}", fontsize=9)
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=6, color="w")
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(LABELS.get(column, column), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return path
