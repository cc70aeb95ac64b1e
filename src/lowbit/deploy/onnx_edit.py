"""A small editable view of an ONNX graph for the lowering passes (``onnx_lower``): nodes with mutable inputs,
constants by name, producer/consumer maps kept up to date, and a writer that sorts, prunes and checks."""

from __future__ import annotations

from typing import Any

import numpy as np

MS_DOMAIN = "com.microsoft"


def module_path(node_name: str) -> str:
    """The module path in a torch.onnx node name: "/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1"."""
    parts = [p for p in node_name.split("/") if p][:-1]
    path, prev = "", ""
    for p in parts:  # a Sequential's child is named "<parent attribute>.<index>" after its parent's component
        path = p if not path else path + p[len(prev) :] if p.startswith(prev + ".") else f"{path}.{p}"
        prev = p
    return path


class Node:
    """One node: ``op``, ``inputs``/``outputs`` (tensor names, mutable), ``domain``, ``name`` and attributes."""

    def __init__(self, proto, scope: str | None = None):
        self.proto = proto
        self.op, self.domain, self.name = proto.op_type, proto.domain, proto.name
        self.inputs, self.outputs = list(proto.input), list(proto.output)
        self.scope = module_path(proto.name) if scope is None else scope  # the module it belongs to
        self.planned = False  # part of a lowered layer (kept float on purpose, e.g. a bias Add)

    def attr(self, name: str, default: Any = None) -> Any:
        from onnx import helper

        for a in self.proto.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def attrs(self) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in self.proto.attribute}

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(self.inputs)}) -> {', '.join(self.outputs)}"


class Graph:
    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        g = model.graph
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.nodes: list[Node] = []
        outputs = {o.name for o in g.output}
        for p in g.node:
            if p.op_type == "Constant" and len(p.attribute) == 1 and p.attribute[0].name == "value":
                self.consts[p.output[0]] = numpy_helper.to_array(p.attribute[0].t)
            elif p.op_type == "Identity" and p.input[0] in self.consts and p.output[0] not in outputs:
                self.consts[p.output[0]] = self.consts[p.input[0]]  # torch.onnx shares equal initializers this way
            else:
                self.nodes.append(Node(p))
        self.inputs = [i for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]
        self.output_info = list(g.output)
        self.ranks: dict[str, int] = {}
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.ranks[vi.name] = len(t.shape.dim)
        self._producer: dict[str, Node] = {}
        self._consumers: dict[str, list[Node]] = {}
        for n in self.nodes:
            self._index(n)
        self.count = 0

    # ------------------------------------------------------------------ maps
    def _index(self, n: Node) -> None:
        for o in n.outputs:
            self._producer[o] = n
        for i in n.inputs:
            self._consumers.setdefault(i, []).append(n)

    def producer(self, name: str) -> Node | None:
        return self._producer.get(name)

    def consumers(self, name: str) -> list[Node]:
        return list(self._consumers.get(name, []))

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def is_output(self, name: str) -> bool:
        return name in self.outputs

    # ------------------------------------------------------------------ edits
    def fresh(self, base: str) -> str:
        self.count += 1
        return f"{base.strip('/').replace('/', '_').replace('.', '_')}_{self.count}"

    def add_const(self, arr: Any, base: str) -> str:
        name = self.fresh(base)
        self.consts[name] = np.asarray(arr)
        return name

    def add(self, op: str, inputs: list[str], base: str, domain: str = "", n_out: int = 1, **attrs) -> Any:
        """Add a node; returns its output name (a list of names when ``n_out`` > 1)."""
        from onnx import helper

        name = self.fresh(f"{base}_{op}")
        outs = [name] if n_out == 1 else [f"{name}_{k}" for k in range(n_out)]
        n = Node(helper.make_node(op, inputs, outs, name=name, domain=domain or None, **attrs), scope=base)
        self.nodes.append(n)
        self._index(n)
        return outs[0] if n_out == 1 else outs

    def set_input(self, n: Node, k: int, name: str) -> None:
        old = n.inputs[k]
        users = self._consumers.get(old, [])
        if n in users:
            users.remove(n)
        n.inputs[k] = name
        self._consumers.setdefault(name, []).append(n)

    def rewire(self, old: str, new: str) -> None:
        """Every reader of tensor ``old`` (graph outputs included) reads ``new`` instead."""
        for n in self.consumers(old):
            for k, i in enumerate(n.inputs):
                if i == old:
                    self.set_input(n, k, new)
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove(self, n: Node) -> None:
        self.nodes.remove(n)
        for o in n.outputs:
            if self._producer.get(o) is n:
                del self._producer[o]
        for i in n.inputs:
            users = self._consumers.get(i, [])
            if n in users:
                users.remove(n)

    def prune(self) -> None:
        """Drop nodes none of whose outputs is read (repeatedly): what a rewrite left behind."""
        changed = True
        while changed:
            changed = False
            for n in list(self.nodes):
                if not any(self._consumers.get(o) or o in self.outputs for o in n.outputs):
                    self.remove(n)
                    changed = True

    # ------------------------------------------------------------------ writing
    def to_model(self):
        """The ``ModelProto``: nodes in topological order, dead nodes and unused constants dropped, checked."""
        from onnx import checker, helper, numpy_helper

        live, stack = set(), list(self.outputs)
        while stack:
            t = stack.pop()
            p = self._producer.get(t)
            if p is not None and id(p) not in live:
                live.add(id(p))
                stack.extend(i for i in p.inputs if i)
        order, done, produced = [], set(), {i.name for i in self.inputs} | set(self.consts)
        pending = [n for n in self.nodes if id(n) in live]
        while pending:
            rest = []
            for n in pending:
                if all(not i or i in produced for i in n.inputs):
                    order.append(n)
                    produced.update(n.outputs)
                    done.add(id(n))
                else:
                    rest.append(n)
            if len(rest) == len(pending):
                raise RuntimeError(f"export_onnx: the lowered graph has a cycle or a missing input at {rest[0]}")
            pending = rest
        used = {i for n in order for i in n.inputs} | set(self.outputs)
        protos = []
        for n in order:
            p = n.proto
            del p.input[:]
            p.input.extend(n.inputs)
            del p.output[:]
            p.output.extend(n.outputs)
            protos.append(p)
        for declared, actual in zip([o.name for o in self.output_info], self.outputs):
            if declared != actual:  # the tensor the output names was rewired: keep the declared name
                protos.append(helper.make_node("Identity", [actual], [declared], name=f"{declared}_Identity"))
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in self.consts.items() if k in used]
        g = helper.make_graph(protos, self.model.graph.name, self.inputs, self.output_info, inits)
        opsets = {o.domain: o.version for o in self.model.opset_import}
        if any(n.domain == MS_DOMAIN for n in order):
            opsets[MS_DOMAIN] = 1
        out = helper.make_model(
            g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], producer_name="lowbit"
        )
        out.ir_version = self.model.ir_version
        checker.check_model(out)
        return out


def scope_of(n: Node) -> str:
    """The module path a node belongs to (the name new nodes made for it are built from)."""
    return n.scope or "model"


def planned(g: Graph, t: str) -> str:
    """Mark the node producing ``t`` as float on purpose (part of a lowered layer): not a float island."""
    g.producer(t).planned = True
    return t
