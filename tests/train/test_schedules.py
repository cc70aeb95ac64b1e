"""CLR (Boo et al. Appendix B, spec §5.1) and L_Lip (Eq. 8, spec §5.2) against hand computations, and both
reaching ``lowbit.train.fit`` through ``TrainConfig(schedule="cyclical", lipschitz=...)``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lowbit as lb
from lowbit.models import create_model
from lowbit.train import TrainConfig, fit
from lowbit.train.regularizers import lipschitz
from lowbit.train.schedules import CYCLE, cyclical_factor, lr_factor, onecycle_factor

# Appendix B: {1.0, √0.1, 0.1, 0.1·√0.1, 0.01, 0.1·√0.1, 0.1, √0.1}
BY_HAND = [1.0, 0.1**0.5, 0.1, 0.1 * 0.1**0.5, 0.01, 0.1 * 0.1**0.5, 0.1, 0.1**0.5]


def test_clr_factors_by_hand():
    assert list(CYCLE) == pytest.approx(BY_HAND, rel=1e-12)
    assert [cyclical_factor(t) for t in range(17)] == pytest.approx(BY_HAND * 2 + [1.0], rel=1e-12)
    # stage length T_s: each factor is held T_s units; the period is 8·T_s
    assert [cyclical_factor(t, 3) for t in range(25)] == pytest.approx(
        [f for f in BY_HAND for _ in range(3)] + [1.0], rel=1e-12
    )
    assert [lr_factor("cyclical", t, 40) for t in range(40)] == [cyclical_factor(t) for t in range(40)]
    # triangular in log10 space, max at the cycle start, min 0.01 in the middle
    assert [round(math.log10(f), 9) for f in CYCLE] == [0, -0.5, -1, -1.5, -2, -1.5, -1, -0.5]


@pytest.mark.parametrize("t, stage", [(-1, 1), (0, 0), (1.5, 1), (True, 1)])
def test_clr_rejects_bad_input(t, stage):
    with pytest.raises(ValueError, match="cyclical_factor"):
        cyclical_factor(t, stage)


def _tiny_data(n=8):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g))


@pytest.mark.parametrize("stage", [1, 2])
def test_fit_follows_the_cycle(stage):
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=18, batch_size=8, lr=1e-3, optimizer="sgd", schedule="cyclical", cycle_stage=stage)
    hist = fit(nn.Linear(3, 2), _tiny_data(), cfg, progress=False)
    want = [1e-3 * BY_HAND[(e // stage) % 8] for e in range(18)]
    assert [h["lr"] for h in hist] == pytest.approx(want, rel=1e-12)
    assert min(h["lr"] for h in hist) == pytest.approx(1e-5)  # §5.4: between 1e-3 and 1e-5


def _llip_by_hand(weights: list[torch.Tensor]) -> float:
    """0.5·Σ_l ||W_lᵀW_l − I||_F² with W_l of shape (k·k·C_in, C_out), by explicit sums (Eq. 8)."""
    total = 0.0
    for w in weights:
        c_out = w.shape[0]
        cols = [w[o].reshape(-1).tolist() for o in range(c_out)]  # column o of W_l = filter o, flattened
        for i in range(c_out):
            for j in range(c_out):
                dot = sum(a * b for a, b in zip(cols[i], cols[j]))
                total += 0.5 * (dot - (1.0 if i == j else 0.0)) ** 2
    return total


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 2)  # W_l: (2·2·2, 3); rank <= 3
        self.dw = nn.Conv2d(3, 3, 3, groups=3)  # depthwise: (1·3·3, 3)
        self.wide = nn.Conv2d(1, 6, 1)  # C_out > k·k·C_in: the penalty cannot reach 0 (spec §5.2)
        self.fc = nn.Linear(4, 5)  # W_l = weight.T: (4, 5)

    def forward(self, x):
        return x


def test_lipschitz_by_hand_and_gradient():
    torch.manual_seed(0)
    net = _Net()
    ws = [net.conv.weight, net.dw.weight, net.wide.weight, net.fc.weight]
    value = lipschitz(net)
    assert float(value.detach()) == pytest.approx(_llip_by_hand([w.detach() for w in ws]), rel=1e-5)
    value.backward()
    for w in ws:  # ∂L/∂W_l = 2·W_l(W_lᵀW_l − I), W_l = weight.reshape(C_out, -1).T
        wl = w.detach().reshape(w.shape[0], -1).t()
        grad = 2 * wl @ (wl.t() @ wl - torch.eye(wl.shape[1]))
        assert torch.allclose(w.grad.reshape(w.shape[0], -1).t(), grad, atol=1e-5)
    ortho = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        ortho.weight.copy_(torch.linalg.qr(torch.randn(3, 3))[0])
    assert lipschitz(ortho).item() == pytest.approx(0.0, abs=1e-10)  # orthonormal columns: zero penalty


def test_lipschitz_uses_fp32_shadow_weights_and_skips_activation_points():
    torch.manual_seed(0)
    m = create_model("cifar_resnet_depthwise", depth=11, width=2)
    before = lipschitz(m).item()
    cfg = lb.QuantConfig(weight={"name": "uniform", "bits": 2}, act={"name": "pact", "bits": 2})
    lb.quantize_(m, cfg)  # twins hold the same latent weights; ActPoints (no weights) are not layers of L_Lip
    assert any(isinstance(x, lb.nn.QuantActPoint) for x in m.modules())
    assert lipschitz(m).item() == pytest.approx(before, rel=1e-6)
    layers = [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    assert lipschitz(m).item() == pytest.approx(_llip_by_hand([x.weight.detach() for x in layers]), rel=1e-4)


@pytest.mark.parametrize("lam", [0.0, 1e-4, 1e-2])
def test_fit_adds_lambda_llip(lam):
    """One SGD step on a zero task loss moves the weights by exactly -lr·λ·∂L_Lip/∂W."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 2), nn.Flatten(), nn.Linear(3, 2))
    w0 = [p.detach().clone() for p in net.parameters()]
    probe = nn.Sequential(nn.Conv2d(2, 3, 2), nn.Flatten(), nn.Linear(3, 2))
    probe.load_state_dict(net.state_dict())
    if lam > 0:
        (lam * lipschitz(probe)).backward()
    data = TensorDataset(torch.randn(4, 2, 2, 2), torch.zeros(4, dtype=torch.long))
    cfg = TrainConfig(epochs=1, batch_size=4, lr=0.5, optimizer="sgd", momentum=0.0, schedule="constant", lipschitz=lam)
    fit(net, data, cfg, loss_fn=lambda model, batch: 0.0 * model(batch[0]).sum(), progress=False)
    for p, p0, q in zip(net.parameters(), w0, probe.parameters()):
        step = torch.zeros_like(p0) if q.grad is None else 0.5 * q.grad
        assert torch.allclose(p.detach(), p0 - step, atol=1e-7)
    if lam > 0:
        assert not torch.equal(next(net.parameters()).detach(), w0[0])


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 10, 96, 469])
def test_onecycle_follows_pytorch(total):
    """Step for step the LR of torch's OneCycleLR (defaults: pct_start 0.3, cosine, div 25, final div 1e4)."""
    if total < 4:  # PyTorch's own boundaries degenerate here; ours starts at the peak and anneals
        got = [onecycle_factor(t, total) for t in range(total)]
        want = {1: [1.0], 2: [1.0, 1 / 25 / 1e4], 3: [1.0, (1 + 1 / 25 / 1e4) / 2, 1 / 25 / 1e4]}[total]
        assert got == pytest.approx(want, rel=1e-12)
        return
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, cycle_momentum=False)
    ref = []
    for _ in range(total):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    got = [0.1 * onecycle_factor(t, total) for t in range(total)]
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_onecycle_by_hand():
    # 100 steps: warm-up ends at step 29 (0.3·100 − 1), annealing at 99
    lo, end = 1 / 25, 1 / 25 / 1e4
    assert onecycle_factor(0, 100) == pytest.approx(lo)
    assert onecycle_factor(29, 100) == pytest.approx(1.0)
    assert onecycle_factor(64, 100) == pytest.approx((1 + end) / 2)  # halfway through the annealing: cos = 0
    assert onecycle_factor(14, 100) == pytest.approx(1 - (1 - lo) / 2 * (1 + math.cos(math.pi * 14 / 29)))
    assert onecycle_factor(99, 100) == pytest.approx(end)
    assert [lr_factor("onecycle", e, 4, step=s, steps_per_epoch=25) for e in range(4) for s in range(25)] == [
        onecycle_factor(t, 100) for t in range(100)
    ]


@pytest.mark.parametrize("t, total", [(-1, 10), (10, 10), (1.0, 10), (0, 0), (True, 3)])
def test_onecycle_rejects_bad_input(t, total):
    with pytest.raises(ValueError, match="onecycle_factor"):
        onecycle_factor(t, total)


def test_fit_steps_the_onecycle_lr_every_batch():
    """fit() sets the LR before every batch: 13 samples in batches of 4 = 4 steps per epoch, 3 epochs."""
    seen = []

    def spy(opt):
        opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(o.param_groups[0]["lr"]))

    cfg = TrainConfig(epochs=3, batch_size=4, lr=0.2, optimizer="sgd", schedule="onecycle")
    hist = fit(nn.Linear(3, 2), _tiny_data(13), cfg, progress=False, on_optimizer=spy)
    assert seen == pytest.approx([0.2 * onecycle_factor(t, 12) for t in range(12)], rel=1e-12)
    assert [h["lr"] for h in hist] == pytest.approx([seen[0], seen[4], seen[8]], rel=1e-12)  # lr at epoch start
    assert max(seen) < 0.2 and seen.index(max(seen)) in (2, 3) and seen[-1] < 0.2 / 25 / 1e3  # peak at step 2.6


def test_fit_onecycle_resumes_exactly(tmp_path):
    """The per-step schedule is a pure function of (epoch, step): a run killed in its second epoch and resumed
    ends with the weights and LRs of an uninterrupted run."""
    cfg = TrainConfig(epochs=3, batch_size=4, lr=0.2, optimizer="sgd", momentum=0.9, schedule="onecycle")

    def model():
        torch.manual_seed(0)
        return nn.Linear(3, 2)

    full = model()
    hist_full = fit(full, _tiny_data(13), cfg, progress=False)

    class Kill(Exception):
        pass

    calls = {"n": 0}

    def after_step(m):
        calls["n"] += 1
        if calls["n"] == 4 + 2:  # 4 steps per epoch: dies in the second epoch
            raise Kill

    killed = model()
    with pytest.raises(Kill):
        fit(killed, _tiny_data(13), cfg, run_dir=tmp_path, after_step=after_step, progress=False)
    resumed = model()
    hist = fit(resumed, _tiny_data(13), cfg, run_dir=tmp_path, resume=True, progress=False)
    assert torch.equal(full.weight, resumed.weight) and torch.equal(full.bias, resumed.bias)
    assert [h["lr"] for h in hist] == [h["lr"] for h in hist_full]


def test_fit_steps_the_poly_lr_every_batch_down_to_zero():
    """DeepLab's poly policy (Boo et al. §5.1, VOC): lr·(1 − t/T)^0.9 at step t of T, set before every batch."""
    seen = []

    def spy(opt):
        opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(o.param_groups[0]["lr"]))

    cfg = TrainConfig(epochs=3, batch_size=4, lr=0.2, optimizer="sgd", schedule="poly")
    fit(nn.Linear(3, 2), _tiny_data(13), cfg, progress=False, on_optimizer=spy)
    assert seen == pytest.approx([0.2 * (1 - t / 12) ** 0.9 for t in range(12)], rel=1e-12)


def test_fit_steps_the_inverse_time_lr_every_batch():
    """Keras' SGD ``decay`` (the seed paper's "learning rate 1e-4 with learning rate decay 1e-6"): lr / (1 + d·t)."""
    seen = []

    def spy(opt):
        opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(o.param_groups[0]["lr"]))

    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-4, gamma=0.05, optimizer="sgd", schedule="inverse_time")
    fit(nn.Linear(3, 2), _tiny_data(13), cfg, progress=False, on_optimizer=spy)
    assert seen == pytest.approx([1e-4 / (1 + 0.05 * t) for t in range(8)], rel=1e-12)
