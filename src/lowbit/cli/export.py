"""``lowbit export CHECKPOINT --format packed|onnx --out PATH``: ship a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..fileio import check_target
from . import COMMANDS, UsageError, shape_error
from .summary import load_saved, parse_shape


@COMMANDS.register("export")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a packed .lowbit file or an ONNX file from a saved model",
        description="Freeze a saved model (integer codes + scales) and write it as a bit-packed .lowbit file, or "
        "as ONNX: by default the integer form (QLinearConv/QGemm/QLinearAdd from the model's own codes and learned "
        "scales, BN folded, ReLU fused) wherever it computes what the model computes, float ops elsewhere; "
        "--onnx-form qdq for the Q/DQ graph, integer for ConvInteger/MatMulInteger.",
    )
    p.add_argument(
        "checkpoint", type=Path, help="a model file: lowbit.serialize.save_model's safetensors or a packed .lowbit"
    )
    p.add_argument("--format", choices=("packed", "onnx"), required=True, help="output format")
    p.add_argument("--out", type=Path, required=True, help="output file")
    p.add_argument("--input-shape", help="example input shape for ONNX, e.g. 1,2 or 1x3x32x32 (required for onnx)")
    p.add_argument(
        "--onnx-form",
        choices=("qop", "qdq", "integer"),
        default="qop",
        help="ONNX form: qop (default, integer operators end to end), qdq, integer (ConvInteger)",
    )
    p.add_argument(
        "--nbits",
        action="store_true",
        help="ONNX: run Linear layers with <= 4-bit codes through MatMulNBits (weight-only 4/2-bit)",
    )
    p.add_argument(
        "--calib",
        type=Path,
        help="ONNX (qop): a .npy batch of real inputs; opts into speed over exactness: tensors the model keeps in "
        "float where an add or average pool reads them (residual branches) get uint8 grids from their range on "
        "this batch and run as integer ops. Default: none, the graph computes exactly what the model computes",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..deploy import freeze, save_packed

    if not args.checkpoint.is_file():
        raise UsageError(f"model file {str(args.checkpoint)!r} does not exist")
    check_target(args.out)  # a folder or /dev/null is refused before any work
    model, meta = load_saved(args.checkpoint)
    model = freeze(model.eval())
    if args.format == "packed":
        m = meta["model"] or {}
        path = save_packed(model, args.out, m.get("name"), m.get("kwargs", {}))
    else:
        from ..deploy import export_onnx

        shape = parse_shape(args.input_shape)
        if shape is None:
            raise UsageError("--format onnx needs --input-shape (the example input the graph is traced with)")
        try:
            calib = None
            if args.calib is not None:
                import numpy as np

                calib = torch.from_numpy(np.load(args.calib, allow_pickle=False)).float()
            path = export_onnx(
                model,
                args.out,
                torch.randn(shape, generator=torch.Generator().manual_seed(0)),  # same file on every export
                form=args.onnx_form,
                calib=calib,
                nbits=(2, 4) if args.nbits else (),
            )
        except RuntimeError as e:  # the example input does not fit the model's first layer
            raise shape_error(args.input_shape, e) from None
    print(f"wrote {path} ({Path(path).stat().st_size} bytes)")
    return 0
