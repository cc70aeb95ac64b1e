"""``freeze(model)``: latent float weights -> integer codes + scales (spec §1.1-1.2 power-of-two, §2.1 uniform).

Each quantized layer's weight quantizer is replaced by a ``FrozenWeight`` holding, per quantized parameter
(``quant_weight_names``; several for recurrent layers), the integer codes and what decodes them:

    scheme "pow2"      pot / INQ (spec §1.1): field = sign<<(b-1) | nonzero<<(b-2) | k,  w = ±2^(n2 + k), 0
    scheme "uniform"   signed symmetric uniform, b >= 2 (spec §2.1): signed code c in [-L, L],  w = Δ·c
                       (Δ a scalar, or one per output channel)
    scheme "codebook"  any other quantizer with a finite level set: code = index into the sorted levels,
                       ceil(log2(#levels)) bits, the codebook stored. When it is smaller, one codebook per
                       output channel (row of dim 0, padded to the longest): XNOR's ±α_c is then 1 bit plus
                       two floats per channel instead of log2(2·C_out) bits
    scheme "float"     the quantizer's eval output is not a finite set (e.g. stochastic BinaryConnect
                       evaluates with real weights): the weight is kept as float32, 32 bits

The codes are derived from what the fake-quantized layer actually uses in eval mode, and the decoded
weight is checked against it, so the frozen model computes the same outputs. One exception: the "pot"
quantizer's STE ``x + (q - x).detach()`` can be an ulp away from its codebook value q; the frozen model then
uses the exact power of two (within 1e-6 relative of the fake-quantized weight).

freeze asks each quantizer for its codes through the base-class hook ``Quantizer.export_codes`` (issue 10 item 7):
nothing here depends on a quantizer's name or class.

In memory the decoded weight is kept as a non-persistent buffer (PyTorch's kernels need floats); the
state_dict, and therefore the packed file, holds only the codes and scales.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..nn import QuantMixin
from ..quantizers import Quantizer
from ..quantizers.pot import encode_pow2  # noqa: F401  (re-exported: freeze.encode_pow2)

MAX_CODEBOOK = 2**16
SCHEMES = ("pow2", "uniform", "codebook", "float")


def codes_dtype(scheme: str, bits: int) -> torch.dtype:
    """In-memory dtype of a scheme's codes (deterministic, so a skeleton can be built from metadata)."""
    if scheme == "uniform":
        return torch.int8 if bits <= 8 else torch.int16
    if scheme == "float":
        return torch.float32
    return torch.uint8 if bits <= 8 else torch.int32


class FrozenWeight(Quantizer):
    """Integer codes + scales of a frozen layer; forward is the identity on the decoded weight.

    ``schemes`` maps each parameter name to {"scheme", "bits", "shape", "source"} (source: the original
    quantizer's ``to_dict()``; shape and codes in the quantizer's layout, ``QuantMixin.to_quant_layout``).
    Buffers: ``codes_<n>`` plus ``step_<n>`` (uniform), ``exp_<n>`` = [n1, n2] (pow2; empty for an all-zero
    tensor) or ``codebook_<n>`` (codebook).
    """

    name = "frozen"
    kind = "weight"
    reference = "lowbit.deploy.freeze"
    per_parameter_state = True  # one object holds every parameter's codes (recurrent twins: no per-name copies)

    def __init__(self, schemes: dict[str, dict[str, Any]]):
        bits = [min(s["bits"], 32) for s in schemes.values()]
        super().__init__(max(bits) if bits else 32)
        self.schemes = {n: dict(s) for n, s in schemes.items()}
        for n, s in self.schemes.items():
            if s["scheme"] not in SCHEMES:
                raise ValueError(f"frozen weight {n!r}: scheme={s['scheme']!r} is not one of {SCHEMES}")
            self.register_buffer(f"codes_{n}", torch.empty(0, dtype=codes_dtype(s["scheme"], s["bits"])))
            aux = {
                "uniform": ("step", torch.float32),
                "pow2": ("exp", torch.int64),
                "codebook": ("codebook", torch.float32),
            }
            if s["scheme"] in aux:
                a, dt = aux[s["scheme"]]
                self.register_buffer(f"{a}_{n}", torch.empty(0, dtype=dt))

    def config(self) -> dict[str, Any]:
        return {"schemes": self.schemes}

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def decode(self, name: str) -> torch.Tensor:
        """The float32 weight the codes stand for, in the parameter's shape."""
        s = self.schemes[name]
        shape = tuple(s["shape"])
        c = getattr(self, f"codes_{name}")
        if s["scheme"] == "float":
            return c.reshape(shape)
        if s["scheme"] == "uniform":
            step = getattr(self, f"step_{name}")
            if step.dim() == 1:
                step = step.reshape((-1,) + (1,) * (len(shape) - 1))
            return step * c.reshape(shape).to(torch.float32)
        if s["scheme"] == "codebook":
            book = getattr(self, f"codebook_{name}")
            if book.dim() == 2:  # one codebook per row of dim 0
                return torch.gather(book, 1, c.long().reshape(book.shape[0], -1)).reshape(shape)
            return book[c.long()].reshape(shape)
        return decode_pow2(c.long(), getattr(self, f"exp_{name}"), s["bits"]).reshape(shape)


def decode_pow2(field: torch.Tensor, exp: torch.Tensor, bits: int) -> torch.Tensor:
    """±2^(n2 + k) where the nonzero flag is set, else 0 (field layout in the module docstring)."""
    if exp.numel() == 0:
        return torch.zeros(field.shape, dtype=torch.float32)
    kbits = bits - 2
    sign = (field >> (bits - 1)) & 1
    nonzero = (field >> kbits) & 1
    k = field & ((1 << kbits) - 1)
    mag = torch.exp2((int(exp[1]) + k).to(torch.float32))
    return torch.where(nonzero.bool(), torch.where(sign.bool(), -mag, mag), torch.zeros_like(mag))


def _refresh(module: nn.Module, incompatible_keys=None) -> None:
    """Load-state-dict post hook: recompute the decoded weights from the (new) codes, in the layer's layout."""
    fw = module.weight_quant
    for n in fw.schemes:
        if getattr(fw, f"codes_{n}").numel():
            module._buffers[n] = module.from_quant_layout(n, fw.decode(n)).contiguous()
    module.__dict__.pop("_wq_cache", None)


def install(layer: nn.Module, fw: FrozenWeight) -> None:
    """Swap the layer's latent weights for non-persistent decoded buffers and ``fw`` as its quantizer.

    Codes and ``shape`` are in the quantizer's layout (``QuantMixin.to_quant_layout``: output channel first);
    the decoded buffer is in the layer's own layout."""
    for n, s in fw.schemes.items():
        p = layer._parameters.pop(n, None)
        old = p if p is not None else layer._buffers.get(n)
        if old is not None and tuple(layer.to_quant_layout(n, old).shape) != tuple(s["shape"]):
            raise ValueError(
                f"frozen weight {n!r}: shape {tuple(s['shape'])} does not fit the layer's {tuple(old.shape)}"
            )
        blank = layer.from_quant_layout(n, torch.zeros(tuple(s["shape"]))).contiguous()
        layer.register_buffer(n, blank if old is None else old.detach().clone(), persistent=False)
    layer.weight_quant = fw
    layer.register_load_state_dict_post_hook(_refresh)
    _refresh(layer)


def _freeze_tensor(q: Quantizer, w: torch.Tensor, qw: torch.Tensor, name: str) -> tuple[dict[str, Any], dict]:
    """(scheme description, buffers) for one parameter; ``qw`` is the eval-mode fake-quantized weight.

    Asks the quantizer for its codes (``Quantizer.export_codes``): "pow2" codes, or affine codes with a zero
    zero point that fit a signed b-bit field (b <= 16) become the "pow2" / "uniform" schemes; anything else
    (no hook, a nonzero zero point, codes that do not reproduce ``qw``) becomes a codebook of the values.
    """
    shape = list(w.shape)
    src = q.to_dict()
    ex = q.export_codes(w, name)
    if ex is not None and ex.kind == "pow2":
        e = None if ex.scale.numel() == 0 else (int(ex.scale[0]), int(ex.scale[1]))
        return _pow2(qw, e, ex.codes, ex.bits, shape, src)
    if ex is not None and ex.kind == "affine" and 2 <= ex.bits <= 16 and not bool(ex.zero_point.any()):
        step = ex.scale.detach().to(torch.float32).clone()
        sb = step.reshape((-1,) + (1,) * (qw.dim() - 1)) if step.dim() == 1 else step
        codes = ex.codes.to(torch.float32)
        lo, hi = -(2 ** (ex.bits - 1)), 2 ** (ex.bits - 1) - 1
        if codes.numel() and int(codes.min()) >= lo and int(codes.max()) <= hi and torch.equal(sb * codes, qw):
            meta = {"scheme": "uniform", "bits": ex.bits, "shape": shape, "source": src}
            return meta, {"codes": ex.codes.to(codes_dtype("uniform", ex.bits)), "step": step}
    return _codebook(q, w, qw, shape, src)


def _pow2(qw, e, field, bits, shape, src):
    meta = {"scheme": "pow2", "bits": bits, "shape": shape, "source": src}
    if e is None:
        return meta, {
            "codes": torch.zeros(shape, dtype=codes_dtype("pow2", bits)),
            "exp": torch.empty(0, dtype=torch.int64),
        }
    exp = torch.tensor(e, dtype=torch.int64)
    dec = decode_pow2(field, exp, bits)
    if not bool(torch.allclose(dec, qw, rtol=1e-6, atol=0.0)):
        raise ValueError(f"freeze: weights of a {src['name']} layer are not on its power-of-two codebook {e}")
    return meta, {"codes": field.to(codes_dtype("pow2", bits)), "exp": exp}


def _codebook(q: Quantizer, w: torch.Tensor, qw: torch.Tensor, shape, src):
    try:
        book = q.levels(w).detach().to(torch.float32).reshape(-1)
    except (NotImplementedError, TypeError, ValueError):
        book = torch.empty(0)
    flat = qw.reshape(-1)
    if book.numel() == 0 or book.numel() > MAX_CODEBOOK or not torch.isin(flat, book).all():
        book = torch.unique(flat)  # the values actually used (levels() may be a superset or miss ulps)
    if book.numel() > MAX_CODEBOOK:
        meta = {"scheme": "float", "bits": 32, "shape": shape, "source": src}
        return meta, {"codes": qw.detach().to(torch.float32).clone()}
    book = torch.sort(torch.unique(book)).values
    idx = torch.searchsorted(book, flat).clamp(max=book.numel() - 1)
    if not torch.equal(book[idx], flat):
        book = torch.unique(flat)
        idx = torch.searchsorted(book, flat)
    bits = max(1, math.ceil(math.log2(book.numel())))
    rows = _row_codebook(qw)
    if rows is not None and rows[2] * qw.numel() + 32 * rows[0].numel() < bits * qw.numel() + 32 * book.numel():
        rbook, ridx, rbits = rows
        meta = {"scheme": "codebook", "bits": rbits, "shape": shape, "source": src}
        return meta, {"codes": ridx.reshape(shape).to(codes_dtype("codebook", rbits)), "codebook": rbook}
    meta = {"scheme": "codebook", "bits": bits, "shape": shape, "source": src}
    return meta, {"codes": idx.reshape(shape).to(codes_dtype("codebook", bits)), "codebook": book}


def _row_codebook(qw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """(codebooks (C, K), indices, bits) with one sorted codebook per row of dim 0, padded with its maximum."""
    if qw.dim() < 2 or qw.shape[0] < 2:
        return None
    rows = qw.reshape(qw.shape[0], -1)
    books = [torch.unique(r) for r in rows]
    k = max(b.numel() for b in books)
    if k > MAX_CODEBOOK:
        return None
    book = torch.stack([torch.cat([b, b[-1:].expand(k - b.numel())]) for b in books])
    idx = torch.stack([torch.searchsorted(b, r) for b, r in zip(books, rows)])
    return book, idx, max(1, math.ceil(math.log2(k)))


def is_frozen(model: nn.Module) -> bool:
    return any(isinstance(getattr(m, "weight_quant", None), FrozenWeight) for m in model.modules())


@torch.no_grad()
def freeze(model: nn.Module) -> nn.Module:
    """Turn every quantized layer's latent weights into integer codes + scales, in place; returns ``model``.

    Layers without a weight quantizer (kept float) are left as they are. Activation quantizers stay.
    """
    for _, m in model.named_modules():
        if not isinstance(m, QuantMixin) or m.weight_quant is None or isinstance(m.weight_quant, FrozenWeight):
            continue
        was_training = m.training
        m.eval()
        try:
            schemes, buffers = {}, {}
            for n in m.quant_weight_names:
                w = m.latent_weight(n).detach()  # both in the quantizer's layout (output channel first)
                qw = m.to_quant_layout(n, m.quantized_weight(n)).detach().clone()
                # recurrent twins keep one quantizer copy per matrix (``weight_quantizer``)
                q = m.weight_quantizer(n) if hasattr(m, "weight_quantizer") else m.weight_quant
                schemes[n], buffers[n] = _freeze_tensor(q, w, qw, n)
            fw = FrozenWeight(schemes)
            for n, bufs in buffers.items():
                for k, v in bufs.items():
                    setattr(fw, f"{k}_{n}", v)
            install(m, fw)
        finally:
            m.train(was_training)
    return model


def frozen_skeleton(layer: nn.Module, schemes: dict[str, dict[str, Any]]) -> None:
    """Give ``layer`` an empty ``FrozenWeight`` (buffers sized on load_state_dict) for ``schemes``."""
    install(layer, FrozenWeight(schemes))
