"""Graph helpers over one TFLite subgraph: who writes and reads each tensor, what crosses between
Edge TPU and CPU, and text clipped so a hostile file cannot make a report quadratic in its size."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set

from ..tflite_reader import Operator, Subgraph, Tensor, describe_tensor


def producers_of(sg: Subgraph) -> Dict[int, int]:
    """Tensor index -> the op that writes it. A valid graph writes each tensor once; for a hostile file
    that has many ops write one tensor, keeping only the first keeps every graph walk here linear in
    the file's size (10,000 writers and 10,000 readers of one tensor would otherwise be 10^8 edges)."""
    producer: Dict[int, int] = {}
    for op in sg.operators:
        for t in op.outputs:
            if t >= 0:
                producer.setdefault(t, op.index)
    return producer


def tensor_at(sg: Subgraph, index: int) -> Optional[Tensor]:
    return sg.tensors[index] if 0 <= index < len(sg.tensors) else None


def io_tensors(sg: Subgraph, indices: Sequence[int]) -> List[Tensor]:
    """The subgraph's input or output tensors, each once (a hostile file may list one a million times)."""
    found: List[Tensor] = []
    seen: Set[int] = set()
    for i in indices:
        t = tensor_at(sg, i)
        if t is not None and i not in seen:
            seen.add(i)
            found.append(t)
    return found


def describe_io(sg: Subgraph, indices: Sequence[int]) -> List[dict]:
    return [describe_tensor(t) for t in io_tensors(sg, indices)]


def tensor_table(sg: Subgraph) -> List[dict]:
    """Every tensor of the subgraph, as the JSON report lists it."""
    rows = []
    for t in sg.tensors:
        row = {"index": t.index}
        row.update(describe_tensor(t))
        row["buffer"] = t.buffer
        row["constant_bytes"] = t.data_bytes
        if t.is_variable:
            row["variable"] = True
        rows.append(row)
    return rows


def activation_tensors(sg: Subgraph, op: Operator) -> List[Tensor]:
    """The tensors the data-type, rank and shape rules look at (see the "dtype" rule for why)."""
    found = []
    for i in op.inputs:
        t = tensor_at(sg, i)
        if t is not None and not t.is_constant and not t.is_variable:
            found.append(t)
    for i in op.outputs:
        t = tensor_at(sg, i)
        if t is not None:
            found.append(t)
    return found


# Per-op text quotes tensor names, op names and shapes. A hostile file can have thousands of ops share
# one tensor with a megabyte name or a 100,000-dimension shape, so such text is clipped: the report
# stays linear in the file's size. (Real names and shapes are far below these limits.)
MAX_NAME = 256
MAX_DIMS = 8


def clip(text: str) -> str:
    return text if len(text) <= MAX_NAME else "%s...(%d characters)" % (text[:MAX_NAME], len(text))


def dims_text(dims: Sequence[int]) -> str:
    if len(dims) <= MAX_DIMS:
        return str(list(dims))
    return "[%s, ...] (%d dimensions)" % (", ".join(str(d) for d in dims[:MAX_DIMS]), len(dims))


def shape_text(t: Tensor) -> str:
    return "%s %s" % (t.dtype, dims_text(t.shape_signature if t.shape_signature is not None else t.shape))


def readers_of(sg: Subgraph) -> Dict[int, List[int]]:
    """Tensor index -> the ops that read it, in op order (each op once)."""
    readers: Dict[int, List[int]] = {}
    for op in sg.operators:
        for t in set(op.inputs):
            if t >= 0:
                readers.setdefault(t, []).append(op.index)
    return readers


def constant_bytes_of(sg: Subgraph, ops: Sequence[Operator]) -> int:
    seen: Set[int] = set()
    total = 0
    for op in ops:
        for i in op.inputs:
            t = tensor_at(sg, i)
            if t is not None and t.is_constant and t.buffer not in seen:
                seen.add(t.buffer)
                total += t.data_bytes
    return total


def mib(n: int) -> str:
    return "%.2f MiB" % (n / (1024.0 * 1024.0))


def crossing_tensors(sg: Subgraph, on_tpu: Sequence[bool]) -> List[dict]:
    """Tensors made on one side (Edge TPU or CPU) and read on the other."""
    producer = producers_of(sg)
    found: Dict[int, dict] = {}
    for op in sg.operators:
        for t in op.inputs:
            p = producer.get(t)
            if p is None or on_tpu[p] == on_tpu[op.index] or not 0 <= t < len(sg.tensors):
                continue
            item = found.get(t)
            if item is None:
                tensor = sg.tensors[t]
                item = found[t] = {
                    "tensor": t,
                    "name": tensor.name,
                    "dtype": tensor.dtype.lower(),
                    "shape": list(tensor.shape),
                    "from": "edgetpu" if on_tpu[p] else "cpu",
                    "to": "cpu" if on_tpu[p] else "edgetpu",
                    "producer": p,
                    "consumers": [],
                }
            item["consumers"].append(op.index)
    return [found[t] for t in sorted(found)]
