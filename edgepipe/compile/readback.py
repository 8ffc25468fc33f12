"""Reading back what the compiler wrote: its words alone are not trusted.

A compiled model holds one `edgetpu-custom-op` per Edge TPU subgraph, and the ops the compiler left
on the CPU stay ordinary TFLite ops beside it (Google's compiled pairs in google-coral/test_data show
this: e.g. deeplabv3_mnv2_dm05_pascal_quant_edgetpu.tflite keeps 1 custom op + 8 CPU ops). So each
written `*_edgetpu.tflite` must parse with the strict reader and agree with the summary it came with.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ..errors import EdgepipeError
from ..runtime.tflite_reader import EDGETPU_CUSTOM_OP, read_model
from .parse import CompilerOutput, ModelBlock, find_block
from .verdict import ModelResult


def check_written_models(out: CompilerOutput, staging: Path, results: List[ModelResult]) -> List[str]:
    """One line per written model that is not what the compiler's summary says it wrote."""
    problems = []
    for r in results:
        if not r.output or not (staging / r.output).is_file():
            continue  # a missing model is reported as such elsewhere
        problem = check_written_model(staging / r.output, find_block(out.blocks, output=r.output, log_name=r.log))
        if problem:
            problems.append(problem)
    return problems


def check_written_model(path: Path, block: Optional[ModelBlock]) -> Optional[str]:
    """Why `path` is not the compiled model `block` describes, or None when it is."""
    try:
        model = read_model(str(path))
    except EdgepipeError as exc:
        return "%s is not a readable TFLite model (%s)" % (path.name, exc)
    ops = model.main.operators
    tpu_nodes = sum(1 for op in ops if op.name == EDGETPU_CUSTOM_OP)
    cpu_ops = len(ops) - tpu_nodes
    # Whether the compiler's counts include ops inside further TFLite subgraphs (control flow) is not
    # documented: with several, the count over all of them is accepted too.
    all_ops = [op for sg in model.subgraphs for op in sg.operators]
    all_tpu = sum(1 for op in all_ops if op.name == EDGETPU_CUSTOM_OP)
    reported_tpu = block.tpu_ops if block is not None else None
    if tpu_nodes == 0 and (block is None or reported_tpu or block.subgraphs):
        said = "" if block is None else ", though the compiler reported %s ops on the Edge TPU" % reported_tpu
        return "%s is not compiled for the Edge TPU (no %s)%s" % (path.name, EDGETPU_CUSTOM_OP, said)
    if block is None:
        return None
    if block.subgraphs is not None and block.subgraphs not in (tpu_nodes, all_tpu):
        return "%s holds %d %s node(s), the compiler reported %d Edge TPU subgraph(s)" % (
            path.name,
            tpu_nodes,
            EDGETPU_CUSTOM_OP,
            block.subgraphs,
        )
    if block.cpu_ops is not None and block.cpu_ops not in (cpu_ops, len(all_ops) - all_tpu):
        return "%s holds %d op(s) outside the Edge TPU, the compiler reported %d on the CPU" % (
            path.name,
            cpu_ops,
            block.cpu_ops,
        )
    return None
