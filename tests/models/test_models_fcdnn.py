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
