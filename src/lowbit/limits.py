"""The size limits lowbit checks before it allocates for a spec, a run folder or a model file (docs/reliability.md,
"Bounded resources").

A spec, a stored ``spec.toml``, a store or a model file from someone else can ask for absurd sizes: a grid of 10⁹
jobs, a layer 10⁷ wide, images 10⁶ pixels a side, a store of 10⁸ rows. Each is estimated from the numbers alone
(nothing is built or read first) and refused in one line naming the key, the estimate and the limit, instead of
running out of memory later. The limits are generous for every shipped study at every scale (``tests/engine/
test_engine_bounds.py`` checks it) and are set by the local user only, with the environment variable

    LOWBIT_LIMITS="jobs=1e6,params=5e9,data_bytes=256GiB"

(any subset of the keys below; numbers may use ``_``, ``1e6`` and, for bytes, ``KiB``/``MiB``/``GiB``/``TiB``).
Nothing in a spec sets them: a spec travels with its run folder (``spec.toml``), so a limit written there would
travel too, and a run folder from elsewhere could raise the limits that guard against it. ``[limits]`` in a spec is
an unknown key like any other. Worker processes inherit the variable.

Bottom layer: imports nothing from lowbit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

ENV = "LOWBIT_LIMITS"

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@dataclass(frozen=True)
class Limit:
    name: str
    default: int
    bytes: bool  # a size in bytes (shown as GiB ...), else a count
    what: str  # what is counted, for ``lowbit`` docs and messages


# Why each default: generous for every shipped study at every scale (the largest figure of each is in the comment,
# checked by tests/engine/test_engine_bounds.py), small enough that what passes fits a workstation.
MAX_JOBS = 100_000  # largest shipped plan: 516 jobs (segmentation, paper; estimated 1,512 for classification, whose
# [[exclude]] the estimate ignores). A plan holds one config per job; 10 metrics a job at this limit is 10⁶ store rows.
MAX_MODEL_PARAMS = 1_000_000_000  # parameter + buffer elements: 4 GiB of float32 weights, ~16 GiB to train with Adam
# (weights, gradients, two moments). Largest shipped: ResNet-20 x10 of cnn_width at paper scale, 27 million.
MAX_MODEL_PARTS = 100_000  # modules + parameter + buffer tensors a builder registers (a depth of 10⁷ costs Python
# objects even on the meta device). Largest shipped: dw-110 of cnn_blocks at paper scale, 1,257.
MAX_ITEM_BYTES = 1 * GiB  # one input item as float32 (one image, one utterance's features): a 16384 x 16384
# one-channel image. Largest shipped: a paper-scale FSDD utterance (1.7 MiB), a 512 x 512 ISBI test image (1 MiB).
MAX_DATA_BYTES = 64 * GiB  # every tensor a data set holds (train + test inputs and targets). Largest shipped:
# speech at paper scale, 3.2 GiB estimated; ISBI at full size 1.0 GiB; all of CIFAR-10 0.9 GiB.
MAX_STORE_ROWS = 2_000_000  # rows (results + failures) of results.sqlite that `lowbit report` / `lowbit results`
# read at once. A study at the job limit with 10 metrics a job has 10⁶; reading them took 0.9-1.2 GiB
# (benchmarks/store_memory.py).
MAX_STORE_MEMORY = 4 * GiB  # what reading a store may hold, estimated row by row as it is read (engine/bounds.py:
# 0.9 KB a row for the rows of benchmarks/store_memory.py, whose peak RSS rose 0.96 KB a row), and first the file's
# size. Rows made to expand (JSON of empty tables: 24x its text) are counted as such and refused at this limit.
MAX_SPEC_BYTES = 16 * MiB  # a spec file / stored spec.toml (the shipped ones are under 20 KiB; TOML parses to
# several times its size in Python objects).

LIMITS = {
    lim.name: lim
    for lim in (
        Limit("jobs", MAX_JOBS, False, "jobs in a plan"),
        Limit("params", MAX_MODEL_PARAMS, False, "parameter and buffer elements of a model"),
        Limit("parts", MAX_MODEL_PARTS, False, "modules, parameter and buffer tensors of a model"),
        Limit("item_bytes", MAX_ITEM_BYTES, True, "bytes of one input item"),
        Limit("data_bytes", MAX_DATA_BYTES, True, "bytes of a data set in memory"),
        Limit("store_rows", MAX_STORE_ROWS, False, "rows of a result store read at once"),
        Limit("store_memory", MAX_STORE_MEMORY, True, "bytes reading a result store holds (estimated)"),
        Limit("spec_bytes", MAX_SPEC_BYTES, True, "bytes of a spec file"),
    )
}

_UNITS = {"": 1, "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB}
_NUMBER = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


class LimitExceeded(ValueError):
    """An estimate over a limit; the message is one line naming what, the estimate and how to raise the limit."""


def _parse(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in LIMITS:
            raise ValueError(
                f"{ENV}: {part!r} is not accepted; expected KEY=NUMBER with KEY one of {', '.join(LIMITS)}"
            )
        m = _NUMBER.match(value)
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in _UNITS or (unit and not LIMITS[key].bytes):
            units = " (bytes: a number, optionally with KiB, MiB, GiB or TiB)" if LIMITS[key].bytes else ""
            raise ValueError(f"{ENV}: {key}={value.strip()!r} is not accepted; expected a number >= 1{units}")
        n = float(m.group(1).replace("_", "")) * _UNITS[unit]
        if not 1 <= n < 2**63:
            raise ValueError(f"{ENV}: {key}={value.strip()!r} is not accepted; expected a number >= 1")
        out[key] = int(n)
    return out


def limit(name: str) -> int:
    """The limit ``name`` (a key of ``LIMITS``) in force: ``LOWBIT_LIMITS`` where it sets it, else the default. Read
    each time, so a change to the environment applies at once."""
    return _parse(os.environ.get(ENV, "")).get(name, LIMITS[name].default)


def check_limits_env() -> None:
    """Raise ``ValueError`` (one line) when ``LOWBIT_LIMITS`` is set but malformed."""
    _parse(os.environ.get(ENV, ""))


def show(name: str, value: float) -> str:
    """``value`` as the limit ``name`` counts it: ``1.5 GiB`` for bytes, ``1,000,000`` for counts."""
    if not LIMITS[name].bytes:
        return f"{value:,.0f}" if value < 1e15 else f"{value:.2e}"
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:.0f} bytes"


def over(name: str, value: float) -> str | None:
    """None when ``value`` is within the limit ``name``, else the end of the refusal line: ``over the limit
    jobs = 100,000 (LOWBIT_LIMITS="jobs=N" raises it)``."""
    lim = limit(name)
    if value <= lim:
        return None
    return f'over the limit {name} = {show(name, lim)} (the local user raises it: {ENV}="{name}=N")'


def require(name: str, value: float, what: str) -> None:
    """Raise ``LimitExceeded``: ``{what} {value}, over the limit ...`` when ``value`` exceeds the limit ``name``."""
    tail = over(name, value)
    if tail is not None:
        raise LimitExceeded(f"{what} {show(name, value)}, {tail}")
