"""Quantizers: small named objects backed by pure functions, reached through one registry.

``get(name, **kwargs)`` builds one, ``names()`` lists them. The family modules register their classes when the
registry is first asked (``registry.FAMILIES``).
"""

from .base import Quantizer, check_bits
from .registry import QUANTIZERS, get, get_class, names, register

__all__ = ["QUANTIZERS", "Quantizer", "check_bits", "get", "get_class", "names", "register"]
