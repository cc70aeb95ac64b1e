"""Registered model builders: ``create_model(name, **kwargs)``, ``model_names()``."""

from . import (
    deepspeech,  # noqa: F401  (registration)
    fcdnn,  # noqa: F401  (registration)
    fcn,  # noqa: F401  (registration)
    mobilenetv2,  # noqa: F401  (registration)
    mobilenetv2_seg,  # noqa: F401  (registration)
    resnet_cifar,  # noqa: F401  (registration)
    resnet_imagenet,  # noqa: F401  (registration)
    vgg,  # noqa: F401  (registration)
)
from .registry import TEST_KWARGS, create_model, model_names, register_model

__all__ = ["TEST_KWARGS", "create_model", "model_names", "register_model"]
