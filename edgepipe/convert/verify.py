"""Strict verification of a converted flatbuffer, and the Edge TPU pre-flight gate (both TF-free).

Why verify: TensorFlow 2.21 under TFLITE_BUILTINS_INT8 no longer refuses ops it cannot quantize; it
keeps e.g. SIN, COS, CUMSUM or FLOOR in float32 between DEQUANTIZE/QUANTIZE and reports success. The
written flatbuffer is therefore read back with `edgepipe.runtime.tflite_reader` and checked against
the int8 rules below before anything appears at OUT. The same rules hold whatever the source format
(Keras, SavedModel or ONNX): they look only at the TFLite model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..errors import EdgeTpuIncompatibleError, UnquantizableOpsError
from ..runtime.tflite_reader import Model, Operator, Tensor

# Where the TFLite int8 quantization spec (tensorflow.org/lite/performance/quantization_spec and the
# op definitions in TFLite's schema) puts int32 in a fully-int8 model, by operator input index. Two
# kinds only, and both must be compile-time constants:
# - the bias of the matmul/convolution family: int32 with scale = input_scale * weight_scale and
#   zero point 0, because it is added to the int32 accumulator;
# - shape-like operands that are indices, never quantized values: a target shape, reduction axes,
#   paddings, a permutation, begin/end/strides, a resize size, block shape and crops, tile multiples,
#   split sizes, gather positions.
# An int32 anywhere else (an activation, an op output, or one of these operands computed at run time
# by SHAPE/PACK arithmetic) means integer or shape computation in the graph, which the Edge TPU does
# not run; so does any other dtype (float32, int16, int64, bool).
INT32_CONSTANT_INPUTS: Dict[str, Tuple[int, ...]] = {
    "CONV_2D": (2,),  # bias
    "DEPTHWISE_CONV_2D": (2,),  # bias
    "FULLY_CONNECTED": (2,),  # bias
    "TRANSPOSE_CONV": (0, 3),  # output_shape, bias
    "RESHAPE": (1,),  # new shape
    "MEAN": (1,),  # axes
    "SUM": (1,),
    "REDUCE_MAX": (1,),
    "REDUCE_MIN": (1,),
    "REDUCE_PROD": (1,),
    "PAD": (1,),  # paddings
    "PADV2": (1,),
    "MIRROR_PAD": (1,),
    "TRANSPOSE": (1,),  # perm
    "STRIDED_SLICE": (1, 2, 3),  # begin, end, strides
    "SLICE": (1, 2),  # begin, size
    "RESIZE_BILINEAR": (1,),  # size
    "RESIZE_NEAREST_NEIGHBOR": (1,),
    "SPACE_TO_BATCH_ND": (1, 2),  # block shape, paddings
    "BATCH_TO_SPACE_ND": (1, 2),  # block shape, crops
    "EXPAND_DIMS": (1,),  # axis
    "SPLIT": (0,),  # axis
    "SPLIT_V": (1, 2),  # size splits, axis
    "TILE": (1,),  # multiples
    "BROADCAST_TO": (1,),  # shape
    "GATHER": (1,),  # positions (constant only: data-dependent indexing is not an Edge TPU op)
}
INT8_TYPES = ("INT8", "UINT8")
DYNAMIC_SHAPE_OPS = ("SHAPE",)
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")
FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64")


@dataclass
class Offender:
    """One operator (or graph input/output) that breaks the Edge TPU int8 rules."""

    op: str  # builtin name, or "graph input" / "graph output"
    index: Optional[int]  # operator index in the main subgraph
    reasons: List[str]
    tensors: List[str]  # names that say where it came from (outputs first)
    boundary: bool = False  # a QUANTIZE/DEQUANTIZE that only bridges into or out of a float region

    def describe(self) -> str:
        where = ("op %d" % self.index) if self.index is not None else self.op
        label = self.op if self.index is not None else ""
        name = ", output '%s'" % self.tensors[0] if self.tensors and self.index is not None else ""
        if self.index is None and self.tensors:
            name = " '%s'" % self.tensors[0]
        return ("%s (%s%s: %s)" % (label, where, name, "; ".join(self.reasons))).strip()


def _names(sg: Any, indices: List[int]) -> List[str]:
    return [sg.tensors[i].name for i in indices if i >= 0]


def verify_edgetpu(model: Model) -> List[Offender]:
    """Every rule an Edge TPU int8 model must meet; the list of what breaks them (empty = good)."""
    sg = model.main
    offenders: List[Offender] = []
    for t in model.input_tensors():
        if t.dtype != "UINT8":
            offenders.append(Offender("graph input", None, ["%s, expected uint8" % t.dtype.lower()], [t.name]))
    for t in model.output_tensors():
        if t.dtype != "UINT8":
            offenders.append(Offender("graph output", None, ["%s, expected uint8" % t.dtype.lower()], [t.name]))
    for op in sg.operators:
        reasons = _op_violations(op, sg.tensors)
        if reasons:
            offenders.append(
                Offender(
                    op.name, op.index, reasons, _names(sg, op.outputs) + _names(sg, op.inputs), op.name in BOUNDARY_OPS
                )
            )
    return offenders


def _op_violations(op: Operator, tensors: List[Tensor]) -> List[str]:
    reasons = []
    if op.name in DYNAMIC_SHAPE_OPS:
        reasons.append("computes a shape at run time")
    if op.is_custom:
        reasons.append("custom op %r" % op.custom_code)
    allowed_int32 = INT32_CONSTANT_INPUTS.get(op.name, ())
    for role, indices in (("input", op.inputs), ("output", op.outputs)):
        for pos, ti in enumerate(indices):
            if ti < 0:
                continue
            t = tensors[ti]
            if t.is_dynamic:
                reasons.append("%s '%s' has a dynamic shape %s" % (role, t.name, t.shape_signature))
            if t.dtype in INT8_TYPES:
                continue
            if t.dtype == "INT32" and role == "input" and pos in allowed_int32:
                if not t.is_constant:
                    reasons.append("int32 %s '%s' is computed at run time, not a constant" % (role, t.name))
                continue
            reasons.append("%s %s '%s'" % (t.dtype.lower(), role, t.name))
    return reasons


def float_ops(model: Model) -> List[Dict[str, Any]]:
    """Operators that compute in float (inputs or outputs float, constants aside), boundary ops excluded."""
    sg = model.main
    found = []
    for op in sg.operators:
        if op.name in BOUNDARY_OPS:
            continue
        tensors = [sg.tensors[i] for i in op.inputs + op.outputs if i >= 0]
        if any(t.dtype in FLOAT_TYPES and not t.is_constant for t in tensors):
            found.append({"op": op.name, "index": op.index, "outputs": _names(sg, op.outputs)})
    return found


def unquantizable_error(offenders: List[Offender], model_path: str) -> UnquantizableOpsError:
    main = [o for o in offenders if not o.boundary] or offenders
    shown = "; ".join(o.describe() for o in main[:6])
    if len(main) > 6:
        shown += "; and %d more" % (len(main) - 6)
    extra = len(offenders) - len(main)
    tail = " (plus %d QUANTIZE/DEQUANTIZE op(s) around them)" % extra if extra else ""
    dynamic = any("shape" in r for o in main for r in o.reasons)
    hint = (
        "Replace or remove these ops (the Edge TPU runs only int8 TFLite builtins), or convert with "
        "--target int8 to get a CPU model that keeps them in float"
    )
    if dynamic:
        hint = "Give the model a fully static input shape; " + hint[0].lower() + hint[1:]
    message = "%s is not a full-int8 Edge TPU model: %d op(s) break the int8 rules: %s%s; nothing was written" % (
        model_path,
        len(main),
        shown,
        tail,
    )
    return UnquantizableOpsError(message, [_offender_dict(o) for o in offenders], hint=hint)


def _offender_dict(o: Offender) -> Dict[str, Any]:
    return {"op": o.op, "index": o.index, "reasons": o.reasons, "tensors": o.tensors, "boundary": o.boundary}


# --- Edge TPU pre-flight gate (TF-free, edgepipe.runtime.preflight) ----------------------------


def preflight_summary(model: Model, allow_cpu_ops: int = 0) -> Dict[str, Any]:
    """What the pre-flight predicts edgetpu_compiler will do with `model`, for the ConvertReport.

    Passing int8 verification is not enough: an int8 op outside the Edge TPU op set (LEAKY_RELU, say),
    an op version newer than compiler 16 knows, or a tensor of rank > 3 leaves that op, and every op
    that depends on it, on the CPU.
    """
    from ..runtime.preflight import MAPPED, inspect_model
    from ..runtime.text import first_cpu_text

    report = inspect_model(model)
    cpu = [v for v in report.ops if getattr(v, "edgetpu", MAPPED) != MAPPED]
    first = dict(report.first_cpu_op, outputs=list(cpu[0].outputs), certain=cpu[0].certain) if cpu else None
    if not cpu:
        verdict = "fully mapped: all %d ops predicted on the Edge TPU" % report.ops_total
    else:
        verdict = "%d of %d ops predicted on the CPU (%s)" % (
            report.cpu_ops,
            report.ops_total,
            "allowed: --allow-cpu-ops %d" % allow_cpu_ops if report.cpu_ops <= allow_cpu_ops else "refused",
        )
    return {
        "checked_by": "edgepipe.runtime.preflight",
        "verdict": verdict,
        "fully_mapped": not cpu,
        "ops_total": report.ops_total,
        "tpu_ops": report.tpu_ops,
        "cpu_ops": report.cpu_ops,
        "allowed_cpu_ops": allow_cpu_ops,
        "subgraphs": report.subgraphs,
        "first_cpu_op": first,
        "first_cpu_op_text": first_cpu_text(report) if cpu else None,
        "cpu_op_list": [{"index": v.index, "op": v.name, "edgetpu": v.edgetpu, "certain": v.certain} for v in cpu],
        "uncertain_ops": report.uncertain_ops,
        "tpu_parameter_bytes": report.tpu_parameter_bytes,
        "off_chip_warning": report.off_chip_warning,
        "compile_blockers": list(report.compile_blockers),
        "warnings": list(report.warnings),
    }


def preflight_error(summary: Dict[str, Any], model_path: str) -> Optional[EdgeTpuIncompatibleError]:
    """The refusal when the pre-flight predicts more CPU ops than allowed, else None."""
    if summary["cpu_ops"] <= summary["allowed_cpu_ops"]:
        return None
    first = summary["first_cpu_op"]
    where = " (output '%s')" % first["outputs"][0] if first and first.get("outputs") else ""
    message = (
        "%s converts to a valid int8 model, but the Edge TPU pre-flight predicts %d of %d ops on the CPU "
        "(allowed: %d); first CPU op %s%s; nothing was written"
        % (
            model_path,
            summary["cpu_ops"],
            summary["ops_total"],
            summary["allowed_cpu_ops"],
            summary["first_cpu_op_text"],
            where,
        )
    )
    hint = (
        "Replace that op with one the Edge TPU runs, or accept the CPU ops with --allow-cpu-ops %d "
        "(then `edgepipe inspect OUT` shows every op's verdict)" % summary["cpu_ops"]
    )
    error = EdgeTpuIncompatibleError(message, hint=hint)
    error.preflight = summary  # type: ignore[attr-defined]  # for callers that want the whole prediction
    return error
