"""One op on its own: the first rule of the table (before the subgraph rule) that applies to it."""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

from ..op_versions import BEYOND_TABLE, release_of
from ..tflite_reader import Model, Operator, Subgraph
from .graph import MAX_DIMS, activation_tensors, clip, dims_text, shape_text, tensor_at
from .rules import (
    ACTIVATION_DTYPES,
    EDGETPU_OPS,
    FIRST_UNKNOWN_BUILTIN_CODE,
    FLOAT_DTYPES,
    KNOWN_CUSTOM_OPS,
    OLD_COMPILER_VERSION_LIMITS,
    PARAMETER_INPUTS,
    REJECTED_VERSIONS,
    RULE,
    TILE_SEEN,
    UNRESOLVED_CUSTOM_OP,
)


class Check:
    """One op's verdict from its own properties, before the subgraph rule."""

    def __init__(self, rule: str, certain: bool, detail: str = "", status: Optional[str] = None) -> None:
        self.rule = rule
        self.certain = certain
        self.detail = detail
        self.status = status or RULE[rule].status

    @property
    def on_tpu(self) -> bool:
        return self.rule == "mapped"


def version_check(op: Operator) -> Tuple[str, bool, str]:
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
    t = tensor_at(sg, op.inputs[position])
    if t is None or not t.is_constant or t.dtype not in ("INT32", "INT64"):
        return None
    fmt = "i" if t.dtype == "INT32" else "q"
    size = struct.calcsize(fmt)
    # One stride per dimension, and TFLite slices at most 5. Refusing longer data keeps a hostile file,
    # whose many STRIDED_SLICE ops all point at one megabyte buffer, from costing a decode per op.
    if not 0 < t.data_bytes <= MAX_DIMS * size or t.data_bytes % size:
        return None
    data = model.constant_bytes(t)
    if len(data) != t.data_bytes:
        return None
    return list(struct.unpack("<%d%s" % (len(data) // size, fmt), data))


def _resize_factor(sg: Subgraph, op: Operator) -> Optional[float]:
    t_in = tensor_at(sg, op.inputs[0]) if op.inputs else None
    t_out = tensor_at(sg, op.outputs[0]) if op.outputs else None
    if t_in is None or t_out is None or len(t_in.shape) != 4 or len(t_out.shape) != 4:
        return None
    factors = []
    for axis in (1, 2):
        if t_in.shape[axis] <= 0 or t_out.shape[axis] <= 0:
            return None
        factors.append(t_out.shape[axis] / t_in.shape[axis])
    return max(factors)


def check_op(model: Model, sg: Subgraph, op: Operator) -> Check:
    """The first rule of RULES (before the subgraph rule) that applies to this op on its own."""
    if op.is_custom and op.name not in KNOWN_CUSTOM_OPS:
        return Check(
            "unresolved-custom-op",
            False,
            "no TFLite kernel for it in the compiler: compiler 16 is expected to stop with this error and "
            "'Model failed in Tflite interpreter'",
            status="%s: %s" % (UNRESOLVED_CUSTOM_OP, clip(op.name)),
        )
    activations = activation_tensors(sg, op)
    if op.name == "QUANTIZE" and op.inputs:
        source = tensor_at(sg, op.inputs[0])
        if source is not None and source.dtype in FLOAT_DTYPES:
            return Check("quantize-float-input", True, "input %r is %s" % (clip(source.name), source.dtype))
    bad_types = [t for t in activations if t.dtype not in ACTIVATION_DTYPES]
    if bad_types:
        t = bad_types[0]
        return Check("dtype", True, "tensor %r is %s" % (clip(t.name), t.dtype))
    if op.name not in EDGETPU_OPS:
        return Check("unsupported-op", True, "%s is not in the Edge TPU op set" % clip(op.name))

    notes: List[str] = []
    certain = bool(EDGETPU_OPS[op.name])
    if not certain:
        notes.append("only coral.ai's op table says %s maps; no real compiler output shows it" % op.name)

    state, version_certain, why = version_check(op)
    if state == "too-new":
        return Check("op-version", version_certain, why)
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
        t = tensor_at(sg, op.inputs[position]) if position < len(op.inputs) else None
        if t is not None and not t.is_constant:
            return Check("param-not-constant", True, "input %d (%r) is computed at run time" % (position, clip(t.name)))

    for t in activations:
        sig = t.shape_signature if t.shape_signature is not None else t.shape
        if any(d < 0 for d in t.shape) or any(d < 0 for d in sig[1:]):
            return Check("dynamic", False, "tensor %r is %s" % (clip(t.name), shape_text(t)))
    for t in activations:
        if len(t.shape) > 3 and any(d != 1 for d in t.shape[:-3]):
            return Check("rank", True, "tensor %r has shape %s" % (clip(t.name), dims_text(t.shape)))

    if op.name == "STRIDED_SLICE":
        strides = _strides(model, sg, op)
        if strides is None:
            certain = False
            notes.append("its strides are not a readable constant")
        elif any(s != 1 for s in strides):
            return Check("strided-slice-stride", True, "strides %s" % dims_text(strides))

    if op.name == "TILE":
        multiples = _small_int_constant(model, sg, op, 1)
        t_in = tensor_at(sg, op.inputs[0]) if op.inputs else None
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
        weights = tensor_at(sg, op.inputs[1])
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
            return Check(
                "resize-size",
                False,
                "%s -> %s is a %.3gx upscale; the largest seen mapped is 2x"
                % (dims_text(t_in.shape), dims_text(t_out.shape), factor),
            )
        certain = False
        notes.append(
            "coral.ai: depending on input/output size a resize may not map; no threshold is public (#31, #597)"
        )

    return Check("mapped", certain, "; ".join(notes))
