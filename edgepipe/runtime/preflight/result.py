"""What the pre-flight reports: one verdict per op (uncompiled), or where each op runs (compiled)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Union

from ..report import RESULT_SCHEMA_VERSION
from ..tflite_reader import Model
from .graph import crossing_tensors, describe_io, tensor_table
from .rules import ON_CHIP_CACHE_BYTES


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


def inspect_report(model: Model, on_tpu: List[bool], multiple_subgraphs: bool, **by_kind: Any) -> InspectReport:
    """The report of `model`: the fields read alike from any model here, the rest (`by_kind`) from
    what the compiled or uncompiled inspection found. `on_tpu` says per op of the main subgraph where it runs."""
    sg = model.main
    return InspectReport(
        schema_version=RESULT_SCHEMA_VERSION,
        kind="inspect",
        path=model.path,
        sha256=model.sha256,
        size_bytes=model.size_bytes,
        parameter_bytes=model.parameter_bytes,
        on_chip_cache_bytes=ON_CHIP_CACHE_BYTES,
        inputs=describe_io(sg, sg.inputs),
        outputs=describe_io(sg, sg.outputs),
        tensors_crossing=crossing_tensors(sg, on_tpu),
        multiple_subgraphs=multiple_subgraphs,
        tflite_subgraphs=len(model.subgraphs),
        buffers=len(model.buffer_sizes),
        tensors=tensor_table(sg),
        **by_kind,
    )
