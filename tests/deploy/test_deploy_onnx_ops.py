"""Each op a user's model is made of, exported in each form and run by ONNX Runtime against PyTorch: activations,
pooling (any output size), elementwise arithmetic, shape ops and torch.fx-style getattr/getitem, norms, softmax,
Embedding, ConvTranspose, Conv3d, MatMul/attention, recurrent layers; the FloatOpsWarning for ops with no integer
form; and a twin that exports its weights through ``quant_weight_names`` alone."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lowbit as lb
from lowbit.deploy import freeze
from lowbit.deploy.onnx_check import compare
from lowbit.deploy.onnx_export import FloatOpsWarning, export_onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

W8A8 = {"weight": {"name": "uniform", "bits": 8}, "act": {"name": "uniform", "bits": 8}, "quantize_input": True}


class Around(nn.Module):
    """conv -> op -> conv -> linear: the op sits between two quantization points (and reads a quantized layer)."""

    def __init__(self, op, c: int = 4, mid: int | None = None):
        super().__init__()
        self.c1, self.op = nn.Conv2d(3, c, 3, padding=1), op
        self.c2 = nn.Conv2d(c if mid is None else mid, 4, 3, padding=1)
        self.fc = nn.LazyLinear(3)

    def forward(self, x):
        return self.fc(torch.flatten(self.c2(self.op(self.c1(x))), 1))


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Branches(nn.Module):
    """Two conv branches joined by ``fn`` (add, mul, cat, matmul, ...), then a linear head."""

    def __init__(self, fn, out: int = 4):
        super().__init__()
        self.a, self.b, self.fn = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1), fn
        self.c = nn.Conv2d(out, 4, 1)
        self.fc = nn.LazyLinear(3)

    def forward(self, x):
        return self.fc(self.c(self.fn(self.a(x), self.b(x))).flatten(1))


class ShapeOps(nn.Module):
    """view / reshape / permute / transpose / getitem / getattr (x.shape) between two quantized layers."""

    def __init__(self):
        super().__init__()
        self.c1, self.fc1, self.fc2 = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(16, 8), nn.Linear(8 * 3, 3)

    def forward(self, x):
        h = self.c1(x)  # (N, 4, 6, 6)
        n = h.shape[0]
        h = h[:, :, 1:5, 1:5].reshape(n, 4, 16).permute(0, 2, 1).transpose(1, 2)  # (N, 4, 16)
        h = self.fc1(h)[:, 1:]  # (N, 3, 8)
        return self.fc2(h.contiguous().view(n, -1))


class Tokens(nn.Module):
    """Embedding (Gather) -> LayerNorm -> MultiheadAttention -> GELU MLP -> mean -> head."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.norm = nn.LayerNorm(8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, t):
        h = self.norm(self.emb(t))
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(self.mlp(h).mean(1))


class Sdpa(nn.Module):
    """q, k, v projections, F.scaled_dot_product_attention and an explicit matmul/softmax."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = nn.Linear(6, 8), nn.Linear(6, 8), nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):  # (N, T, 6)
        q, k, v = self.q(x), self.k(x), self.v(x)
        a = F.scaled_dot_product_attention(q, k, v)
        p = torch.softmax(q @ k.transpose(1, 2) / 8**0.5, dim=-1)
        return self.o((a + p @ v).mean(1))


class Volumes(nn.Module):
    """Conv3d, ConvTranspose2d/1d, Conv1d, GroupNorm, InstanceNorm."""

    def __init__(self):
        super().__init__()
        self.c3 = nn.Conv3d(1, 2, 3, padding=1)
        self.up = nn.ConvTranspose2d(6, 4, 2, stride=2)
        self.gn = nn.GroupNorm(2, 4)
        self.c1 = nn.Conv1d(4, 4, 3, padding=1)
        self.up1 = nn.ConvTranspose1d(4, 4, 2, stride=2)
        self.fc = nn.LazyLinear(3)

    def forward(self, x):  # (N, 3, 6, 6)
        v = torch.relu(self.c3(x.unsqueeze(1))).flatten(1, 2)  # (N, 6, 6, 6)
        v = self.gn(self.up(v))  # (N, 4, 12, 12)
        s = self.up1(self.c1(v.mean(2)))  # (N, 4, 24)
        return self.fc(s.flatten(1))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.gru, self.fc = nn.LSTM(6, 8, batch_first=True), nn.GRU(8, 8, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.gru(self.lstm(x)[0])[0][:, -1])


IMG = (4, 3, 6, 6)
CASES = {
    "hardswish": (lambda: Around(nn.Hardswish()), IMG),
    "silu": (lambda: Around(nn.SiLU()), IMG),
    "sigmoid": (lambda: Around(nn.Sigmoid()), IMG),
    "hardsigmoid": (lambda: Around(nn.Hardsigmoid()), IMG),
    "gelu": (lambda: Around(nn.GELU()), IMG),
    "tanh": (lambda: Around(nn.Tanh()), IMG),
    "leaky_relu": (lambda: Around(nn.LeakyReLU(0.1)), IMG),
    "relu6": (lambda: Around(nn.ReLU6()), IMG),
    "softmax": (lambda: Around(nn.Softmax(dim=1)), IMG),
    "adaptive_avg_2x3": (lambda: Around(nn.AdaptiveAvgPool2d((2, 3))), IMG),
    "adaptive_avg_1": (lambda: Around(nn.AdaptiveAvgPool2d(1)), IMG),
    "adaptive_max_2": (lambda: Around(nn.AdaptiveMaxPool2d(2)), IMG),
    "avg_pool": (lambda: Around(nn.AvgPool2d(2)), IMG),
    "max_pool": (lambda: Around(nn.MaxPool2d(2)), IMG),
    "mean": (lambda: Around(Fn(lambda x: x.mean((2, 3), keepdim=True))), IMG),
    "layer_norm": (lambda: Around(nn.LayerNorm([4, 6, 6])), IMG),
    "group_norm": (lambda: Around(nn.GroupNorm(2, 4)), IMG),
    "batch_norm": (lambda: Around(nn.BatchNorm2d(4)), IMG),
    "add": (lambda: Branches(torch.add), IMG),
    "sub": (lambda: Branches(torch.sub), IMG),
    "mul": (lambda: Branches(torch.mul), IMG),
    "div": (lambda: Branches(lambda a, b: a / (b.abs() + 1)), IMG),
    "concat": (lambda: Branches(lambda a, b: torch.cat([a, b], 1), out=8), IMG),
    "matmul": (lambda: Branches(torch.matmul), IMG),
    "shape_ops": (ShapeOps, IMG),
    "volumes": (Volumes, IMG),
    "sdpa": (Sdpa, (4, 5, 6)),
    "recurrent": (Recurrent, (4, 5, 6)),
    "tokens": (Tokens, "tokens"),
}


def _build(case: str, cfg: dict | None = W8A8):
    make, shape = CASES[case]
    torch.manual_seed(0)
    m = make()
    x = torch.randint(0, 20, (4, 7)) if shape == "tokens" else torch.randn(shape)
    m(x)  # materialise lazy layers
    if cfg is not None:
        lb.quantize_(m, lb.QuantConfig(**cfg))
        lb.calibrate(m, [x])
        freeze(m.eval())
    return m.eval(), x


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_exports_and_matches_pytorch(tmp_path, case):
    """Float: every form PyTorch's exporter knows. W8A8: qdq, qop and integer, each within one output step of the
    fake-quantized model, and within float rounding where no activation sits at a rounding boundary."""
    f, xf = _build(case, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FloatOpsWarning)
        a = compare(f, export_onnx(f, tmp_path / "f.onnx", xf, form="float"), xf)
    assert a.max_abs <= 1e-5 * max(a.max_output, 1), (case, a)
    m, x = _build(case)
    for form in ("qdq", "qop", "integer"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FloatOpsWarning)
            p = export_onnx(m, tmp_path / f"{form}.onnx", x, form=form)
        a = compare(m, p, x)
        assert a.within_one_step, (case, form, a)
        # qdq and integer compute the simulation's values (to float rounding: no activation of these small nets
        # lands within rounding noise of a boundary); qop rounds each layer's bias to int32 units of Δx·Δw, which
        # moves the few activations within half a unit of a boundary by one step (measured here: <= 0.2 %)
        assert a.max_abs <= (5e-3 if form == "qop" else 1e-4) * a.max_output + 1e-6, (case, form, a)


def _ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_integer_forms_where_the_model_quantizes_around_the_op(tmp_path):
    """Ops with an integer form run on codes in the qop graph; ops without one are named by a FloatOpsWarning.
    Two conv branches summed in float (the model quantizes only the sum): exact by default, so the branches are
    float convs and the add is float (named); with ``calib`` the branches get calibrated grids and run integer."""
    m, x = _build("add")
    with pytest.warns(FloatOpsWarning, match=r"Conv x2 \(a, b\); Add \(model\)"):
        p = export_onnx(m, tmp_path / "a.onnx", x)
    assert _ops(p).count("Conv") == 2 and "QLinearAdd" not in _ops(p)
    assert compare(m, p, x).max_abs <= 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("error", FloatOpsWarning)  # nothing left in float
        p = export_onnx(m, tmp_path / "c.onnx", x, calib=x)
    assert _ops(p).count("QLinearConv") == 3 and "QLinearAdd" in _ops(p) and "Conv" not in _ops(p)
    assert compare(m, p, x).top1 == 1.0
    m, x = _build("max_pool")
    ops = _ops(export_onnx(m, tmp_path / "p.onnx", x))
    assert ops.count("QLinearConv") == 2 and "MaxPool" in ops and "DequantizeLinear" not in ops  # pool on codes
    m, x = _build("hardswish")
    with pytest.warns(FloatOpsWarning, match=r"HardSwish \(op\)"):
        export_onnx(m, tmp_path / "h.onnx", x)


def test_quantizer_without_a_grid_exports_its_float_arithmetic_with_a_warning(tmp_path):
    """HWGQ has no ``export_activation``: its own arithmetic is exported (exact), and the warning names the layer."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    lb.quantize_(m, lb.QuantConfig(weight={"name": "uniform", "bits": 4}, act={"name": "hwgq", "bits": 2}))
    x = torch.randn(16, 6)
    lb.calibrate(m, [x])
    freeze(m.eval())
    with pytest.warns(FloatOpsWarning, match=r"'2.act_quant' \(hwgq\) has no uint8 grid"):
        p = export_onnx(m, tmp_path / "h.onnx", x, form="qdq")
    assert compare(m, p, x).max_abs <= 1e-5


def test_a_model_pytorch_exports_is_never_refused(tmp_path):
    """Ops lowbit has never heard of (cumsum, erf, a where-mask, topk values) export as PyTorch writes them."""

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 3)

        def forward(self, x):
            h = torch.cumsum(self.a(x), 1)
            h = torch.where(h > 0, torch.erf(h), h.flip(1))
            return self.b(h + h.topk(2, dim=1).values.sum(1, keepdim=True))

    torch.manual_seed(0)
    m = Odd()
    lb.quantize_(m, lb.QuantConfig(**W8A8))
    x = torch.randn(8, 6)
    lb.calibrate(m, [x])
    freeze(m.eval())
    for form in ("qdq", "qop", "integer"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FloatOpsWarning)
            assert compare(m, export_onnx(m, tmp_path / f"{form}.onnx", x, form=form), x).within_one_step


def test_a_twin_exports_its_weights_through_quant_weight_names(tmp_path):
    """A twin lowbit.deploy has never seen (an Embedding with a quantized table, defined here) exports its frozen
    codes as DequantizeLinear -> Gather through the ``quant_weight_names`` / ``quantized_weight`` protocol."""
    from lowbit.nn import QuantMixin

    class QEmb(QuantMixin, nn.Embedding):
        def forward(self, t):
            return F.embedding(t, self.quantized_weight())

    torch.manual_seed(0)
    e = QEmb(20, 8)
    e._set_quantizers(lb.quantizers.get("uniform", bits=4, granularity="per_channel"), None)
    m = nn.Sequential(e, nn.Flatten(), nn.Linear(8 * 5, 3))
    t = torch.randint(0, 20, (6, 5))
    lb.calibrate(m, [t])
    freeze(m.eval())
    p = export_onnx(m, tmp_path / "e.onnx", t, form="qdq")
    proto = onnx.load(str(p))
    gather = next(n for n in proto.graph.node if n.op_type == "Gather")
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    consts = {
        n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in proto.graph.node if n.op_type == "Constant"
    }
    dq = next(n for n in proto.graph.node if n.output[0] == gather.input[0])
    assert dq.op_type == "DequantizeLinear"
    codes = {**inits, **consts}[dq.input[0]]
    np.testing.assert_array_equal(codes, e.weight_quant.codes_weight.numpy())  # the frozen codes themselves
    assert compare(m, p, t).max_abs <= 1e-6
