"""The fully connected FCDNN: an input of the wrong size is one clear error, and the check keeps it traceable."""

from __future__ import annotations

import pytest
import torch

import lowbit as lb

KW = {"width": 16, "depth": 3}


def test_fcdnn_input_size_mismatch_is_one_clear_error():
    m = lb.models.create_model("fcdnn", **KW)
    with pytest.raises(ValueError, match=r"input has 64 features .* in_features=2; build it with in_features=64"):
        m(torch.randn(3, 64))
    assert lb.models.create_model("fcdnn", in_features=64, **KW)(torch.randn(3, 64)).shape == (3, 2)
    torch.fx.symbolic_trace(m)  # the check does not break tracing (ONNX export traces the model)


def test_fcdnn_first_bias_spreads_the_first_layers_biases_only():
    torch.manual_seed(0)
    plain = lb.models.create_model("fcdnn", **KW)
    torch.manual_seed(0)
    spread = lb.models.create_model("fcdnn", first_bias=1.0, **KW)
    b = spread.hidden[0].bias
    assert b.abs().max() <= 1.0 and b.std() > 0.3  # U(-1, 1): sd 0.58
    assert torch.equal(plain.hidden[0].weight, spread.hidden[0].weight)  # the weights are drawn as before
    assert torch.equal(plain.hidden[1].bias, spread.hidden[1].bias) and not plain.hidden[0].bias.any()
    with pytest.raises(ValueError, match="first_bias"):
        lb.models.create_model("fcdnn", first_bias=-1.0, **KW)
