"""`edgepipe inspect`: what is in a .tflite model, and what `edgetpu_compiler` 16 will do with it.

TensorFlow-free and Python 3.7 compatible, so it runs on a laptop without the compiler (which exists
only for x86-64 Debian) and on the board itself (`python -m edgepipe.runtime inspect MODEL`).

Uncompiled model: a per-op pre-flight. Each op is "mapped" or gets the reason it would not be, in the
compiler's own status wording where one exists (REFERENCE.md §1.9). The rules are the `RULES` table
below; each names its source and whether the public facts make it certain. Every source is
`/work/shared/edgetpu/REFERENCE.md` (§n), a real compiler output in `edgetpu/compiler_logs/` ("log NN"),
a real uncompiled/compiled pair in `models/coral-test-data/` ("... pair"), or a google-coral/edgetpu
issue ("#n").

Which ops end up on the CPU after the first unmapped one is decided by data dependence, not by operator
index: the compiler applies its mapping as a TFLite delegate (log 15 prints TFLite's "Restored original
execution plan after delegate application failure"), and TFLite splits a graph for a delegate into
alternating supported / unsupported node sets by data dependence (tensorflow/lite/graph_info.cc,
`PartitionGraphIntoIndependentNodeSubsets`). The compiler keeps the *first* supported set, not the
largest: logs 07 and 08 map 2 and 1 ops although hundreds of supported ops follow. Unsupported ops
ahead of that set do not end it: log 09's float-input QUANTIZE stays on the CPU while every later op
maps. Every supported op in a later set is "More than one subgraph is not supported" (#30, #461),
unless the experimental multiple-subgraph mode (`-a`) is on. On the deeplab pairs this model gives the
compiler's exact split, down to the tensors the compiled op outputs.

Compiled model: which ops are `edgetpu-custom-op` nodes, which stayed on the CPU, and which tensors
cross between them. Such a model needs the Edge TPU delegate; it cannot run on the CPU.

JSON contract (`InspectReport`, stable keys): `compiled_for_edgetpu`, `ops_total`, `tpu_ops`
(uncompiled: predicted mapped ops; compiled: edgetpu-custom-op nodes), `cpu_ops`, `ops` (each with
`index`, `name`, `version`, and for uncompiled models `edgetpu`: "mapped" or the reason), plus
`first_cpu_op`, `tensors_crossing`, `subgraphs`, parameter bytes, `tensors`, `warnings`.

Hostile files: the reader bounds the work per file byte; here every graph walk is linear in the
number of ops and tensor references, and per-op text clips names and shapes (see `_clip`).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

from .errors import EdgepipeError, ModelFormatError
from .op_versions import BEYOND_TABLE, release_of
from .report import RESULT_SCHEMA_VERSION, dumps
from .schema import BUILTIN_OPERATORS
from .tflite_reader import EDGETPU_CUSTOM_OP, Model, Operator, Subgraph, Tensor, describe_tensor, read_model

# --- the compiler's statuses (REFERENCE §1.9, verbatim) -------------------------------------------

MAPPED = "mapped"
NOT_SUPPORTED = "Operation not supported"
UNSUPPORTED_DTYPE = "Operation is working on an unsupported data type"
UNSUPPORTED_RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
VERSION_NOT_SUPPORTED = "Operation version not supported"
NON_UNIT_STRIDES = "Only Strided-Slice with unitary strides supported"
MORE_THAN_ONE_SUBGRAPH = "More than one subgraph is not supported"
OTHERWISE_NOT_MAPPED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
# Seen from compiler 2.0 only (#25); REFERENCE §2.1 lists constant parameters as a requirement.
PARAM_NOT_CONSTANT = "Filter, bias, or other param is not constant at compile-time"
# No compiler status for these is public; the first is edgepipe's wording, the second the compiler's
# error line for the whole model (REFERENCE §1.7).
DYNAMIC_SHAPE = "Tensor has a dynamic shape (edgepipe's wording: no compiler status for this is public)"
UNRESOLVED_CUSTOM_OP = "Encountered unresolved custom op"


@dataclass(frozen=True)
class Rule:
    id: str
    applies_to: str
    status: str
    source: str
    certain: bool


# Tried in this order; the first that applies decides the op. Op-level reasons come before the
# subgraph rule because the compiler reports them even for ops after the cut (logs 07, 08: every
# LEAKY_RELU "Operation not supported", every non-unit STRIDED_SLICE its own status), and the data
# type check comes before the op list because DEQUANTIZE and the detection CUSTOM op, both absent
# from the list, are reported as "unsupported data type" (logs 09, 12).
RULES: Tuple[Rule, ...] = (
    Rule(
        "unresolved-custom-op",
        "custom op the compiler's TFLite interpreter has no kernel for (anything but "
        "TFLite_Detection_PostProcess); the compile then fails as a whole",
        UNRESOLVED_CUSTOM_OP,
        "REFERENCE §1.7 ('Encountered unresolved custom op: Atan' in three project READMEs); log 12 "
        "(TFLite_Detection_PostProcess compiles)",
        False,
    ),
    Rule(
        "quantize-float-input",
        "QUANTIZE whose input is float (the float→int8 step of a float-I/O model)",
        OTHERWISE_NOT_MAPPED,
        "log 09 (MNIST with float I/O, v15: the input QUANTIZE on the CPU, all later ops mapped)",
        True,
    ),
    Rule(
        "dtype",
        "an activation (input that is neither constant nor a variable, or any output) not INT8/UINT8. "
        "Constant inputs are exempt: weights, int32 biases and shape/axis/padding operands are "
        "compile-time parameters the compiler folds in (REFERENCE §2.1: parameters must be constant). "
        "Variables are exempt: LSTM state stays a tensor of the compiled op (the keras_lstm pair keeps "
        "its INT16 state as an input of edgetpu-custom-op)",
        UNSUPPORTED_DTYPE,
        "REFERENCE §1.9; logs 09, 12 (DEQUANTIZE, CUSTOM on float); #222",
        True,
    ),
    Rule(
        "unsupported-op",
        "op not in the Edge TPU op set (REFERENCE §2.2, see EDGETPU_OPS)",
        NOT_SUPPORTED,
        "REFERENCE §2.2 (coral.ai table); logs 07 (LEAKY_RELU), 08 (TRANSPOSE, compiler 15)",
        True,
    ),
    Rule(
        "op-version",
        "op version from a TensorFlow newer than compiler 16's TFLite (see op_versions.py); the "
        "compiler then rejects the whole model ('Didn't find op for builtin opcode')",
        VERSION_NOT_SUPPORTED,
        "REFERENCE §1.7, §2.3 (#631 CONV_2D v6, #879 QUANTIZE v3, #845 TRANSPOSE_CONV v4, "
        "libedgetpu#71 EXP v2); TensorFlow runtime_version.cc for each version's release; certain "
        "for versions from TF 2.8 on or with a public rejection, uncertain for TF 2.7",
        True,
    ),
    Rule(
        "param-not-constant",
        "CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV whose filter or bias is computed at "
        "run time (e.g. a matmul of two activations) instead of being a constant of the file",
        PARAM_NOT_CONSTANT,
        "#25 (FULLY_CONNECTED, compiler 2.0.267685300, this status verbatim); REFERENCE §2.1 (coral.ai: "
        "parameters such as bias tensors constant at compile time)",
        True,
    ),
    Rule(
        "dynamic",
        "an activation whose size is unknown until run time: -1 in the stored shape, or in the shape "
        "signature anywhere but the batch dimension (a dynamic batch alone is a model warning: the "
        "stored shape holds batch 1)",
        DYNAMIC_SHAPE,
        "REFERENCE §2.1 (coral.ai: tensor sizes constant at compile time, unverified); no compiler "
        "output for it is public",
        False,
    ),
    Rule(
        "rank",
        "an activation with more than 3 dimensions where any but the 3 innermost is larger than 1",
        UNSUPPORTED_RANK,
        "REFERENCE §1.9, §2.1 (#30 batch 30, #75, #708)",
        True,
    ),
    Rule(
        "strided-slice-stride",
        "STRIDED_SLICE whose constant strides (4th input) hold a value other than 1",
        NON_UNIT_STRIDES,
        "REFERENCE §1.9; log 08 (yolov5s)",
        True,
    ),
    Rule(
        "resize-size",
        "RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR whose output is more than 2x its input along height "
        "or width. coral.ai only says that, depending on input/output size, resizes may not map; no "
        "threshold is published. 2x is the largest factor seen mapped (logs 10, 12); the deeplab pair's "
        "1x1→33x33 resize is where its mapping stops, and the cityscapes pair leaves its 33x33→513x513 "
        "resize as its first CPU op",
        OTHERWISE_NOT_MAPPED,
        "#31 (status for a size-rejected resize), #206, #597 (maintainer: 'not mapped to TPU due to "
        "their size'); deeplab and cityscapes pairs; logs 10, 12",
        False,
    ),
    Rule(
        "after-first-cpu-op",
        "otherwise supported op that depends on an op left on the CPU, so it is not in the first Edge "
        "TPU subgraph (off with multiple_subgraphs=True, the compiler's experimental -a). The compiler "
        "sometimes words it 'Operation is otherwise supported, but not mapped due to some unspecified "
        "limitation' for QUANTIZE/RESHAPE/CONCATENATION at the output (logs 01, 07, 08)",
        MORE_THAN_ONE_SUBGRAPH,
        "REFERENCE §2.1 (#30, #461); logs 01, 07, 08; deeplab pair",
        True,
    ),
    Rule(
        "mapped",
        "every other op; uncertain when the op was never seen mapped in a real compiler output, when its "
        "version is from TF 2.5-2.6, for resizes (size limits unpublished), and for FULLY_CONNECTED with "
        "per-axis (per-channel) weights, which TF 2.21 writes but the TFLite int8 spec lists only for "
        "convolutions: no public compiler output shows what compiler 16 does with them (REFERENCE §1.7, §6), "
        "and for TILE other than the one form seen mapped (TILE_SEEN)",
        MAPPED,
        "see EDGETPU_OPS",
        True,
    ),
)
RULE = {rule.id: rule for rule in RULES}

# The Edge TPU op set (REFERENCE §2.2, coral.ai's table in TFLite builtin names), with where each op
# was seen supported by a real compiler. Empty: only coral.ai's table says so, hence uncertain.
EDGETPU_OPS: Dict[str, str] = {
    "ADD": "logs 02, 04, 12; deeplab pair",
    "AVERAGE_POOL_2D": "log 04; mobilenet_v1, deeplab pairs",
    "CONCATENATION": "logs 10, 12",
    "CONV_2D": "logs 02-07, 09-12; all pairs",
    "DEPTHWISE_CONV_2D": "logs 02-04, 12; mobilenet_v1, deeplab pairs",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "logs 02, 04-06, 09; keras_lstm pair",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "log 12",
    "LSTM": "",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "keras_lstm pair",
    "MAXIMUM": "",
    "MAX_POOL_2D": "logs 01, 05-07, 09, 10, 12",
    "MEAN": "log 02",
    "MINIMUM": "",
    "MUL": "log 08 (reported past the cut, i.e. supported)",
    "PACK": "",
    "PAD": "log 08 (reported past the cut, i.e. supported)",
    "PRELU": "",
    "QUANTIZE": "logs 01-03, 05, 12; keras_lstm pair",
    "REDUCE_MAX": "",
    "REDUCE_MIN": "",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "logs 05, 06, 09, 12; mobilenet_v1, keras_lstm pairs",
    "RESIZE_BILINEAR": "cityscapes pair (a 33x33 to 33x33 resize inside the compiled op)",
    "RESIZE_NEAREST_NEIGHBOR": "logs 10, 12",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "logs 02, 04-06, 09; mobilenet_v1, keras_lstm pairs",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "",
    "SQUEEZE": "",
    "STRIDED_SLICE": "log 08 (reported past the cut, i.e. supported)",
    "SUB": "log 08 (reported past the cut, i.e. supported)",
    "SUM": "",
    "SQUARED_DIFFERENCE": "",
    "TANH": "",
    # Not in coral.ai's table as REFERENCE §2.2 quotes it, yet Google's own compiled cityscapes model
    # maps it: its edgetpu-custom-op outputs only the tensor after TILE, QUANTIZE, CONCATENATION and
    # two CONV_2D, so all of them ran inside it. Seen only there, so see TILE_SEEN for what is certain.
    "TILE": "cityscapes pair (TILE v1, uint8 [1, 1, 1, 128] tiled to [1, 33, 33, 128])",
    # coral.ai lists it, yet compiler 15 answered "Operation not supported" (log 08).
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}

# What the one real TILE seen mapped did (cityscapes pair): constant multiples that repeat only along
# height and width of a rank-4 activation. Any other TILE is believed to map but is uncertain.
TILE_SEEN = "constant multiples [1, h, w, 1] on a rank-4 activation (cityscapes pair)"

# Inputs that must be compile-time constants: filter and bias (TRANSPOSE_CONV: output shape 0, filter 1,
# input 2, bias 3). Positions from TFLite's op definitions.
PARAMETER_INPUTS: Dict[str, Tuple[int, ...]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
}

# Custom ops the compiler's interpreter resolves (log 12 compiles a model holding it).
KNOWN_CUSTOM_OPS = ("TFLite_Detection_PostProcess",)

# Op versions with a public "Didn't find op for builtin opcode" from compiler 16 (REFERENCE §2.3).
REJECTED_VERSIONS = {
    ("CONV_2D", 6): "#631",
    ("QUANTIZE", 3): "#879",
    ("TRANSPOSE_CONV", 4): "#845, log 13",
    ("EXP", 2): "google-coral/libedgetpu#71",
}
# Versions compilers 14.1/15 refused to map ("Operation version not supported"): half-pixel-centre
# resizes from TF 2.x. Compiler 16's answer is not public; log 12 (v16) maps 12 nearest-neighbour resizes.
OLD_COMPILER_VERSION_LIMITS = {
    "RESIZE_NEAREST_NEIGHBOR": (3, "logs 01, 07, 08; #420"),
    "RESIZE_BILINEAR": (3, "#396"),
}
# Builtin codes from TF 2.8 on (RANDOM_STANDARD_NORMAL = 146) are unknown to compiler 16: #862 shows
# "Op builtin_code out of range: 151".
FIRST_UNKNOWN_BUILTIN_CODE = BUILTIN_OPERATORS.index("RANDOM_STANDARD_NORMAL")

ACTIVATION_DTYPES = ("INT8", "UINT8")
FLOAT_DTYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")

# About 8 MiB of on-chip SRAM caches parameters (REFERENCE §5.1). What is usable varies per compile:
# used + remaining was 8.05 MiB (log 08), 7.50 MiB (log 11), and as little as 6.89 MiB (#512).
ON_CHIP_CACHE_BYTES = 8 * 1024 * 1024
SMALLEST_CACHE_SEEN_BYTES = int(6.89 * 1024 * 1024)


@dataclass
class OpVerdict:
    index: int
    name: str
    version: int
    edgetpu: str  # "mapped", or the reason it would not be (the compiler's status wording where one exists)
    rule: str  # id of the RULES entry that decided
    certain: bool  # False where the public facts are unclear
    outputs: List[str]  # names of the op's output tensors (where in the source model it came from)
    detail: str = ""
    custom_code: Optional[str] = None


@dataclass
class CompiledOp:
    index: int
    name: str
    version: int
    on: str  # "edgetpu" or "cpu"


@dataclass
class InspectReport:
    schema_version: int  # of the JSON results, as in the runner's (report.RESULT_SCHEMA_VERSION)
    kind: str  # "inspect"
    path: str
    sha256: str
    size_bytes: int
    compiled_for_edgetpu: bool
    ops_total: int
    tpu_ops: int  # uncompiled: predicted mapped ops; compiled: number of edgetpu-custom-op nodes
    cpu_ops: int  # uncompiled: predicted ops on the CPU; compiled: ops left on the CPU
    subgraphs: int  # Edge TPU subgraphs: predicted (uncompiled) or edgetpu-custom-op nodes (compiled)
    parameter_bytes: int  # constant data in the file (compiled: only what the CPU ops use)
    tpu_parameter_bytes: Optional[int]  # uncompiled: constants of the mapped ops, what the on-chip cache holds
    on_chip_cache_bytes: int
    off_chip_warning: Optional[str]
    inputs: List[dict]
    outputs: List[dict]
    ops: List[Union[OpVerdict, CompiledOp]]
    first_cpu_op: Optional[dict]
    tensors_crossing: List[dict]  # tensors passing between Edge TPU and CPU ops (predicted or actual)
    needs_edgetpu_delegate: bool
    multiple_subgraphs: bool
    uncertain_ops: int  # uncompiled: verdicts resting on unclear public facts
    compile_blockers: List[str]  # what makes edgetpu_compiler reject the whole model, not just ops
    edgetpu_executable_bytes: Optional[int]  # compiled: custom options of the Edge TPU ops
    tflite_subgraphs: int  # subgraphs in the file (more than one: control flow; only the main one is inspected)
    buffers: int  # entries in the file's buffer table (entry 0 is the empty sentinel)
    tensors: List[dict]  # every tensor of the main subgraph: dtype, shape, signature, quantization, constant bytes
    warnings: List[str] = field(default_factory=list)


# --- entry points ---------------------------------------------------------------------------------


def inspect_file(path: "Union[str, os.PathLike[str]]", *, multiple_subgraphs: bool = False) -> InspectReport:
    return inspect_model(read_model(path), multiple_subgraphs=multiple_subgraphs)


def inspect_model(model: Union[Model, str, "os.PathLike[str]"], *, multiple_subgraphs: bool = False) -> InspectReport:
    """The report for one model. A pure function of the Model (a path is read first, for convenience)."""
    if not isinstance(model, Model):
        return inspect_file(model, multiple_subgraphs=multiple_subgraphs)
    if model.compiled_for_edgetpu:
        return _inspect_compiled(model, multiple_subgraphs)
    return _inspect_uncompiled(model, multiple_subgraphs)


# --- uncompiled: the pre-flight -------------------------------------------------------------------


class _Check:
    """One op's verdict from its own properties, before the subgraph rule."""

    def __init__(self, rule: str, certain: bool, detail: str = "", status: Optional[str] = None) -> None:
        self.rule = rule
        self.certain = certain
        self.detail = detail
        self.status = status or RULE[rule].status

    @property
    def on_tpu(self) -> bool:
        return self.rule == "mapped"


def _producers(sg: Subgraph) -> Dict[int, int]:
    """Tensor index -> the op that writes it. A valid graph writes each tensor once; for a hostile file
    that has many ops write one tensor, keeping only the first keeps every graph walk here linear in
    the file's size (10,000 writers and 10,000 readers of one tensor would otherwise be 10^8 edges)."""
    producer: Dict[int, int] = {}
    for op in sg.operators:
        for t in op.outputs:
            if t >= 0:
                producer.setdefault(t, op.index)
    return producer


def _tensor(sg: Subgraph, index: int) -> Optional[Tensor]:
    return sg.tensors[index] if 0 <= index < len(sg.tensors) else None


def _io_tensors(sg: Subgraph, indices: Sequence[int]) -> List[Tensor]:
    """The subgraph's input or output tensors, each once (a hostile file may list one a million times)."""
    found: List[Tensor] = []
    seen: Set[int] = set()
    for i in indices:
        t = _tensor(sg, i)
        if t is not None and i not in seen:
            seen.add(i)
            found.append(t)
    return found


def _describe_io(sg: Subgraph, indices: Sequence[int]) -> List[dict]:
    return [describe_tensor(t) for t in _io_tensors(sg, indices)]


def _tensor_table(sg: Subgraph) -> List[dict]:
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


def _activations(sg: Subgraph, op: Operator) -> List[Tensor]:
    """The tensors the data-type, rank and shape rules look at (see the "dtype" rule for why)."""
    found = []
    for i in op.inputs:
        t = _tensor(sg, i)
        if t is not None and not t.is_constant and not t.is_variable:
            found.append(t)
    for i in op.outputs:
        t = _tensor(sg, i)
        if t is not None:
            found.append(t)
    return found


# Per-op text quotes tensor names, op names and shapes. A hostile file can have thousands of ops share
# one tensor with a megabyte name or a 100,000-dimension shape, so such text is clipped: the report
# stays linear in the file's size. (Real names and shapes are far below these limits.)
_MAX_NAME = 256
_MAX_DIMS = 8


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_NAME else "%s...(%d characters)" % (text[:_MAX_NAME], len(text))


def _dims(dims: Sequence[int]) -> str:
    if len(dims) <= _MAX_DIMS:
        return str(list(dims))
    return "[%s, ...] (%d dimensions)" % (", ".join(str(d) for d in dims[:_MAX_DIMS]), len(dims))


def _shape_text(t: Tensor) -> str:
    return "%s %s" % (t.dtype, _dims(t.shape_signature if t.shape_signature is not None else t.shape))


def _version_check(op: Operator) -> Tuple[str, bool, str]:
    """("ok" | "recent" | "too-new", certain, why) for compiler 16's TFLite."""
    if op.is_custom:
        return "ok", True, ""
    if op.builtin_code >= FIRST_UNKNOWN_BUILTIN_CODE:
        return "too-new", True, "builtin code %d is newer than compiler 16 knows (#862)" % op.builtin_code
    release = release_of(op.name, op.version)
    if release is None:
        return "ok", True, ""
    evidence = REJECTED_VERSIONS.get((op.name, op.version))
    if release == BEYOND_TABLE:
        return "too-new", True, "v%d is newer than any TensorFlow release edgepipe knows" % op.version
    label = "%s v%d comes from TensorFlow %d.%d" % (op.name, op.version, release[0], release[1])
    if evidence or release >= (2, 8):
        return "too-new", True, "%s; compiler 16 predates it%s" % (label, " (%s)" % evidence if evidence else "")
    if release >= (2, 7):
        return (
            "too-new",
            False,
            "%s; compiler 16 (mid-2021) most likely predates it (QUANTIZE v3 from 2.7 is rejected, #879)" % label,
        )
    if release >= (2, 5):
        return "recent", False, "%s; compiler 16 (mid-2021) is believed, not known, to accept it" % label
    return "ok", True, ""


def _strides(model: Model, sg: Subgraph, op: Operator) -> Optional[List[int]]:
    return _small_int_constant(model, sg, op, 3)


def _small_int_constant(model: Model, sg: Subgraph, op: Operator, position: int) -> Optional[List[int]]:
    """The values of a small constant int32/int64 input (strides, multiples), or None."""
    if len(op.inputs) <= position:
        return None
    t = _tensor(sg, op.inputs[position])
    if t is None or not t.is_constant or t.dtype not in ("INT32", "INT64"):
        return None
    fmt = "i" if t.dtype == "INT32" else "q"
    size = struct.calcsize(fmt)
    # One stride per dimension, and TFLite slices at most 5. Refusing longer data keeps a hostile file,
    # whose many STRIDED_SLICE ops all point at one megabyte buffer, from costing a decode per op.
    if not 0 < t.data_bytes <= _MAX_DIMS * size or t.data_bytes % size:
        return None
    data = model.constant_bytes(t)
    if len(data) != t.data_bytes:
        return None
    return list(struct.unpack("<%d%s" % (len(data) // size, fmt), data))


def _resize_factor(sg: Subgraph, op: Operator) -> Optional[float]:
    t_in = _tensor(sg, op.inputs[0]) if op.inputs else None
    t_out = _tensor(sg, op.outputs[0]) if op.outputs else None
    if t_in is None or t_out is None or len(t_in.shape) != 4 or len(t_out.shape) != 4:
        return None
    factors = []
    for axis in (1, 2):
        if t_in.shape[axis] <= 0 or t_out.shape[axis] <= 0:
            return None
        factors.append(t_out.shape[axis] / t_in.shape[axis])
    return max(factors)


def _check_op(model: Model, sg: Subgraph, op: Operator) -> _Check:
    """The first rule of RULES (before the subgraph rule) that applies to this op on its own."""
    if op.is_custom and op.name not in KNOWN_CUSTOM_OPS:
        return _Check(
            "unresolved-custom-op",
            False,
            "no TFLite kernel for it in the compiler: compiler 16 is expected to stop with this error and "
            "'Model failed in Tflite interpreter'",
            status="%s: %s" % (UNRESOLVED_CUSTOM_OP, _clip(op.name)),
        )
    activations = _activations(sg, op)
    if op.name == "QUANTIZE" and op.inputs:
        source = _tensor(sg, op.inputs[0])
        if source is not None and source.dtype in FLOAT_DTYPES:
            return _Check("quantize-float-input", True, "input %r is %s" % (_clip(source.name), source.dtype))
    bad_types = [t for t in activations if t.dtype not in ACTIVATION_DTYPES]
    if bad_types:
        t = bad_types[0]
        return _Check("dtype", True, "tensor %r is %s" % (_clip(t.name), t.dtype))
    if op.name not in EDGETPU_OPS:
        return _Check("unsupported-op", True, "%s is not in the Edge TPU op set" % _clip(op.name))

    notes: List[str] = []
    certain = bool(EDGETPU_OPS[op.name])
    if not certain:
        notes.append("only coral.ai's op table says %s maps; no real compiler output shows it" % op.name)

    state, version_certain, why = _version_check(op)
    if state == "too-new":
        return _Check("op-version", version_certain, why)
    if state == "recent":
        certain = False
        notes.append(why)
    old_limit = OLD_COMPILER_VERSION_LIMITS.get(op.name)
    if old_limit is not None and op.version >= old_limit[0]:
        certain = False
        notes.append(
            "compilers 14.1/15 answered 'Operation version not supported' for v%d+ (%s); compiler 16's "
            "answer is not public" % old_limit
        )

    for position in PARAMETER_INPUTS.get(op.name, ()):
        t = _tensor(sg, op.inputs[position]) if position < len(op.inputs) else None
        if t is not None and not t.is_constant:
            return _Check(
                "param-not-constant", True, "input %d (%r) is computed at run time" % (position, _clip(t.name))
            )

    for t in activations:
        sig = t.shape_signature if t.shape_signature is not None else t.shape
        if any(d < 0 for d in t.shape) or any(d < 0 for d in sig[1:]):
            return _Check("dynamic", False, "tensor %r is %s" % (_clip(t.name), _shape_text(t)))
    for t in activations:
        if len(t.shape) > 3 and any(d != 1 for d in t.shape[:-3]):
            return _Check("rank", True, "tensor %r has shape %s" % (_clip(t.name), _dims(t.shape)))

    if op.name == "STRIDED_SLICE":
        strides = _strides(model, sg, op)
        if strides is None:
            certain = False
            notes.append("its strides are not a readable constant")
        elif any(s != 1 for s in strides):
            return _Check("strided-slice-stride", True, "strides %s" % _dims(strides))

    if op.name == "TILE":
        multiples = _small_int_constant(model, sg, op, 1)
        t_in = _tensor(sg, op.inputs[0]) if op.inputs else None
        seen = (
            multiples is not None
            and len(multiples) == 4
            and multiples[0] == multiples[3] == 1
            and t_in is not None
            and len(t_in.shape) == 4
        )
        if not seen:
            certain = False
            notes.append("TILE was seen mapped only with %s; this one differs" % TILE_SEEN)

    if op.name == "FULLY_CONNECTED" and len(op.inputs) > 1:
        weights = _tensor(sg, op.inputs[1])
        if weights is not None and weights.quantization is not None and weights.quantization.per_axis:
            certain = False
            notes.append(
                "per-axis (per-channel) weights: the TFLite int8 spec lists per-axis only for convolutions and "
                "no public compiler output shows how compiler 16 treats them; if it refuses, convert with "
                "per-tensor weights"
            )

    if op.name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        factor = _resize_factor(sg, op)
        if factor is not None and factor > 2:
            t_in, t_out = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
            return _Check(
                "resize-size",
                False,
                "%s -> %s is a %.3gx upscale; the largest seen mapped is 2x"
                % (_dims(t_in.shape), _dims(t_out.shape), factor),
            )
        certain = False
        notes.append(
            "coral.ai: depending on input/output size a resize may not map; no threshold is public (#31, #597)"
        )

    return _Check("mapped", certain, "; ".join(notes))


class _Partition:
    """TFLite's delegate partitioning (graph_info.cc), greedy as in TF 2.5: alternating node sets of
    one kind, each grown by data dependence until nothing more of its kind is ready. A new set takes the
    kind of the lowest-index ready op."""

    def __init__(self, sg: Subgraph, on_tpu: Sequence[bool]) -> None:
        n = len(sg.operators)
        producer = _producers(sg)
        waiting_on = [0] * n
        consumers: List[List[int]] = [[] for _ in range(n)]
        for op in sg.operators:
            deps = {producer[t] for t in op.inputs if t in producer}
            for d in deps:
                consumers[d].append(op.index)
            waiting_on[op.index] = len(deps)
        self.set_of = [-1] * n  # index of the node set each op landed in
        self.kinds: List[bool] = []  # True: an Edge TPU set
        ready = [
            [i for i in range(n) if waiting_on[i] == 0 and on_tpu[i]],
            [i for i in range(n) if waiting_on[i] == 0 and not on_tpu[i]],
        ]
        for heap in ready:
            heapq.heapify(heap)
        while ready[0] or ready[1]:
            # The lowest-index ready op decides what kind of set comes next.
            kind = ready[0][0] < ready[1][0] if ready[0] and ready[1] else bool(ready[0])
            current = len(self.kinds)
            self.kinds.append(kind)
            heap = ready[0] if kind else ready[1]
            while heap:
                i = heapq.heappop(heap)
                self.set_of[i] = current
                for c in consumers[i]:
                    waiting_on[c] -= 1
                    if waiting_on[c] == 0:
                        heapq.heappush(ready[0] if on_tpu[c] else ready[1], c)
        stuck = [i for i in range(n) if self.set_of[i] < 0]
        if stuck:
            raise ModelFormatError(
                "operator %d of %s reads a tensor that depends on its own output (a cycle); no interpreter can run it"
                % (stuck[0], sg.name or "the main subgraph"),
                hint="Re-export the model",
            )


def _float_readers_note(sg: Subgraph, op: Operator, readers: Dict[int, List[int]], producer: Dict[int, int]) -> str:
    """For a DEQUANTIZE: the ops its float output feeds. Under int8-with-float-fallback conversion these
    are the ops the converter could not quantize, the cause the user has to fix (the DEQUANTIZE is only
    where the compiler first notices). Only the tensor's (first) writer reports its readers, which keeps
    the work linear when a hostile file has many ops write one tensor."""
    fed: List[int] = []
    for t in set(op.outputs):
        if producer.get(t) == op.index:
            fed.extend(readers.get(t, ()))
    if not fed:
        return ""
    fed = sorted(set(fed))
    shown = ", ".join("%s #%d" % (_clip(sg.operators[i].name), i) for i in fed[:5])
    more = " and %d more" % (len(fed) - 5) if len(fed) > 5 else ""
    return "; its float output feeds %s%s, left in float by the converter" % (shown, more)


def _readers(sg: Subgraph) -> Dict[int, List[int]]:
    """Tensor index -> the ops that read it, in op order (each op once)."""
    readers: Dict[int, List[int]] = {}
    for op in sg.operators:
        for t in set(op.inputs):
            if t >= 0:
                readers.setdefault(t, []).append(op.index)
    return readers


def _inspect_uncompiled(model: Model, multiple_subgraphs: bool) -> InspectReport:
    sg = model.main
    checks = [_check_op(model, sg, op) for op in sg.operators]
    readers, producer = _readers(sg), _producers(sg)
    for op, check in zip(sg.operators, checks):
        if check.rule == "dtype" and op.name == "DEQUANTIZE":
            check.detail += _float_readers_note(sg, op, readers, producer)
        elif check.rule == "dtype" and op.name == "SHAPE" and op.inputs:
            source = _tensor(sg, op.inputs[0])
            if source is not None and source.is_dynamic:
                check.detail += "; it reads the run-time size of %r, whose shape signature %s is dynamic" % (
                    _clip(source.name),
                    _dims(source.shape_signature or source.shape),
                )
    partition = _Partition(sg, [c.on_tpu for c in checks])
    tpu_sets = [i for i, kind in enumerate(partition.kinds) if kind]
    kept = set(tpu_sets) if multiple_subgraphs else set(tpu_sets[:1])

    # An op past the cut is certainly there only if an op it depends on, past the first Edge TPU
    # set, is certainly on the CPU.
    upstream_cpu = _certainly_cut_off(sg, checks, partition, tpu_sets[0] if tpu_sets else -1)
    verdicts: List[OpVerdict] = []
    for op, check in zip(sg.operators, checks):
        rule, status, certain, detail = check.rule, check.status, check.certain, check.detail
        if check.on_tpu and partition.set_of[op.index] not in kept:
            rule, status = "after-first-cpu-op", MORE_THAN_ONE_SUBGRAPH
            certain = upstream_cpu[op.index]
            detail = "depends on ops left on the CPU" + (
                "" if certain else "; the ops that cut it off are themselves uncertain"
            )
        verdicts.append(
            OpVerdict(
                index=op.index,
                name=_clip(op.name),
                version=op.version,
                edgetpu=MAPPED if rule == "mapped" else status,
                rule=rule,
                certain=certain,
                outputs=[_clip(sg.tensors[t].name) for t in op.outputs if 0 <= t < len(sg.tensors)],
                detail=detail,
                custom_code=None if op.custom_code is None else _clip(op.custom_code),
            )
        )

    on_tpu = [v.edgetpu == MAPPED for v in verdicts]
    tpu_ops = sum(on_tpu)
    cpu_verdicts = [v for v in verdicts if v.edgetpu != MAPPED]
    tpu_parameter_bytes = _parameter_bytes(sg, [op for op, tpu in zip(sg.operators, on_tpu) if tpu])
    warnings = _model_warnings(model, sg, multiple_subgraphs, partition, tpu_ops)
    return InspectReport(
        schema_version=RESULT_SCHEMA_VERSION,
        kind="inspect",
        path=model.path,
        sha256=model.sha256,
        size_bytes=model.size_bytes,
        compiled_for_edgetpu=False,
        ops_total=len(verdicts),
        tpu_ops=tpu_ops,
        cpu_ops=len(cpu_verdicts),
        subgraphs=len(kept),
        parameter_bytes=model.parameter_bytes,
        tpu_parameter_bytes=tpu_parameter_bytes,
        on_chip_cache_bytes=ON_CHIP_CACHE_BYTES,
        off_chip_warning=_off_chip_warning(tpu_parameter_bytes),
        inputs=_describe_io(sg, sg.inputs),
        outputs=_describe_io(sg, sg.outputs),
        ops=list(verdicts),
        first_cpu_op=_first_cpu_op(cpu_verdicts),
        tensors_crossing=_crossing(sg, on_tpu),
        needs_edgetpu_delegate=False,
        multiple_subgraphs=multiple_subgraphs,
        uncertain_ops=sum(not v.certain for v in verdicts),
        compile_blockers=_compile_blockers(model, sg),
        edgetpu_executable_bytes=None,
        tflite_subgraphs=len(model.subgraphs),
        buffers=len(model.buffer_sizes),
        tensors=_tensor_table(sg),
        warnings=warnings,
    )


def _certainly_cut_off(sg: Subgraph, checks: Sequence[_Check], partition: _Partition, first_tpu_set: int) -> List[bool]:
    """Per op: does it depend on an op that is certainly on the CPU by its own rule and comes after the
    first Edge TPU set? (Visited in set order, a topological order, so one pass suffices.)"""
    producer = _producers(sg)
    cut = [False] * len(sg.operators)
    for i in sorted(range(len(sg.operators)), key=lambda i: (partition.set_of[i], i)):
        for t in set(sg.operators[i].inputs):
            p = producer.get(t)
            if p is None:
                continue
            own = not checks[p].on_tpu and checks[p].certain and partition.set_of[p] > first_tpu_set
            if cut[p] or own:
                cut[i] = True
    return cut


def _parameter_bytes(sg: Subgraph, ops: Sequence[Operator]) -> int:
    seen: Set[int] = set()
    total = 0
    for op in ops:
        for i in op.inputs:
            t = _tensor(sg, i)
            if t is not None and t.is_constant and t.buffer not in seen:
                seen.add(t.buffer)
                total += t.data_bytes
    return total


def _mib(n: int) -> str:
    return "%.2f MiB" % (n / (1024.0 * 1024.0))


def _off_chip_warning(tpu_parameter_bytes: int) -> Optional[str]:
    if tpu_parameter_bytes > ON_CHIP_CACHE_BYTES:
        return (
            "%s of parameters for the Edge TPU exceed its ~8 MiB on-chip cache by %s: the compiler will "
            "stream at least that much from host memory on every inference (slow, especially over USB)"
            % (_mib(tpu_parameter_bytes), _mib(tpu_parameter_bytes - ON_CHIP_CACHE_BYTES))
        )
    if tpu_parameter_bytes > SMALLEST_CACHE_SEEN_BYTES:
        return (
            "%s of parameters for the Edge TPU: the compiler has left as little as 6.89 MiB of the cache "
            "for parameters (#512), so part may be streamed from host memory on every inference"
            % _mib(tpu_parameter_bytes)
        )
    return None


def _first_cpu_op(cpu_verdicts: Sequence[OpVerdict]) -> Optional[dict]:
    if not cpu_verdicts:
        return None
    v = cpu_verdicts[0]
    return {
        "index": v.index,
        "name": v.name,
        "version": v.version,
        "edgetpu": v.edgetpu,
        "rule": v.rule,
        "detail": v.detail,
    }


def _crossing(sg: Subgraph, on_tpu: Sequence[bool]) -> List[dict]:
    """Tensors made on one side (Edge TPU or CPU) and read on the other."""
    producer = _producers(sg)
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


def _compile_blockers(model: Model, sg: Subgraph) -> List[str]:
    """Problems for which the compiler rejects the whole model (REFERENCE §1.7), not just some ops.
    One line per operator code (op kind and version), naming its first op and how many there are."""
    users: Dict[int, List[int]] = {}
    for op in sg.operators:
        users.setdefault(op.opcode_index, []).append(op.index)
    blockers = []
    for indices in sorted(users.values()):
        op = sg.operators[indices[0]]
        where = "op %d" % op.index if len(indices) == 1 else "op %d and %d more" % (op.index, len(indices) - 1)
        state, certain, why = _version_check(op)
        if state == "too-new":
            blockers.append(
                "%s%s: %s; expect \"Didn't find op for builtin opcode '%s' version '%d'\" and 'Model could not "
                "be parsed'" % ("" if certain else "(uncertain) ", where, why, _clip(op.name), op.version)
            )
        elif op.is_custom and op.name not in KNOWN_CUSTOM_OPS:
            blockers.append(
                "(uncertain) %s: custom op %r has no kernel in the compiler's TFLite interpreter; expect "
                "'Encountered unresolved custom op: %s' and 'Model failed in Tflite interpreter'"
                % (where, _clip(op.name), _clip(op.name))
            )
    quantized = any(
        t.dtype in ACTIVATION_DTYPES and not t.is_constant for op in sg.operators for t in _activations(sg, op)
    )
    if sg.operators and not quantized:
        blockers.append(
            "no activation is int8/uint8: compilers answer 'Model not quantized' (log 14, #168, #213) or map "
            "nothing (#222); convert with full-integer quantization"
        )
    return blockers


def _model_warnings(
    model: Model, sg: Subgraph, multiple_subgraphs: bool, partition: _Partition, tpu_ops: int
) -> List[str]:
    warnings = []
    dynamic_batch = [
        _clip(t.name)
        for t in _io_tensors(sg, sg.inputs)
        if t.shape_signature is not None
        and t.shape_signature[:1] == [-1]
        and all(d >= 0 for d in t.shape_signature[1:])
    ]
    if dynamic_batch:
        shape_ops = [op.index for op in sg.operators if op.name == "SHAPE"]
        listed = ", ".join(str(i) for i in shape_ops[:5])
        if len(shape_ops) > 5:
            listed += " and %d more" % (len(shape_ops) - 5)
        consequence = (
            "the converter added batch-size arithmetic on int32 (SHAPE at op %s), which falls back to the CPU" % listed
            if shape_ops
            else "the converter added no batch-size arithmetic (no SHAPE op)"
        )
        warnings.append(
            "input %s has a dynamic batch (shape signature -1): the compiler is believed to compile the stored "
            "batch of 1 (uncertain); %s. Convert with a fixed batch of 1"
            % (", ".join(repr(n) for n in dynamic_batch), consequence)
        )
    if len(model.subgraphs) > 1:
        warnings.append(
            "the model has %d TFLite subgraphs (control flow); only the main one is inspected" % len(model.subgraphs)
        )
    tpu_sets = sum(partition.kinds)
    if multiple_subgraphs and tpu_sets > 1:
        warnings.append(
            "multiple-subgraph mode (-a) is experimental: %d Edge TPU subgraphs predicted, each with its own "
            "CPU↔TPU transfers; measure whether it is faster (#461, #317)" % tpu_sets
        )
    if sg.operators and tpu_ops == 0:
        warnings.append("no op is predicted to map to the Edge TPU: everything would run on the CPU")
    return warnings


# --- compiled models ------------------------------------------------------------------------------


def _inspect_compiled(model: Model, multiple_subgraphs: bool) -> InspectReport:
    sg = model.main
    on_tpu = [op.name == EDGETPU_CUSTOM_OP for op in sg.operators]
    ops = [
        CompiledOp(op.index, _clip(op.name), op.version, "edgetpu" if tpu else "cpu")
        for op, tpu in zip(sg.operators, on_tpu)
    ]
    cpu = [op for op in sg.operators if op.name != EDGETPU_CUSTOM_OP]
    tpu_count = len(sg.operators) - len(cpu)
    first_cpu = None
    if cpu:
        first_cpu = {"index": cpu[0].index, "name": _clip(cpu[0].name), "version": cpu[0].version}
    executable = sum(op.custom_options_size for op in sg.operators if op.name == EDGETPU_CUSTOM_OP)
    warnings = [
        "compiled for the Edge TPU: it needs the Edge TPU delegate (libedgetpu) and cannot run on the CPU; "
        "keep the uncompiled model for CPU fallback"
    ]
    if cpu:
        warnings.append(
            "%d op(s) stay on the CPU beside %d Edge TPU op(s); the ops counts here are of the compiled file, "
            "where each edgetpu-custom-op stands for all the ops it replaced" % (len(cpu), tpu_count)
        )
    if len(model.subgraphs) > 1:
        warnings.append("the model has %d TFLite subgraphs; only the main one is inspected" % len(model.subgraphs))
    return InspectReport(
        schema_version=RESULT_SCHEMA_VERSION,
        kind="inspect",
        path=model.path,
        sha256=model.sha256,
        size_bytes=model.size_bytes,
        compiled_for_edgetpu=True,
        ops_total=len(sg.operators),
        tpu_ops=tpu_count,
        cpu_ops=len(cpu),
        subgraphs=tpu_count,
        parameter_bytes=model.parameter_bytes,
        tpu_parameter_bytes=None,
        on_chip_cache_bytes=ON_CHIP_CACHE_BYTES,
        off_chip_warning=None,
        inputs=_describe_io(sg, sg.inputs),
        outputs=_describe_io(sg, sg.outputs),
        ops=list(ops),
        first_cpu_op=first_cpu,
        tensors_crossing=_crossing(sg, on_tpu),
        needs_edgetpu_delegate=True,
        multiple_subgraphs=multiple_subgraphs,
        uncertain_ops=0,
        compile_blockers=[],
        edgetpu_executable_bytes=executable,
        tflite_subgraphs=len(model.subgraphs),
        buffers=len(model.buffer_sizes),
        tensors=_tensor_table(sg),
        warnings=warnings,
    )


# --- plain-text rendering and the device-side CLI ---------------------------------------------------


def summary_rows(report: InspectReport) -> List[Tuple[str, str]]:
    """The header of the human-readable report, shared by the host CLI and the device-side one."""
    rows = [
        ("model", report.path),
        ("size", "%d bytes, sha256 %s" % (report.size_bytes, report.sha256[:16])),
        ("compiled for Edge TPU", "yes (needs the Edge TPU delegate)" if report.compiled_for_edgetpu else "no"),
        (
            "contents",
            "%d TFLite subgraph(s); main: %d ops, %d tensors; %d buffers"
            % (report.tflite_subgraphs, report.ops_total, len(report.tensors), report.buffers),
        ),
    ]
    kind = "" if report.compiled_for_edgetpu else "predicted "
    rows.append(
        ("%sops on Edge TPU / CPU" % kind, "%d / %d of %d" % (report.tpu_ops, report.cpu_ops, report.ops_total))
    )
    rows.append(("%sEdge TPU subgraphs" % kind, str(report.subgraphs)))
    if report.compiled_for_edgetpu:
        rows.append(("Edge TPU executable", "%d bytes" % (report.edgetpu_executable_bytes or 0)))
        rows.append(("CPU-side parameters", "%d bytes" % report.parameter_bytes))
    else:
        rows.append(
            (
                "parameters",
                "%d bytes in the file, %d for the Edge TPU (on-chip cache ~%s)"
                % (report.parameter_bytes, report.tpu_parameter_bytes or 0, _mib(report.on_chip_cache_bytes)),
            )
        )
        rows.append(("uncertain verdicts", str(report.uncertain_ops)))
    for t in report.inputs:
        rows.append(("input", _describe(t)))
    for t in report.outputs:
        rows.append(("output", _describe(t)))
    if report.first_cpu_op:
        rows.append(("first CPU op", first_cpu_text(report)))
    return rows


def first_cpu_text(report: InspectReport) -> str:
    f = report.first_cpu_op
    if not f:
        return ""
    text = "#%d %s v%d" % (f["index"], f["name"], f["version"])
    if "edgetpu" in f:
        text += ": %s" % f["edgetpu"]
        if f.get("detail"):
            text += " (%s)" % f["detail"]
    return text


def _describe(t: dict) -> str:
    text = "%s %s %s" % (t["name"], t["dtype"], t["shape"])
    if "shape_signature" in t:
        text += " (signature %s)" % t["shape_signature"]
    return text


def op_rows(report: InspectReport) -> List[Tuple[str, str, str, str, bool]]:
    """(index, op, version, verdict, on_cpu) per op."""
    rows = []
    for op in report.ops:
        if isinstance(op, CompiledOp):
            rows.append((str(op.index), op.name, str(op.version), op.on, op.on == "cpu"))
        else:
            verdict = op.edgetpu if op.certain else "%s (uncertain)" % op.edgetpu
            rows.append((str(op.index), op.name, str(op.version), verdict, op.edgetpu != MAPPED))
    return rows


def crossing_rows(report: InspectReport) -> List[Tuple[str, str, str, str]]:
    """(tensor, dtype and shape, direction, producer -> consumers) per tensor crossing Edge TPU <-> CPU."""
    rows = []
    for c in report.tensors_crossing:
        consumers = ", ".join("#%d" % i for i in c["consumers"][:5])
        if len(c["consumers"]) > 5:
            consumers += " and %d more" % (len(c["consumers"]) - 5)
        rows.append(
            (
                _clip(c["name"]),
                "%s %s" % (c["dtype"], _dims(c["shape"])),
                "%s -> %s" % (c["from"], c["to"]),
                "#%d -> %s" % (c["producer"], consumers),
            )
        )
    return rows


def render_text(report: InspectReport) -> str:
    lines = ["%-24s %s" % (k + ":", v) for k, v in summary_rows(report)]
    lines.append("")
    lines.append("%5s  %-30s %3s  %s" % ("#", "op", "v", "Edge TPU" if not report.compiled_for_edgetpu else "runs on"))
    for index, name, version, verdict, on_cpu in op_rows(report):
        lines.append("%5s%s %-30s %3s  %s" % (index, "*" if on_cpu else " ", name, version, verdict))
    if report.cpu_ops:
        lines.append("(* = on the CPU)")
    rows = crossing_rows(report)
    if rows:
        lines.append("")
        lines.append("tensors crossing Edge TPU <-> CPU%s:" % ("" if report.compiled_for_edgetpu else " (predicted)"))
        for name, kind, direction, ops in rows:
            lines.append("  %s  %s  %s  (ops %s)" % (name, kind, direction, ops))
    for blocker in report.compile_blockers:
        lines.append("compile blocker: " + blocker)
    if report.off_chip_warning:
        lines.append("warning: " + report.off_chip_warning)
    for warning in report.warnings:
        lines.append("warning: " + warning)
    return "\n".join(lines)


def main_inspect(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m edgepipe.runtime inspect MODEL [--json] [--multiple-subgraphs]`; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m edgepipe.runtime inspect",
        description="Read a .tflite model without TensorFlow: the Edge TPU pre-flight, or where a compiled one runs.",
    )
    parser.add_argument("model", help="path to a .tflite file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--multiple-subgraphs", action="store_true", help="predict for the compiler's experimental -a mode"
    )
    args = parser.parse_args(argv)
    try:
        report = inspect_file(args.model, multiple_subgraphs=args.multiple_subgraphs)
    except EdgepipeError as exc:
        sys.stderr.write("error: %s\n" % exc.one_line())
        if args.json:
            # As the other device-side commands do: a host reading stdout learns the error type too.
            error = {"type": type(exc).__name__, "message": str(exc), "hint": exc.hint or None}
            error["exit_code"] = exc.exit_code
            sys.stdout.write(
                json.dumps({"schema_version": RESULT_SCHEMA_VERSION, "kind": "error", "error": error}) + "\n"
            )
        return exc.exit_code
    sys.stdout.write((dumps(report) if args.json else render_text(report)) + "\n")
    return 0
