"""``summary(model, input_example=None)``: per-layer parameters, bits, stored bytes and MACs by precision.

Memory is what the packed file stores for each layer (``save_packed``): codes at their bit width,
ceil(n·b/8) bytes, plus the layer's scales/codebooks/exponents, biases, BatchNorm parameters and running
statistics, and activation-quantizer parameters, all at their own dtype (float32: 4 bytes). The model is
frozen on a copy to measure this; the model passed in is not changed. The float-32 equivalent counts the
same layers' parameters and buffers at 4 bytes per floating-point element (integer buffers as stored).
MACs (multiply-accumulates per example) are counted with forward hooks on Linear/Conv layers when an
example input is given, keyed by precision "W<bits>/A<bits>" (32 = float).

Two byte figures, labelled apart because they count different things:
  ``model_bytes``  the tensors as stored (the payload of the ``.lowbit`` file, byte for byte), and
                   ``compression_ratio`` = float32_bytes / model_bytes;
  ``file_bytes``   the whole ``.lowbit`` file ``save_packed(model, path, model_name, model_kwargs)`` writes: the
                   payload plus the 20-byte header, the JSON metadata (quantizer per layer, one record per tensor)
                   and the 32-byte checksum; ``file_compression_ratio`` = float32_bytes / file_bytes. The metadata is
                   a few KB, so for small models the file ratio is well below the tensor ratio.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..quantizers import Quantizer
from .freeze import FrozenWeight, freeze, is_frozen
from .packed import packed_blob, packed_codes
from .packing import packed_nbytes


@dataclass
class SummaryTable:
    """``rows``: one dict per layer; ``totals``: model size, float-32 size, compression ratio, MACs."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows], "totals": dict(self.totals)}

    def __str__(self) -> str:
        head = ["layer", "type", "params", "w bits", "a bits", "bytes", "MACs"]
        body = [
            [
                r["name"],
                r["type"],
                str(r["params"]),
                "-" if r["weight_bits"] is None else str(r["weight_bits"]),
                "-" if r["act_bits"] is None else str(r["act_bits"]),
                str(r["memory_bytes"]),
                ", ".join(f"{k}: {v}" for k, v in r["macs"].items()) or "-",
            ]
            for r in self.rows
        ]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        t = self.totals
        out = [line(head), line(["-" * w for w in widths]), *map(line, body), ""]
        out.append(
            f"params {t['params']}  tensors as stored {t['model_bytes']} B  float32 {t['float32_bytes']} B  "
            f"compression {t['compression_ratio']:.2f}x (tensor bytes: codes, scales, float biases/BN)"
        )
        if t.get("file_bytes"):
            out.append(
                f".lowbit file {t['file_bytes']} B (the tensors + {t['file_bytes'] - t['model_bytes']} B of header, "
                f"JSON metadata and checksum)  compression {t['file_compression_ratio']:.2f}x (file bytes)"
            )
        if t.get("macs"):
            out.append("MACs per example: " + ", ".join(f"{k}: {v}" for k, v in t["macs"].items()))
        return "\n".join(out)

    __repr__ = __str__

    def set_file_bytes(self, n: int) -> None:
        """Record the size of the ``.lowbit`` file this table describes (and its compression ratio)."""
        t = self.totals
        t["file_bytes"] = int(n)
        t["file_compression_ratio"] = t["float32_bytes"] / n if n else float("nan")


def _owner(name: str, owners: set[str]) -> str:
    """Nearest ancestor of a state_dict key that is a row (not a quantizer)."""
    parts = name.split(".")[:-1]
    while parts and ".".join(parts) not in owners:
        parts.pop()
    return ".".join(parts)


def _row_modules(model: nn.Module) -> dict[str, nn.Module]:
    quantizer_paths = {n for n, m in model.named_modules() if isinstance(m, Quantizer)}
    out = {}
    for n, m in model.named_modules():
        if isinstance(m, Quantizer) or any(n == q or n.startswith(q + ".") for q in quantizer_paths):
            continue
        if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)):
            out[n] = m
        elif getattr(m, "weight_quant", None) is not None or getattr(m, "act_quant", None) is not None:
            out[n] = m
    return out


def _bits(m: nn.Module, attr: str) -> int | None:
    q = getattr(m, attr, None)
    if isinstance(q, FrozenWeight):
        return max(s["bits"] for s in q.schemes.values())
    return q.bits if isinstance(q, Quantizer) else None


def _rnn_macs_per_step(m: nn.RNNBase) -> int:
    """Σ over layers and directions of gates·H·(I_l + H) (projection-free; LSTM 4 gates, GRU 3, RNN 1)."""
    gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
    dirs = 2 if m.bidirectional else 1
    total = 0
    for layer in range(m.num_layers):
        i = m.input_size if layer == 0 else m.hidden_size * dirs
        total += dirs * gates * m.hidden_size * (i + m.hidden_size)
    return total


def _count_macs(model: nn.Module, example: Any, precision: dict[str, str]) -> dict[str, dict[str, int]]:
    macs: dict[str, dict[str, int]] = {}
    handles = []

    def hook(mod, args, out, name):
        x = args[0]
        n = x.shape[0] if x.dim() > 1 else 1
        if isinstance(mod, nn.RNNBase):
            if not isinstance(x, torch.Tensor):
                return  # a PackedSequence: lengths vary per example
            n, steps = (
                (x.shape[0], x.shape[1])
                if mod.batch_first and x.dim() == 3
                else (x.shape[-2] if x.dim() == 3 else 1, x.shape[0])
            )
            per = steps * _rnn_macs_per_step(mod) * n
        elif isinstance(mod, nn.Linear):
            per = out.numel() * mod.in_features
        else:
            per = out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
        d = macs.setdefault(name, {})
        d[precision[name]] = d.get(precision[name], 0) + per // max(n, 1)

    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase)):
            handles.append(m.register_forward_hook(lambda mod, a, o, name=name: hook(mod, a, o, name)))
    try:
        with torch.no_grad():
            model(*example) if isinstance(example, tuple) else model(example)
    finally:
        for h in handles:
            h.remove()
    return macs


def summary(
    model: nn.Module,
    input_example: Any = None,
    *,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> SummaryTable:
    """Per-layer table of ``model`` as it would be shipped; see the module docstring for what is counted.

    ``model_name``/``model_kwargs``: the registry entry ``save_packed`` would record; they only change
    ``file_bytes`` (the metadata then names the model).
    """
    frozen = copy.deepcopy(model) if is_frozen(model) else freeze(copy.deepcopy(model))
    frozen.eval()  # on a copy: the model passed in keeps its mode
    codes = packed_codes(frozen)
    rows_mod = _row_modules(frozen)
    mem: dict[str, int] = {n: 0 for n in rows_mod}
    f32: dict[str, int] = {n: 0 for n in rows_mod}
    for key, t in frozen.state_dict().items():
        owner = _owner(key, set(rows_mod))
        nbytes = packed_nbytes(t.numel(), codes[key]["bits"]) if key in codes else t.numel() * t.element_size()
        mem[owner] = mem.get(owner, 0) + nbytes
    params: dict[str, int] = {}
    for n, m in rows_mod.items():
        fw = getattr(m, "weight_quant", None)
        weights = {w: math.prod(s["shape"]) for w, s in fw.schemes.items()} if isinstance(fw, FrozenWeight) else {}
        own = {pn: p.numel() for pn, p in m.named_parameters(recurse=False)}
        params[n] = sum({**own, **weights}.values())
        # float-32 equivalent: the latent weights, the layer's own parameters and persistent buffers at 4 bytes
        # per floating-point element (integer buffers as stored); quantizer state is lowbit's overhead
        tensors = [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]
        kept = [t for bn, t in tensors if bn not in weights and bn not in m._non_persistent_buffers_set]
        f32[n] = 4 * sum(weights.values()) + sum(
            t.numel() * (4 if t.is_floating_point() else t.element_size()) for t in kept
        )
    precision = {}
    for n, m in frozen.named_modules():
        wb, ab = _bits(m, "weight_quant"), _bits(m, "act_quant")
        precision[n] = f"W{wb or 32}/A{ab or 32}"
    macs = _count_macs(frozen, input_example, precision) if input_example is not None else {}
    table = SummaryTable()
    for n, m in rows_mod.items():
        has_weight = isinstance(getattr(m, "weight_quant", None), FrozenWeight) or params[n] > 0
        wb = _bits(m, "weight_quant") or (32 if has_weight else None)
        ab = _bits(m, "act_quant") or (32 if n in macs else None)
        table.rows.append(
            {
                "name": n or "(model)",
                "type": type(m).__name__,
                "params": params[n],
                "weight_bits": wb,
                "act_bits": ab,
                "memory_bytes": mem[n],
                "float32_bytes": f32[n],
                "macs": macs.get(n, {}),
            }
        )
    total_macs: dict[str, int] = {}
    for d in macs.values():
        for k, v in d.items():
            total_macs[k] = total_macs.get(k, 0) + v
    model_bytes = sum(mem.values())
    float_bytes = sum(f32.values())
    table.totals = {
        "params": sum(params.values()),
        "model_bytes": model_bytes,
        "float32_bytes": float_bytes,
        "compression_ratio": float_bytes / model_bytes if model_bytes else float("nan"),
        "macs": total_macs,
    }
    table.set_file_bytes(_packed_file_bytes(frozen, model_name, model_kwargs))
    return table


def _packed_file_bytes(frozen: nn.Module, model_name: str | None, model_kwargs: dict[str, Any] | None) -> int:
    """Size of the ``.lowbit`` file of ``frozen``: the bytes ``save_packed`` would write (nothing is written)."""
    return len(packed_blob(frozen, model_name, model_kwargs))


def memory_metrics(model: nn.Module) -> dict[str, float]:
    """The memory columns of a study's result rows, counted as ``summary`` counts them (one place for both):
    ``params``, ``weight_kib`` (the tensors as stored, KiB: codes at their bit width, scales, float biases and
    BatchNorm statistics, kept-float layers) and ``memory_reduction`` (float-32 bytes of the same tensors / as
    stored). A QAT model counts its codes at the trained bit width, an INQ model at its INQ bits."""
    totals = summary(model).totals
    return {
        "params": float(totals["params"]),
        "weight_kib": totals["model_bytes"] / 1024,
        "memory_reduction": totals["compression_ratio"] if totals["model_bytes"] else 1.0,
    }
