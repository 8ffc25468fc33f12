"""Tiny TFLite flatbuffers written by hand, for the pre-flight tests.

The only way to get e.g. a CONV_2D v6, a rank-4 activation or any one op on its own without a
TensorFlow of that era. Field numbers are those of TFLite's `schema.fbs` (Model, OperatorCode,
SubGraph, Tensor, QuantizationParameters, Operator, Buffer). Tables may be shared, which the hostile
file tests exploit.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edgepipe.runtime.schema import BUILTIN_OPERATORS, TENSOR_TYPES


class Node:
    def __init__(self, kind: str, **fields: Any) -> None:
        self.kind = kind
        self.__dict__.update(fields)

    def children(self) -> List[Node]:
        if self.kind == "table":
            return [v for _, v in sorted(self.fields.items()) if isinstance(v, Node)]
        return list(self.items) if self.kind == "refs" else []


class Flatbuffer:
    """A minimal flatbuffer writer in which tables may be shared (which hostile files exploit).
    Tables are `{field_index: (struct_format, value) or Node}`. Objects are laid out parents first,
    so every offset points forward, as flatbuffers' unsigned offsets require."""

    @staticmethod
    def table(**fields: Any) -> Node:
        return Node("table", fields={int(k[1:]): v for k, v in fields.items()})

    @staticmethod
    def numbers(fmt: str, values: Sequence[Any], claim: Optional[int] = None) -> Node:
        return Node("numbers", fmt=fmt, values=list(values), claim=claim)

    @staticmethod
    def refs(nodes: Sequence[Node]) -> Node:
        return Node("refs", items=list(nodes))

    @staticmethod
    def string(text: str) -> Node:
        return Node("string", data=text.encode())

    @staticmethod
    def build(root: Node) -> bytes:
        order: List[Node] = []
        seen = set()
        stack = [(root, False)]
        while stack:  # iterative post-order; reversed, parents come before children
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(node.children()))
        order.reverse()
        out = bytearray(struct.pack("<I", 0) + b"TFL3")
        where: Dict[int, int] = {}
        slots: List[Tuple[int, Node]] = []
        for node in order:
            while len(out) % 4:
                out.append(0)
            if node.kind == "table":
                body, offsets, pending = bytearray(4), {}, []
                for index, value in sorted(node.fields.items()):
                    size = 4 if isinstance(value, Node) else struct.calcsize(value[0])
                    while len(body) % size:  # the flatbuffer verifier wants every field aligned
                        body.append(0)
                    offsets[index] = len(body)
                    if isinstance(value, Node):
                        pending.append((len(body), value))
                        body += bytes(4)
                    else:
                        body += struct.pack("<" + value[0], value[1])
                count = max(node.fields) + 1 if node.fields else 0
                vtable = struct.pack("<HH", 4 + 2 * count, len(body))
                vtable += b"".join(struct.pack("<H", offsets.get(i, 0)) for i in range(count))
                vtable_at = len(out)
                out += vtable
                while len(out) % 4:
                    out.append(0)
                table_at = len(out)
                struct.pack_into("<i", body, 0, table_at - vtable_at)
                slots.extend((table_at + at, child) for at, child in pending)
                out += body
                where[id(node)] = table_at
            elif node.kind == "numbers":
                # 8-byte elements (int64 zero points) must start on an 8-byte boundary.
                while struct.calcsize(node.fmt) == 8 and (len(out) + 4) % 8:
                    out += bytes(4)
                where[id(node)] = len(out)
                claim = len(node.values) if node.claim is None else node.claim
                out += struct.pack("<I", claim) + struct.pack("<%d%s" % (len(node.values), node.fmt), *node.values)
            elif node.kind == "refs":
                where[id(node)] = len(out)
                out += struct.pack("<I", len(node.items))
                for item in node.items:
                    slots.append((len(out), item))
                    out += bytes(4)
            else:
                where[id(node)] = len(out)
                out += struct.pack("<I", len(node.data)) + node.data + b"\0"
        struct.pack_into("<I", out, 0, where[id(root)])
        for at, target in slots:
            assert where[id(target)] > at
            struct.pack_into("<I", out, at, where[id(target)] - at)
        return bytes(out)


FB = Flatbuffer
TYPE = {name: code for code, name in enumerate(TENSOR_TYPES)}


def opcode(name: str, version: int = 1, custom: Optional[str] = None) -> Node:
    code = BUILTIN_OPERATORS.index(name)
    fields: Dict[str, Any] = {"f0": ("b", min(code, 127)), "f2": ("i", version), "f3": ("i", code)}
    if custom:
        fields["f1"] = FB.string(custom)
    return FB.table(**fields)


def tensor(
    shape: Sequence[int],
    dtype: str = "INT8",
    name: str = "t",
    buffer: int = 0,
    signature: Optional[List[int]] = None,
    scales: Optional[Sequence[float]] = None,
    variable: bool = False,
) -> Node:
    fields: Dict[str, Any] = {
        "f0": FB.numbers("i", shape),
        "f1": ("b", TYPE[dtype]),
        "f2": ("I", buffer),
        "f3": FB.string(name),
    }
    if scales is not None:
        fields["f4"] = FB.table(f2=FB.numbers("f", scales), f3=FB.numbers("q", [0] * len(scales)), f6=("i", 0))
    if variable:
        fields["f5"] = ("B", 1)
    if signature is not None:
        fields["f7"] = FB.numbers("i", signature)
    return FB.table(**fields)


def op(opcode_index: int, inputs: Sequence[int], outputs: Sequence[int]) -> Node:
    return FB.table(f0=("I", opcode_index), f1=FB.numbers("i", inputs), f2=FB.numbers("i", outputs))


def model(
    opcodes: Sequence[Node],
    tensors: Sequence[Node],
    ops: Sequence[Node],
    inputs: Sequence[int],
    outputs: Sequence[int],
    buffers: Sequence[bytes] = (),
) -> bytes:
    subgraph = FB.table(f0=FB.refs(tensors), f1=FB.numbers("i", inputs), f2=FB.numbers("i", outputs), f3=FB.refs(ops))
    # Buffer 0 is the empty sentinel every TFLite file starts with.
    buffer_tables = [FB.table(f0=FB.numbers("B", list(data))) if data else FB.table() for data in (b"", *buffers)]
    return FB.build(FB.table(f0=("I", 3), f1=FB.refs(opcodes), f2=FB.refs([subgraph]), f4=FB.refs(buffer_tables)))


# --- one op on its own --------------------------------------------------------------------------------

# An input: ("act", shape, dtype) is an activation (a graph input); ("const", shape, dtype, data) a constant.
Input = Tuple[Any, ...]


def act(shape: Sequence[int], dtype: str = "INT8") -> Input:
    return ("act", list(shape), dtype)


def const(shape: Sequence[int], dtype: str, data: bytes) -> Input:
    return ("const", list(shape), dtype, data)


def ints(values: Sequence[int]) -> Input:
    """A constant int32 vector (axes, shapes, paddings, strides, multiples)."""
    return const([len(values)], "INT32", struct.pack("<%di" % len(values), *values))


def scalar_int(value: int) -> Input:
    return const([], "INT32", struct.pack("<i", value))


def variable(shape: Sequence[int], dtype: str) -> Input:
    """A variable tensor (e.g. LSTM state): a graph input the interpreter keeps between invokes."""
    return ("var", list(shape), dtype)


ABSENT: Input = ("absent",)  # an optional input left out (index -1)


def single_op(
    name: str,
    inputs: Sequence[Input],
    outputs: Sequence[Sequence[int]],
    *,
    version: int = 1,
    out_dtype: str = "INT8",
    scales: Optional[Dict[int, Sequence[float]]] = None,
    signatures: Optional[Dict[int, List[int]]] = None,
) -> bytes:
    """A model holding one op: activations are graph inputs, constants live in buffers, every output
    is a graph output. `scales` gives quantization scales per input position (per-axis if several),
    `signatures` shape signatures per input position (-1: unknown until run time)."""
    tensors: List[Node] = []
    buffers: List[bytes] = []
    graph_inputs: List[int] = []
    op_inputs: List[int] = []
    for position, spec in enumerate(inputs):
        q = (scales or {}).get(position)
        if spec[0] == "absent":
            op_inputs.append(-1)
            continue
        op_inputs.append(len(tensors))
        if spec[0] in ("act", "var"):
            graph_inputs.append(len(tensors))
            sig = (signatures or {}).get(position)
            tensors.append(
                tensor(spec[1], spec[2], "in%d" % position, scales=q, variable=spec[0] == "var", signature=sig)
            )
        else:
            buffers.append(spec[3])
            tensors.append(tensor(spec[1], spec[2], "const%d" % position, buffer=len(buffers), scales=q))
    out_indices = list(range(len(tensors), len(tensors) + len(outputs)))
    tensors.extend(tensor(shape, out_dtype, "out%d" % i) for i, shape in enumerate(outputs))
    return model(
        [opcode(name, version)],
        tensors,
        [op(0, op_inputs, out_indices)],
        graph_inputs,
        out_indices,
        buffers=buffers,
    )
