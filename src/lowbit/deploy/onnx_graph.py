"""Running an exported file with ONNX Runtime (with the profiler's list of the kernels that ran)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


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
    # ORT fuses DequantizeLinear(int8 weights) -> MatMul into MatMulNBits, by default at accuracy level 4 (int8
    # activations, an approximation); 0 keeps float activations. lowbit's qop/integer files write MatMulNBits
    # themselves with level 0; this matters for qdq files (docs/deploy.md: set it in your own sessions too)
    opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def feeds(sess, x) -> dict[str, np.ndarray]:
    """The session's inputs from ``x`` (an array, a tensor, or a tuple of them in the model's input order);
    floating-point inputs as float32, integer ones (token ids) as the graph declares them."""
    xs = x if isinstance(x, (tuple, list)) else (x,)
    out = {}
    for i, v in zip(sess.get_inputs(), xs):
        a = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        out[i.name] = a.astype(np.int64 if i.type == "tensor(int64)" else np.float32)
    return out


def run_onnx(path: str | Path, x, profile: bool = False, threads: int = 1) -> tuple[np.ndarray, list[str]]:
    """Run with ONNX Runtime on CPU; returns (output, op types of the kernels that ran, when ``profile``)."""
    tmp = tempfile.mkdtemp()
    sess = session(path, threads, os.path.join(tmp, "ort") if profile else None)
    y = sess.run(None, feeds(sess, x))[0]
    ops: list[str] = []
    if profile:
        events = json.loads(Path(sess.end_profiling()).read_text())
        ops = sorted(
            {e["args"]["op_name"] for e in events if e.get("cat") == "Node" and "op_name" in e.get("args", {})}
        )
    return y, ops
