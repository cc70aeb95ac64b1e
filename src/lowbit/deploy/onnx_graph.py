"""Shared pieces of the ONNX writers: the torch.fx tracer, a node/initializer builder, conv attributes, and
running a file with ONNX Runtime (with the profiler's list of the kernels that ran).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn

from ..nn import QuantMixin

OPSET = 17
MS_DOMAIN = "com.microsoft"
LEAVES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.Flatten, nn.Dropout)
LEAVES += (nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Identity)


class Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (*LEAVES, QuantMixin)) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> torch.fx.GraphModule:
    return torch.fx.GraphModule(model, Tracer().trace(model))


def np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


class Builder:
    """Collects nodes and initializers; names are unique and readable (``<module>_<op>_<n>``)."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.h, self.nh = helper, numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0
        self.ms = False  # uses com.microsoft ops

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base.replace('.', '_')}_{self.n}"

    def const(self, arr: Any, base: str) -> str:
        nm = self.name(base)
        self.inits.append(self.nh.from_array(np.asarray(arr), nm))
        return nm

    def node(self, op: str, inputs: list[str], base: str, domain: str = "", **attrs) -> str:
        out = self.name(f"{base}_{op}")
        if domain == MS_DOMAIN:
            self.ms = True
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out, domain=domain or None, **attrs))
        return out

    def model(self, example_shape: tuple, out_shape: tuple, output: str):
        from onnx import TensorProto, checker

        h = self.h
        self.nodes.append(h.make_node("Identity", [output], ["output"]))
        inp = h.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *example_shape[1:]])
        out = h.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *out_shape[1:]])
        g = h.make_graph(self.nodes, "lowbit", [inp], [out], self.inits)
        opsets = [h.make_opsetid("", OPSET)] + ([h.make_opsetid(MS_DOMAIN, 1)] if self.ms else [])
        proto = h.make_model(g, opset_imports=opsets, producer_name="lowbit")
        proto.ir_version = 8
        checker.check_model(proto)
        return proto


def conv_attrs(m: nn.Module) -> dict[str, Any]:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ValueError(f"export_onnx: conv padding {m.padding!r}/{m.padding_mode!r} is not supported")
    pads = list(m.padding)
    return {
        "kernel_shape": list(m.kernel_size),
        "strides": list(m.stride),
        "dilations": list(m.dilation),
        "group": m.groups,
        "pads": pads + pads,
    }


def session(path: str | Path, threads: int = 1, profile_prefix: str | None = None, spin: bool = True):
    """A CPU ``InferenceSession`` with ``threads`` intra-op threads (and profiling when a prefix is given).

    ``spin=False`` stops idle pool threads from busy-waiting: on a CPU shared with other processes a spinning
    thread whose partner is descheduled burns its time slice (multi-thread latencies then measure the load).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(path: str | Path, x: np.ndarray, profile: bool = False, threads: int = 1) -> tuple[np.ndarray, list[str]]:
    """Run with ONNX Runtime on CPU; returns (output, op types of the kernels that ran, when ``profile``)."""
    tmp = tempfile.mkdtemp()
    sess = session(path, threads, os.path.join(tmp, "ort") if profile else None)
    y = sess.run(None, {"input": x.astype(np.float32)})[0]
    ops: list[str] = []
    if profile:
        events = json.loads(Path(sess.end_profiling()).read_text())
        ops = sorted(
            {e["args"]["op_name"] for e in events if e.get("cat") == "Node" and "op_name" in e.get("args", {})}
        )
    return y, ops
