"""One calibration path (issue 9 item 9): every quantizer with a range or step initialises from data through
``lb.calibrate``, each value checked against a hand computation, and ``fit`` calibrates before training."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lowbit as lb
from lowbit.quantizers import Quantizer, get, get_class, names
from lowbit.quantizers.catalogue import default_bits
from lowbit.train import TrainConfig, fit
from lowbit.train.loop import epoch_batches
from lowbit.train.regularizers import apply_post_step, quantizer_regularizers


def act_model(aq, width: int = 4) -> nn.Sequential:
    """Identity-initialised first layer kept float, so the second layer's input is exactly the model input."""
    first = nn.Linear(width, width, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.eye(width))
    m = nn.Sequential(first, nn.Linear(width, 2))
    return lb.quantize_(m, lb.QuantConfig(act=aq, keep_float=("first",)))


def batches_of(x: torch.Tensor, n: int) -> list[tuple[torch.Tensor, None]]:
    return [(c, None) for c in x.chunk(n)]


def test_pact_alpha_is_the_nearest_rank_percentile_of_all_batches():
    x = torch.arange(1.0, 10001.0)[torch.randperm(10000, generator=torch.Generator().manual_seed(1))]
    m = act_model(get("pact", bits=2), width=4)
    aq = m[1].act_quant
    assert float(aq.alpha.detach()) == 10.0 and aq.needs_calibration()  # the reference code's α until calibrated
    lb.calibrate(m, batches_of(x.reshape(-1, 4), 5))  # 2,500 rows of 4 over 5 batches: percentile over all
    # 99.99th percentile, nearest rank: ceil(0.9999 · 10000) = 9999th smallest of 1..10000
    assert float(aq.alpha.detach()) == 9999.0 and not aq.needs_calibration()
    q = act_model(get("pact", bits=2, percentile=50.0), width=4)
    lb.calibrate(q, batches_of(x.reshape(-1, 4), 2))
    assert float(q[1].act_quant.alpha.detach()) == 5000.0
    fixed = act_model(get("pact", bits=2, alpha=3.0), width=4)  # a given α is kept
    lb.calibrate(fixed, batches_of(x.reshape(-1, 4), 2))
    assert float(fixed[1].act_quant.alpha.detach()) == 3.0


def test_lsq_steps_follow_the_paper_init_for_weights_and_activations():
    torch.manual_seed(0)
    x = torch.randn(300, 4)
    m = act_model(get("lsq", bits=3, signed=False), width=4)
    lb.quantize_(m, lb.QuantConfig(weight=get("lsq", bits=4), act=get("lsq", bits=3, signed=False),
                                   keep_float=("first",)))  # fmt: skip
    lb.calibrate(m, batches_of(x, 3))
    w = m[1].weight.detach()
    # s = 2·mean|v|/sqrt(Q_P): weights Q_P = 2^3 - 1 = 7; unsigned activations Q_P = 2^3 - 1 = 7
    assert float(m[1].weight_quant.s.detach()) == pytest.approx(2 * float(w.abs().mean()) / math.sqrt(7), rel=1e-6)
    assert float(m[1].act_quant.s.detach()) == pytest.approx(2 * float(x.abs().mean()) / math.sqrt(7), rel=1e-6)


def test_unsigned_uniform_step_from_all_batches():
    # inputs on the grid {0, 0.5, 1.0, 1.5}: the 2-bit unsigned L2-optimal Δ is 0.5 (zero error)
    x = (torch.arange(400) % 4).float().reshape(100, 4) * 0.5
    m = act_model(get("uniform", bits=2, signed=False))
    lb.calibrate(m, batches_of(x, 4))
    assert float(m[1].act_quant.step) == pytest.approx(0.5, rel=1e-9)


def test_hwgq_scale_is_sigma_of_the_positive_half():
    x = torch.tensor([[-1.0, 1.0, 2.0, -3.0], [2.0, 0.0, -0.5, -2.0]])
    m = act_model(get("hwgq", bits=2))
    assert float(m[1].act_quant.scale) == 1.0  # the paper's centers until calibrated
    lb.calibrate(m, batches_of(x, 2))
    s = math.sqrt((1 + 4 + 4) / 3)  # positives 1, 2, 2
    assert float(m[1].act_quant.scale) == pytest.approx(s)
    expected = torch.tensor([0.0, 0.538 * s, 1.076 * s, 1.614 * s])
    assert torch.allclose(m[1].act_quant.levels(x), expected)


def test_log2_fsr_from_the_max_over_all_batches():
    x = torch.tensor([[0.5, 1.0, 0.25, 0.1], [6.0, 0.3, 0.2, 0.1]])
    m = act_model(get("log2", bits=3))
    lb.calibrate(m, batches_of(x, 2))
    assert int(m[1].act_quant.fsr) == math.floor(math.log2(6.0) + 0.5) + 1 == 4  # the max is in batch 2


def test_ttq_scales_come_from_the_weights():
    torch.manual_seed(0)
    m = lb.quantize_(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), lb.QuantConfig(weight=get("ttq")))
    q = m[0].weight_quant
    assert q.needs_calibration()
    lb.calibrate(m, [(torch.randn(4, 8), None)])
    ref = get("ttq")
    ref(m[0].weight.detach())  # the initialisation a first forward pass would do on this weight
    assert not q.needs_calibration()
    assert (float(q.wp.detach()), float(q.wn.detach())) == (float(ref.wp.detach()), float(ref.wn.detach()))


def test_ttq_mean_init_from_the_weights_by_hand():
    m = lb.quantize_(nn.Sequential(nn.Linear(3, 2, bias=False)), lb.QuantConfig(weight=get("ttq", init="mean")))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[0.5, -0.2, 0.01], [1.0, -1.0, 0.02]]))
    lb.calibrate(m, [(torch.randn(2, 3), None)])
    # Δ = 0.05·max|W| = 0.05: W^p = mean(0.5, 1.0), W^n = mean(0.2, 1.0); 0.01 and 0.02 are below Δ
    q = m[0].weight_quant
    assert float(q.wp.detach()) == pytest.approx(0.75) and float(q.wn.detach()) == pytest.approx(0.6)


def test_activation_quantizers_see_float_inputs_while_calibrating():
    # layer 2's input is layer 1's output: with layer 1's 1-bit PACT active, it would be on {0, α}
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    lb.quantize_(m, lb.QuantConfig(act=get("pact", bits=1, percentile=100.0)))
    x = torch.randn(50, 3)
    lb.calibrate(m, [(x, None)])
    with torch.no_grad():
        h = torch.relu(m[0](x))  # the first layer has no act quantizer (the model input stays float)
        h2 = torch.relu(nn.functional.linear(h, m[2].weight, m[2].bias))  # float: no 1-bit PACT on h
    assert float(m[2].act_quant.alpha.detach()) == pytest.approx(float(h.max()))
    assert float(m[4].act_quant.alpha.detach()) == pytest.approx(float(h2.max()))


def test_only_uncalibrated_leaves_trained_ranges_alone():
    m = act_model(get("pact", bits=2, percentile=100.0))
    lb.calibrate(m, [(torch.ones(2, 4) * 3, None)])
    assert float(m[1].act_quant.alpha.detach()) == 3.0
    lb.calibrate(m, [(torch.ones(2, 4) * 5, None)], only_uncalibrated=True)
    assert float(m[1].act_quant.alpha.detach()) == 3.0
    lb.calibrate(m, [(torch.ones(2, 4) * 5, None)])
    assert float(m[1].act_quant.alpha.detach()) == 5.0
    loaded = act_model(get("pact", bits=2))
    loaded.load_state_dict(m.state_dict())  # a loaded α counts as calibrated
    assert not loaded[1].act_quant.needs_calibration()


def test_unsigned_quantizer_fed_mostly_negative_values_warns_once():
    m = act_model(get("pact", bits=2))
    with pytest.warns(UserWarning, match=r"more than half .* negative.*1\.act_quant \(pact: 75% negative\)"):
        lb.calibrate(m, [(torch.tensor([[-1.0, -2.0, -3.0, 4.0]]), None)])
    signed = act_model(get("uniform", bits=4, signed=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lb.calibrate(signed, [(-torch.ones(3, 4), None)])


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def test_fit_calibrates_on_the_first_batches_before_training():
    data = _data()
    m = act_model(get("pact", bits=2, percentile=100.0))
    fit(m, data, TrainConfig(epochs=0, batch_size=16, calibrate_batches=2), progress=False)
    seen = torch.cat([b[0] for b in list(epoch_batches(data, 16, 0, 0))[:2]])
    assert float(m[1].act_quant.alpha.detach()) == pytest.approx(float(seen.max()))
    off = act_model(get("pact", bits=2))
    fit(off, data, TrainConfig(epochs=0, calibrate_batches=0), progress=False)
    assert float(off[1].act_quant.alpha.detach()) == 10.0 and off[1].act_quant.needs_calibration()
    # a second fit keeps the range the first one trained
    fit(m, data, TrainConfig(epochs=1, batch_size=16, lr=1e-2), progress=False)
    trained = float(m[1].act_quant.alpha.detach())
    fit(m, data, TrainConfig(epochs=0, batch_size=64), progress=False)
    assert float(m[1].act_quant.alpha.detach()) == trained
    with pytest.raises(ValueError, match="calibrate_batches=-1"):
        TrainConfig(calibrate_batches=-1)


@pytest.mark.parametrize("name", names())
def test_every_quantizer_keeps_the_hook_contract(name):
    """What the trainer and ``calibrate`` rely on, for every registered quantizer: after ``calibrate`` nothing is
    left to calibrate, the regularizer is None or a finite scalar, the learning-rate factor is a positive number,
    and ``post_step`` leaves a latent weight finite."""
    cls = get_class(name)
    q = cls(bits=default_bits(name) or 2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, generator=g)
    q.calibrate(x if cls.kind != "act" else x.abs())
    assert q.needs_calibration() is False, name
    r = q.regularizer()
    assert r is None or (isinstance(r, torch.Tensor) and r.dim() == 0 and torch.isfinite(r)), (name, r)
    w = torch.randn(8, 16, generator=g) * 3
    scale = q.lr_scale(w)
    assert isinstance(scale, float) and 0 < scale < float("inf"), (name, scale)
    q.post_step(w)
    assert torch.isfinite(w).all(), name
    assert isinstance(cls.per_parameter_state, bool)


class _Clip(Quantizer):
    name = "test_clip"

    def forward(self, x):
        return x

    def post_step(self, weight):
        weight.clamp_(-0.1, 0.1)


def test_trainer_hooks_use_the_base_class_methods():
    m = lb.quantize_(nn.Sequential(nn.Linear(4, 4)), lb.QuantConfig(weight=_Clip(8)))
    with torch.no_grad():
        m[0].weight.fill_(1.0)
    apply_post_step(m)
    assert float(m[0].weight.detach().max()) == pytest.approx(0.1)
    assert quantizer_regularizers(m) is None  # the default regularizer() adds no term
    pact = act_model(get("pact", bits=2, alpha=4.0))
    assert float(quantizer_regularizers(pact).detach()) == pytest.approx(2e-4 * 16)
