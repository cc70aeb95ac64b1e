"""``lowbit summary MODEL_FILE``: per-layer bits, parameters, stored bytes, MACs and the compression ratio.

MODEL_FILE is a model file written by ``lowbit.serialize.save_model`` (safetensors) or a packed ``.lowbit`` file
(``save_packed`` / ``lowbit export --format packed``), told apart by the file's first bytes, not its name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import COMMANDS, UsageError, shape_error


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


def load_saved(path: Path) -> tuple[Any, dict[str, Any]]:
    """(model, metadata) from a safetensors model file or a packed ``.lowbit`` file (recognised by its magic).

    metadata has ``format`` ("packed" | "safetensors") and ``model`` ({"name", "kwargs"} or None).
    """
    from ..deploy.formats import foreign_format
    from ..deploy.packed import MAGIC, load_packed, read_packed
    from ..serialize import load_model

    if path.is_dir():
        raise UsageError(f"model file {str(path)!r} is a folder; expected a model file")
    if not path.is_file():
        raise UsageError(f"model file {str(path)!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head == MAGIC:
        _, meta = read_packed(path)
        return load_packed(path), {"format": "packed", "model": meta.get("model")}
    foreign = foreign_format(path)
    if foreign:
        raise UsageError(
            f"{str(path)!r} is {foreign}; this command reads lowbit's model files: a packed .lowbit file (`lowbit "
            "export --format packed`) or a safetensors model file written by lowbit (`lowbit.serialize.save_model`, "
            "or a run's jobs/<id>/model.safetensors)"
        )
    model, meta = load_model(path)
    return model, {**meta, "format": "safetensors"}


@COMMANDS.register("summary")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="per-layer memory table of a saved model",
        description="Print each layer's parameters, weight/activation bits, bytes as stored in the packed file, "
        "multiply-accumulates by precision (with --input-shape) and the model's compression ratio.",
    )
    p.add_argument(
        "checkpoint", type=Path, help="a model file: lowbit.serialize.save_model's safetensors or a packed .lowbit"
    )
    p.add_argument("--input-shape", help="example input shape for counting MACs, e.g. 1,2 or 1x3x32x32")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..deploy import summary

    shape = parse_shape(args.input_shape)
    model, meta = load_saved(args.checkpoint)
    name, kwargs = (meta["model"] or {}).get("name"), (meta["model"] or {}).get("kwargs")
    try:
        table = summary(model.eval(), torch.randn(shape) if shape else None, model_name=name, model_kwargs=kwargs)
    except RuntimeError as e:  # the example input does not fit the model's first layer
        raise shape_error(args.input_shape, e) from None
    if meta["format"] == "packed":
        table.set_file_bytes(args.checkpoint.stat().st_size)  # this very file, not a re-encoding of it
    print(json.dumps(table.to_dict(), indent=2) if args.json else table)
    return 0
