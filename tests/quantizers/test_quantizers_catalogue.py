"""The quantizer catalogue: every quantizer's default bits exist (or the catalogue says they are required), and
the quantizer figure's transfer curves reach each quantizer's levels."""

from __future__ import annotations

import pytest

import lowbit as lb
from lowbit.quantizers.catalogue import REQUIRED, catalogue, default_bits, transfer


def test_catalogue_default_bits_exist_or_say_required():
    for row in catalogue():
        n = row["name"]
        if row["default_bits"] == REQUIRED:
            with pytest.raises(ValueError, match="bits"):
                lb.quantizers.get(n)
        else:
            assert lb.quantizers.get(n).bits == row["default_bits"]
            assert lb.QuantConfig.from_dict({"weight" if row["kind"] != "act" else "act": {"name": n}})


def test_quantizer_figure_shows_the_levels():
    """Each panel's grid reaches its quantizer's levels (PACT at the uncalibrated α = 10 showed only 0)."""
    for n in lb.quantizers.names():
        t = transfer(n)
        levels = lb.quantizers.get(n, bits=default_bits(n)).max_levels()
        assert t["y"].unique().numel() >= min(levels, 4), n
    assert transfer("pact")["kwargs"] == {"alpha": 1.5}
