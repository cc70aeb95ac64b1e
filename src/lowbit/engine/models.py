"""A spec's ``[models.NAME]`` table -> a model, with the sizes the data determines filled in, on data shaped for it.

The data set's ``info`` (``datasets.Data.info``: in_features, num_classes, in_channels, input_size) fills
every argument the model builder accepts and the spec does not set, so ``{ name = "fcdnn", width = 32 }``
fits spirals (2 inputs) and digits (64 inputs) alike. A model that takes flat vectors (the entry's ``flatten``,
by default its registration's ``input = "vector"``: fcdnn) gets image data flattened, per job: an MLP and a CNN
share one study on the same images. A model that does not fit its data fails in ``check_fit`` with one line
naming both. The builder is the registered ``name`` or the user's ``target`` (``entries.py``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from ..arguments import params
from ..data.sets import Data, flatten_images, load_data
from ..models import MODELS
from .entries import MODEL_ENGINE_KEYS, builder_kwargs, entry_builder, entry_label

ALIASES = {"num_classes": ("num_classes", "n_classes"), "in_features": ("in_features", "n_input")}


def _accepted(fn) -> set[str]:
    """Keyword arguments a builder accepts (following ``**kwargs`` to the class it returns)."""
    return {p.name for p in params(fn)}


def model_builder_of(cfg: dict):
    """The builder of a model entry (a target's module is imported here)."""
    return entry_builder(cfg, MODELS)


def model_kwargs(cfg: dict, info: dict) -> dict[str, Any]:
    """The builder's keyword arguments: the spec's, plus the data-determined sizes the model takes."""
    kwargs = builder_kwargs(cfg, MODEL_ENGINE_KEYS)
    accepted = _accepted(model_builder_of(cfg))
    for key, value in info.items():
        for alias in ALIASES.get(key, (key,)):
            if alias in accepted and alias not in kwargs:
                kwargs[alias] = value
    return kwargs


def takes_vectors(cfg: dict) -> bool:
    """Whether the model of an entry takes flat vectors: its ``flatten``, else its registration's input kind."""
    if "flatten" in cfg:
        return bool(cfg["flatten"])
    return "name" in cfg and MODELS.meta(cfg["name"]).get("input") == "vector"


def build_model(cfg: dict, info: dict) -> tuple[nn.Module, dict]:
    kwargs = model_kwargs(cfg, info)
    fn = model_builder_of(cfg)
    try:
        model = fn(**kwargs)
    except TypeError as e:
        raise ValueError(f"model {entry_label(cfg)!r}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {entry_label(cfg)!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model, kwargs


def model_data(data_cfg: dict, model_cfg: dict) -> Data:
    """The job's data: the spec's ``[data]``, flattened for a model that takes vectors (cached per process)."""
    return _model_data(json.dumps(data_cfg, sort_keys=True), takes_vectors(model_cfg))


@lru_cache(maxsize=4)
def _model_data(key: str, flat: bool) -> Data:
    data = load_data(json.loads(key))
    return flatten_images(data) if flat else data


def check_fit(label: str, cfg: dict, data: Data, data_name: str, data_flattened: bool = False) -> nn.Module:
    """Build the model and run two training samples through it; a mismatch is one clear error. Returns the model.

    ``data`` is the data as the job sees it (``model_data``: flattened when the model takes vectors);
    ``data_flattened``: the spec flattens the data set itself (``[data] flatten = true``), for the hint."""
    try:
        model, kwargs = build_model(cfg, data.info)
    except (ValueError, TypeError) as e:  # a bad argument value: the builder's own line, with the entry's path
        raise ValueError(f"models.{label} ({entry_label(cfg)}): {str(e).splitlines()[0]}") from None
    x = data.train[0][0]
    try:
        with torch.no_grad():
            model.eval()(torch.stack([x, x]) if isinstance(x, torch.Tensor) else x)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = str(e).splitlines()[0]
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        hint = ""
        if data_flattened and not takes_vectors(cfg):
            hint = (
                "; [data] flatten = true flattens the images for every model: flatten per model instead "
                "(drop it; models that take vectors, like fcdnn, get flat images, or set flatten = true on them)"
            )
        raise ValueError(
            f"models.{label} ({entry_label(cfg)} {kwargs}) does not fit data {data_name!r} (inputs of shape {shape}): "
            f"{first}{hint}"
        ) from None
    return model
