"""Name -> model builder registry (the timm pattern: tests iterate it, checkpoints name their model)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ..registry import Registry

FAMILIES = (
    "deeplabv3",
    "deepspeech",
    "deepspeech_gru",
    "fcdnn",
    "fcn",
    "mobilenetv2",
    "mobilenetv2_seg",
    "resnet_cifar",
    "resnet_imagenet",
    "vgg",
)
MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "model", modules=[f"lowbit.models.{m}" for m in FAMILIES], entry_points="lowbit.models"
)


# What a model takes (the ``input`` fact of its registration), as ``lowbit models`` says it. A study flattens image
# data for a model that takes "vector" (lowbit.engine.models), so an MLP and a CNN share one study.
INPUTS = {
    "vector": "(N, in_features) vectors; image data is flattened for it",
    "image": "(N, C, H, W) images",
    "sequence": "(N, T, D) sequences of feature frames",
}
VECTORS = dict(input="vector", output="(N, num_classes) class scores")
CLASSIFIER = dict(input="image", output="(N, num_classes) class scores")
MASKS = dict(input="image", output="(N, classes, H, W) per-pixel scores")
SPEECH = dict(input="sequence", output="(N, T, classes) per-frame scores (CTC)")


def register_model(name: str, test_kwargs: dict[str, Any] | None = None, **meta: Any):
    """Decorator for a builder function ``fn(**kwargs) -> nn.Module``.

    test_kwargs: small keyword arguments a test can build the model with (timm's "test config").
    meta: facts ``lowbit models`` shows: ``input`` (a key of ``INPUTS``: "vector" models get image data flattened
    in a study) and ``output`` (what it returns), e.g. ``**VECTORS``.
    """
    if "input" in meta and meta["input"] not in INPUTS:
        raise ValueError(
            f"register_model({name!r}): input={meta['input']!r} is not accepted; expected one of {tuple(INPUTS)}"
        )

    def deco(fn):
        return MODELS.register(name, fn, test_kwargs=dict(test_kwargs or {}), **meta)

    return deco


def model_names() -> list[str]:
    return MODELS.names()


def model_builder(name: str) -> Callable[..., nn.Module]:
    return MODELS.get(name)


def test_kwargs(name: str) -> dict[str, Any]:
    return dict(MODELS.meta(name).get("test_kwargs", {}))


class _TestKwargs(Mapping):
    """``TEST_KWARGS[name]``: every registered model's test arguments (a read-only view of the registry)."""

    def __getitem__(self, name: str) -> dict[str, Any]:
        return test_kwargs(name)

    def __iter__(self):
        return iter(model_names())

    def __len__(self) -> int:
        return len(model_names())


TEST_KWARGS: Mapping[str, dict[str, Any]] = _TestKwargs()


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; the error lists the registered names or the bad argument."""
    fn = model_builder(name)
    try:
        return fn(**kwargs)
    except TypeError as e:
        raise ValueError(f"model {name!r}: {e}") from None
