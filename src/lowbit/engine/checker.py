"""The checker every spec check uses: one error line naming the path in the file (``SpecError``), and the
re-wording of a config's own error (TrainConfig, QuantConfig, the quantizer registry) with that path."""

from __future__ import annotations

import inspect
import re
from typing import Any

from .. import quantizers
from ..config import QuantConfig
from ..train.config import TrainConfig

_NOT_ACCEPTED = re.compile(r"(\w+)=(.+?) is not accepted; expected (.+)$")


class SpecError(ValueError):
    """A study spec that cannot run; the message is one line naming the path in the file."""


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v).replace("True", "true").replace("False", "false")


class Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, value: Any, what: str) -> None:
        raise SpecError(f"{self.source}: {path} = {_fmt(value)}: {what}")

    def keys(self, d: Any, path: str, accepted: tuple[str, ...] | list[str]) -> dict:
        if not isinstance(d, dict):
            self.fail(path, d, "expected a table")
        for k in d:
            if k not in accepted:
                raise SpecError(f"{self.source}: {path}.{k}: unknown key; accepted: {', '.join(accepted)}")
        return d

    def reword(self, path: str, err: Exception) -> None:
        """Re-raise a config/quantizer error with the path: ``path.field = value: expected ...``."""
        msg = str(err)
        m = _NOT_ACCEPTED.search(msg)
        if m:
            value = {"True": "true", "False": "false"}.get(m.group(2), m.group(2))  # as TOML writes it
            raise SpecError(f"{self.source}: {path}.{m.group(1)} = {value}: expected {m.group(3)}") from None
        raise SpecError(f"{self.source}: {path}: {msg}") from None

    def whole(self, path: str, v: Any, lo: int, hi: int | None = None) -> None:
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        if not ok:
            what = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.fail(path, v, f"expected a whole number {what}")

    def name_in(self, path: str, v: Any, names: list[str], what: str) -> None:
        if v not in names:
            self.fail(path, v, f"unknown {what}; accepted: {', '.join(names)}")

    def call_args(self, path: str, fn: Any, args: dict) -> None:
        """Unknown keyword arguments of a registered builder, by name."""
        params = inspect.signature(fn).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        for k in args:
            if k not in params:
                accepted = ", ".join(["name", *params])
                raise SpecError(f"{self.source}: {path}.{k}: unknown key; accepted: {accepted}")

    def train(self, path: str, d: Any, base: dict | None = None) -> None:
        self.keys(d, path, [f for f in TrainConfig.__dataclass_fields__ if f != "seed"])
        try:
            TrainConfig.from_dict({**(base or {}), **d})
        except (ValueError, TypeError) as e:
            self.reword(path, e)

    def quantizer(self, path: str, d: Any) -> None:
        if d is None:
            return
        if isinstance(d, str):
            d = {"name": d}
        if not isinstance(d, dict) or "name" not in d:
            self.fail(path, d, 'expected a quantizer table like { name = "uniform", bits = 2 }')
        self.name_in(f"{path}.name", d["name"], quantizers.names(), "quantizer")
        try:
            quantizers.get(d)
        except (ValueError, TypeError) as e:
            self.reword(path, e)

    def quant(self, path: str, d: Any) -> None:
        self.keys(d, path, ("weight", "act", "keep_float", "rules", "quantize_input"))
        self.quantizer(f"{path}.weight", d.get("weight"))
        self.quantizer(f"{path}.act", d.get("act"))
        for sel, rule in d.get("rules", {}).items():
            self.keys(rule, f"{path}.rules.{sel}", ("weight", "act"))
            for role in ("weight", "act"):  # "float": this role stays float (a left-out key inherits the default)
                spec = rule.get(role)
                self.quantizer(f"{path}.rules.{sel}.{role}", None if spec == "float" else spec)
        try:
            QuantConfig.from_dict(d)
        except (ValueError, TypeError) as e:
            self.reword(path, e)


def table(c: Checker, d: Any, path: str) -> dict:
    if not isinstance(d, dict):
        c.fail(path, d, "expected a table")
    return d
