"""The memory columns of a study's rows (``memory_metrics``) are counted by ``lb.summary``'s rules, by hand here:
codes at their bit width (ceil(n·b/8) bytes per tensor), the scales/exponents each code tensor needs, float
biases at 4 bytes. QAT models count at their trained width (a W2 model is not 32-bit), INQ models at their bits."""

from __future__ import annotations

import math

import torch

import lowbit as lb
from lowbit.deploy.summary import memory_metrics
from lowbit.models import create_model


def _deepspeech():
    torch.manual_seed(0)
    return create_model("deepspeech", n_input=4, n_hidden=3, n_classes=2)


def _weights_and_biases(m):
    w = [p.numel() for n, p in m.named_parameters() if n.endswith("weight")]
    b = [p.numel() for n, p in m.named_parameters() if n.endswith("bias")]
    return w, b


def test_float_model_is_its_float32_bytes():
    m = _deepspeech()
    w, b = _weights_and_biases(m)
    mm = memory_metrics(m)
    assert mm["params"] == sum(w) + sum(b) == 89
    assert mm["weight_kib"] * 1024 == 4 * 89 and mm["memory_reduction"] == 1.0


def test_inq_model_counts_codes_at_its_bits_and_the_exponent_range():
    m = _deepspeech()
    w, b = _weights_and_biases(m)
    for _ in lb.INQ(m, bits=5):
        pass
    by_hand = sum(math.ceil(n * 5 / 8) + 16 for n in w) + 4 * sum(b)  # exponents: int64 [n1, n2] per tensor
    mm = memory_metrics(m)
    assert mm["weight_kib"] * 1024 == by_hand
    assert mm["memory_reduction"] == 4 * 89 / by_hand


def test_qat_model_counts_its_trained_width_not_32_bits():
    m = _deepspeech()
    w, b = _weights_and_biases(m)
    lb.quantize_(m, lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=2)))
    lb.calibrate(m, [])
    mm = memory_metrics(m)
    # codes at 2 bits + one float32 step per weight tensor, float biases
    by_hand = sum(math.ceil(n * 2 / 8) + 4 for n in w) + 4 * sum(b)
    assert mm["weight_kib"] * 1024 == by_hand
    assert mm["memory_reduction"] > 2.0
