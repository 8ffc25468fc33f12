"""A small, strict reader for TFLite flatbuffers, with no dependency beyond the standard library.

Why our own: the host verifies what the converter wrote and the board inspects what it was sent,
and neither may depend on TensorFlow or on generated flatbuffer classes. Every offset and count is
checked against the file size before it is followed, so a truncated, bit-flipped or hostile file
raises `ModelFormatError` instead of crashing, hanging or allocating absurd amounts of memory. Because
flatbuffer offsets may point many times at the same table or vector, a bounds check alone does not
bound the work: a 1 MB file can claim 10,000 subgraphs that all point at one subgraph holding 250,000
tensors. So every table and vector element read is charged to a budget proportional to the file size,
and constant data is sliced from the file only when asked for.

Only the parts of the schema edgepipe uses are read (field numbers from the TFLite `schema.fbs`):
Model, OperatorCode, SubGraph, Tensor, QuantizationParameters, Operator, Buffer, Metadata.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import InputNotFoundError, ModelFormatError
from .schema import CUSTOM_OPCODE, builtin_name, tensor_type_name

FILE_IDENTIFIER = b"TFL3"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

# The largest .tflite file read, checked before reading: the whole file is held in memory, and a
# multi-gigabyte file on a board with little RAM would otherwise end in a MemoryError or the OOM
# killer. An Edge TPU model is far below this (its on-chip parameter cache is ~8 MiB; beyond that
# parameters stream from the host on every inference), and a flatbuffer holds at most 2 GiB.
MAX_MODEL_BYTES = 1 << 30

# Above these a file is not a model anyone can run; refusing early keeps a hostile count cheap.
_MAX_VECTOR = 50_000_000
_MAX_SUBGRAPHS = 10_000
# A real model stores every table and vector element it references at least once, in at least one
# byte, so reading it never needs more than about one unit of work per byte. Four per byte (plus a
# floor for tiny files) is generous for real models and still linear for hostile ones.
_WORK_PER_BYTE = 4
_WORK_FLOOR = 4096


@dataclass
class Quantization:
    scale: List[float] = field(default_factory=list)
    zero_point: List[int] = field(default_factory=list)
    quantized_dimension: int = 0

    @property
    def per_axis(self) -> bool:
        return len(self.scale) > 1


@dataclass
class Tensor:
    index: int
    name: str
    dtype: str
    shape: List[int]
    shape_signature: Optional[List[int]]
    buffer: int
    quantization: Optional[Quantization]
    data_bytes: int = 0
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data_bytes > 0

    @property
    def is_dynamic(self) -> bool:
        """True when any dimension is unknown until run time (-1 in the shape signature)."""
        sig = self.shape_signature if self.shape_signature is not None else self.shape
        return any(d < 0 for d in sig)


@dataclass
class Operator:
    index: int
    opcode_index: int
    name: str  # builtin name, or the custom code for CUSTOM ops
    builtin_code: int
    version: int
    inputs: List[int]
    outputs: List[int]
    custom_code: Optional[str] = None
    custom_options_size: int = 0  # bytes of custom options (a compiled Edge TPU op keeps its executable there)

    @property
    def is_custom(self) -> bool:
        return self.builtin_code == CUSTOM_OPCODE


@dataclass
class Subgraph:
    index: int
    name: str
    tensors: List[Tensor]
    inputs: List[int]
    outputs: List[int]
    operators: List[Operator]


@dataclass
class Model:
    path: str
    size_bytes: int
    sha256: str
    schema_version: int
    description: str
    subgraphs: List[Subgraph]
    buffer_sizes: List[int]
    metadata_names: List[str]
    raw: bytes = field(repr=False, default=b"")

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    @property
    def parameter_bytes(self) -> int:
        """Bytes of constant data (weights, biases) referenced by the main subgraph's tensors."""
        seen = set()
        total = 0
        for t in self.main.tensors:
            if t.is_constant and t.buffer not in seen:
                seen.add(t.buffer)
                total += t.data_bytes
        return total

    @property
    def compiled_for_edgetpu(self) -> bool:
        return any(op.name == EDGETPU_CUSTOM_OP for sg in self.subgraphs for op in sg.operators)

    def input_tensors(self) -> List[Tensor]:
        return [self.main.tensors[i] for i in self.main.inputs]

    def output_tensors(self) -> List[Tensor]:
        return [self.main.tensors[i] for i in self.main.outputs]

    def op_histogram(self) -> Dict[str, int]:
        """`{"CONV_2D v3": 2, ...}` over all subgraphs."""
        hist: Dict[str, int] = {}
        for sg in self.subgraphs:
            for op in sg.operators:
                key = "%s v%d" % (op.name, op.version)
                hist[key] = hist.get(key, 0) + 1
        return dict(sorted(hist.items()))

    def constant_bytes(self, tensor: Tensor) -> bytes:
        """The raw constant data behind a tensor (empty for activations)."""
        start, size = self._buffer_spans.get(tensor.buffer, (0, 0))
        return self.raw[start : start + size]

    # (start, size) in `raw` of each buffer a tensor uses; sliced on demand, because distinct buffers
    # of a hostile file may all span the same megabytes.
    _buffer_spans: Dict[int, Tuple[int, int]] = field(default_factory=dict, repr=False)


class _Buf:
    """Bounds-checked flatbuffer primitives over one bytes object."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.size = len(data)
        self.what = what
        self.work_left = _WORK_PER_BYTE * self.size + _WORK_FLOOR

    def spend(self, units: int) -> None:
        self.work_left -= units
        if self.work_left < 0:
            raise self.fail("it references far more tables and values than a %d-byte file can hold" % self.size)

    def fail(self, why: str) -> ModelFormatError:
        return ModelFormatError(
            "%s is not a valid TFLite model (%s)" % (self.what, why),
            hint="Re-export it, or check that the file was copied whole",
        )

    def need(self, pos: int, n: int, what: str) -> None:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise self.fail("%s at byte %d runs past the end of the %d-byte file" % (what, pos, self.size))

    def number(self, pos: int, fmt: str, what: str) -> Any:
        """The little-endian value of struct format `fmt` at `pos`; `what` names it in the error."""
        self.need(pos, struct.calcsize(fmt), what)
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def deref(self, pos: int) -> int:
        target = pos + self.number(pos, "I", "uint32")
        if target >= self.size:
            raise self.fail("offset at byte %d points outside the file" % pos)
        return target


class _Table:
    """One flatbuffer table: fields are looked up by their index in the schema."""

    def __init__(self, buf: _Buf, pos: int, kind: str) -> None:
        buf.spend(1)
        self.buf = buf
        self.pos = pos
        self.kind = kind
        vtable = pos - buf.number(pos, "i", "int32")
        vt_size = buf.number(vtable, "H", "uint16")
        if vt_size < 4 or vt_size % 2:
            raise buf.fail("%s table at byte %d has a malformed vtable" % (kind, pos))
        buf.need(vtable, vt_size, "vtable")
        self.vtable = vtable
        self.n_fields = (vt_size - 4) // 2

    def _field(self, index: int) -> int:
        if index >= self.n_fields:
            return 0
        off = self.buf.number(self.vtable + 4 + 2 * index, "H", "uint16")
        return self.pos + off if off else 0

    def scalar(self, index: int, fmt: str, default: int = 0):
        pos = self._field(index)
        if not pos:
            return default
        return self.buf.number(pos, fmt, "%s field %d" % (self.kind, index))

    def string(self, index: int) -> Optional[str]:
        pos = self._field(index)
        if not pos:
            return None
        start = self.buf.deref(pos)
        n = self.buf.number(start, "I", "uint32")
        self.buf.need(start + 4, n, "string")
        # Charged by length: many tensors may share one long name, and each read decodes a copy.
        self.buf.spend(1 + n // 4)
        return self.buf.data[start + 4 : start + 4 + n].decode("utf-8", "replace")

    def _vector(self, index: int, elem_size: int) -> Tuple[int, int]:
        pos = self._field(index)
        if not pos:
            return 0, 0
        start = self.buf.deref(pos)
        n = self.buf.number(start, "I", "uint32")
        if n > _MAX_VECTOR:
            raise self.buf.fail("%s field %d claims %d elements" % (self.kind, index, n))
        self.buf.need(start + 4, n * elem_size, "vector")
        return start + 4, n

    def present(self, index: int) -> bool:
        return bool(self._field(index))

    def numbers(self, index: int, fmt: str) -> List:
        size = struct.calcsize(fmt)
        start, n = self._vector(index, size)
        if not n:
            return []
        self.buf.spend(n)
        return list(struct.unpack_from("<%d%s" % (n, fmt), self.buf.data, start))

    def byte_span(self, index: int) -> Tuple[int, int]:
        return self._vector(index, 1)

    def tables(self, index: int, kind: str) -> List["_Table"]:
        start, n = self._vector(index, 4)
        return [_Table(self.buf, self.buf.deref(start + 4 * i), kind) for i in range(n)]

    def table(self, index: int, kind: str) -> Optional["_Table"]:
        pos = self._field(index)
        return _Table(self.buf, self.buf.deref(pos), kind) if pos else None


def read_model_bytes(data: bytes, name: str = "<bytes>") -> Model:
    """Parse a TFLite flatbuffer held in memory. Raises ModelFormatError on any inconsistency."""
    buf = _Buf(bytes(data), name)
    if buf.size < 8:
        raise buf.fail("only %d bytes" % buf.size)
    if data[4:8] != FILE_IDENTIFIER:
        source = _source_model_kind(bytes(data[:8]), name)
        if source:
            raise ModelFormatError(
                "%s is %s, not a TFLite model" % (name, source),
                hint="Convert it on the host first: `edgepipe convert %s -o MODEL_int8.tflite --calib DATA`" % name,
            )
        raise buf.fail("no 'TFL3' file identifier; found %r" % bytes(data[4:8]))
    try:
        return _read_model(buf, name)
    except ModelFormatError:
        raise
    except (struct.error, UnicodeError, IndexError, ValueError, RecursionError) as exc:
        raise buf.fail(type(exc).__name__) from exc


def _source_model_kind(head: bytes, name: str) -> str:
    """What a training framework's model file looks like ("" if nothing we know): those go to `convert`."""
    lower = name.lower()
    if head.startswith(b"\x89HDF"):
        return "a Keras HDF5 model"
    if head.startswith(b"PK\x03\x04") and lower.endswith(".keras"):
        return "a Keras model"
    if lower.endswith(".onnx"):
        return "an ONNX model"
    if lower.endswith((".keras", ".h5", ".hdf5")):
        return "a Keras model file"
    return ""


def read_model(path: str) -> Model:
    """Read a `.tflite` file from disk."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ModelFormatError(
                "%s is a TensorFlow SavedModel, not a TFLite model" % path,
                hint="Convert it on the host first: `edgepipe convert %s -o MODEL_int8.tflite --calib DATA`" % path,
            )
        raise ModelFormatError("%s is a directory, not a .tflite file" % path)
    # The whole file is read: a FIFO would block and /dev/zero would never end.
    if os.path.exists(path) and not os.path.isfile(path):
        raise ModelFormatError("%s is not a regular file, so not a .tflite model" % path, hint="Give a .tflite file")
    size = -1
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_MODEL_BYTES:
                raise _too_big(path, "is %d bytes" % size)
            # At most one byte past the limit, in case the file grows while it is read.
            data = fh.read(MAX_MODEL_BYTES + 1)
    except FileNotFoundError:
        raise InputNotFoundError("model file not found: %s" % path, hint="Check the path") from None
    except MemoryError:
        raise ModelFormatError(
            "not enough memory to read model file %s (%d bytes)" % (path, size),
            hint="Free memory or raise the process's memory limit; models up to %d bytes are read whole"
            % MAX_MODEL_BYTES,
        ) from None
    except OSError as exc:
        raise InputNotFoundError("cannot read model file %s: %s" % (path, exc.strerror)) from None
    if len(data) > MAX_MODEL_BYTES:
        raise _too_big(path, "grew past the limit while being read")
    return read_model_bytes(data, path)


def _too_big(path: str, what: str) -> ModelFormatError:
    return ModelFormatError(
        "model file %s %s, more than the %d-byte limit for a .tflite model" % (path, what, MAX_MODEL_BYTES),
        hint="Check that it is the right file; Edge TPU models are megabytes, not gigabytes",
    )


def _read_model(buf: _Buf, name: str) -> Model:
    root = _Table(buf, buf.deref(0), "Model")
    schema_version = root.scalar(0, "I")
    if schema_version != 3:
        raise buf.fail("schema version %d, expected 3" % schema_version)

    opcodes = []
    for t in root.tables(1, "OperatorCode"):
        deprecated = t.scalar(0, "b")
        code = max(deprecated, t.scalar(3, "i"))
        opcodes.append((code, t.string(1), t.scalar(2, "i", 1)))

    buffer_spans: List[Tuple[int, int]] = []
    for t in root.tables(4, "Buffer"):
        start, n = t.byte_span(0)
        if not n:
            # Models over 2 GiB keep data outside the flatbuffer, addressed from the file start.
            offset, size = t.scalar(1, "Q"), t.scalar(2, "Q")
            if offset > 1:
                buf.need(offset, size, "external buffer")
                start, n = offset, size
        buffer_spans.append((start, n))

    raw_subgraphs = root.tables(2, "SubGraph")
    if not raw_subgraphs:
        raise buf.fail("no subgraphs")
    if len(raw_subgraphs) > _MAX_SUBGRAPHS:
        raise buf.fail("%d subgraphs" % len(raw_subgraphs))
    subgraphs = [_read_subgraph(buf, i, sg, opcodes, buffer_spans) for i, sg in enumerate(raw_subgraphs)]

    metadata_names = [t.string(0) or "" for t in root.tables(6, "Metadata")]
    used = {t.buffer for sg in subgraphs for t in sg.tensors if t.data_bytes}
    model = Model(
        path=name,
        size_bytes=buf.size,
        sha256=hashlib.sha256(buf.data).hexdigest(),
        schema_version=schema_version,
        description=root.string(3) or "",
        subgraphs=subgraphs,
        buffer_sizes=[n for _, n in buffer_spans],
        metadata_names=metadata_names,
        raw=buf.data,
    )
    model._buffer_spans = {i: buffer_spans[i] for i in used}
    return model


def _check_indices(buf: _Buf, what: str, indices: Sequence[int], limit: int) -> None:
    for i in indices:
        # -1 marks an optional input that is absent.
        if i < -1 or i >= limit:
            raise buf.fail("%s refers to tensor %d of %d" % (what, i, limit))


def _read_subgraph(buf, index, sg, opcodes, buffer_spans) -> Subgraph:
    tensors = []
    for ti, t in enumerate(sg.tables(0, "Tensor")):
        type_code = t.scalar(1, "b")
        buffer_index = t.scalar(2, "I")
        if buffer_spans and buffer_index >= len(buffer_spans):
            raise buf.fail("tensor %d uses buffer %d of %d" % (ti, buffer_index, len(buffer_spans)))
        q = t.table(4, "QuantizationParameters")
        quant = None
        if q is not None:
            scale = q.numbers(2, "f")
            if scale:
                quant = Quantization(scale=scale, zero_point=q.numbers(3, "q"), quantized_dimension=q.scalar(6, "i"))
        tensors.append(
            Tensor(
                index=ti,
                name=t.string(3) or "",
                dtype=tensor_type_name(type_code),
                shape=t.numbers(0, "i"),
                shape_signature=t.numbers(7, "i") if t.present(7) else None,
                buffer=buffer_index,
                quantization=quant,
                data_bytes=buffer_spans[buffer_index][1] if buffer_spans else 0,
                is_variable=bool(t.scalar(5, "B")),
            )
        )
    n = len(tensors)
    inputs, outputs = sg.numbers(1, "i"), sg.numbers(2, "i")
    _check_indices(buf, "subgraph %d inputs" % index, inputs, n)
    _check_indices(buf, "subgraph %d outputs" % index, outputs, n)
    operators = []
    for oi, o in enumerate(sg.tables(3, "Operator")):
        opcode_index = o.scalar(0, "I")
        if opcode_index >= len(opcodes):
            raise buf.fail("operator %d uses opcode %d of %d" % (oi, opcode_index, len(opcodes)))
        code, custom, version = opcodes[opcode_index]
        op_in, op_out = o.numbers(1, "i"), o.numbers(2, "i")
        _check_indices(buf, "operator %d inputs" % oi, op_in, n)
        _check_indices(buf, "operator %d outputs" % oi, op_out, n)
        name = (custom or "CUSTOM") if code == CUSTOM_OPCODE else builtin_name(code)
        _, custom_options_size = o.byte_span(5)
        operators.append(Operator(oi, opcode_index, name, code, version, op_in, op_out, custom, custom_options_size))
    return Subgraph(index, sg.string(4) or "", tensors, inputs, outputs, operators)


def describe_tensor(t: Tensor) -> dict:
    """A JSON-ready summary of one tensor (used by reports on both host and device)."""
    out = {"name": t.name, "dtype": t.dtype.lower(), "shape": list(t.shape)}
    if t.shape_signature is not None and t.shape_signature != t.shape:
        out["shape_signature"] = list(t.shape_signature)
    if t.quantization is not None:
        q = t.quantization
        if q.per_axis:
            out["quantization"] = {"per_axis": True, "axis": q.quantized_dimension, "channels": len(q.scale)}
        else:
            out["quantization"] = {"scale": q.scale[0], "zero_point": q.zero_point[0] if q.zero_point else 0}
    return out
