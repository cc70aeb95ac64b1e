"""The model zoo: models nobody here wrote (torchvision, timm, transformers, plain nn.Transformer / LSTM, a bag of
layers; tests/support/zoo.py) x the four configs of issue 24 -- W8A8, W4 weights only, W2A2 (uniform + PACT, first
and last layer float) and LSQ W4A4. For every cell:

- a few Adam steps stay finite (loss, gradients, weights);
- coverage is as documented (docs/guide/own-model.md): every module left float is either kept float by the config
  or one that lowbit quantizes by design never (norms, a ViT's class token and position embedding), and with no
  layer kept float at least 95 % of the weights are quantized;
- PyTorch's fast paths never run: eval under ``no_grad`` gives the outputs of eval with autograd on;
- ``freeze`` and a packed ``.lowbit`` round trip give the fake-quantized model's outputs exactly;
- (slow) ``torch.compile`` traces the training forward + loss without a graph break;
- (slow) the ONNX graph equals the simulated model in each form: tests/deploy/test_deploy_onnx_agreement.py runs
  every zoo model (and every registered model) at W8A8, W4 and W2A2 in qdq, qop and integer.

The CNNs with millions of weights are marked slow; the small transformers, the LSTM and the layer bag run in the
fast tier. Inputs are small (batch 4, 32x32 images or 12 tokens).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from support.zoo import ZOO, available, build

import lowbit as lb
from lowbit.coverage import KEPT, float_layers
from lowbit.deploy import freeze, load_packed, save_packed

G = lb.quantizers.get
CONFIGS = {
    "W8A8": lambda: lb.QuantConfig(weight=G("uniform", bits=8), act=G("uniform", bits=8)),
    "W4": lambda: lb.QuantConfig(weight=G("uniform", bits=4)),
    "W2A2": lambda: lb.QuantConfig(weight=G("uniform", bits=2), act=G("pact", bits=2), keep_float=("first", "last")),
    "LSQ_W4A4": lambda: lb.QuantConfig(weight=G("lsq", bits=4), act=G("lsq", bits=4)),
}
# What no config quantizes, by design (documented): normalisation layers (their affine parameters are folded or
# kept float on every target), and parameters a model holds directly outside any layer (a ViT's class token and
# position embedding: the Encoder and VisionTransformer modules own them).
FLOAT_BY_DESIGN = {
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormAct2d",
    "LayerNorm",
    "GroupNorm",
    "Encoder",
    "VisionTransformer",
}
BIG = {"tv_resnet18", "tv_mobilenet_v3_small", "tv_efficientnet_b0", "timm_resnet18", "timm_mobilenetv3_small_100"}
CELLS = [pytest.param(m, c, id=f"{m}-{c}", marks=[pytest.mark.slow] if m in BIG else []) for m in ZOO for c in CONFIGS]


def quantized(name: str, config: str, seed: int = 0) -> tuple[torch.nn.Module, tuple]:
    """The zoo model quantized with ``config`` and calibrated on its example batch (skips without its library)."""
    reason = available(ZOO[name])
    if reason is not None:
        pytest.skip(reason)
    model, x = build(name, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W2A2's first/last float and PACT on signed inputs warn, as they should
        lb.quantize_(model, CONFIGS[config]())
        lb.calibrate(model, [x])
    return model, x


def _labels(x: tuple) -> torch.Tensor:
    return torch.arange(x[0].shape[0]) % 10


@pytest.mark.parametrize("name, config", CELLS)
def test_trains_finite_and_covers_as_documented(name, config):
    model, x = quantized(name, config)
    flt = float_layers(model)
    silent = {n: e["type"] for n, e in flt.items() if e["reason"] != KEPT and e["type"] not in FLOAT_BY_DESIGN}
    assert silent == {}, f"left float without being asked: {silent}"
    if not CONFIGS[config]().keep_float:
        assert 1 - sum(e["share"] for e in flt.values()) >= 0.95
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(3):
        loss = torch.nn.functional.cross_entropy(model(*x), _labels(x))
        opt.zero_grad()
        loss.backward()
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        assert torch.isfinite(loss) and bad == [], f"step {step}: loss {float(loss)}, non-finite gradients {bad}"
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name, config", CELLS)
def test_eval_without_grad_is_the_quantized_model_and_packs_exactly(name, config, tmp_path):
    model, x = quantized(name, config)
    model.eval()
    with torch.no_grad():
        no_grad = model(*x)  # the path a normal evaluation loop takes (PyTorch's fast paths live here)
    with_grad = model(*x).detach()
    torch.testing.assert_close(no_grad, with_grad, atol=1e-5, rtol=0)
    frozen = freeze(copy.deepcopy(model))
    with torch.no_grad():
        torch.testing.assert_close(frozen(*x), no_grad, atol=0, rtol=0)
        save_packed(frozen, tmp_path / "m.lowbit")
        fresh, _ = build(name)  # the architecture, float and untrained: the file brings everything else
        back = load_packed(tmp_path / "m.lowbit", model=fresh).eval()
        torch.testing.assert_close(back(*x), no_grad, atol=0, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name, config", [pytest.param(m, c, id=f"{m}-{c}") for m in ZOO for c in CONFIGS])
def test_training_forward_compiles_without_graph_breaks(name, config):
    model, x = quantized(name, config)
    model.train()
    y = _labels(x)

    def loss(*inputs):
        return torch.nn.functional.cross_entropy(model(*inputs), y)

    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True):  # dynamo breaks at every nn.RNN module unless told
        explained = torch._dynamo.explain(loss)(*x)
    assert explained.graph_break_count == 0, [str(r.reason)[:200] for r in explained.break_reasons]
