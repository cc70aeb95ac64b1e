"""Quantizers: small named objects backed by pure functions, reached through one registry.

``get(name, **kwargs)`` builds one, ``names()`` lists them. Importing a family module registers it.
"""

from . import binary, dorefa, hwgq, log2, lsq, pact, pot, ternary, uniform, xnor  # noqa: F401  (registration)
from .base import Quantizer, check_bits
from .registry import get, get_class, names, register

__all__ = ["Quantizer", "check_bits", "get", "get_class", "names", "register"]
