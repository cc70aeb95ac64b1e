"""Nothing silently float (lowbit/coverage.py): ``float_layers`` lists every weight-bearing module left float with
its share of the parameters; ``quantize_`` warns once when a config quantizes nothing or leaves most weights float;
``summary`` and ``lowbit summary`` show the list. Parameter counts are checked against hand-counted shapes."""

from __future__ import annotations

import warnings

import pytest
import torch
from support.zoo import LSTMClassifier
from torch import nn

import lowbit as lb
from lowbit.cli import main
from lowbit.quantizers import get
from lowbit.serialize import save_model


def w2a2(**kw) -> lb.QuantConfig:
    return lb.QuantConfig(weight=get("uniform", bits=2), act=get("pact", bits=2), **kw)


def quantize_warnings(model: nn.Module, config: lb.QuantConfig) -> list[str]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        lb.quantize_(model, config)
    return [str(r.message) for r in rec if "lowbit.quantize_" in str(r.message)]


def test_lstm_classifier_lists_what_keep_float_leaves_float_by_hand():
    model = LSTMClassifier(vocab=100, d=32, classes=10)
    assert quantize_warnings(model, w2a2(keep_float=("first", "last"))) == []  # the LSTM (83 %) is quantized
    # by hand: embedding 100·32; LSTM 2 layers · (4·32·32 + 4·32·32 + 2·4·32); head 32·10 + 10
    emb, lstm, head = 100 * 32, 2 * (2 * 4 * 32 * 32 + 2 * 4 * 32), 32 * 10 + 10
    total = emb + lstm + head
    flt = lb.float_layers(model)
    assert {n: (e["type"], e["params"], e["reason"]) for n, e in flt.items()} == {
        "embed": ("Embedding", emb, "kept float"),
        "head": ("Linear", head, "kept float"),
    }
    assert flt["embed"]["share"] == pytest.approx(emb / total)


def test_a_config_that_keeps_every_layer_float_warns_that_nothing_is_quantized():
    model = LSTMClassifier(vocab=100, d=32, classes=10)
    msgs = quantize_warnings(model, w2a2(keep_float=("embed", "lstm", "head")))
    assert len(msgs) == 1
    assert "quantizes nothing: keep_float and the rules leave all 3 quantizable layer(s) float" in msgs[0]
    assert "lstm (LSTM, kept float: 83%)" in msgs[0] and "embed (Embedding, kept float: 16%)" in msgs[0]


def test_a_model_with_no_quantizable_layer_says_so():
    msgs = quantize_warnings(nn.Sequential(nn.Bilinear(4, 4, 4), nn.LayerNorm(4)), w2a2())
    assert len(msgs) == 1 and "quantizes nothing: the model has no layer lowbit can quantize" in msgs[0]
    assert "0 (Bilinear, no twin: 89%), 1 (LayerNorm, no twin: 11%)" in msgs[0]  # 68 and 8 parameters


def test_most_weights_float_warns_with_the_biggest_offenders():
    model = nn.Sequential(nn.Bilinear(16, 16, 16), nn.Linear(16, 16), nn.Linear(16, 4))
    bil, lin = 16 * 16 * 16 + 16, 16 * 16 + 16
    total = bil + lin + 16 * 4 + 4
    msgs = quantize_warnings(model, w2a2())
    assert len(msgs) == 1
    assert f"{bil / total:.0%} of the model's weights stay float; the biggest float modules: 0 (Bilinear" in msgs[0]
    assert lb.float_layers(model) == {
        "0": {"type": "Bilinear", "params": bil, "share": pytest.approx(bil / total), "reason": "no twin"}
    }


def test_keep_float_leaving_most_weights_float_warns():
    model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    msgs = quantize_warnings(model, w2a2(keep_float=("2",)))
    share = (64 * 64 + 64) / (4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2)
    assert len(msgs) == 1 and f"the biggest float modules: 2 (Linear, kept float: {share:.0%})" in msgs[0]


def test_a_quantized_cnn_gives_no_warning_and_lists_its_norms():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 2))
    assert quantize_warnings(model, w2a2(keep_float=("first",))) == []
    total = 8 * 3 * 9 + 8 + 2 * 8 + 128 * 2 + 2
    flt = lb.float_layers(model)
    assert {n: e["params"] for n, e in flt.items()} == {"0": 8 * 3 * 9 + 8, "1": 2 * 8}
    assert sum(e["share"] for e in flt.values()) == pytest.approx((8 * 27 + 8 + 16) / total)


def test_a_folded_batchnorm_counts_under_its_conv():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 2))
    assert quantize_warnings(model, w2a2(fold_bn=True)) == []
    assert type(model[0]).__name__ == "QuantConvBn2d"
    assert lb.float_layers(model) == {}  # the BN's γ, β count under the quantized conv, not as a float BatchNorm


def test_activation_only_configs_do_not_warn_about_float_weights():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert quantize_warnings(model, lb.QuantConfig(act=get("pact", bits=4))) == []
    assert set(lb.float_layers(model)) == {"0", "2"}


def test_quantizer_state_is_not_counted_and_tied_weights_count_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.norm = nn.LayerNorm(8)
            self.out = nn.Linear(8, 50, bias=False)
            self.out.weight = self.embed.weight  # tied (GPT-2 style)
            self.scale = nn.Parameter(torch.ones(8))  # held by the model itself

    model = Tied()
    quantize_warnings(model, lb.QuantConfig(weight=get("lsq", bits=4), act=get("pact", bits=4), keep_float=("embed",)))
    assert lb.quantizer_parameters(model)  # LSQ's s and PACT's α exist, and are not weights
    flt = lb.float_layers(model)
    # the tied matrix counts once, under its first owner: the embedding looks it up in float (the head reads it
    # quantized), so the model stores it float
    assert {n: e["params"] for n, e in flt.items()} == {"": 8, "embed": 50 * 8, "norm": 16}
    assert flt[""]["type"] == "Tied" and flt["norm"]["reason"] == "no twin"
    assert sum(e["share"] for e in flt.values()) == pytest.approx(1.0)


def test_summary_and_cli_list_what_stays_float(tmp_path, capsys):
    torch.manual_seed(0)
    m = lb.models.create_model("fcdnn", width=16, depth=3)
    quantize_warnings(m, w2a2(keep_float=("first",)))
    t = lb.summary(m.eval())
    assert t.totals["float_layers"] == lb.float_layers(m)
    first = next(iter(t.totals["float_layers"]))
    assert [r["float"] for r in t.rows if r["name"] == first] == ["kept float"]
    assert [r["float"] for r in t.rows if r["name"] != first] == [None] * (len(t.rows) - 1)
    assert f"left float: {t.totals['float_share']:.1%} of the parameters, in 1 module(s)" in str(t)
    save_model(tmp_path / "m.safetensors", m, "fcdnn", width=16, depth=3)
    capsys.readouterr()
    assert main(["summary", str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "left float:" in out and f"  {first}  Linear  kept float" in out
