"""Mixed-precision layer rules: a rule inherits the config's default for what it does not set, an explicit None
is float, and both survive a round trip through TOML."""

from __future__ import annotations

from torch import nn

import lowbit as lb
from lowbit import tomlio


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


def test_layer_rule_keeps_the_default_for_what_it_does_not_set():
    u = lb.quantizers.get
    rules = {"2": lb.LayerRule(weight=u("uniform", bits=4))}
    cfg = lb.QuantConfig(weight=u("uniform", bits=2), act=u("pact", bits=2), rules=rules)
    m = lb.quantize_(_mlp(), cfg)
    q = lb.quantization_map(m)
    assert q["2"]["weight"]["bits"] == 4 and q["2"]["act"]["name"] == "pact"  # act inherited, not float
    assert q["4"]["weight"]["bits"] == 2 and q["4"]["act"]["name"] == "pact"
    # explicit None is float
    cfg = lb.QuantConfig(weight=u("uniform", bits=2), act=u("pact", bits=2), rules={"2": lb.LayerRule(act=None)})
    q = lb.quantization_map(lb.quantize_(_mlp(), cfg))
    assert q["2"]["act"] is None and q["2"]["weight"]["bits"] == 2  # weight inherited


def test_layer_rule_round_trips_inherit_and_float_through_toml():
    u = lb.quantizers.get
    cfg = lb.QuantConfig(
        weight=u("uniform", bits=2),
        act=u("pact", bits=2),
        rules={"2": lb.LayerRule(weight=u("uniform", bits=4)), "4": lb.LayerRule(act=None)},
    )
    d = cfg.to_dict()
    assert "act" not in d["rules"]["2"] and d["rules"]["4"] == {"act": "float"}
    back = lb.QuantConfig.from_dict(tomlio.tomllib.loads(tomlio.dumps(d)))
    assert back.to_dict() == d
    q = lb.quantization_map(lb.quantize_(_mlp(), back))
    assert q["2"]["act"]["name"] == "pact" and q["4"]["act"] is None
