"""torch's fused transformer inference (TransformerEncoderLayer fast path, TransformerEncoder nested tensors) never
runs on a quantized model: eval + no_grad equals eval with autograd; the slow-path layer equals torch's own
unfused computation; float models keep their fast path."""

from __future__ import annotations

import pytest
import torch
from support.zoo import ZOO, available, build
from torch import nn

import lowbit as lb
from lowbit.nn import SlowPathTransformerEncoderLayer, disable_fast_paths
from lowbit.quantizers import get

CONFIGS = {
    "W2": lambda: lb.QuantConfig(weight=get("uniform", bits=2)),
    "W2A2": lambda: lb.QuantConfig(
        weight=get("uniform", bits=2), act=get("pact", bits=2), keep_float=("first", "last")
    ),
    "W8A8": lambda: lb.QuantConfig(weight=get("uniform", bits=8), act=get("uniform", bits=8, symmetric=False)),
}


class Encoder(nn.Module):
    """A batch-first encoder that torch would run fused (and nested, given a padding mask)."""

    def __init__(self, norm_first=False, activation="relu"):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            16, 2, 32, dropout=0.0, batch_first=True, norm_first=norm_first, activation=activation
        )
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=not norm_first)
        self.head = nn.Linear(16, 3)

    def forward(self, x, pad=None):
        return self.head(self.encoder(x, src_key_padding_mask=pad))


# torch's matmul reshapes differently when an operand requires grad, so the two runs agree to float rounding,
# not bit for bit; the fast path's error is ~0.1 (test_the_fast_path_would_have_skipped_the_quantizers)
ATOL = 1e-5


def eval_outputs(model, inputs):
    model.eval()
    with torch.no_grad():
        fused_if_allowed = model(*inputs)
    return fused_if_allowed, model(*inputs).detach()  # grad enabled: torch's checks refuse the fast path


X = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(0))
PAD = torch.zeros(3, 7, dtype=torch.bool)
PAD[1, 5:] = True  # left-aligned padding: torch would pack this batch into a nested tensor
PAD[2, 3:] = True


@pytest.mark.filterwarnings("ignore:lowbit.calibrate")  # PACT on signed inputs: warned, as it should be
@pytest.mark.parametrize("cfg", list(CONFIGS))
@pytest.mark.parametrize("zoo_name", ["nn_encoder_classifier", "nn_transformer", "tv_vit_tiny"])
def test_zoo_transformers_eval_no_grad_equals_grad_enabled(zoo_name, cfg):
    reason = available(ZOO[zoo_name])
    if reason:
        pytest.skip(reason)
    model, inputs = build(zoo_name)
    lb.quantize_(model, CONFIGS[cfg]())
    lb.calibrate(model, [inputs], forward=lambda m, b: m(*b))
    a, b = eval_outputs(model, inputs)
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu"), (False, "gelu")])
@pytest.mark.parametrize("pad", [False, True])
def test_encoder_with_padding_mask_eval_no_grad_equals_grad_enabled(norm_first, activation, pad):
    torch.manual_seed(0)
    model = Encoder(norm_first, activation)
    inputs = (X, PAD if pad else None)
    lb.quantize_(model, CONFIGS["W2"]())
    a, b = eval_outputs(model, inputs)
    # padded positions: torch's nested path writes 0 there, the unfused path computes them; compare the rest
    keep = ~PAD if pad else torch.ones_like(PAD)
    torch.testing.assert_close(a[keep], b[keep], atol=ATOL, rtol=0)
    assert all(type(layer) is SlowPathTransformerEncoderLayer for layer in model.encoder.layers)
    assert model.encoder.use_nested_tensor is False


def test_the_fast_path_would_have_skipped_the_quantizers():
    """The check above can fail: torch's own layer forward, fast path allowed, ignores the quantized weights."""
    torch.manual_seed(0)
    model = Encoder()
    lb.quantize_(model, CONFIGS["W2"]())
    model.eval()
    layer = model.encoder.layers[0]
    with torch.no_grad():
        fused = nn.TransformerEncoderLayer.forward(layer, X)
        slow = layer(X)
    assert (fused - slow).abs().max() > 1e-2


@pytest.mark.parametrize("norm_first", [False, True])
def test_slow_path_layer_equals_torch_unfused(norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
    torch.manual_seed(0)
    slow = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
    slow.__class__ = SlowPathTransformerEncoderLayer
    mask = nn.Transformer.generate_square_subsequent_mask(7)
    for kw in ({}, {"src_key_padding_mask": PAD}, {"src_mask": mask, "is_causal": True}):
        want = layer(X, **kw)  # grad enabled: torch's unfused path
        torch.testing.assert_close(slow(X, **kw), want, atol=1e-6, rtol=0)


def test_float_models_keep_their_fast_path():
    torch.manual_seed(0)
    model = Encoder()
    lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=2), keep_float=("encoder.*",)))
    assert all(type(layer) is nn.TransformerEncoderLayer for layer in model.encoder.layers)
    assert model.encoder.use_nested_tensor is True
    assert disable_fast_paths(nn.Sequential(nn.Linear(2, 2))) is not None  # nothing to do, nothing breaks


def test_loaded_models_get_the_slow_path_too(tmp_path):
    from lowbit.deploy import load_packed, save_packed

    torch.manual_seed(0)
    model = Encoder()
    lb.quantize_(model, CONFIGS["W2"]())
    save_packed(model, tmp_path / "m.lowbit")
    loaded = load_packed(tmp_path / "m.lowbit", model=Encoder())
    a, b = eval_outputs(loaded, (X, PAD))
    torch.testing.assert_close(a[~PAD], b[~PAD], atol=ATOL, rtol=0)
