"""The fast ONNX form (issue 12): integer operators end to end, parity with the fake-quantized model, exact codes,
BN folding (at export and for QAT), kept-float layers, MatMulNBits, residual adds, and deploy asking the quantizer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.deploy import freeze
from lowbit.deploy.onnx_export import export_onnx
from lowbit.deploy.onnx_graph import run_onnx
from lowbit.quantizers import Quantizer
from lowbit.quantizers.base import ActivationGrid

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
FLOAT_COMPUTE = {"Conv", "MatMul", "Gemm", "BatchNormalization", "ConvInteger", "MatMulInteger"}


def cnn(bn: bool = True) -> nn.Sequential:
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=not bn)] + ([nn.BatchNorm2d(o)] if bn else []) + [nn.ReLU()]

    return nn.Sequential(*block(1, 8), nn.MaxPool2d(2), *block(8, 16), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16 * 3 * 3, 32), nn.ReLU(), nn.Linear(32, 5))  # fmt: skip


def quantized(bits: int = 8, bn: bool = True, seed: int = 0, **cfg) -> tuple[nn.Module, torch.Tensor]:
    """A W{bits}A{bits} CNN with non-trivial BN statistics, calibrated; the input quantized too."""
    torch.manual_seed(seed)
    m = cnn(bn)
    x = torch.rand(16, 1, 12, 12)
    if bn:
        m.train()
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.2, 0.2)
            for _ in range(3):
                m(x * 2)
    w = {"name": "uniform", "bits": bits, "granularity": "per_channel"}
    kw = {"weight": w, "act": {"name": "pact", "bits": bits}, "quantize_input": True, **cfg}
    lb.quantize_(m, lb.QuantConfig(**kw))
    lb.calibrate(m, [x])
    return m.eval(), x


def node_ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_integer_graph_structure(tmp_path):
    m, x = quantized(8)
    p = export_onnx(m, tmp_path / "q.onnx", x)
    ops = node_ops(p)
    assert ops.count("QLinearConv") == 2 and ops.count("QGemm") == 2
    assert ops.count("QuantizeLinear") == 1  # the input, once; activations stay 8-bit between layers
    assert not FLOAT_COMPUTE & set(ops) and "Relu" not in ops  # BN folded, ReLU fused
    _, ran = run_onnx(p, x.numpy(), profile=True)
    assert {"QLinearConv", "QGemm"} <= set(ran) and not FLOAT_COMPUTE & set(ran)
    conv = next(n for n in onnx.load(str(p)).graph.node if n.op_type == "QLinearConv")
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(p)).graph.initializer}
    assert inits[conv.input[0 + 3]].dtype == np.int8 and inits[conv.input[2]].dtype == np.uint8  # u8s8


def _codes_input(proto, name: str) -> str:
    """A layer's input codes: before the exact uint8 Mul (k·q, a finer int32-bias unit; onnx_lower._Layer)."""
    p = next((n for n in proto.graph.node if n.output[0] == name), None)
    return p.input[0] if p is not None and p.op_type == "Mul" else name


def _layer_inputs(m: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Each quantized layer's input codes in the fake-quantized model (output of its act quantizer / step)."""
    out = {}
    hooks = []
    for name, mod in m.named_modules():
        aq = getattr(mod, "act_quant", None)
        if aq is not None:
            g = aq.export_activation()
            hooks.append(aq.register_forward_hook(
                lambda _m, _i, o, name=name, g=g: out.__setitem__(name, np.round(o.numpy() / g.scale))))  # fmt: skip
    with torch.no_grad():
        y = m(x).numpy()
    for h in hooks:
        h.remove()
    out["output"] = y
    return out


@pytest.mark.parametrize("bits", [8, 4])
def test_parity_one_step_per_layer_and_exact_codes(tmp_path, bits):
    m, x = quantized(bits, bn=False, seed=bits)
    x = torch.rand(64, 1, 12, 12)
    f = freeze(copy.deepcopy(m))
    sim = _layer_inputs(f, x)
    proto = onnx.load(str(export_onnx(f, tmp_path / "q.onnx", x[:4], calib=x)))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    feeds = {}
    for n in proto.graph.node:
        if n.op_type in ("QLinearConv", "QGemm"):
            layer = n.name.split("_")[0]
            fw = f.get_submodule(layer).weight_quant
            codes, scale = inits[n.input[3]].astype(np.int32), inits[n.input[4]]
            frozen = fw.codes_weight.numpy().astype(np.int32)
            peak = np.abs(frozen).reshape(len(codes), -1).max(1)
            m_c = np.abs(codes).reshape(len(codes), -1).max(1) // np.maximum(peak, 1)
            # the frozen codes, times an integer per channel (a finer int32 bias; onnx_lower._Layer): the same weights
            np.testing.assert_array_equal(codes, frozen * m_c.reshape((-1,) + (1,) * (frozen.ndim - 1)))
            np.testing.assert_allclose(scale * m_c, np.broadcast_to(fw.step_weight.numpy(), scale.shape), rtol=1e-6)
            feeds[layer] = _codes_input(proto, n.input[0])
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(feeds[layer]))
    assert len(feeds) == 4
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in proto.graph.output], sess.run(None, {"input": x.numpy()})))
    for layer, name in feeds.items():
        d = np.abs(outs[name].astype(np.int32) - sim[layer])
        assert d.max() <= 1, (layer, d.max())  # within one activation step per layer
        # flips come from the int32 bias (rounded to units of Δx·Δw; the 4-bit layers refine the unit by the
        # integers m and k, onnx_lower._Layer) and cascade down the layers (measured, layers 2-4: 8 bits 0.04 / 0.3 /
        # 1.1 % of the codes; 4 bits none, 0.6 / 2.7 / 7.1 % with the plain Δx·Δw unit)
        assert (d > 0).mean() < {8: 0.03, 4: 0.005}[bits], (layer, (d > 0).mean())
    agree = (outs["output"].argmax(1) == sim["output"].argmax(1)).mean()
    assert agree >= 0.9


@pytest.mark.parametrize("bits", [2, 3, 5])
def test_one_layer_within_one_step(tmp_path, bits):
    """One integer conv (BN folded, ReLU fused, max-pool on codes) against the fake-quantized model: the next
    layer's input codes differ by at most one step, at few positions (2-bit weights: the int32 bias is rounded to
    units of Δx·Δw, a coarse grid, so a few percent of the codes near a boundary move)."""
    torch.manual_seed(bits)
    m = nn.Sequential(nn.Conv2d(2, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(16 * 4 * 4, 3))  # fmt: skip
    x = torch.rand(64, 2, 8, 8)
    m.train()
    with torch.no_grad():
        m[1].bias.uniform_(-0.3, 0.3)
        m(x)
    w = {"name": "uniform", "bits": bits, "granularity": "per_channel"}
    lb.quantize_(m, lb.QuantConfig(weight=w, act={"name": "pact", "bits": bits}, quantize_input=True))
    lb.calibrate(m, [x])
    m.eval()
    f = freeze(copy.deepcopy(m))
    sim = _layer_inputs(f, x)["5"]
    proto = onnx.load(str(export_onnx(f, tmp_path / "q.onnx", x)))
    gemm = next(n for n in proto.graph.node if n.op_type == "QGemm")
    proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(_codes_input(proto, gemm.input[0])))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    d = np.abs(sess.run(None, {"input": x.numpy()})[1].astype(np.int32) - sim)
    assert d.max() <= 1 and (d > 0).mean() < 0.05, (d.max(), (d > 0).mean())


def test_bn_folded_at_export_equals_unfolded_float(tmp_path):
    torch.manual_seed(0)
    m = cnn(bn=True)
    m.train()
    x = torch.randn(8, 1, 12, 12)
    with torch.no_grad():
        for _ in range(3):
            m(x)
    m.eval()
    with torch.no_grad():
        y0 = m(x).numpy()
    p = export_onnx(m, tmp_path / "f.onnx", x, form="float")
    assert "BatchNormalization" not in node_ops(p)
    y, _ = run_onnx(p, x.numpy())
    np.testing.assert_allclose(y, y0, rtol=1e-4, atol=1e-5)


def test_qat_bn_folding_matches_unfolded_in_float():
    """QuantConvBn2d without quantizers computes exactly conv -> BN, in training (batch statistics, running-stat
    updates) and in eval (running statistics) mode."""
    from lowbit.nn.conv_bn import QuantConvBn2d, fold_bn_

    torch.manual_seed(1)
    ref = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 1))
    with torch.no_grad():
        ref[1].weight.uniform_(-1.5, 1.5)  # negative γ too
        ref[1].running_var.uniform_(0.5, 2.0)
    folded = fold_bn_(copy.deepcopy(ref))
    assert isinstance(folded[0], QuantConvBn2d) and isinstance(folded[1], nn.Identity)
    x = torch.randn(5, 3, 7, 7)
    for mode in (True, False):
        ref.train(mode)
        folded.train(mode)
        torch.testing.assert_close(folded(x), ref(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(folded[0].bn.running_mean, ref[1].running_mean)


def test_qat_bn_folding_config_freezes_and_exports(tmp_path):
    m, x = quantized(4, bn=True, fold_bn=True)
    from lowbit.nn.conv_bn import QuantConvBn2d

    assert sum(isinstance(mod, QuantConvBn2d) for mod in m.modules()) == 2
    with torch.no_grad():
        y0 = m(x).numpy()
    f = freeze(copy.deepcopy(m))
    assert f[0].weight_quant.schemes["weight"]["scheme"] == "uniform"  # codes of the folded weight
    with torch.no_grad():
        np.testing.assert_allclose(f(x).numpy(), y0, rtol=1e-5, atol=1e-5)
    p = export_onnx(f, tmp_path / "q.onnx", x)
    assert not FLOAT_COMPUTE & set(node_ops(p))
    y, _ = run_onnx(p, x.numpy())
    assert (y.argmax(1) == y0.argmax(1)).mean() >= 0.9


def test_kept_float_first_and_last_layers_export_and_run(tmp_path):
    torch.manual_seed(3)
    m = cnn(bn=False)
    cfg = lb.QuantConfig(weight={"name": "uniform", "bits": 4}, act={"name": "pact", "bits": 4},
                         keep_float=("first", "last"))  # fmt: skip
    lb.quantize_(m, cfg)
    x = torch.rand(16, 1, 12, 12)
    lb.calibrate(m, [x])
    m.eval()
    with torch.no_grad():
        y0 = m(x).numpy()
    p = export_onnx(m, tmp_path / "q.onnx", x)
    ops = node_ops(p)
    assert ops.count("Conv") == 1 and ops.count("Gemm") == 1  # the float first and last layers
    assert ops.count("QLinearConv") == 1 and ops.count("QGemm") == 1
    y, _ = run_onnx(p, x.numpy())
    assert np.abs(y - y0).max() <= 0.05 * np.abs(y0).max() + 1e-3


@pytest.mark.parametrize("bits,nb", [(4, 4), (2, 2)])
def test_matmul_nbits_weight_only_exact(tmp_path, bits, nb):
    torch.manual_seed(bits)
    m = nn.Sequential(nn.Linear(70, 33), nn.ReLU(), nn.Linear(33, 6))
    cfg = lb.QuantConfig(weight={"name": "uniform", "bits": bits, "granularity": "per_channel"},
                         act={"name": "pact", "bits": 8}, quantize_input=True)  # fmt: skip
    lb.quantize_(m, cfg)
    x = torch.rand(9, 70)
    lb.calibrate(m, [x])
    m.eval()
    with torch.no_grad():
        y0 = m(x).numpy()
    p = export_onnx(m, tmp_path / "nb.onnx", x, nbits=(2, 4))
    proto = onnx.load(str(p))
    mm = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    assert len(mm) == 2 and all(a.i == nb for n in mm for a in n.attribute if a.name == "bits")
    packed = {i.name: i for i in proto.graph.initializer}[mm[0].input[1]]
    assert np.prod(packed.dims) == 33 * 3 * 32 * nb // 8  # N x ceil(70/32) blocks x 32·nb/8 bytes
    y, ran = run_onnx(p, x.numpy(), profile=True)
    assert "MatMulNBits" in ran
    np.testing.assert_allclose(y, y0, rtol=1e-4, atol=1e-5)  # weight-only: exact codes, float activations


@pytest.mark.slow
def test_residual_network_exports_integer_adds(tmp_path):
    from lowbit.models import create_model, model_names
    from lowbit.models.blocks import point_rules

    if "resnet20" not in model_names():
        pytest.skip("lowbit.models has no resnet20")
    torch.manual_seed(0)
    m = create_model("resnet20", width_mult=0.25, in_channels=1)
    x = torch.rand(32, 1, 12, 12)
    m.train()
    with torch.no_grad():
        m(x)
    w, a = {"name": "uniform", "bits": 8, "granularity": "per_channel"}, {"name": "pact", "bits": 8}
    rules = {**point_rules(m, a), "stem.0": {"weight": w, "act": a}, "fc": {"weight": w, "act": a}}
    lb.quantize_(m, lb.QuantConfig(weight=w, rules=rules))
    lb.calibrate(m, [x])
    m.eval()
    with torch.no_grad():
        y0 = m(x).numpy()
    p = export_onnx(m, tmp_path / "r.onnx", x[:2], calib=x)
    ops = node_ops(p)
    assert ops.count("QLinearAdd") >= 9 and not FLOAT_COMPUTE & set(ops)
    y, _ = run_onnx(p, x.numpy())
    assert np.abs(y - y0).max() <= 0.1 * np.abs(y0).max()
    assert (y.argmax(1) == y0.argmax(1)).mean() >= 0.9


class _FixedGrid(Quantizer):
    """A quantizer the deploy code has never heard of: unsigned, step 1/16, 4 bits, round half up."""

    name = "test-fixed"
    kind = "act"

    def forward(self, x):
        return torch.clamp(torch.floor(x * 16 + 0.5), 0, 15) / 16

    def export_activation(self):
        return ActivationGrid(1 / 16, 0, 0, 15, "half_up")


class _Halves(Quantizer):
    """Weights on multiples of 1/8 in [-1, 1] (codes -8..8 need 5 bits); says so through ``export_codes``."""

    name = "test-halves"
    kind = "weight"

    def forward(self, w):
        return torch.clamp(torch.round(w * 8), -8, 8) / 8

    def export_codes(self, w, name="weight"):
        from lowbit.quantizers.base import ExportedCodes

        codes = torch.clamp(torch.round(w.detach() * 8), -8, 8).to(torch.int32)
        return ExportedCodes(codes, torch.tensor(1 / 8), torch.zeros((), dtype=torch.int32), "affine", 5)


def test_deploy_asks_the_quantizer(tmp_path):
    """New quantizers export through the base-class hooks alone (no names or classes known to deploy)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    lb.quantize_(m, lb.QuantConfig(weight=_Halves(5), act=_FixedGrid(4), quantize_input=True))
    m.eval()
    f = freeze(copy.deepcopy(m))
    s = f[0].weight_quant.schemes["weight"]
    assert (s["scheme"], s["bits"]) == ("uniform", 5)
    x = torch.rand(6, 1, 6, 6)
    p = export_onnx(f, tmp_path / "n.onnx", x)
    assert {"QLinearConv", "QGemm"} <= set(node_ops(p))
    with torch.no_grad():
        y0 = f(x).numpy()
    y, _ = run_onnx(p, x.numpy())
    # the bias is an int32 in units of Δx·Δw = 1/128 here (half a unit of rounding) and a tie of the half-up
    # grid may move one input by a step: a few units of 1/128 at most
    assert np.abs(y - y0).max() <= 4 / 128


def test_cli_export_writes_the_integer_form(tmp_path):
    from lowbit.cli import main
    from lowbit.models import create_model
    from lowbit.serialize import save_model

    torch.manual_seed(0)
    m = create_model("fcdnn", width=16, depth=3)
    cfg = lb.QuantConfig(weight={"name": "uniform", "bits": 8}, act={"name": "pact", "bits": 8})
    lb.quantize_(m, cfg)
    lb.calibrate(m, [torch.randn(64, 2)])
    save_model(tmp_path / "m.safetensors", m, "fcdnn", width=16, depth=3)
    out = tmp_path / "m.onnx"
    cmd = ["export", str(tmp_path / "m.safetensors"), "--format", "onnx", "--out", str(out), "--input-shape", "1,2"]
    assert main(cmd) == 0
    ops = node_ops(out)
    assert "QGemm" in ops and "MatMul" not in ops
    assert main(cmd + ["--onnx-form", "qdq"]) == 0
    assert "QGemm" not in node_ops(out) and "DequantizeLinear" in node_ops(out)


def test_deployed_equals_simulated_on_fashion_mnist(tmp_path):
    """A small QAT model trained for a few seconds on real data: the exported graph's top-1 on 1000 test images is
    within 0.2 points of the fake-quantized PyTorch model's, and the logits differ by a bounded amount."""
    from lowbit.data.idx import fashion_mnist_root, load_fashion_mnist

    try:
        fashion_mnist_root()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    te = load_fashion_mnist("test")  # one file to read: train on its first 2000 images, test on 1000 others
    x, y = te.images[:2000].float() / 255, te.labels[:2000]
    xt, yt = te.images[5000:6000].float() / 255, te.labels[5000:6000]
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(16 * 7 * 7, 10))  # fmt: skip
    lb.quantize_(m, lb.QuantConfig(weight={"name": "uniform", "bits": 8, "granularity": "per_channel"},
                                   act={"name": "pact", "bits": 8}, quantize_input=True))  # fmt: skip
    lb.calibrate(m, [x[:256]])
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.train()
    for idx in torch.randperm(2000, generator=torch.Generator().manual_seed(0)).split(50):
        loss = nn.functional.cross_entropy(m(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    freeze(m)
    with torch.no_grad():
        ys = m(xt).numpy()
    yo, _ = run_onnx(export_onnx(m, tmp_path / "f.onnx", xt[:1], calib=x[:256]), xt.numpy())
    acc_sim, acc_onnx = (ys.argmax(1) == yt.numpy()).mean(), (yo.argmax(1) == yt.numpy()).mean()
    assert acc_sim > 0.6  # it learned something
    print(
        f"top-1 sim {acc_sim:.4f} onnx {acc_onnx:.4f} max|dlogit| {np.abs(yo - ys).max():.4f} of {np.abs(ys).max():.2f}"
    )
    assert abs(acc_onnx - acc_sim) <= 0.002, (acc_sim, acc_onnx)
    assert np.abs(yo - ys).max() <= 0.05 * np.abs(ys).max(), (np.abs(yo - ys).max(), np.abs(ys).max())


def test_fold_bn_model_saves_and_loads(tmp_path):
    from lowbit.models import create_model
    from lowbit.nn.conv_bn import QuantConvBn2d
    from lowbit.serialize import load_model, save_model

    torch.manual_seed(0)
    m = create_model("vgg_small5", width=1 / 16, input_size=8, fc_hidden=8, in_channels=1)
    w = {"name": "uniform", "bits": 4, "granularity": "per_channel"}
    lb.quantize_(m, lb.QuantConfig(weight=w, act={"name": "pact", "bits": 4}, fold_bn=True))
    x = torch.rand(4, 1, 8, 8)
    lb.calibrate(m, [x])
    m.eval()
    save_model(tmp_path / "m.safetensors", m, "vgg_small5", width=1 / 16, input_size=8, fc_hidden=8, in_channels=1)
    m2, _ = load_model(tmp_path / "m.safetensors")
    assert any(isinstance(mod, QuantConvBn2d) for mod in m2.modules())
    with torch.no_grad():
        torch.testing.assert_close(m2.eval()(x), m(x))


def test_linear_on_3d_input_runs_integer(tmp_path):
    """A Linear on (N, T, K) inputs runs as QGemm on the codes reshaped to 2-D (it ran in float before)."""
    from lowbit.deploy.onnx_check import compare

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    lb.quantize_(m, lb.QuantConfig(weight={"name": "uniform", "bits": 8}, act={"name": "pact", "bits": 8}))
    x = torch.rand(3, 4, 6)
    lb.calibrate(m, [x])
    f = freeze(m.eval())
    p = export_onnx(f, tmp_path / "l.onnx", x)
    assert node_ops(p).count("QGemm") == 1 and "MatMul" not in node_ops(p)
    assert compare(f, p, x).within_one_step


def test_fold_bn_calibrates_the_folded_weight():
    """lowbit.calibrate sets the weight step from W·s (the tensor the quantizer reads), not from W."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with torch.no_grad():
        m[1].running_var.fill_(0.01)  # s = γ/sqrt(σ² + ε) ≈ 10
    w = {"name": "uniform", "bits": 4, "granularity": "per_channel"}
    lb.quantize_(m, lb.QuantConfig(weight=w, fold_bn=True))
    lb.calibrate(m, [torch.rand(4, 2, 5, 5)])
    layer = m[0].eval()
    with torch.no_grad():
        wf, wq = layer.folded_weight(), layer.quantized_weight()
    assert float((wq - wf).norm() / wf.norm()) < 0.2


def test_signed_and_unsigned_grids_mix(tmp_path):
    """A layer whose input grid is uint8 (PACT) feeding one with an int8 grid (signed LSQ) exports and runs."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 4))
    w = {"name": "uniform", "bits": 8, "granularity": "per_channel"}
    rules = {
        "0": {"weight": w, "act": {"name": "pact", "bits": 8}},
        "1": {"weight": w, "act": {"name": "lsq", "bits": 8, "signed": True}},
    }
    lb.quantize_(m, lb.QuantConfig(rules=rules))
    x = torch.rand(32, 8)
    lb.calibrate(m, [x])
    m.eval()
    with torch.no_grad():
        y0 = m(x).numpy()
    p = export_onnx(m, tmp_path / "m.onnx", x)
    assert node_ops(p).count("QGemm") == 2
    y, _ = run_onnx(p, x.numpy())
    assert np.abs(y - y0).max() <= 0.05 * np.abs(y0).max()


def _resnet20_points(alpha_factor: float):
    """A calibrated W8A8 ResNet-20 (width 0.25) whose QRA points' α are the QA points' (the same tensor and
    calibration) times ``alpha_factor``: the grids of the two points that read each block sum."""
    from lowbit.models import create_model
    from lowbit.models.blocks import point_rules

    torch.manual_seed(0)
    m = create_model("resnet20", width_mult=0.25, in_channels=1)
    x = torch.rand(32, 1, 12, 12)
    m.train()
    with torch.no_grad():
        m(x)
    w, a = {"name": "uniform", "bits": 8, "granularity": "per_channel"}, {"name": "pact", "bits": 8}
    rules = {**point_rules(m, a), "stem.0": {"weight": w, "act": a}, "fc": {"weight": w, "act": a}}
    lb.quantize_(m, lb.QuantConfig(weight=w, rules=rules))
    lb.calibrate(m, [x])
    with torch.no_grad():
        for name, mod in m.named_modules():
            if name.endswith("qra"):
                mod.act_quant.alpha.mul_(alpha_factor)
    return m.eval(), x


@pytest.mark.slow
@pytest.mark.parametrize("factor, adds", [(1.0, 9), (1.001, 17), (1.05, 17)])
def test_resnet20_block_sums_written_once_when_grids_agree(tmp_path, factor, adds):
    """With ``calib`` (the residual path in integer ops): QA and QRA points with the same grid (α equal): each block
    sum is written once (9 QLinearAdd = the 9 residual adds) and read by both points. Any other grids, however
    close (α 0.1 % or 5 % apart): the sum is written again on the QRA grid by a second QLinearAdd (8 blocks feed
    another block: 8 + 9); reading one grid's codes for the other would move values by a step. Either way one
    QuantizeLinear (the input) and no DequantizeLinear (QGemm writes float)."""
    m, x = _resnet20_points(factor)
    with torch.no_grad():
        y0 = m(x).numpy()
    p = export_onnx(m, tmp_path / "r.onnx", x[:2], calib=x)
    ops = node_ops(p)
    assert ops.count("QLinearAdd") == adds
    assert ops.count("QuantizeLinear") == 1 and "DequantizeLinear" not in ops
    assert not FLOAT_COMPUTE & set(ops)
    y, _ = run_onnx(p, x.numpy())
    assert np.abs(y - y0).max() <= 0.1 * np.abs(y0).max()
    assert (y.argmax(1) == y0.argmax(1)).mean() >= 0.9
