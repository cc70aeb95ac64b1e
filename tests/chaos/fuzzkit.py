"""Seeded byte-level mutations of a good file, for the chaos fuzz tests (no hypothesis needed: fixed seeds).

``mutations(good, header_end, seed, n, others)`` yields ``(kind, bytes)``: truncations, single bit flips in the
header and in the payload, bursts of flips, overwritten runs, inserted/deleted bytes, appended garbage, random
bytes, and other formats' files (``others``: wrong format / wrong version), round-robin over the kinds so that
every kind gets n / len(KINDS) inputs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

KINDS = (
    "truncate",
    "flip_header",
    "flip_payload",
    "flip_burst",
    "overwrite",
    "insert",
    "delete",
    "append",
    "random",
    "other",
)


def _flip(b: bytearray, lo: int, hi: int, rng: random.Random) -> None:
    i = rng.randrange(lo, max(lo + 1, hi))
    b[i] ^= 1 << rng.randrange(8)


def mutate(good: bytes, header_end: int, kind: str, rng: random.Random, others: list[bytes]) -> bytes:
    n = len(good)
    b = bytearray(good)
    if kind == "truncate":
        return good[: rng.randrange(n)]
    if kind == "flip_header":
        _flip(b, 0, header_end, rng)
    elif kind == "flip_payload":
        _flip(b, header_end, n, rng)
    elif kind == "flip_burst":
        for _ in range(rng.randint(2, 16)):
            _flip(b, 0, n, rng)
    elif kind == "overwrite":
        i, k = rng.randrange(n), rng.randint(1, 32)
        b[i : i + k] = rng.randbytes(min(k, n - i))
    elif kind == "insert":
        i = rng.randrange(n + 1)
        b[i:i] = rng.randbytes(rng.randint(1, 8))
    elif kind == "delete":
        i = rng.randrange(n)
        del b[i : i + rng.randint(1, 8)]
    elif kind == "append":
        b += rng.randbytes(rng.randint(1, 64))
    elif kind == "random":
        return rng.randbytes(rng.choice([0, 1, 7, 8, 16, 64, 256, rng.randint(1, 4 * n)]))
    elif kind == "other":
        o = rng.choice(others)
        return o if rng.random() < 0.5 else o[: rng.randrange(len(o) + 1)]
    else:
        raise ValueError(kind)
    out = bytes(b)
    return out if out != good else mutate(good, header_end, "random", rng, others)


def mutations(good: bytes, header_end: int, seed: int, n: int, others: list[bytes]) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        yield kind, mutate(good, header_end, kind, rng, others)


class Tally:
    """Counts outcomes per mutation kind; ``check`` gets the fuzz loop's failures listed at the end."""

    def __init__(self) -> None:
        self.outcomes: Counter = Counter()
        self.bad: list[str] = []

    def add(self, kind: str, outcome: str) -> None:
        self.outcomes[(kind, outcome)] += 1

    def fail(self, kind: str, i: int, msg: str) -> None:
        self.bad.append(f"input {i} ({kind}): {msg}")

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())
