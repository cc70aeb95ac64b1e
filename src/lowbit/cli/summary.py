"""``lowbit summary CHECKPOINT``: per-layer bits, parameters, stored bytes, MACs and the compression ratio."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import UsageError


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """ "1,2" or "1x3x32x32" -> a shape tuple; the error names the value."""
    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise UsageError(f"--input-shape {text!r} is not accepted; expected positive integers like 1,2 or 1x3x32x32")
    return shape


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="per-layer memory table of a saved model",
        description="Print each layer's parameters, weight/activation bits, bytes as stored in the packed file, "
        "multiply-accumulates by precision (with --input-shape) and the model's compression ratio.",
    )
    p.add_argument("checkpoint", type=Path, help="a model file written by lowbit.serialize.save_model")
    p.add_argument("--input-shape", help="example input shape for counting MACs, e.g. 1,2 or 1x3x32x32")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..deploy import summary
    from ..serialize import load_model

    if not args.checkpoint.is_file():
        raise UsageError(f"checkpoint {str(args.checkpoint)!r} does not exist")
    shape = parse_shape(args.input_shape)
    model, _ = load_model(args.checkpoint)
    table = summary(model.eval(), torch.randn(shape) if shape else None)
    print(json.dumps(table.to_dict(), indent=2) if args.json else table)
    return 0
