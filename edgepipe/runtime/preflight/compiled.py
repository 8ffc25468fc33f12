"""A compiled model: which ops are edgetpu-custom-op nodes, which stayed on the CPU, and which
tensors cross between them. Such a model needs the Edge TPU delegate; it cannot run on the CPU."""

from __future__ import annotations

from ..tflite_reader import EDGETPU_CUSTOM_OP, Model
from .graph import clip
from .result import CompiledOp, InspectReport, inspect_report


def inspect_compiled(model: Model, multiple_subgraphs: bool) -> InspectReport:
    sg = model.main
    on_tpu = [op.name == EDGETPU_CUSTOM_OP for op in sg.operators]
    ops = [
        CompiledOp(op.index, clip(op.name), op.version, "edgetpu" if tpu else "cpu")
        for op, tpu in zip(sg.operators, on_tpu)
    ]
    cpu = [op for op in sg.operators if op.name != EDGETPU_CUSTOM_OP]
    tpu_count = len(sg.operators) - len(cpu)
    first_cpu = None
    if cpu:
        first_cpu = {"index": cpu[0].index, "name": clip(cpu[0].name), "version": cpu[0].version}
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
    return inspect_report(
        model,
        on_tpu,
        multiple_subgraphs,
        compiled_for_edgetpu=True,
        ops_total=len(sg.operators),
        tpu_ops=tpu_count,
        cpu_ops=len(cpu),
        subgraphs=tpu_count,
        tpu_parameter_bytes=None,
        off_chip_warning=None,
        ops=list(ops),
        first_cpu_op=first_cpu,
        needs_edgetpu_delegate=True,
        uncertain_ops=0,
        compile_blockers=[],
        edgetpu_executable_bytes=executable,
        warnings=warnings,
    )
