"""How big a model is, without building it: its builder runs on PyTorch's ``meta`` device, where tensors have
shapes and no storage, so ``fcdnn(width=10**7)`` costs the same few milliseconds as ``fcdnn(width=16)``.

While it runs, global registration hooks count every module, parameter and buffer the builder registers and stop
it as soon as the count passes the ``parts`` limit (``lowbit.limits``): a depth of 10⁷ allocates no weights on
``meta``, but its modules are still Python objects. The parameter count is checked once the build is done. Every
built-in model builds on ``meta`` (``tests/engine/test_engine_bounds.py`` checks each registered one against a real
build). A builder that cannot (it reads a tensor's values, loads a file) gives ``None``: its size is not known in
advance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as torch_module

from ..limits import ENV, LimitExceeded, limit, over, show


@dataclass(frozen=True)
class ModelSize:
    params: int  # parameter + buffer elements of the built model
    parts: int  # modules, parameters and buffers registered while building it


class _Stop(Exception):
    """Raised inside the builder by a hook when the ``parts`` count passes its limit."""


def model_size(fn: Callable[..., nn.Module], kwargs: dict[str, Any], what: str) -> ModelSize | None:
    """The size of ``fn(**kwargs)``, built on the meta device, within the limits: ``LimitExceeded``, one line
    starting with ``what``, when it has more parameters than the ``params`` limit (counted after the build: on
    ``meta`` they cost nothing) or registers more modules and tensors than the ``parts`` limit (the build is
    stopped there: each is a Python object). None when the builder cannot run on ``meta``."""
    max_parts = limit("parts")
    count = {"params": 0, "parts": 0}
    me = threading.get_ident()  # the hooks are global: leave the builds of other threads alone

    def add(elements: int) -> None:
        if threading.get_ident() != me:
            return
        count["params"] += elements
        count["parts"] += 1
        if count["parts"] > max_parts:
            raise _Stop

    def on_tensor(_module, _name, tensor):
        if tensor is not None:
            add(tensor.numel())

    def on_module(_module, _name, _sub):
        add(0)

    hooks = [
        torch_module.register_module_parameter_registration_hook(on_tensor),
        torch_module.register_module_buffer_registration_hook(on_tensor),
        torch_module.register_module_module_registration_hook(on_module),
    ]
    try:
        with torch.device("meta"):
            model = fn(**kwargs)
    except _Stop:
        raise LimitExceeded(
            f"{what}: building it registers more than {show('parts', max_parts)} modules and tensors "
            f"({show('params', count['params'])} parameters so far), over the limit parts = "
            f'{show("parts", max_parts)} (the local user raises it: {ENV}="parts=N")'
        ) from None
    except Exception:  # noqa: BLE001 (any builder error: the size is unknown; the real build reports its own error)
        return None
    finally:
        for h in hooks:
            h.remove()
    if not isinstance(model, nn.Module):
        return None
    params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    tail = over("params", params)
    if tail is not None:
        raise LimitExceeded(
            f"{what}: the model would have {show('params', params)} parameters "
            f"({show('data_bytes', 4 * params)} as float32), {tail}"
        )
    return ModelSize(params, count["parts"])


def check_saved_model(name: Any, kwargs: Any, what: str) -> None:
    """Before a model file's description is built (``load_model``, ``load_packed``): the registered ``name`` with the
    file's ``kwargs``, sized on the meta device; ``LimitExceeded`` naming ``what`` when it passes a limit. A file
    from elsewhere could otherwise make a tiny file allocate a 10⁷-wide model. Anything odd is left to the build."""
    from .registry import MODELS

    if isinstance(name, str) and isinstance(kwargs, dict) and name in MODELS:
        args = " ".join(f"{k}={v!r}" for k, v in kwargs.items())
        model_size(MODELS.get(name), kwargs, f"{what} (model {name!r}{' ' + args if args else ''})")
