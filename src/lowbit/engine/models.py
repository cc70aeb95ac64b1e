"""A spec's ``[models.NAME]`` table -> a model, with the sizes the data determines filled in.

The data set's ``info`` (``datasets.Data.info``: in_features, num_classes, in_channels, input_size) fills
every argument the model builder accepts and the spec does not set, so ``{ name = "fcdnn", width = 32 }``
fits spirals (2 inputs) and digits (64 inputs) alike. A model that does not fit its data fails in
``check_fit`` with one line naming both.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import torch
from torch import nn

from ..models import create_model, model_builder

ALIASES = {"num_classes": ("num_classes", "n_classes"), "in_features": ("in_features", "n_input")}


def _accepted(fn) -> set[str]:
    """Keyword arguments a builder accepts (following ``**kwargs`` to the class it returns)."""
    params = inspect.signature(fn).parameters
    names = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        ret = typing.get_type_hints(fn).get("return")
        if isinstance(ret, type):
            names |= {n for n in inspect.signature(ret.__init__).parameters if n != "self"}
    return names


def model_kwargs(cfg: dict, info: dict) -> dict[str, Any]:
    """The builder's keyword arguments: the spec's, plus the data-determined sizes the model takes."""
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    accepted = _accepted(model_builder(cfg["name"]))
    for key, value in info.items():
        for alias in ALIASES.get(key, (key,)):
            if alias in accepted and alias not in kwargs:
                kwargs[alias] = value
    return kwargs


def build_model(cfg: dict, info: dict) -> tuple[nn.Module, dict]:
    kwargs = model_kwargs(cfg, info)
    return create_model(cfg["name"], **kwargs), kwargs


def check_fit(label: str, cfg: dict, data, data_name: str) -> nn.Module:
    """Build the model and run two training samples through it; a mismatch is one clear error. Returns the model."""
    model, kwargs = build_model(cfg, data.info)
    x = data.train[0][0]
    try:
        with torch.no_grad():
            model.eval()(torch.stack([x, x]) if isinstance(x, torch.Tensor) else x)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = str(e).splitlines()[0]
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"models.{label} ({cfg['name']} {kwargs}) does not fit data {data_name!r} (inputs of shape {shape}): "
            f"{first}"
        ) from None
    return model
