"""The Edge TPU pre-flight (`edgepipe inspect`): what is in a .tflite model, and what
`edgetpu_compiler` 16 will do with it.

TensorFlow-free and Python 3.7 compatible, so it runs on a laptop without the compiler (which exists
only for x86-64 Debian) and on the board itself (`python -m edgepipe.runtime inspect MODEL`).

Uncompiled model: a per-op pre-flight. Each op is "mapped" or gets the reason it would not be, in the
compiler's own status wording where one exists. The rules are the `RULES` table in rules.py; each
names its source and whether the public facts make it certain. Sources: coral.ai's Edge TPU docs
(models-intro: requirements and supported operations; compiler), a google-coral/edgetpu issue ("#n"),
a real compiler output from public threads and READMEs ("log NN", numbered as in the project's
test data, with "REFERENCE §n" the section of its notes that quotes it), or one of Google's own
uncompiled/compiled model pairs from github.com/google-coral/test_data ("... pair").

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
number of ops and tensor references, and per-op text clips names and shapes (see graph.clip).

Parts: rules.py (the table), checks.py (one op), uncompiled.py (the graph: partition, blockers,
warnings), compiled.py (a compiled model), result.py (the report), graph.py (helpers); the plain-text
rendering is edgepipe/runtime/text.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence, Union

from ..errors import EdgepipeError
from ..report import dumps, report_failure
from ..tflite_reader import Model, read_model
from .compiled import inspect_compiled
from .result import CompiledOp, InspectReport, OpVerdict
from .rules import (
    EDGETPU_OPS,
    MAPPED,
    MORE_THAN_ONE_SUBGRAPH,
    NON_UNIT_STRIDES,
    NOT_SUPPORTED,
    OTHERWISE_NOT_MAPPED,
    PARAM_NOT_CONSTANT,
    RULE,
    RULES,
    UNSUPPORTED_DTYPE,
    UNSUPPORTED_RANK,
    VERSION_NOT_SUPPORTED,
    Rule,
)
from .uncompiled import inspect_uncompiled

__all__ = [
    "EDGETPU_OPS",
    "MAPPED",
    "MORE_THAN_ONE_SUBGRAPH",
    "NON_UNIT_STRIDES",
    "NOT_SUPPORTED",
    "OTHERWISE_NOT_MAPPED",
    "PARAM_NOT_CONSTANT",
    "RULE",
    "RULES",
    "UNSUPPORTED_DTYPE",
    "UNSUPPORTED_RANK",
    "VERSION_NOT_SUPPORTED",
    "CompiledOp",
    "InspectReport",
    "OpVerdict",
    "Rule",
    "inspect_file",
    "inspect_model",
    "main_inspect",
]


def inspect_file(path: "Union[str, os.PathLike[str]]", *, multiple_subgraphs: bool = False) -> InspectReport:
    return inspect_model(read_model(path), multiple_subgraphs=multiple_subgraphs)


def inspect_model(model: Union[Model, str, "os.PathLike[str]"], *, multiple_subgraphs: bool = False) -> InspectReport:
    """The report for one model. A pure function of the Model (a path is read first, for convenience)."""
    if not isinstance(model, Model):
        return inspect_file(model, multiple_subgraphs=multiple_subgraphs)
    if model.compiled_for_edgetpu:
        return inspect_compiled(model, multiple_subgraphs)
    return inspect_uncompiled(model, multiple_subgraphs)


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
        # With --json, as the other device-side commands do: a host reading stdout learns the error type too.
        return report_failure(exc, sys.stderr, sys.stdout if args.json else None)
    from ..text import render_text  # (late: text.py imports this package's parts)

    sys.stdout.write((dumps(report) if args.json else render_text(report)) + "\n")
    return 0
