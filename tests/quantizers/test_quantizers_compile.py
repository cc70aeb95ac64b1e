"""torch.compile traces quantized models whole: no host sync (``.item()``, ``float(t)``, ``bool(t)``) in any
quantizer's or twin's forward, training or eval.

``torch._dynamo.explain`` counts graph breaks; a training step is the forward + loss (one graph, whose backward
AOTAutograd compiles as one graph too) and the optimizer step (compiled on its own, as PyTorch documents; a
``loss.backward()`` call inside a compiled function is always a graph break). Compiled steps (``aot_eager``:
the same joint forward/backward graphs as inductor, without code generation) are compared with eager ones.
Before this, PACT's ``float(alpha)`` and uniform's ``float(step)`` broke the graph at every quantized layer.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
from support import every_quantizer as eq
from support.zoo import import_torchvision
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

import lowbit as lb
from lowbit.nn.conv_bn import QuantConvBn2d
from lowbit.quantizers import get


def breaks(fn, *args) -> tuple[int, int, list[str]]:
    """(graphs, graph breaks, reasons) of tracing ``fn(*args)`` (which also runs it)."""
    torch._dynamo.reset()
    ex = torch._dynamo.explain(fn)(*args)
    return ex.graph_count, ex.graph_break_count, [b.reason.splitlines()[0] for b in ex.break_reasons]


def w2a2(model: nn.Module, **kw) -> nn.Module:
    return lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=2), act=get("pact", bits=2), **kw))


def test_w2a2_mlp_training_forward_is_one_graph():
    torch.manual_seed(0)
    model = w2a2(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)))
    x, y = torch.randn(5, 6), torch.randint(0, 3, (5,))
    lb.calibrate(model, [x])
    assert breaks(eq.fwd_loss, model, x, y) == (1, 0, [])


def test_folded_bn_conv_and_act_point_trace_whole():
    """QuantConvBn2d (``fold_bn=True``: BN folded into the conv, training and eval forms) and QuantActPoint."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0, self.bn0 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.point, self.fc = lb.nn.ActPoint(), nn.Linear(64, 3)

        def forward(self, x):
            h = torch.relu(self.bn0(self.conv0(x)))
            return self.fc(self.point(torch.relu(self.bn1(self.conv1(h)))).flatten(1))

    torch.manual_seed(0)
    model = w2a2(Net(), fold_bn=True)
    assert isinstance(model.conv1, QuantConvBn2d) and isinstance(model.point, lb.nn.QuantActPoint)
    x, y = torch.randn(2, 3, 4, 4), torch.tensor([0, 2])
    lb.calibrate(model, [x])
    assert breaks(eq.fwd_loss, model.train(), x, y) == (1, 0, [])
    with torch.no_grad():
        assert breaks(model.eval(), x) == (1, 0, [])


@pytest.mark.parametrize(
    "name,kw,role",
    [
        ("uniform", {"bits": 2}, "weight"),
        ("lsq", {"bits": 3}, "weight"),
        ("ttq", {}, "weight"),
        ("pot", {"bits": 4}, "weight"),
        ("uniform", {"bits": 2, "signed": False}, "act"),
        ("log2", {"bits": 3}, "act"),
    ],
)
def test_uncalibrated_quantizer_initialises_once_outside_the_graph(name, kw, role):
    """Used without ``calibrate``, a quantizer sets its state from the first tensor it sees, eagerly (one graph
    break on that call only, ``run_eager``); the state is the one it computes eagerly, and the next call traces
    whole."""
    torch.manual_seed(0)
    cfg = lb.QuantConfig(weight=get(name, **kw)) if role == "weight" else lb.QuantConfig(act=get(name, **kw))
    layer = lb.quantize_(nn.Linear(6, 4), lb.QuantConfig(**{**vars(cfg), "quantize_input": True}))
    x = torch.randn(3, 6)
    q = layer.weight_quant if role == "weight" else layer.act_quant
    reference = copy.deepcopy(q)
    reference(layer.weight.detach() if role == "weight" else x)  # eager first use
    assert breaks(layer, x)[1] >= 1
    assert q.state_dict().keys() == reference.state_dict().keys()
    for k, v in reference.state_dict().items():
        assert torch.equal(q.state_dict()[k], v), k
    assert q.state_dict() and all(v.numel() for v in q.state_dict().values())  # set, not left empty
    assert breaks(layer, x) == (1, 0, [])


@pytest.mark.slow
def test_update_always_runs_its_search_eagerly_on_every_call():
    """uniform ``update="always"`` re-runs the L2 step search (host-side, data-dependent stopping) each call: the
    one mode that is eager by design; compiled, it still computes what eager does."""
    torch.manual_seed(0)
    cfg = lb.QuantConfig(act=get("uniform", bits=2, update="always"), quantize_input=True)
    layer = lb.quantize_(nn.Linear(6, 4), cfg)
    x = torch.randn(3, 6)
    assert breaks(layer, x)[1] >= 1
    assert breaks(layer, 2 * x)[1] >= 1
    torch._dynamo.reset()
    want = layer(3 * x)
    assert torch.equal(torch.compile(layer, backend="aot_eager")(3 * x), want)


@pytest.mark.slow
def test_every_quantizer_traces_whole_in_training_and_eval():
    model = eq.build()
    assert not eq.missing_quantizers(model), f"add {eq.missing_quantizers(model)} to tests/support/every_quantizer.py"
    x, y = eq.example()
    model.train()
    assert breaks(eq.fwd_loss, model, x, y) == (1, 0, [])
    model.eval()
    with torch.no_grad():  # the eval path (the quantized-weight cache is bypassed while tracing)
        assert breaks(model, x) == (1, 0, [])


@pytest.mark.slow
def test_every_quantizer_compiled_training_step_equals_eager():
    model = eq.build()
    x, y = eq.example()
    eager, compiled = copy.deepcopy(model), copy.deepcopy(model)
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(eq.fwd_loss, backend=counter, fullgraph=True)  # fullgraph: a graph break is an error
    torch.manual_seed(3)  # binary_stochastic and the DoReFa gradient noise draw random numbers
    loss_e = eq.fwd_loss(eager, x, y)
    loss_e.backward()
    torch.manual_seed(3)
    loss_c = step(compiled, x, y)
    loss_c.backward()
    assert counter.frame_count == 1
    assert torch.equal(loss_c, loss_e)
    for (n, pe), pc in zip(eager.named_parameters(), compiled.parameters()):
        assert torch.equal(pc.grad, pe.grad), n


@pytest.mark.slow
@pytest.mark.parametrize("act", [None, "pact"])
def test_recurrent_twins_trace_whole(act):
    """LSTM + GRU twins, fused path (float activations) and time loop (quantized x_t, h_t). Dynamo breaks the graph
    at every RNN module by default (``torch._dynamo.config.allow_rnn = False``, float models too); with
    ``allow_rnn`` the twins trace as one graph: nothing of lowbit's breaks it."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.fc = nn.Linear(4, 6), nn.Linear(6, 3)
            self.lstm = nn.LSTM(6, 6, batch_first=True, bidirectional=True)
            self.gru = nn.GRU(12, 6, batch_first=True)

        def forward(self, x):
            h, _ = self.lstm(torch.relu(self.lin(x)))
            h, _ = self.gru(h)
            return self.fc(h[:, -1])

    torch.manual_seed(0)
    model = Net()
    lb.quantize_(model, lb.QuantConfig(weight=get("lsq", bits=3), act=None if act is None else get(act, bits=2)))
    x, y = torch.randn(2, 3, 4), torch.randint(0, 3, (2,))
    lb.calibrate(model, [x])
    eq.fwd_loss(model, x, y)  # the time loop's one-time float-state warm-up of each hidden-state quantizer
    with torch._dynamo.config.patch(allow_rnn=True):
        assert breaks(eq.fwd_loss, model, x, y) == (1, 0, [])


@pytest.mark.slow
def test_resnet18_w2a2_training_step_compiles_without_graph_breaks():
    """torchvision resnet18, W2A2 (uniform weights + PACT activations, first and last layer float)."""
    tv = import_torchvision()
    torch.manual_seed(0)
    model = w2a2(tv.models.resnet18(num_classes=10), keep_float=("first", "last"))
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    lb.calibrate(model, [x])
    model.train()
    reference = copy.deepcopy(model)
    assert breaks(eq.fwd_loss, model, x, y) == (1, 0, [])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_ref = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    eq.fwd_loss(model, x, y).backward()
    eq.fwd_loss(reference, x, y).backward()
    assert breaks(opt.step)[:2] == (1, 0)  # the optimizer step, α among the parameters, traces whole too
    opt_ref.step()
    for (n, p), r in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, r), n
    # a compiled training step (fullgraph: no break allowed) computes the eager step's loss and gradients
    torch._dynamo.reset()
    step = torch.compile(eq.fwd_loss, backend="aot_eager", fullgraph=True)
    opt.zero_grad()
    opt_ref.zero_grad()
    loss = step(model, x, y)
    loss.backward()
    loss_ref = eq.fwd_loss(reference, x, y)
    loss_ref.backward()
    assert torch.equal(loss, loss_ref)
    for (n, p), r in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, r.grad, rtol=1e-5, atol=1e-6, msg=n)
