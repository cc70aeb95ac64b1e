"""Sub-8-bit weights at run time: a Linear layer as ONNX Runtime's ``MatMulNBits`` (com.microsoft).

MatMulNBits computes Y = A·dequant(B)ᵀ with float A and B stored as ``bits``-bit unsigned codes q in blocks of
``block_size`` along K: w = (q - zp)·scale_block, zp = 2^(bits-1) by default. lowbit's signed symmetric codes
c ∈ [-(2^(b-1)-1), 2^(b-1)-1] (b <= 4) map to q = c + 2^(nb-1) with nb = 4 (or nb = 2 for b <= 2), and the
per-channel step is repeated in every block of its row, so the weights are exactly lowbit's codes and steps.
Codes are packed little-end first (element 2i in the low nibble of byte i), K padded with zeros to whole blocks.

This kernel is weight-only: A (the activations) is float, so the layer's input is dequantized first.
"""

from __future__ import annotations

import numpy as np

from .fold_bn import LayerSpec
from .onnx_graph import MS_DOMAIN, Builder

BLOCK = 32


def nbits_for(spec: LayerSpec, allowed: tuple[int, ...]) -> int | None:
    """The smallest MatMulNBits width in ``allowed`` whose range [-2^(nb-1), 2^(nb-1)-1] holds the codes."""
    if spec.is_conv or spec.codes is None or spec.codes.dim() != 2:
        return None
    c = spec.codes.numpy()
    lo, hi = (int(c.min()), int(c.max())) if c.size else (0, 0)
    for nb in sorted(allowed):
        if -(2 ** (nb - 1)) <= lo and hi <= 2 ** (nb - 1) - 1:
            return nb
    return None


def pack_codes(codes: np.ndarray, nb: int, block: int = BLOCK) -> np.ndarray:
    """(N, K) signed codes -> (N, ceil(K/block), block·nb/8) uint8, q = c + 2^(nb-1), low bits first."""
    n, k = codes.shape
    nblk = -(-k // block)
    q = np.full((n, nblk * block), 2 ** (nb - 1), dtype=np.uint8)
    q[:, :k] = (codes.astype(np.int16) + 2 ** (nb - 1)).astype(np.uint8)
    per = 8 // nb
    q = q.reshape(n, nblk, block // per, per)
    out = np.zeros(q.shape[:3], dtype=np.uint8)
    for i in range(per):
        out |= (q[..., i] << (i * nb)).astype(np.uint8)
    return out


def matmul_nbits(b: Builder, spec: LayerSpec, x: str, nb: int) -> str:
    """Float ``x`` (M, K) -> float (M, N) through MatMulNBits (+ bias)."""
    codes = spec.codes.numpy()
    n, k = codes.shape
    packed = pack_codes(codes, nb)
    nblk = packed.shape[1]
    scales = np.repeat(spec.scale.numpy().astype(np.float32), nblk)
    y = b.node(
        "MatMulNBits",
        [x, b.const(packed, spec.name + "_wq4"), b.const(scales, spec.name + "_ws")],
        spec.name,
        domain=MS_DOMAIN,
        K=k,
        N=n,
        bits=nb,
        block_size=BLOCK,
        accuracy_level=0,
    )
    if spec.bias is not None:
        y = b.node("Add", [y, b.const(spec.bias.numpy().astype(np.float32), spec.name + "_b")], spec.name)
    return y
