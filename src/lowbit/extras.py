"""Optional dependencies: import one where a feature needs it, or fail with one line naming the extra.

The core install (``pip install lowbit``) covers quantizers, ``quantize_``, INQ, training, summaries, packed files
and the command line. Features that need more name their extra (pyproject.toml ``[project.optional-dependencies]``):

    deploy        onnx, onnxruntime          ONNX export and running the exported graph
    audio         soundfile, librosa         speech data (FSDD, TIMIT) and audio features
    segmentation  scipy                      connected components for the object-level F1 (segmentation study)
    digits        scikit-learn               the bundled 8x8 ``digits`` data set
    cluster       ray                        ``--backend ray``: sweeps on a Ray cluster (engine/backends/ray.py)
    tracking      tensorboard                ``--tensorboard DIR``: per-epoch and per-job scalars (engine/tracking.py)

Bottom layer: imports nothing from lowbit.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# import name -> (pip distribution, extra)
EXTRAS: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "deploy"),
    "onnxruntime": ("onnxruntime", "deploy"),
    "soundfile": ("soundfile", "audio"),
    "librosa": ("librosa", "audio"),
    "scipy": ("scipy", "segmentation"),
    "sklearn": ("scikit-learn", "digits"),
    "ray": ("ray", "cluster"),
    "tensorboard": ("tensorboard", "tracking"),
}


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the ``pip install 'lowbit[EXTRA]'`` to run."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (e.g. ``"scipy.ndimage"``) for ``feature``; raise ``MissingExtraError`` if it is absent."""
    top = module.split(".")[0]
    if top not in EXTRAS:
        raise ValueError(f"require: {top!r} is not an optional dependency; known: {sorted(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != top:
            raise  # the package is there but one of its own dependencies is broken: show the real error
        dist, extra = EXTRAS[top]
        raise MissingExtraError(
            f"{feature} needs {dist}, which is not installed: pip install 'lowbit[{extra}]'", name=top
        ) from None
