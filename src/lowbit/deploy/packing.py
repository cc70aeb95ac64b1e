"""Bit packing: unsigned integer codes of b bits (1..16) <-> a dense little-endian bit stream.

Code i occupies bits [i·b, (i+1)·b) of the stream, least significant bit first, so n codes take exactly
ceil(n·b/8) bytes. Signed codes (uniform, two's complement in b bits) go through ``to_unsigned`` /
``to_signed``.
"""

from __future__ import annotations

import numpy as np

MAX_PACK_BITS = 16


def _check(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_PACK_BITS:
        raise ValueError(f"pack: bits={bits!r} is not accepted; expected a whole number from 1 to {MAX_PACK_BITS}")


def packed_nbytes(n: int, bits: int) -> int:
    """ceil(n·bits/8): the exact size of ``n`` packed codes."""
    return (n * bits + 7) // 8


def pack_bits(codes: np.ndarray, bits: int) -> bytes:
    """Pack unsigned codes (each in [0, 2^bits)) into ceil(n·bits/8) bytes."""
    _check(bits)
    c = np.asarray(codes).reshape(-1).astype(np.int64)
    if c.size and (c.min() < 0 or c.max() >= 2**bits):
        raise ValueError(f"pack: codes span [{c.min()}, {c.max()}], outside [0, {2**bits - 1}] for {bits} bits")
    planes = ((c[:, None] >> np.arange(bits, dtype=np.int64)) & 1).astype(np.uint8)  # (n, bits), LSB first
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_bits(data: bytes, n: int, bits: int) -> np.ndarray:
    """Inverse of ``pack_bits``: int64 array of ``n`` codes. ``data`` must hold exactly ceil(n·bits/8) bytes."""
    _check(bits)
    if len(data) != packed_nbytes(n, bits):
        raise ValueError(f"unpack: {len(data)} bytes given, {packed_nbytes(n, bits)} needed for {n} x {bits} bits")
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little", count=n * bits)
    planes = flat.reshape(n, bits).astype(np.int64)
    return planes @ (np.int64(1) << np.arange(bits, dtype=np.int64))


def to_unsigned(codes: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement of signed codes in b bits (values in [-2^(b-1), 2^(b-1)))."""
    return np.asarray(codes, dtype=np.int64) & ((1 << bits) - 1)


def to_signed(codes: np.ndarray, bits: int) -> np.ndarray:
    """Sign-extend b-bit two's complement fields."""
    c = np.asarray(codes, dtype=np.int64)
    return np.where(c >= 1 << (bits - 1), c - (1 << bits), c)
