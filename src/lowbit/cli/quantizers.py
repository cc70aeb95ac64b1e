"""``lowbit quantizers``: print the quantizer catalogue from the registry; ``--plot PATH`` draws transfer functions."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import COMMANDS


@COMMANDS.register("quantizers")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantizers",
        help="list the registered quantizers (name, kind, bits, reference)",
        description="Print every registered quantizer: name, kind, what it quantizes, the bit widths it accepts, "
        "its default bits ('required' when bits must be given), its number of levels and its reference. With "
        "--plot PATH, also draw each quantizer's transfer function with its gradient pass region shaded.",
    )
    p.add_argument("--plot", type=Path, metavar="PATH", help="write the transfer-function figure (PNG) here")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..quantizers.catalogue import catalogue, format_table, plot_transfer

    print(format_table(catalogue()))
    if args.plot is not None:
        print(f"figure written to {plot_transfer(args.plot)}")
    return 0
