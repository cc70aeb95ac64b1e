"""Reading the Q/DQ graph the front end writes (``onnx_front``): activation codes and grids, constant weights as
(codes, per-output-channel scale), the quantized reads of a tensor; and the moves that keep it exact:

    pull_quantize   Q(T(y)) -> T(Q(y)) for an op T that commutes with a monotone quantizer (max-pool, flatten,
                    reshape, ...; ReLU and a constant Clip become a Clip on the codes: Q(max(y, 0)) = max(Q(y), z)),
                    so a layer's output meets the quantizer that reads it and can be written on its grid;
    push_dequantize T(DQ(q)) -> DQ(T(q)): the same ops run on the codes (uint8) instead of floats;
    cancel_pairs    Q(DQ(q)) on the same grid is q (a different grid stays DQ -> Q: the exact requantization).

Every move is an identity on the values: the graph after them computes exactly what it computed before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .onnx_edit import Graph, Node

# ops that select or move elements (no arithmetic): they commute with any monotone per-tensor quantizer
MOVES = {"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Slice", "Gather",
         "Split", "Expand", "Tile", "DepthToSpace", "SpaceToDepth"}  # fmt: skip
CLAMPS = {"Relu", "Clip"}


@dataclass(frozen=True)
class QGrid:
    """A uint8 activation grid: value = scale·(q - zp)."""

    scale: float
    zp: int

    def code(self, v: float) -> int:
        """The code of the real value ``v`` (QuantizeLinear: round half to even, saturate)."""
        return int(np.clip(np.round(np.float32(v) / np.float32(self.scale)) + self.zp, 0, 255))


def scalar(g: Graph, name: str) -> float | None:
    a = g.const(name) if name else None
    return None if a is None or a.size != 1 else a.reshape(()).item()


def act(g: Graph, t: str) -> tuple[str, QGrid] | None:
    """(uint8 codes, grid) when ``t`` is DequantizeLinear(codes, scalar scale, uint8 zp) of a computed tensor."""
    p = g.producer(t)
    if p is None or p.op != "DequantizeLinear" or g.const(p.inputs[0]) is not None or len(p.inputs) < 3:
        return None
    z = g.const(p.inputs[2])
    s = scalar(g, p.inputs[1])
    if s is None or z is None or z.dtype != np.uint8 or z.size != 1:
        return None
    return p.inputs[0], QGrid(float(np.float32(s)), int(z.reshape(())))


def quant_grid(g: Graph, n: Node) -> QGrid | None:
    """The grid of a QuantizeLinear node with a scalar scale and a uint8 zero point."""
    if n.op != "QuantizeLinear" or len(n.inputs) < 3:
        return None
    s, z = scalar(g, n.inputs[1]), g.const(n.inputs[2])
    if s is None or z is None or z.dtype != np.uint8:
        return None
    return QGrid(float(np.float32(s)), int(z.reshape(())))


def codes_range(g: Graph, t: str) -> tuple[int, int]:
    """The range the uint8 codes ``t`` can take, read back through clips and element moves (else 0..255)."""
    p = g.producer(t)
    while p is not None and p.op in MOVES:
        p = g.producer(p.inputs[0])
    if p is not None and p.op == "Clip" and len(p.inputs) == 3:
        lo, hi = scalar(g, p.inputs[1]), scalar(g, p.inputs[2])
        if lo is not None and hi is not None:
            return int(lo), int(hi)
    return 0, 255


@dataclass
class Weight:
    """A constant weight as int8 codes (output channel first) with a scale per output channel (or one)."""

    codes: np.ndarray  # (N, ...) int8: Conv (C_out, C_in/g, k...), Gemm/MatMul (N, K)
    scale: np.ndarray  # () or (N,) float32 > 0


def dq_weight(g: Graph, t: str) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(int8 codes, scale, axis) of DequantizeLinear(constant codes, scale, zero zp)."""
    p = g.producer(t)
    if p is None or p.op != "DequantizeLinear":
        return None
    c, s = g.const(p.inputs[0]), g.const(p.inputs[1])
    z = g.const(p.inputs[2]) if len(p.inputs) > 2 else None
    if c is None or s is None or c.dtype != np.int8 or (z is not None and z.any()) or not (s > 0).all():
        return None
    return c, s.astype(np.float32), int(p.attr("axis", 1))


def weight_of(g: Graph, n: Node) -> Weight | None:
    """The int8 weight of a Conv / Gemm / MatMul node, oriented output channel first, when its scale is per
    output channel (or one for all); None for float weights and for scales along another axis."""
    w = dq_weight(g, n.inputs[1])
    if w is None:
        return None
    c, s, axis = w
    if n.op == "Conv":
        return Weight(c, s) if s.size == 1 or axis == 0 else None
    if c.ndim != 2 or (n.op == "Gemm" and (n.attr("transA", 0) or n.attr("alpha", 1.0) != 1.0)):
        return None
    out_axis = 0 if n.op == "Gemm" and n.attr("transB", 0) else 1  # the axis of the N outputs in B
    if s.size != 1 and axis != out_axis:
        return None
    return Weight(c if out_axis == 0 else np.ascontiguousarray(c.T), s)


def clamp_codes(g: Graph, n: Node, grid: QGrid) -> tuple[int, int] | None:
    """Q(clamp(y)) = Clip(Q(y), Q(lo), Q(hi)) for ReLU / Clip with constant bounds (Q is monotone, Q(0) = zp)."""
    if n.op == "Relu":
        return grid.zp, 255
    lo = scalar(g, n.inputs[1]) if len(n.inputs) > 1 and n.inputs[1] else None
    hi = scalar(g, n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
    if (len(n.inputs) > 1 and n.inputs[1] and lo is None) or (len(n.inputs) > 2 and n.inputs[2] and hi is None):
        return None
    return (0 if lo is None else grid.code(lo)), (255 if hi is None else grid.code(hi))


def add_clip(g: Graph, q: str, lo: int, hi: int, base: str) -> str:
    if (lo, hi) == (0, 255):
        return q
    return g.add("Clip", [q, g.add_const(np.uint8(lo), base + "_lo"), g.add_const(np.uint8(hi), base + "_hi")], base)


def quant_reads(g: Graph, t: str) -> dict[QGrid, list[Node]] | None:
    """The QuantizeLinear nodes reading ``t``, grouped by grid, when nothing else reads it."""
    users = g.consumers(t)
    if not users or g.is_output(t):
        return None
    out: dict[QGrid, list[Node]] = {}
    for u in users:
        grid = quant_grid(g, u)
        if grid is None:
            return None
        out.setdefault(grid, []).append(u)
    return out


def replace_reads(g: Graph, reads: dict[QGrid, list[Node]], make) -> None:
    """For each grid, ``make(grid, a Q node of that grid)`` writes the codes the Q nodes of that grid stand for."""
    for grid, qs in reads.items():
        y = make(grid, qs[0])
        for q in qs:
            g.rewire(q.outputs[0], y)
            g.remove(q)


def pull_quantize(g: Graph) -> None:
    """Move every QuantizeLinear up through element moves and clamps (see the module docstring). A tensor read
    on several grids gets the move once per grid (a max-pool on codes twice costs less than on floats once)."""
    changed = True
    while changed:
        changed = False
        for n in list(g.nodes):
            if n not in g.nodes or not (n.op in MOVES or n.op in CLAMPS) or len(n.outputs) != 1:
                continue
            if n.op == "Gather" and g.const(n.inputs[0]) is not None:
                continue  # an embedding lookup: its data is a weight, not a quantized activation
            reads = quant_reads(g, n.outputs[0])
            if reads is None or (n.op in CLAMPS and any(clamp_codes(g, n, gr) is None for gr in reads)):
                continue
            base = n.scope or n.op

            def make(grid: QGrid, q0: Node, n: Node = n, base: str = base) -> str:
                q = g.add("QuantizeLinear", [n.inputs[0], *q0.inputs[1:]], base)
                if n.op in CLAMPS:
                    return add_clip(g, q, *clamp_codes(g, n, grid), base)
                return g.add(n.op, [q, *n.inputs[1:]], base, **n.attrs())

            replace_reads(g, reads, make)
            g.remove(n)
            changed = True


def push_dequantize(g: Graph) -> None:
    """Run element moves (and ReLU) on codes: T(DQ(q)) -> DQ(T(q)) (see the module docstring)."""
    changed = True
    while changed:
        changed = False
        for n in list(g.nodes):
            if n not in g.nodes or not (n.op in MOVES or n.op == "Relu") or not n.inputs:
                continue
            a = act(g, n.inputs[0])
            if a is None or (n.op == "Gather" and g.const(n.inputs[0]) is not None):
                continue
            codes, grid = a
            dq = g.producer(n.inputs[0])
            base = n.scope or n.op
            if n.op == "Relu":  # relu(s(q - z)) = s(max(q, z) - z)
                y = add_clip(g, codes, grid.zp, 255, base) if grid.zp > 0 else codes
                outs = [y]
            else:
                outs = g.add(n.op, [codes, *n.inputs[1:]], base, n_out=len(n.outputs), **n.attrs())
                outs = [outs] if len(n.outputs) == 1 else outs
            for old, new in zip(n.outputs, outs):
                g.rewire(old, g.add("DequantizeLinear", [new, *dq.inputs[1:]], base))
            g.remove(n)
            changed = True


def cancel_pairs(g: Graph) -> None:
    """Q(DQ(q)) -> q on the same grid; and a Clip on codes that already lie in its range is dropped."""
    for n in list(g.nodes):
        if n.op != "QuantizeLinear" or n not in g.nodes:
            continue
        a, grid = act(g, n.inputs[0]), quant_grid(g, n)
        if a is not None and grid is not None and a[1] == grid:
            g.rewire(n.outputs[0], a[0])
            g.remove(n)
    for n in list(g.nodes):
        if n.op == "Clip" and n in g.nodes and len(n.inputs) == 3 and g.const(n.inputs[0]) is None:
            lo, hi = scalar(g, n.inputs[1]), scalar(g, n.inputs[2])
            p = g.producer(n.inputs[0])
            if lo is None or hi is None or p is None or p.op == "QuantizeLinear":
                continue
            if not _is_codes(g, n.inputs[0]):
                continue
            rlo, rhi = codes_range(g, n.inputs[0])
            if lo <= rlo and rhi <= hi:
                g.rewire(n.outputs[0], n.inputs[0])
                g.remove(n)


def _is_codes(g: Graph, t: str) -> bool:
    p = g.producer(t)
    while p is not None and p.op in MOVES:
        p = g.producer(p.inputs[0])
    return p is not None and (p.op == "Clip" or p.op.startswith("QLinear") or p.op in ("QGemm", "QuantizeLinear"))
