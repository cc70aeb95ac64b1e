"""What ``lb.calibrate`` guards (lowbit/calibration.py): an untrained BatchNorm normalises with the batch statistics
while calibrating (its eval-mode placeholders made steps 1e-10 of the training activations and training NaN), its
buffers come back unchanged; a trained BatchNorm stays in eval mode; a tensor without a range is named in a
warning; a NaN is an error naming the layer."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.quantizers import get
from lowbit.quantizers.l2_step import l2_opt_step

DEPTH = 6


def deep_cnn(scale: float = 0.05) -> nn.Sequential:
    """Conv-BN-ReLU blocks whose convolutions shrink their input by ~``scale``: in eval mode with untrained BN
    (mean 0, var 1: no normalisation) the activations of block k are ~scale^k of the input; in train mode BN
    brings each block back to unit variance."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()]
    for _ in range(DEPTH - 1):
        layers += [nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()]
    layers += [nn.Flatten(), nn.Linear(8 * 8 * 8, 10)]
    m = nn.Sequential(*layers)
    with torch.no_grad():
        for c in m:
            if isinstance(c, nn.Conv2d):
                c.weight.mul_(scale)
    return m


def w8a8() -> lb.QuantConfig:
    return lb.QuantConfig(weight=get("uniform", bits=8), act=get("uniform", bits=8))


def batches(n: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(8, 3, 8, 8, generator=g) for _ in range(n)]


def layer_inputs(model: nn.Module, xs: list[torch.Tensor], train_bn: bool) -> dict[str, torch.Tensor]:
    """Every twin's input over ``xs`` (activations float, weights quantized), BN in train or eval mode: an
    independent restatement of what calibrate should see, from a deep copy with the act quantizers removed."""
    m = copy.deepcopy(model)
    seen: dict[str, list[torch.Tensor]] = {}
    for name, mod in m.named_modules():
        if isinstance(mod, lb.nn.QuantMixin):
            mod.act_quant = None
            mod.register_forward_pre_hook(lambda mod, a, name=name: seen.setdefault(name, []).append(a[0].flatten()))
    m.eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.train(train_bn)
    with torch.no_grad():
        for x in xs:
            m(x)
    return {n: torch.cat(v) for n, v in seen.items()}


def test_untrained_batchnorm_calibrates_on_training_statistics_and_training_stays_finite():
    model = lb.quantize_(deep_cnn(), w8a8())
    xs = batches()
    train_in = layer_inputs(model, xs, train_bn=True)
    eval_in = layer_inputs(model, xs, train_bn=False)
    last = f"{3 * DEPTH + 1}"  # the Linear head: its input passed every block
    assert float(eval_in[last].abs().max()) < 1e-6 * float(train_in[last].abs().max())  # the trap is real
    lb.calibrate(model, xs)
    for name, m in model.named_modules():
        if isinstance(m, lb.nn.QuantMixin) and m.act_quant is not None:
            want = l2_opt_step(train_in[name], 8, True)
            assert float(m.act_quant.step) == pytest.approx(want, rel=1e-4), name
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    y = torch.arange(8) % 10
    for x in xs * 2:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_calibrate_leaves_batchnorm_buffers_and_modes_as_they_were():
    model = lb.quantize_(deep_cnn(), w8a8())
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    lb.calibrate(model, batches())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training for m in model.modules())  # the model's own mode comes back


def test_trained_batchnorm_stays_in_eval_mode():
    model = deep_cnn()
    model.train()
    with torch.no_grad():
        for x in batches(4):
            model(x)  # running statistics now hold data
    model = lb.quantize_(model, w8a8())
    xs = batches()
    eval_in = layer_inputs(model, xs, train_bn=False)
    lb.calibrate(model, xs)
    head = model[3 * DEPTH + 1]
    assert float(head.act_quant.step) == pytest.approx(l2_opt_step(eval_in[f"{3 * DEPTH + 1}"], 8, True), rel=1e-4)


class BNWithChild(nn.BatchNorm1d):
    """timm's BatchNormAct2d shape: a BatchNorm subclass with child modules (here a probe of their mode)."""

    def __init__(self, n: int):
        super().__init__(n)
        self.drop = nn.Dropout(0.5)
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.drop.training)
        return self.drop(super().forward(x))


def test_only_the_batchnorm_itself_switches_to_batch_statistics_not_its_children():
    bn = BNWithChild(4)
    model = lb.quantize_(nn.Sequential(nn.Linear(4, 4), bn, nn.Linear(4, 2)), lb.QuantConfig(act=get("lsq", bits=4)))
    lb.calibrate(model, [torch.randn(16, 4)])
    assert bn.modes == [False]  # dropout stayed in eval mode


def _act_model(aq) -> nn.Sequential:
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 2))
    return lb.quantize_(m, lb.QuantConfig(weight=get("uniform", bits=4), act=aq, keep_float=("first",)))


def test_a_dead_layer_input_is_named_in_one_warning():
    m = _act_model(get("uniform", bits=4, signed=False))
    with torch.no_grad():
        m[0].weight.zero_()
        m[0].bias.fill_(-1.0)  # ReLU output is all zero: layer 2 gets no range
    with pytest.warns(UserWarning, match="no spread") as rec:
        lb.calibrate(m, [torch.randn(8, 4)])
    msgs = [str(r.message) for r in rec if "no spread" in str(r.message)]
    assert len(msgs) == 1 and re.search(r"\b2\.act_quant input \(uniform: all zero\)", msgs[0])
    assert "3.act_quant" not in msgs[0]  # layer 3's input (2's output = its bias) is not all zero


def test_a_zero_initialised_weight_is_named():
    m = _act_model(get("pact", bits=4))
    with torch.no_grad():
        m[3].weight.zero_()
    with pytest.warns(UserWarning, match=r"3\.weight \(uniform: all zero\)"):
        lb.calibrate(m, [torch.randn(8, 4)])


def test_an_ordinary_model_calibrates_without_a_warning():
    m = _act_model(get("pact", bits=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lb.calibrate(m, [torch.randn(8, 4)])


def test_nan_in_a_layer_input_is_an_error_naming_it():
    m = _act_model(get("pact", bits=4))
    x = torch.randn(8, 4)
    x[0, 0] = float("nan")
    # the first layer is float: the NaN reaches layer 2's act quantizer through ReLU(Linear(x))
    with pytest.raises(ValueError, match=r"2\.act_quant input \(pact\) holds non-finite values \(\d+ NaN"):
        lb.calibrate(m, [x])


def test_a_batch_of_one_after_pooling_falls_back_to_the_running_statistics():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(4), nn.Linear(4, 2))
    m = lb.quantize_(m, lb.QuantConfig(act=get("uniform", bits=8)))
    lb.calibrate(m, [torch.randn(1, 3, 6, 6)])  # training-mode BatchNorm1d would raise on one value per channel
    assert m[4].act_quant.step.numel() == 1
