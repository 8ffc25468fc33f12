"""`report_from_log`: judge compiler output saved elsewhere (e.g. Google's Colab notebook)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional, Tuple

from ..errors import InputNotFoundError, ModelFormatError
from . import process
from .parse import ModelBlock, attach_log, parse_compiler_output
from .preflight_compare import run_preflight
from .run import read_uncompiled
from .verdict import CompileReport, ModelResult, build_report, decide


def read_bounded(path: Path) -> Tuple[str, int]:
    """(text, bytes dropped): a saved output is read as the compiler's own is kept, head and tail."""
    kept = process.BoundedOutput(process.OUTPUT_HEAD_BYTES, process.OUTPUT_TAIL_BYTES)
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                kept.add(chunk)
    except FileNotFoundError:
        raise InputNotFoundError("compiler output not found: %s" % path, hint="Check the path") from None
    except OSError as exc:
        raise InputNotFoundError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    return kept.text()


def report_from_log(
    path: Path,
    allow_cpu_ops: int = 0,
    models: Optional[List[Path]] = None,
    multiple_subgraphs: bool = False,
) -> CompileReport:
    """A report from saved compiler output: console text, a `.log`, or both pasted together.

    The verdict rests on the text alone: the exit code is unknown. When the console text names its
    operation log and that file sits beside it, its full operator table is read too. Given the
    uncompiled `models` the output is of, it is compared with their pre-flight, as a compile here is.
    """
    path = Path(path)
    models = [Path(m) for m in models or []]
    parsed = [read_uncompiled(m) for m in models]  # a bad model is refused before the log is judged
    text, dropped = read_bounded(path)
    out = parse_compiler_output(text)
    if out.version is None and not out.blocks and not out.failure_lines:
        raise ModelFormatError(
            "%s is not edgetpu_compiler output: no version line, summary, operator table or failure text" % path,
            hint="Give the compiler's console text or its <model>_edgetpu.log",
        )
    for block in list(out.blocks):
        if block.log_name and not block.table_complete:
            sibling = path.parent / os.path.basename(block.log_name)
            if sibling.is_file() and sibling.resolve() != path.resolve():
                attach_log(out, read_bounded(sibling)[0], str(sibling))
    # Nothing is known of the process that printed the text: decide() is told only the gate.
    decision = decide(out, allow_cpu_ops=allow_cpu_ops)
    warnings = ["exit code unknown (read from %s): the verdict rests on the text alone" % path.name]
    if dropped:
        warnings.append("%s is %d bytes: %d in the middle were not read" % (path.name, path.stat().st_size, dropped))
    if out.blocks and all(b.log_format for b in out.blocks):
        warnings.append("a .log has no memory or subgraph summary: on-chip, off-chip and subgraphs unknown")
    results: List[ModelResult] = []
    for b in out.blocks:
        result = ModelResult(b.input, b.output, b.log_name, input_bytes=b.input_bytes, output_bytes=b.output_bytes)
        result.take_summary(b)
        results.append(result)
    preflight, disagreements = "skipped: no model given", []
    if models and decision.verdict == "failed":
        preflight = "skipped: compile failed"
    elif models:
        warnings += _model_mismatches(models, parsed, out.blocks)
        preflight, disagreements = run_preflight(models, results, multiple_subgraphs)
    decision.warnings[:0] = warnings  # ours first, then what the verdict noticed
    return build_report(
        out,
        decision,
        compiler_output=text,
        results=results,
        min_runtime_source="not recorded in the compiler's output",
        preflight=preflight,
        disagreements=disagreements,
        source="text file %s" % path,
    )


def _model_mismatches(models: List[Path], parsed: List[Any], blocks: List[ModelBlock]) -> List[str]:
    """A warning when the output cannot be of the given model: the compiler counts every op of its input."""
    if len(models) != 1 or len(blocks) != 1 or blocks[0].ops_total is None:
        return []
    ops = len(parsed[0].main.operators)
    if ops == blocks[0].ops_total:
        return []
    return [
        "%s has %d ops but the compiler's output counts %d: it may be the output of another model"
        % (models[0].name, ops, blocks[0].ops_total)
    ]
