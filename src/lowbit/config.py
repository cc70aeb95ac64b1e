"""Typed, self-validating quantization configs that round-trip through plain dicts (and so TOML/JSON)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Union

from . import quantizers
from .quantizers import Quantizer

QuantizerSpec = Union[Quantizer, str, dict, None]


def _resolve(spec: QuantizerSpec, where: str, role: str) -> Quantizer | None:
    try:
        q = quantizers.get(spec)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{where}: {e}") from None
    if q is not None:
        allowed = ("weight", "both") if role == "weight" else ("act", "both")
        if q.kind not in allowed:
            raise ValueError(f"{where}: quantizer {q.name!r} quantizes {q.kind}s and cannot be used for {role}")
    return q


def _q_to_dict(q: Quantizer | None) -> dict | None:
    return None if q is None else q.to_dict()


def check_keys(d: dict, cls: type, where: str) -> None:
    """Reject unknown fields by name, listing the accepted ones."""
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; accepted fields: {sorted(allowed)}")


@dataclass
class LayerRule:
    """Quantizers for the layers a rule selects (None = float)."""

    weight: QuantizerSpec = None  # weight quantizer: instance, registry name, {"name": ...} dict, or None
    act: QuantizerSpec = None  # quantizer for the layer's input activations, or None

    def __post_init__(self):
        self.weight = _resolve(self.weight, "LayerRule.weight", "weight")
        self.act = _resolve(self.act, "LayerRule.act", "act")

    def to_dict(self) -> dict[str, Any]:
        return {"weight": _q_to_dict(self.weight), "act": _q_to_dict(self.act)}

    @classmethod
    def from_dict(cls, d: dict) -> LayerRule:
        check_keys(d, cls, "LayerRule")
        return cls(**d)


@dataclass
class QuantConfig:
    """What ``quantize_`` does to a model.

    Selectors (in ``keep_float`` and as ``rules`` keys) are "first" / "last" (the first / last quantizable
    layer in registration order) or fnmatch patterns over qualified module names ("features.*", "fc?").
    A selector that matches no layer is an error. Precedence: keep_float, then the first matching rule,
    then the default ``weight``/``act``.
    """

    weight: QuantizerSpec = None  # default weight quantizer for every quantizable layer
    act: QuantizerSpec = None  # default input-activation quantizer (None: activations stay float)
    keep_float: tuple[str, ...] = ()  # layers left entirely in float
    rules: dict[str, LayerRule] = field(default_factory=dict)  # selector -> LayerRule (per-layer precision)

    def __post_init__(self):
        self.weight = _resolve(self.weight, "QuantConfig.weight", "weight")
        self.act = _resolve(self.act, "QuantConfig.act", "act")
        if isinstance(self.keep_float, str):
            self.keep_float = (self.keep_float,)
        if not all(isinstance(s, str) for s in self.keep_float):
            raise TypeError(f"QuantConfig.keep_float={self.keep_float!r}: expected a tuple of selector strings")
        self.keep_float = tuple(self.keep_float)
        if not isinstance(self.rules, dict):
            raise TypeError(f"QuantConfig.rules={self.rules!r}: expected a dict selector -> LayerRule")
        self.rules = {
            k: v if isinstance(v, LayerRule) else LayerRule.from_dict(v) if isinstance(v, dict) else _bad_rule(k, v)
            for k, v in self.rules.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight": _q_to_dict(self.weight),
            "act": _q_to_dict(self.act),
            "keep_float": list(self.keep_float),
            "rules": {k: r.to_dict() for k, r in self.rules.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> QuantConfig:
        check_keys(d, cls, "QuantConfig")
        d = dict(d)
        if "keep_float" in d:
            d["keep_float"] = tuple(d["keep_float"])
        return cls(**d)


def _bad_rule(key: str, value: Any):
    raise TypeError(f"QuantConfig.rules[{key!r}]={value!r}: expected a LayerRule or a dict with 'weight'/'act'")
