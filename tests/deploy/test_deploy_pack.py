"""Bit packing, freeze, the .lowbit file (round trips, size bound, bad input) and the shift-add reference."""

from __future__ import annotations

import copy
import hashlib
import json
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lowbit as lb
from lowbit.deploy import PackedFormatError, freeze, load_packed, save_packed
from lowbit.deploy.packed import MAGIC, parse_packed
from lowbit.deploy.packing import pack_bits, packed_nbytes, to_signed, to_unsigned, unpack_bits
from lowbit.deploy.shiftadd import shiftadd_conv2d, shiftadd_linear
from lowbit.models import create_model


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), data=st.data())
def test_pack_round_trip(bits, data):
    codes = np.array(data.draw(st.lists(st.integers(0, 2**bits - 1), max_size=200)), dtype=np.int64)
    blob = pack_bits(codes, bits)
    assert len(blob) == packed_nbytes(codes.size, bits) == (codes.size * bits + 7) // 8
    assert np.array_equal(unpack_bits(blob, codes.size, bits), codes)


def test_pack_layout_and_signed():
    # LSB first: codes 1, 2 at 2 bits -> bits 1,0 | 0,1 -> byte 0b1001
    assert pack_bits(np.array([1, 2]), 2) == bytes([0b1001])
    s = np.array([-2, -1, 0, 1])
    assert np.array_equal(to_signed(to_unsigned(s, 2), 2), s)
    with pytest.raises(ValueError, match="outside"):
        pack_bits(np.array([4]), 2)


def _spirals(seed=0):
    torch.manual_seed(seed)
    m = create_model("fcdnn", width=32, depth=3)
    cfg = lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=2), act=lb.quantizers.get("pact", bits=2, alpha=2.0))
    return lb.quantize_(m, cfg).eval()


def _inq_model():
    torch.manual_seed(1)
    m = create_model("fcdnn", width=32, depth=3)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    inq = lb.INQ(m, bits=5, portions=(0.5, 1.0), optimizer=opt)
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    for _ in inq:
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
    return m.eval()


def small_cnn():
    torch.manual_seed(2)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 6 * 6, 5),
    )  # fmt: skip
    m.train()
    m(torch.randn(16, 3, 6, 6))  # non-trivial BN statistics
    cfg = lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=4), act=lb.quantizers.get("pact", bits=4, alpha=3.0))
    return lb.quantize_(m, cfg).eval()


def _expected_size(model) -> int:
    """sum(bits x params / 8) over quantized weights + every other state tensor at its dtype."""
    from lowbit.deploy.packed import packed_codes

    codes = packed_codes(model)
    return sum(
        packed_nbytes(t.numel(), codes[k]["bits"]) if k in codes else t.numel() * t.element_size()
        for k, t in model.state_dict().items()
    )


@pytest.mark.parametrize("make,x", [(_spirals, (40, 2)), (_inq_model, (40, 2)), (small_cnn, (4, 3, 6, 6))])
def test_freeze_pack_load_identical(tmp_path, make, x):
    m = make()
    x = torch.randn(x)
    with torch.no_grad():
        y0 = m(x)
    f = freeze(copy.deepcopy(m))
    with torch.no_grad():
        assert torch.equal(f(x), y0)
    for lname, mod in f.named_modules():  # the stored state of a quantized layer holds codes, not floats
        if isinstance(getattr(mod, "weight_quant", None), lb.deploy.FrozenWeight):
            assert "weight" not in mod._parameters and f"{lname}.weight" not in f.state_dict()
    path = tmp_path / "m.lowbit"
    save_packed(f, path, "fcdnn", {"width": 32, "depth": 3})
    g = load_packed(path, None if make is not small_cnn else copy.deepcopy(small_cnn_float()))
    with torch.no_grad():
        assert torch.equal(g(x), y0)
    meta_len = struct.unpack_from("<IQ", path.read_bytes(), 8)[1]
    ideal = _expected_size(f)  # sum(bits·params/8) + float tensors
    assert ideal <= path.stat().st_size - meta_len <= 1.01 * ideal + 52  # 52: magic, version, length, sha256


def small_cnn_float():
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 6 * 6, 5),
    )  # fmt: skip


def test_inq_codes_are_pow2_and_size_is_bits(tmp_path):
    f = freeze(_inq_model())
    s = f.hidden[0].weight_quant.schemes["weight"]
    assert s["scheme"] == "pow2" and s["bits"] == 5
    t = lb.summary(f)
    row = next(r for r in t.rows if r["name"] == "hidden.1")
    # 32x32 weights at 5 bits + [n1, n2] int64 + 32 float biases
    assert row["memory_bytes"] == 32 * 32 * 5 // 8 + 16 + 32 * 4


@pytest.mark.parametrize("name", [n for n in lb.quantizers.names() if lb.quantizers.get_class(n).kind != "act"])
def test_every_weight_quantizer_round_trips(tmp_path, name):
    cls = lb.quantizers.get_class(name)
    bits = min(max(3, cls.min_bits), cls.max_bits)
    torch.manual_seed(3)
    m = create_model("fcdnn", width=16, depth=3)
    lb.quantize_(m, lb.QuantConfig(weight=lb.quantizers.get(name, bits=bits))).eval()
    x = torch.randn(20, 2)
    with torch.no_grad():
        y0 = m(x)
    save_packed(m, tmp_path / "q.lowbit", "fcdnn", {"width": 16, "depth": 3})
    g = load_packed(tmp_path / "q.lowbit")
    with torch.no_grad():
        y = g(x)
    if name == "pot":  # pot's STE x + (q - x) can sit an ulp off its power of two (see freeze docstring)
        torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-6)
    else:
        assert torch.equal(y, y0)


# -- bad input -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def packed_blob(tmp_path_factory):
    p = tmp_path_factory.mktemp("p") / "m.lowbit"
    save_packed(_spirals(), p, "fcdnn", {"width": 32, "depth": 3})
    return p.read_bytes()


def _reseal(blob: bytes, edit) -> bytes:
    version, meta_len = struct.unpack_from("<IQ", blob, 8)
    meta = json.loads(blob[20 : 20 + meta_len])
    edit(meta)
    mb = json.dumps(meta).encode()
    body = MAGIC + struct.pack("<IQ", version, len(mb)) + mb + blob[20 + meta_len : -32]
    return body + hashlib.sha256(body).digest()


def test_errors(tmp_path, packed_blob):
    with pytest.raises(PackedFormatError, match="truncated"):
        parse_packed(packed_blob[:10])
    with pytest.raises(PackedFormatError, match="checksum"):
        parse_packed(packed_blob[:-1])
    with pytest.raises(PackedFormatError, match="magic"):
        parse_packed(b"X" + packed_blob[1:])
    v2 = bytearray(packed_blob)
    v2[8:12] = struct.pack("<I", 2)
    v2 = bytes(v2[:-32]) + hashlib.sha256(bytes(v2[:-32])).digest()
    with pytest.raises(PackedFormatError, match="version 2"):
        parse_packed(v2)
    bad = _reseal(packed_blob, lambda m: m["tensors"][0].update(offset=10**9))
    with pytest.raises(PackedFormatError, match="outside the payload"):
        parse_packed(bad)
    p = tmp_path / "m.lowbit"
    p.write_bytes(packed_blob)
    with pytest.raises(PackedFormatError, match="does not fit"):
        load_packed(p, create_model("fcdnn", width=16, depth=3))
    with pytest.raises(PackedFormatError, match="cannot read"):
        load_packed(tmp_path / "missing.lowbit")


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzz_truncate_and_flip(packed_blob, data):
    cut = data.draw(st.integers(0, len(packed_blob) - 1))
    with pytest.raises(PackedFormatError):
        parse_packed(packed_blob[:cut])
    i = data.draw(st.integers(0, len(packed_blob) - 1))
    flipped = bytearray(packed_blob)
    flipped[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(PackedFormatError):
        parse_packed(bytes(flipped))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_fuzz_resealed_metadata(packed_blob, data):
    """Checksum-valid files with wrong metadata: still PackedFormatError (or a valid parse), nothing else."""
    field = data.draw(st.sampled_from(["shape", "offset", "nbytes", "bits", "dtype", "kind"]))
    value = data.draw(st.one_of(st.integers(-5, 10**6), st.text(max_size=5), st.none(), st.lists(st.integers(-2, 9))))
    k = data.draw(st.integers(0, 10))

    def edit(m):
        recs = m["tensors"]
        recs[k % len(recs)][field] = value

    try:
        parse_packed(_reseal(packed_blob, edit))
    except PackedFormatError:
        pass


# -- shift-add ---------------------------------------------------------------------------------------------
def test_shiftadd_bit_exact():
    torch.manual_seed(4)
    lin = nn.Linear(12, 5)
    conv = nn.Conv2d(4, 6, 3, padding=1, stride=2)
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    seq = lb.quantize_(nn.Sequential(lin, conv, dw), lb.QuantConfig(weight=lb.quantizers.get("pot", bits=4)))
    for mod in seq:
        mod.weight_quant(mod.weight)  # calibrate the codebook
    with torch.no_grad():
        wq = [m.quantized_weight().clone() for m in seq]
    freeze(seq)
    x_int = torch.randint(0, 16, (3, 12))
    acc, n2 = shiftadd_linear(seq[0], x_int)
    ref = F.linear(x_int.double(), wq[0].double()) / 2.0**n2  # exact in float64
    assert torch.equal(acc.double(), ref)
    xc = torch.randint(0, 16, (2, 4, 7, 7))
    for i in (1, 2):
        acc, n2 = shiftadd_conv2d(seq[i], xc)
        m = seq[i]
        ref = F.conv2d(xc.double(), wq[i].double(), None, m.stride, m.padding, m.dilation, m.groups) / 2.0**n2
        assert torch.equal(acc.double(), ref)
    with pytest.raises(ValueError, match="power-of-two"):
        shiftadd_linear(freeze(_spirals()).hidden[0], x_int[:, :2])


class _LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.lstm = nn.LSTM(4, 6, num_layers=2)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.lstm(x)[0])


@pytest.mark.parametrize("wq,bits", [("uniform", 3), ("xnor", 1), ("pot", 4)])
def test_recurrent_round_trip(tmp_path, wq, bits):
    m = lb.quantize_(_LSTMNet(), lb.QuantConfig(weight=lb.quantizers.get(wq, bits=bits))).eval()
    x = torch.randn(5, 2, 4)
    with torch.no_grad():
        y0 = m(x)
    save_packed(m, tmp_path / "l.lowbit")
    g = load_packed(tmp_path / "l.lowbit", _LSTMNet())
    assert set(g.lstm.weight_quant.schemes) == {"weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"}
    with torch.no_grad():
        assert torch.equal(g(x), y0)
    t = lb.summary(g, x)
    # 2-layer LSTM(4 -> 6): 4·6·(4+6) + 4·6·(6+6) MACs per step, 5 steps
    assert t.rows[0]["macs"] == {f"W{bits}/A32": 5 * (240 + 288)}


def test_xnor_uses_one_bit_per_weight_and_row_scales():
    m = lb.quantize_(_LSTMNet(), lb.QuantConfig(weight=lb.quantizers.get("xnor"))).eval()
    f = freeze(m)
    s = f.fc.weight_quant.schemes["weight"]
    assert (s["scheme"], s["bits"]) == ("codebook", 1)
    assert f.fc.weight_quant.codebook_weight.shape == (3, 2)  # ±α_c per output channel


@pytest.mark.parametrize("bits", range(2, 9))
def test_pow2_codes_cover_the_inq_codebook(bits):
    from lowbit.deploy.freeze import decode_pow2, encode_pow2
    from lowbit.quantizers.pot import inq_exponents, inq_levels

    n1, n2 = inq_exponents(0.7, bits)
    levels = inq_levels(n1, n2)  # {0, ±2^n2..±2^n1}: 2^(b-1) + 1 values
    field = encode_pow2(levels, n1, n2, bits)
    assert int(field.max()) < 2**bits and len(set(field.tolist())) == levels.numel()
    assert torch.equal(decode_pow2(field, torch.tensor([n1, n2]), bits), levels)


@pytest.mark.parametrize("wq", ["pot", "uniform", "twn", "binary"])
def test_all_zero_weights_round_trip(tmp_path, wq):
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        m[0].weight.zero_()
    lb.quantize_(m, lb.QuantConfig(weight=lb.quantizers.get(wq, bits=1 if wq == "binary" else 2))).eval()
    x = torch.randn(6, 3)
    with torch.no_grad():
        y0 = m(x)
    save_packed(m, tmp_path / "z.lowbit")
    g = load_packed(tmp_path / "z.lowbit", nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    with torch.no_grad():
        assert torch.equal(g(x), y0)
