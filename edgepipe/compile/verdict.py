"""From parsed compiler output to a verdict (accepted / rejected / failed), the report and its typed error.

The compiler can exit 0 with ops silently left on the CPU, print "Model compiled successfully" with
0 Edge TPU subgraphs, and its failure exit code is undocumented. So success means all of: exit code 0,
none of its failure strings, and at most `allow_cpu_ops` ops on the CPU.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..errors import CompileError, CompileRejected, EdgepipeError
from .parse import CompilerFailure, CompilerOutput, ModelBlock, OperatorRow

REPORT_NAME = "compile_report.json"

# What a user can do about each failure kind (one sentence each).
_FAILURE_HINTS = {
    "op_version": "The model uses an op version newer than this compiler's TFLite; convert with an older "
    "TensorFlow (2.5-2.8 is safest for compiler 16) or keep that op at an older version",
    "builtin_out_of_range": "The model uses an op code newer than this compiler knows; "
    "convert with an older TensorFlow",
    "not_quantized": "Some tensors are still float or int32; `edgepipe inspect MODEL` names them. "
    "Convert with full-integer quantization and a representative dataset",
    "unresolved_custom_op": "The model needs a custom op the compiler's TFLite cannot load; remove it or "
    "move it outside the model",
    "large_activations": "Try --search-delegate, --intermediate-tensors or --segments",
    "internal_error": "Internal compiler errors can be intermittent: rerun once, then simplify the model",
    "dynamic_tensors": "The model has tensors whose shape is known only at run time (e.g. a batch of None); "
    "convert it with a fixed input shape, batch 1 (as `edgepipe convert` does)",
    "compiler_exception": "The compiler crashed on this model (an exception inside it, not a message about the "
    "model): rerun once, then try another TensorFlow version for the conversion or simplify the model",
    "invalid_output": "The compiler reported success but wrote a model that does not match its own summary; "
    "rerun, check free disk space, and keep the compiler's output for a bug report",
    "timeout": "Raise --timeout, or split the model with --segments",
    "input_missing": "Check the model path",
    "missing_output": "The compiler reported success but wrote no model; rerun, and check free disk space",
    "unknown_failure": "See `compiler_output` in the report (--json) for the compiler's full text",
}


@dataclass
class ModelResult:
    input: Optional[str]
    output: Optional[str]
    log: Optional[str]
    segment: Optional[int] = None
    input_bytes: Optional[int] = None
    output_bytes: Optional[int] = None
    sha256: Optional[str] = None  # of the compiled output
    input_sha256: Optional[str] = None
    on_chip_bytes: Optional[int] = None
    on_chip_remaining_bytes: Optional[int] = None
    off_chip_bytes: Optional[int] = None
    subgraphs: Optional[int] = None
    total_ops: Optional[int] = None
    tpu_ops: Optional[int] = None
    cpu_ops: Optional[int] = None
    operators: List[OperatorRow] = field(default_factory=list)

    def take_summary(self, block: ModelBlock) -> None:
        """What the compiler's summary and operator table say of this model (or segment)."""
        self.on_chip_bytes = block.on_chip_bytes
        self.on_chip_remaining_bytes = block.on_chip_remaining_bytes
        self.off_chip_bytes = block.off_chip_bytes
        self.subgraphs = block.subgraphs
        self.total_ops = block.ops_total
        self.tpu_ops = block.tpu_ops
        self.cpu_ops = block.cpu_ops
        self.operators = list(block.operators)


@dataclass
class Decision:
    verdict: str  # "accepted", "rejected" or "failed"
    reasons: List[str]
    failure: Optional[CompilerFailure]  # what decided "failed"
    warnings: List[str]
    allow_cpu_ops: int  # the gate it was decided with


@dataclass
class CompileReport:
    verdict: str  # "accepted", "rejected" or "failed"
    reasons: List[str]
    error: Optional[Dict[str, Any]]
    compiler_version: Optional[str]
    compiler_path: Optional[str]
    command: Optional[List[str]]
    exit_code: Optional[int]
    duration_s: Optional[float]
    compile_time_ms: Optional[int]
    timeout_s: Optional[int]
    min_runtime: Optional[int]
    min_runtime_source: str
    tpu_ops: Optional[int]
    cpu_ops: Optional[int]
    allow_cpu_ops: int
    total_ops: Optional[int]
    subgraphs: Optional[int]
    on_chip_bytes: Optional[int]
    off_chip_bytes: Optional[int]
    operators: List[OperatorRow]
    models: List[ModelResult]
    warnings: List[str]
    preflight: str  # "compared", or why not
    preflight_disagreements: List[Dict[str, Any]]
    source: str  # "edgetpu_compiler" or "text file <path>"
    out_dir: Optional[str] = None
    report_path: Optional[str] = None


def _describe_rows(rows: List[OperatorRow]) -> str:
    return "; ".join("%s x%d (%s)" % (r.name, r.count, r.status) for r in rows)


def decide(
    out: CompilerOutput,
    *,
    allow_cpu_ops: int,
    exit_code: Optional[int] = None,
    killed_after: Optional[float] = None,
    duration_s: Optional[float] = None,
    timeout_s: Optional[int] = None,
    missing_outputs: Sequence[str] = (),
    min_runtime_source: str = "unknown",
    invalid_outputs: Sequence[str] = (),
) -> Decision:
    """The verdict from the parsed output and how the process ended (None: unknown, as for saved text)."""
    warnings: List[str] = ["compiler: " + w for w in out.compiler_warnings] + list(out.notes)
    superseded = [f for f in out.failures if f.superseded]
    if superseded:
        warnings.append(
            "--search-delegate: %d of %d attempts failed before the last one (%s)"
            % (len({f.attempt for f in superseded}), len(out.search_attempts), superseded[0].message)
        )

    failure = None
    if killed_after is not None:
        failure = CompilerFailure(
            "timeout", "edgetpu_compiler was still running after %.0f s and was killed by edgepipe" % killed_after
        )
    else:
        failure = out.failure
        if (
            failure is not None
            and failure.kind == "unknown_failure"
            and not out.blocks
            and not out.search_attempts
            and duration_s is not None
            and timeout_s is not None
            and duration_s >= timeout_s
        ):
            # The compiler's own watchdog prints no reason, only "Compilation failed!"; the clock says it was -t.
            failure = CompilerFailure(
                "timeout", "%s (after %.1f s, at the -t %d s limit)" % (failure.message, duration_s, timeout_s)
            )
    if failure is None and exit_code is not None and exit_code != 0:
        if exit_code < 0:
            name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else str(-exit_code)
            failure = CompilerFailure("internal_error", "edgetpu_compiler was killed by signal %s" % name)
        else:
            said = "its output reports success" if out.blocks else "it printed no failure reason"
            message = "edgetpu_compiler exited with code %d although %s" % (exit_code, said)
            failure = CompilerFailure("unknown_failure", message)
    if failure is None and not out.blocks:
        failure = CompilerFailure("unknown_failure", "no compile summary, operator table or known failure text found")
    if failure is None and missing_outputs:
        failure = CompilerFailure("missing_output", "the compiler wrote no %s" % ", ".join(missing_outputs))
    if failure is None and invalid_outputs:
        failure = CompilerFailure("invalid_output", "; ".join(invalid_outputs))
    if failure is not None:
        return Decision("failed", [failure.message], failure, warnings, allow_cpu_ops)

    reasons: List[str] = []
    for b in out.blocks:
        name = os.path.basename(b.output or b.input or "model")
        if b.off_chip_bytes:
            warnings.append(
                "%s: %d bytes of parameters are streamed from host memory on every inference (off-chip)"
                % (name, b.off_chip_bytes)
            )
        if b.subgraphs is not None and b.subgraphs > 1:
            warnings.append("%s: %d Edge TPU subgraphs (each CPU/TPU switch costs a round trip)" % (name, b.subgraphs))
        if b.subgraphs == 0:
            why = "%s: compiled with 0 Edge TPU subgraphs, everything runs on the CPU" % name
            if min_runtime_source in ("--min-runtime", "detected Edge TPU runtime"):
                why += " (too low a -m runtime version can cause this)"
            reasons.append(why)
        if b.reported_cpu_ops is not None and b.table_complete and b.table_cpu_ops != b.reported_cpu_ops:
            warnings.append(
                "%s: the operator table has %d ops off the TPU but the compiler reported %d on the CPU"
                % (name, b.table_cpu_ops, b.reported_cpu_ops)
            )
    cpu_ops = out.cpu_ops
    if cpu_ops is None:
        reasons.append("cannot tell how many ops run on the CPU: no op counts and no complete operator table")
    elif cpu_ops > allow_cpu_ops:
        rows = [r for r in out.operators if not r.mapped]
        named = _describe_rows(rows) if rows else "the output names none (no operator table in it)"
        reasons.append("%d ops would run on the CPU (allowed %d): %s" % (cpu_ops, allow_cpu_ops, named))
    return Decision("rejected" if reasons else "accepted", reasons, None, warnings, allow_cpu_ops)


def _error_dict(
    failure: Optional[CompilerFailure], out: CompilerOutput, compiler_output: str
) -> Optional[Dict[str, Any]]:
    if failure is None:
        return None
    message = failure.message
    text = out.failure_text
    if text and failure.kind not in ("timeout", "missing_output", "invalid_output") and failure.message in text:
        message = text  # every failure line of the deciding attempt, not just the matching one
    error: Dict[str, Any] = {"kind": failure.kind, "message": message, "compiler_output": compiler_output}
    error["cause"] = failure.message  # the one line that decided the kind
    if failure.op is not None:
        error["op"] = failure.op
    if failure.op_version is not None:
        error["op_version"] = failure.op_version
    return error


def verdict_error(report: CompileReport) -> Optional[EdgepipeError]:
    """The typed error a non-accepted report stands for (CompileRejected / CompileError), with `.report` set."""
    where = " (compiled files kept in %s for diagnosis)" % report.out_dir if report.out_dir else ""
    exc: EdgepipeError
    if report.verdict == "rejected":
        exc = CompileRejected(
            "compile rejected: %s%s" % ("; ".join(report.reasons), where),
            hint="Fix the model (`edgepipe inspect` shows why ops fall back), try --multiple-subgraphs, "
            "or permit them with --allow-cpu-ops N",
        )
    elif report.verdict == "failed":
        error = report.error or {"kind": "unknown_failure", "message": "", "compiler_output": ""}
        exc = CompileError(
            "edgetpu_compiler failed (%s): %s" % (error["kind"], error["message"]),
            kind=error["kind"],
            compiler_output=error.get("compiler_output", ""),
            hint=_FAILURE_HINTS.get(error["kind"], ""),
        )
    else:
        return None
    exc.report = report
    return exc


def build_report(
    out: CompilerOutput,
    decision: Decision,
    *,
    compiler_output: str,
    results: List[ModelResult],
    preflight: str,
    disagreements: List[Dict[str, Any]],
    source: str,
    min_runtime: Optional[int] = None,
    min_runtime_source: str = "unknown",
    compiler_path: Optional[str] = None,
    compiler_version: Optional[str] = None,
    command: Optional[List[str]] = None,
    exit_code: Optional[int] = None,
    duration_s: Optional[float] = None,
    timeout_s: Optional[int] = None,
    out_dir: Optional[str] = None,
) -> CompileReport:
    on_chip = [b.on_chip_bytes for b in out.blocks if b.on_chip_bytes is not None]
    off_chip = [b.off_chip_bytes for b in out.blocks if b.off_chip_bytes is not None]
    error = _error_dict(decision.failure, out, compiler_output)
    return CompileReport(
        verdict=decision.verdict,
        reasons=[error["message"]] if error else decision.reasons,
        error=error,
        compiler_version=compiler_version or out.version,
        compiler_path=compiler_path,
        command=command,
        exit_code=exit_code,
        duration_s=duration_s,
        compile_time_ms=out.compile_time_ms,
        timeout_s=timeout_s if timeout_s is not None else out.timer_s,
        min_runtime=min_runtime,
        min_runtime_source=min_runtime_source,
        tpu_ops=out.tpu_ops,
        cpu_ops=out.cpu_ops,
        allow_cpu_ops=decision.allow_cpu_ops,
        total_ops=out.total_ops,
        subgraphs=out.subgraphs,
        on_chip_bytes=sum(on_chip) if on_chip else None,
        off_chip_bytes=sum(off_chip) if off_chip else None,
        operators=out.operators,
        models=results,
        warnings=decision.warnings,
        preflight=preflight,
        preflight_disagreements=disagreements,
        source=source,
        out_dir=out_dir,
    )
