"""Registered model builders: ``create_model(name, **kwargs)``, ``model_names()``; the families register
themselves when the registry is first asked (``registry.FAMILIES``)."""

from .registry import MODELS, TEST_KWARGS, create_model, model_builder, model_names, register_model, test_kwargs

__all__ = ["MODELS", "TEST_KWARGS", "create_model", "model_builder", "model_names", "register_model", "test_kwargs"]
