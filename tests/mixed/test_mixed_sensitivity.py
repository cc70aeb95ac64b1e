"""lowbit.sensitivity: Hutchinson traces against the exact Hessian, the single-layer drop against a hand loop,
determinism, the table / JSON / heat map."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn
from torch.func import functional_call

import lowbit as lb
from lowbit.mixed import Sensitivity, hutchinson_traces


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    x = torch.randn(20, 3)
    y = torch.randint(0, 3, (20,))
    return model, x, y


def _block_noise(h: torch.Tensor, block: slice, samples: int) -> float:
    """Standard error of Hutchinson's estimate of Tr(H_ll) when one Rademacher vector covers every tracked tensor:
    Var[v_lᵀ(Hv)_l] = 2 Σ_{i≠j ∈ l} H_ij² + Σ_{i ∈ l, j ∉ l} H_ij² (H symmetric)."""
    rows = h[block]
    inside = rows[:, block] - torch.diag(torch.diag(rows[:, block]))
    outside = rows.pow(2).sum() - rows[:, block].pow(2).sum()
    return float(((2 * inside.pow(2).sum() + outside) / samples) ** 0.5)


def test_hutchinson_matches_the_exact_hessian_trace():
    model, x, y = _tiny()
    samples = 3000
    # both weights traced with one vector: the joint Hessian gives the exact block traces and the estimator's noise
    est = hutchinson_traces(model, [(x, y)], nn.functional.cross_entropy, ["0", "2"], [], samples, seed=1)
    params = dict(model.named_parameters())
    w0, w2 = params["0.weight"].detach(), params["2.weight"].detach()

    def loss_of(flat):
        p = {
            **params,
            "0.weight": flat[: w0.numel()].reshape(w0.shape),
            "2.weight": flat[w0.numel() :].reshape(w2.shape),
        }
        return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    h = torch.autograd.functional.hessian(loss_of, torch.cat([w0.reshape(-1), w2.reshape(-1)]))
    for layer, block in (("0", slice(0, w0.numel())), ("2", slice(w0.numel(), h.shape[0]))):
        exact = float(torch.trace(h[block, block]))
        se = _block_noise(h, block, samples)
        assert abs(est.trace[layer] - exact) <= 4 * se + 1e-6, (layer, est.trace[layer], exact, se)
        assert est.stderr[layer] == pytest.approx(se, rel=0.25)  # the measured spread matches the theory
    assert est.numel == {"0": w0.numel(), "2": w2.numel()}
    # the input of layer "2" (tanh of the first layer's output, the whole batch), traced alone
    est = hutchinson_traces(model, [(x, y)], nn.functional.cross_entropy, [], ["2"], samples, seed=2)
    a = torch.tanh(model[0](x)).detach()
    h = torch.autograd.functional.hessian(
        lambda flat: nn.functional.cross_entropy(model[2](flat.reshape(a.shape)), y), a.reshape(-1)
    )
    se = _block_noise(h, slice(0, h.shape[0]), samples)
    assert abs(est.trace["2:act"] - float(torch.trace(h))) <= 4 * se + 1e-6
    assert est.numel["2:act"] == a.numel()


def test_hutchinson_is_wrong_with_the_wrong_loss():
    """The comparison above can fail: the trace of a different loss (summed instead of mean) is off by the batch."""
    model, x, y = _tiny()
    est = hutchinson_traces(
        model, [(x, y)], lambda o, t: nn.functional.cross_entropy(o, t, reduction="sum"), ["2"], [], 500
    )
    ref = hutchinson_traces(model, [(x, y)], nn.functional.cross_entropy, ["2"], [], 500)
    assert est.trace["2"] == pytest.approx(20 * ref.trace["2"], rel=1e-5)


def _trained_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3))
    x = torch.randn(200, 2)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def test_single_layer_drop_matches_a_hand_loop():
    model, x, y = _trained_mlp()
    data = torch.utils.data.TensorDataset(x, y)
    s = lb.sensitivity(model, data, candidates=(2, 3), samples=4, batch_size=64)
    with torch.no_grad():
        base = float(nn.functional.cross_entropy(model(x), y))
    for bits in (2, 3):
        # weights of layer "2" alone, L2-optimal uniform step from the float weights
        m = copy.deepcopy(model)
        q = lb.quantizers.get("uniform", bits=bits)
        w = m[2].weight.detach().clone()
        q.calibrate(w)
        with torch.no_grad():
            wq = q(w)
            m[2].weight.copy_(wq)
            loss = float(nn.functional.cross_entropy(m(x), y))
        assert s.value("2", bits, "loss_delta") == pytest.approx(loss - base, rel=1e-4, abs=1e-6)
        assert s.value("2", bits, "perturbation") == pytest.approx(float(((wq - w) ** 2).sum()), rel=1e-5)
        acc = float((m(x).argmax(1) == y).double().mean() * 100) - float(
            (model(x).argmax(1) == y).double().mean() * 100
        )
        assert s.value("2", bits, "metric_delta") == pytest.approx(acc, abs=1e-9)
        # the input of layer "4" alone (non-negative after ReLU: unsigned uniform)
        a = torch.relu(model[2](torch.relu(model[0](x)))).detach()
        qa = lb.quantizers.get("uniform", bits=bits, signed=False)
        qa.calibrate(a)
        with torch.no_grad():
            aq = qa(a)
            loss = float(nn.functional.cross_entropy(model[4](aq), y))
        assert s.value("4", bits, "loss_delta", role="act") == pytest.approx(loss - base, rel=1e-4, abs=1e-6)
        assert s.value("4", bits, "perturbation", role="act") == pytest.approx(float(((aq - a) ** 2).sum()), rel=1e-5)
        r = next(r for r in s.rows if r["layer"] == "2" and r["bits"] == bits and r["role"] == "weight")
        assert r["hutchinson"] == pytest.approx(0.5 * r["trace"] / w.numel() * r["perturbation"])
    # fewer bits hurt at least as much here, and the first layer's input is signed: it gets a signed quantizer
    assert s.value("0", 2, "perturbation", role="act") > 0


def test_deterministic_for_a_seed_and_round_trips(tmp_path):
    model, x, y = _trained_mlp()
    data = [(x[:100], y[:100]), (x[100:], y[100:])]
    a = lb.sensitivity(model, data, candidates=(2, 4), samples=3, seed=5)
    b = lb.sensitivity(model, data, candidates=(2, 4), samples=3, seed=5)
    c = lb.sensitivity(model, data, candidates=(2, 4), samples=3, seed=6)
    assert a.rows == b.rows
    assert [r["trace"] for r in a.rows] != [r["trace"] for r in c.rows]
    path = tmp_path / "s.json"
    a.to_json(path)
    back = Sensitivity.from_json(path)
    assert back.rows == json.loads(path.read_text())["rows"] == a.rows
    assert "hutchinson b=4" in a.table() and "loss_delta b=2" in a.table()
    png = a.figure(tmp_path / "heat.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert set(a.score("hutchinson")) == {"0", "2", "4"}


def test_bad_input_is_named():
    model, x, y = _trained_mlp()
    with pytest.raises(ValueError, match="candidates"):
        lb.sensitivity(model, [(x, y)], candidates=(0, 2))
    with pytest.raises(ValueError, match="empty"):
        lb.sensitivity(model, [], candidates=(2,))
    with pytest.raises(ValueError, match="metric"):
        lb.sensitivity(model, [(x, y)], candidates=(2,), metric="f1")
