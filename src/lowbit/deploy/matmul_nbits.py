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

from .onnx_edit import MS_DOMAIN, Graph

BLOCK = 32


def nbits_for(codes: np.ndarray, allowed: tuple[int, ...]) -> int | None:
    """The smallest MatMulNBits width in ``allowed`` whose range [-2^(nb-1), 2^(nb-1)-1] holds the (N, K) codes."""
    if codes.ndim != 2:
        return None
    lo, hi = (int(codes.min()), int(codes.max())) if codes.size else (0, 0)
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


def matmul_nbits(g: Graph, w, x: str, nb: int, base: str) -> str:
    """Float ``x`` (..., K) -> float (..., N) through MatMulNBits; ``w``: ``onnx_patterns.Weight`` (N, K) codes."""
    n, k = w.codes.shape
    packed = pack_codes(w.codes, nb)
    nblk = packed.shape[1]
    scales = np.repeat(np.broadcast_to(w.scale.reshape(-1), (n,)).astype(np.float32), nblk)
    ins = [x, g.add_const(packed, base + "_wq4"), g.add_const(scales, base + "_ws")]
    attrs = {"K": k, "N": n, "bits": nb, "block_size": BLOCK, "accuracy_level": 0}
    return g.add("MatMulNBits", ins, base, domain=MS_DOMAIN, **attrs)
