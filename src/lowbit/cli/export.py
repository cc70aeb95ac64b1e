"""``lowbit export CHECKPOINT --format packed|onnx --out PATH``: ship a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import UsageError
from .summary import parse_shape


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a packed .lowbit file or an ONNX file from a saved model",
        description="Freeze a saved model (integer codes + scales) and write it as a bit-packed .lowbit file, or "
        "as ONNX (uniform layers as QuantizeLinear/DequantizeLinear, other codebooks as dequantized constants).",
    )
    p.add_argument("checkpoint", type=Path, help="a model file written by lowbit.serialize.save_model")
    p.add_argument("--format", choices=("packed", "onnx"), required=True, help="output format")
    p.add_argument("--out", type=Path, required=True, help="output file")
    p.add_argument("--input-shape", help="example input shape for ONNX, e.g. 1,2 or 1x3x32x32 (required for onnx)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..deploy import freeze, save_packed
    from ..serialize import load_model

    if not args.checkpoint.is_file():
        raise UsageError(f"checkpoint {str(args.checkpoint)!r} does not exist")
    model, meta = load_model(args.checkpoint)
    model = freeze(model.eval())
    if args.format == "packed":
        path = save_packed(model, args.out, meta["model"]["name"], meta["model"].get("kwargs", {}))
    else:
        from ..deploy.onnx_export import export_onnx

        shape = parse_shape(args.input_shape)
        if shape is None:
            raise UsageError("--format onnx needs --input-shape (the example input the graph is traced with)")
        path = export_onnx(model, args.out, torch.randn(shape))
    print(f"wrote {path} ({Path(path).stat().st_size} bytes)")
    return 0
