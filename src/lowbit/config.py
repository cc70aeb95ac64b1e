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


INHERIT = "inherit"  # a LayerRule field left at this takes the QuantConfig's default for that role
FLOAT = "float"  # how a LayerRule writes None (float) in a dict: TOML has no null, and a left-out key inherits


@dataclass
class LayerRule:
    """Quantizers for the layers a rule selects: a quantizer, None (= float), or ``INHERIT`` (the default).

    A field the rule does not set inherits the config's default, so ``LayerRule(weight=get("uniform", bits=4))``
    changes only the weights and keeps the default activation quantizer; ``act=None`` makes the input float.
    In dicts and TOML: a left-out key inherits, ``"float"`` (or None) is float: ``{ weight = {...}, act = "float" }``.
    """

    weight: QuantizerSpec = INHERIT  # weight quantizer: instance, registry name, {"name": ...} dict, None = float
    act: QuantizerSpec = INHERIT  # quantizer for the layer's input activations, None = float

    def __post_init__(self):
        if not _inherits(self.weight):
            self.weight = _resolve(None if self.weight == FLOAT else self.weight, "LayerRule.weight", "weight")
        if not _inherits(self.act):
            self.act = _resolve(None if self.act == FLOAT else self.act, "LayerRule.act", "act")

    def over(self, default: LayerRule) -> LayerRule:
        """This rule with its inherited fields taken from ``default`` (a rule with no inherited fields)."""
        return LayerRule(
            weight=default.weight if _inherits(self.weight) else self.weight,
            act=default.act if _inherits(self.act) else self.act,
        )

    def to_dict(self) -> dict[str, Any]:
        """Set fields only ("float" for None); an inherited field is left out, and ``from_dict`` inherits it again."""
        fields = (("weight", self.weight), ("act", self.act))
        return {k: FLOAT if v is None else _q_to_dict(v) for k, v in fields if not _inherits(v)}

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

    ``quantize_input=False`` (the default) keeps the model's input float: the first quantizable layer does not
    get the default ``act`` quantizer (an unsigned one, such as PACT, would map every negative value of a
    normalised image to 0). A rule that names an ``act`` for that layer still applies; ``True`` quantizes the
    model input with the default ``act`` like every other layer input.
    """

    weight: QuantizerSpec = None  # default weight quantizer for every quantizable layer
    act: QuantizerSpec = None  # default input-activation quantizer (None: activations stay float)
    keep_float: tuple[str, ...] = ()  # layers left entirely in float
    rules: dict[str, LayerRule] = field(default_factory=dict)  # selector -> LayerRule (per-layer precision)
    quantize_input: bool = False  # give the first layer's input (the model input) the default act quantizer
    fold_bn: bool = False  # QAT with BatchNorm folded into the preceding conv (lowbit.nn.conv_bn, Jacob et al. 2018)

    def __post_init__(self):
        self.weight = _resolve(self.weight, "QuantConfig.weight", "weight")
        self.act = _resolve(self.act, "QuantConfig.act", "act")
        if isinstance(self.keep_float, str):
            self.keep_float = (self.keep_float,)
        if not all(isinstance(s, str) for s in self.keep_float):
            raise TypeError(f"QuantConfig.keep_float={self.keep_float!r}: expected a tuple of selector strings")
        self.keep_float = tuple(self.keep_float)
        if not isinstance(self.quantize_input, bool):
            raise TypeError(f"QuantConfig.quantize_input={self.quantize_input!r}: expected True or False")
        if not isinstance(self.fold_bn, bool):
            raise TypeError(f"QuantConfig.fold_bn={self.fold_bn!r}: expected True or False")
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
            "quantize_input": self.quantize_input,
            "fold_bn": self.fold_bn,
        }

    @classmethod
    def from_dict(cls, d: dict) -> QuantConfig:
        check_keys(d, cls, "QuantConfig")
        d = dict(d)
        if "keep_float" in d:
            d["keep_float"] = tuple(d["keep_float"])
        return cls(**d)


def _inherits(spec: Any) -> bool:
    return isinstance(spec, str) and spec == INHERIT


def _bad_rule(key: str, value: Any):
    raise TypeError(f"QuantConfig.rules[{key!r}]={value!r}: expected a LayerRule or a dict with 'weight'/'act'")
