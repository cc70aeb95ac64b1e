"""quantize_, QuantConfig, quantization_map, calibrate."""

import copy

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit import tomlio
from lowbit.nn import QuantConv2d, QuantLinear


def cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
        nn.ReLU(),
        nn.Conv1d(8, 8, 1) if False else nn.Identity(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )


def u(bits, **kw):
    return lb.quantizers.get("uniform", bits=bits, **kw)


def test_swaps_exactly_the_quantizable_layers_and_keeps_parameters():
    m = cnn()
    w0 = m[2].weight
    lb.quantize_(m, lb.QuantConfig(weight=u(2)))
    assert isinstance(m[0], QuantConv2d) and isinstance(m[2], QuantConv2d) and m[2].groups == 8
    assert isinstance(m[6], QuantLinear) and isinstance(m[8], QuantLinear)
    assert isinstance(m[1], nn.ReLU) and isinstance(m[5], nn.Flatten)
    assert m[2].weight is w0  # same Parameter object: an optimizer made before the swap still updates it
    assert m(torch.randn(2, 3, 4, 4)).shape == (2, 3)


def test_keep_float_first_last_and_patterns():
    m = cnn()
    lb.quantize_(m, lb.QuantConfig(weight=u(2), keep_float=("first", "last")))
    qmap = lb.quantization_map(m)
    assert list(qmap) == ["0", "2", "6", "8"]
    assert qmap["0"]["weight"] is None and qmap["8"]["weight"] is None
    assert qmap["2"]["weight"]["name"] == "uniform" and qmap["6"]["weight"]["bits"] == 2
    assert type(m[0]) is nn.Conv2d  # kept-float layers stay the original modules
    m2 = cnn()
    lb.quantize_(m2, lb.QuantConfig(weight=u(4), keep_float=("[02]",)))
    assert [k for k, v in lb.quantization_map(m2).items() if v["weight"]] == ["6", "8"]


def test_rules_give_per_layer_precision_first_match_wins():
    m = cnn()
    cfg = lb.QuantConfig(
        weight=u(4),
        act=u(4, signed=False),
        rules={"first": lb.LayerRule(weight=u(8)), "[68]": lb.LayerRule(weight=u(2), act=u(2, signed=False))},
    )
    lb.quantize_(m, cfg)
    q = lb.quantization_map(m)
    assert q["0"]["weight"]["bits"] == 8 and q["0"]["act"] is None
    assert q["2"]["weight"]["bits"] == 4 and q["2"]["act"]["bits"] == 4
    assert q["6"]["weight"]["bits"] == 2 and q["8"]["act"]["bits"] == 2
    assert m[6].weight_quant is not m[8].weight_quant  # each layer owns its quantizer (own statistics)


def test_selector_matching_nothing_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'classifier.*' matches no quantizable layer"):
        lb.quantize_(cnn(), lb.QuantConfig(weight=u(2), keep_float=("classifier.*",)))
    with pytest.raises(ValueError, match="'head' matches no"):
        lb.quantize_(cnn(), lb.QuantConfig(weight=u(2), rules={"head": lb.LayerRule()}))


def test_float_equivalent_configs_leave_outputs_unchanged():
    torch.manual_seed(0)
    m = cnn()
    x = torch.randn(4, 3, 4, 4)
    want = m(x)
    for cfg in (lb.QuantConfig(), lb.QuantConfig(weight=u(32), act=u(32, signed=False))):
        q = copy.deepcopy(m)
        lb.quantize_(q, cfg)
        assert torch.equal(q(x), want)


def test_quantized_forward_uses_quantized_weights():
    m = nn.Sequential(nn.Linear(5, 4))
    lb.quantize_(m, lb.QuantConfig(weight=u(2)))
    x = torch.randn(3, 5)
    wq = m[0].quantized_weight()
    assert len(wq.unique()) <= 3
    assert torch.allclose(m(x), x @ wq.t() + m[0].bias)


def test_config_validation_and_round_trip():
    cfg = lb.QuantConfig(
        weight=u(2),
        act=lb.quantizers.get("pact", bits=3),
        keep_float=("first",),
        rules={"6": lb.LayerRule(weight=u(8))},
    )
    d = cfg.to_dict()
    assert lb.QuantConfig.from_dict(d).to_dict() == d
    back = lb.QuantConfig.from_dict(tomlio.tomllib.loads(tomlio.dumps(d)))  # through TOML (no nulls there)
    assert back.to_dict() == d
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['wieght'\]; accepted fields"):
        lb.QuantConfig.from_dict({"wieght": None})
    with pytest.raises(ValueError, match="pact.*cannot be used for weight"):
        lb.QuantConfig(weight=lb.quantizers.get("pact", bits=2))
    with pytest.raises(ValueError, match="unknown quantizer"):
        lb.QuantConfig(weight={"name": "unifrom", "bits": 2})
    with pytest.raises(TypeError, match="lowbit.QuantConfig"):
        lb.quantize_(cnn(), {"weight": None})


def test_calibrate_sets_activation_steps_from_batches():
    m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    lb.quantize_(m, lb.QuantConfig(act=u(2, signed=False), keep_float=("first",)))
    xs = [torch.randn(64, 2) for _ in range(3)]
    lb.calibrate(m, [(x, None) for x in xs])
    acts = torch.cat([torch.relu(m[0](x)) for x in xs]).detach()
    from lowbit.quantizers.uniform import l2_opt_step

    assert float(m[2].act_quant.step) == pytest.approx(l2_opt_step(acts, 2, signed=False), rel=1e-5)


def test_quantize_root_module_returns_twin():
    q = lb.quantize_(nn.Linear(3, 3), lb.QuantConfig(weight=u(2)))
    assert isinstance(q, QuantLinear)


def test_eval_mode_caches_quantized_weights_until_weights_change():
    m = nn.Sequential(nn.Linear(4, 4))
    lb.quantize_(m, lb.QuantConfig(weight=u(2)))
    calls = {"n": 0}
    m[0].weight_quant.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    x = torch.randn(2, 4)
    m.eval()
    with torch.no_grad():
        y1, y2 = m(x), m(x)
        assert calls["n"] == 1 and torch.equal(y1, y2)
        m[0].weight.mul_(2.0)  # the latent weight changes: recomputed
        y3 = m(x)
        assert calls["n"] == 2 and not torch.equal(y3, y1)
    m.train()
    m(x).sum().backward()  # training always recomputes, with gradients
    assert calls["n"] == 3 and m[0].weight.grad is not None


def test_model_input_stays_float_unless_the_config_asks():
    pact = lb.quantizers.get("pact", bits=2, alpha=1.0)
    m = lb.quantize_(cnn(), lb.QuantConfig(weight=u(2), act=pact))
    qmap = lb.quantization_map(m)
    assert qmap["0"]["act"] is None and qmap["2"]["act"]["name"] == "pact" and qmap["8"]["act"] is not None
    x = -torch.rand(2, 3, 4, 4)  # all negative: PACT on the input would make it all zeros
    assert not torch.equal(m(x), m(torch.zeros_like(x)))
    m = lb.quantize_(cnn(), lb.QuantConfig(weight=u(2), act=pact, quantize_input=True))
    assert lb.quantization_map(m)["0"]["act"]["name"] == "pact"
    assert torch.equal(m(x), m(torch.zeros_like(x)))  # the documented hazard, when asked for
    rule = lb.LayerRule(weight=u(8), act=lb.quantizers.get("uniform", bits=8, signed=True))
    m = lb.quantize_(cnn(), lb.QuantConfig(weight=u(2), act=pact, rules={"first": rule}))
    assert lb.quantization_map(m)["0"]["act"]["signed"] is True  # an explicit rule still applies
    d = lb.QuantConfig(act=pact, quantize_input=True).to_dict()
    assert lb.QuantConfig.from_dict(d).quantize_input is True
    with pytest.raises(TypeError, match="quantize_input='yes'"):
        lb.QuantConfig(quantize_input="yes")


def _pact_lsq_cfg():
    return lb.QuantConfig(weight=lb.quantizers.get("lsq", bits=4), act=lb.quantizers.get("pact", bits=4))


def test_optimizer_built_before_the_swap_is_warned_about_and_can_be_fixed():
    m = cnn()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    n_before = len(list(m.parameters()))
    lb.quantize_(m, _pact_lsq_cfg())
    new = lb.quantizer_parameters(m)
    assert len(new) == 4 + 3  # 4 LSQ steps, 3 PACT α (the model input stays float)
    assert len(list(m.parameters())) == n_before + len(new)
    with pytest.warns(UserWarning, match="not 7 quantizer parameter tensor"):
        missing = lb.check_optimizer(m, opt)
    assert [id(p) for p in missing] == [id(p) for p in new]
    # the fix: hand the optimizer to quantize_, which adds the new parameters as one group
    m2 = cnn()
    opt2 = torch.optim.SGD(m2.parameters(), lr=0.1)
    lb.quantize_(m2, _pact_lsq_cfg(), optimizer=opt2)
    assert len(opt2.param_groups) == 2 and lb.check_optimizer(m2, opt2) == []
    alpha = m2[2].act_quant.alpha
    before = float(alpha.detach())
    m2(torch.randn(4, 3, 4, 4) * 100).sum().backward()  # inputs far above α: α gets a gradient
    opt2.step()
    assert float(alpha.detach()) != before
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        lb.quantize_(cnn(), _pact_lsq_cfg(), optimizer=[1])


def test_load_float_state_dict_into_quantized_twin():
    torch.manual_seed(0)
    float_model = cnn()
    sd = float_model.state_dict()
    q = lb.quantize_(cnn(), lb.QuantConfig(weight=u(2), act=lb.quantizers.get("pact", bits=4)))
    x = torch.randn(2, 3, 4, 4)
    q(x)  # the uniform steps are now set from q's own (random) weights
    with pytest.raises(RuntimeError, match="Missing key"):
        q.load_state_dict(sd)  # plain strict loading fails on the quantizer keys
    lb.load_float_state_dict(q, sd)
    for k, v in sd.items():
        assert torch.equal(q.state_dict()[k], v)
    # the weight steps are recomputed from the loaded weights, not kept from the old ones
    ref = lb.quantize_(copy.deepcopy(float_model), lb.QuantConfig(weight=u(2), act=lb.quantizers.get("pact", bits=4)))
    lb.calibrate(ref, [x])
    lb.calibrate(q, [x])
    assert torch.equal(q(x), ref(x))
    bad = dict(sd)
    del bad["0.weight"]
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['0.weight'\], unexpected keys \['extra.weight'\]"):
        lb.load_float_state_dict(q, bad)
