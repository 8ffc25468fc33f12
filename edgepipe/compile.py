"""The compile stage: run `edgetpu_compiler`, read what it says, and turn that into a verdict.

The compiler is proprietary, x86-64 Debian-only and terse: it can exit 0 with ops silently left on
the CPU, print "Model compiled successfully" with 0 Edge TPU subgraphs, and its failure exit code is
undocumented. So success here means all of: exit code 0, none of its failure strings, and at most
`allow_cpu_ops` ops on the CPU. Output formats differ by version and flags (timer line since v16,
co-compilation, segments, delegate search), so the parser works line by line with tolerant regexes,
never by line number. Facts and exact strings: ../shared/edgetpu/REFERENCE.md §1.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import (
    CompileError,
    CompileRejected,
    CompilerNotFound,
    EdgepipeError,
    InputNotFoundError,
    ModelFormatError,
    OutputWriteError,
)
from .runtime.report import sha256_file, write_json_atomic
from .runtime.tflite_reader import read_model

COMPILER_ENV = "EDGEPIPE_EDGETPU_COMPILER"
COMPILER_NAME = "edgetpu_compiler"
MAPPED = "Mapped to Edge TPU"
REPORT_NAME = "compile_report.json"
# Our watchdog sits on top of the compiler's own `-t`: a wedged compiler (or its child) is killed.
WATCHDOG_MARGIN_S = 30

INSTALL_HINT = (
    "edgetpu_compiler runs only on x86-64 Debian-family Linux: add the Coral apt repository "
    "(deb https://packages.cloud.google.com/apt coral-edgetpu-stable main) and run "
    "`sudo apt-get install edgetpu-compiler`, or compile in Google's Colab notebook "
    "(google-coral/tutorials compile_for_edgetpu.ipynb) and read its output with "
    "`edgepipe compile --from-log FILE`. Meanwhile `edgepipe inspect MODEL` gives the offline prediction"
)

# Compiler version prefix -> runtime version its output needs by default (REFERENCE §3.1, secondary).
_DEFAULT_MIN_RUNTIME = (
    ("16.", 14),
    ("15.", 13),
    ("14.", 13),
    ("2.1.", 13),
    ("2.0.291256449", 13),
    ("2.0.267685300", 12),
    ("1.", 10),
)

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
    "timeout": "Raise --timeout, or split the model with --segments",
    "input_missing": "Check the model path",
    "missing_output": "The compiler reported success but wrote no model; rerun, and check free disk space",
    "unknown_failure": "See `compiler_output` in the report (--json) for the compiler's full text",
}


# --- finding the compiler -----------------------------------------------------------------------


@dataclass
class CompilerInfo:
    path: str
    version: str
    source: str = ""  # "--compiler", "$EDGEPIPE_EDGETPU_COMPILER" or "PATH"


def _not_found(message: str) -> CompilerNotFound:
    machine = "%s %s" % (platform.system(), platform.machine())
    return CompilerNotFound("%s (this machine: %s)" % (message, machine), hint=INSTALL_HINT)


def _resolve(candidate: str) -> Optional[str]:
    if os.sep in candidate or (os.altsep and os.altsep in candidate):
        return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    return shutil.which(candidate)


def find_compiler(explicit: Optional[str] = None) -> CompilerInfo:
    """Locate edgetpu_compiler (`--compiler`, then $EDGEPIPE_EDGETPU_COMPILER, then PATH) and read its version.

    An explicitly named compiler that is missing is an error, never a silent fall-through to PATH.
    """
    if explicit:
        source, wanted = "--compiler", explicit
    elif os.environ.get(COMPILER_ENV):
        source, wanted = "$" + COMPILER_ENV, os.environ[COMPILER_ENV]
    else:
        source, wanted = "PATH", COMPILER_NAME
    path = _resolve(wanted)
    if path is None:
        if source == "PATH":
            raise _not_found("edgetpu_compiler not found on PATH (nor given by --compiler or $%s)" % COMPILER_ENV)
        raise _not_found("edgetpu_compiler not found at %s (from %s), or not executable" % (wanted, source))
    try:
        proc = subprocess.run(
            [path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60
        )
    except subprocess.TimeoutExpired:
        raise _not_found("%s --version did not answer within 60 s" % path) from None
    except OSError as exc:
        raise _not_found("cannot run %s: %s" % (path, exc.strerror or exc)) from None
    text = proc.stdout.decode("utf-8", "replace")
    match = re.search(r"^\s*Edge TPU Compiler version\s+(\S.*)$", text, re.MULTILINE)
    if not match:
        first = text.strip().splitlines()[0] if text.strip() else "nothing"
        raise _not_found("%s does not look like edgetpu_compiler: `--version` printed %r" % (path, first[:200]))
    return CompilerInfo(path=path, version=match.group(1).split()[-1], source=source)


def _major(version: Optional[str]) -> int:
    match = re.match(r"(\d+)", version or "")
    return int(match.group(1)) if match else 0


def default_min_runtime(compiler_version: Optional[str]) -> Optional[int]:
    """The runtime version the compiler targets without `-m` (REFERENCE §3.1; None when unknown)."""
    for prefix, runtime in _DEFAULT_MIN_RUNTIME:
        if compiler_version and compiler_version.startswith(prefix):
            return runtime
    return None


# --- parsing its output -------------------------------------------------------------------------

_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_SIZE = r"([\d.]+)\s*(B|KiB|MiB|GiB)"
_RE = {
    "version": re.compile(r"^Edge TPU Compiler version\s+(\S+)"),
    "timer": re.compile(r"^Started a compilation timeout timer of (\d+) seconds?"),
    "compiled": re.compile(r"^(Models?) compiled successfully in (\d+) ms"),
    "input": re.compile(r"^Input( model)?:\s*(.*)$"),
    "output": re.compile(r"^Output(?: model)?:\s*(.*)$"),
    "size": re.compile(r"^(Input|Output) size:\s*" + _SIZE + "$"),
    "on_chip": re.compile(r"^On-chip memory (used|remaining|available) for caching model parameters:\s*" + _SIZE + "$"),
    "off_chip": re.compile(r"^Off-chip memory used for streaming uncached model parameters:\s*" + _SIZE + "$"),
    "subgraphs": re.compile(r"^Number of Edge TPU subgraphs:\s*(\d+)"),
    "total": re.compile(r"^Total number of operations:\s*(\d+)"),
    "oplog": re.compile(r"^Operation log:\s*(.*)$"),
    "run_on": re.compile(r"^Number of operations that will run on (Edge TPU|CPU):\s*(\d+)"),
    "not_all": re.compile(r"^Model successfully compiled but not all operations are supported"),
    "table_header": re.compile(r"^Operator\s+Count\s+Status$"),
    "row": re.compile(r"^(\S+)\s+(\d+)\s+(\S.*)$"),
    "all_other": re.compile(r"All other operators were mapped successfully"),
    "attempt": re.compile(r"^Try to compile segment with (\d+) ops"),
    "succeeded": re.compile(r"^Compilation succeeded!"),
    "warning": re.compile(r"^Warning:"),
}
# Failure strings of REFERENCE §1.7, most specific first; the compiler's own line is kept as message.
_FAILURES = (
    ("op_version", re.compile(r"Didn't find op for builtin opcode '([^']+)' version '(\d+)'")),
    ("builtin_out_of_range", re.compile(r"Op builtin_code out of range: (\d+)")),
    ("not_quantized", re.compile(r"^Model not quantized")),
    ("unresolved_custom_op", re.compile(r"Encountered unresolved custom op: ([^\s.]+)")),
    ("large_activations", re.compile(r"Compilation failed due to large activation tensors")),
    ("internal_error", re.compile(r"Internal compiler error|Segmentation fault|core dumped")),
    ("input_missing", re.compile(r"^Error opening file for reading:\s*(.*)$")),
)
# Lines that mean "failed" without saying why; alone they make an `unknown_failure`.
_GENERIC_FAILURE = re.compile(r"^(ERROR:|Compilation failed|Invalid model:|Model could not be parsed|Aborted)")


def _bytes(value: str, unit: str) -> int:
    return int(round(float(value) * _UNITS[unit]))


@dataclass
class OperatorRow:
    name: str
    count: int
    status: str
    mapped: bool


@dataclass
class ModelBlock:
    """One `Input model:` ... summary block (one per co-compiled model, per segment), or one `.log`."""

    input: Optional[str] = None
    output: Optional[str] = None
    input_bytes: Optional[int] = None
    output_bytes: Optional[int] = None
    on_chip_bytes: Optional[int] = None
    on_chip_remaining_bytes: Optional[int] = None  # "remaining", or v2.0's "available"
    off_chip_bytes: Optional[int] = None
    subgraphs: Optional[int] = None
    total_ops: Optional[int] = None
    log_name: Optional[str] = None
    reported_tpu_ops: Optional[int] = None
    reported_cpu_ops: Optional[int] = None
    not_all_mapped: bool = False  # the "not all operations are supported" paragraph was printed
    operators: List[OperatorRow] = field(default_factory=list)
    table_partial: bool = False  # "... All other operators were mapped successfully" variant
    table_source: Optional[str] = None  # "console" or "log"
    log_format: bool = False  # parsed from a .log ("Input:"), which has no memory or subgraph summary

    @property
    def table_tpu_ops(self) -> int:
        return sum(r.count for r in self.operators if r.mapped)

    @property
    def table_cpu_ops(self) -> int:
        return sum(r.count for r in self.operators if not r.mapped)

    @property
    def table_complete(self) -> bool:
        return bool(self.operators) and not self.table_partial

    @property
    def cpu_ops(self) -> Optional[int]:
        if self.reported_cpu_ops is not None:
            return self.reported_cpu_ops
        if self.table_complete:
            return self.table_cpu_ops
        if self.total_ops is not None and not self.not_all_mapped:
            return 0  # an all-mapped compile prints no "will run on" lines
        return None

    @property
    def tpu_ops(self) -> Optional[int]:
        if self.reported_tpu_ops is not None:
            return self.reported_tpu_ops
        if self.table_complete:
            return self.table_tpu_ops
        if self.total_ops is not None and self.cpu_ops is not None:
            return self.total_ops - self.cpu_ops
        return None

    @property
    def ops_total(self) -> Optional[int]:
        if self.total_ops is not None:
            return self.total_ops
        return sum(r.count for r in self.operators) if self.table_complete else None


@dataclass
class CompilerFailure:
    kind: str
    message: str  # the compiler's own line
    op: Optional[str] = None
    op_version: Optional[int] = None
    attempt: int = 0
    superseded: bool = False  # a failed `-d` attempt that a later attempt replaced


@dataclass
class CompilerOutput:
    version: Optional[str] = None
    timer_s: Optional[int] = None
    compile_times_ms: List[int] = field(default_factory=list)
    cocompiled: bool = False  # "Models compiled successfully" (plural)
    blocks: List[ModelBlock] = field(default_factory=list)
    failures: List[CompilerFailure] = field(default_factory=list)
    failure_lines: List[Tuple[int, str]] = field(default_factory=list)  # (attempt, line) of every failure text
    search_attempts: List[int] = field(default_factory=list)  # ops per `-d` attempt
    compiler_warnings: List[str] = field(default_factory=list)
    succeeded_lines: int = 0
    notes: List[str] = field(default_factory=list)  # parser observations (e.g. tables disagree)

    @property
    def compile_time_ms(self) -> Optional[int]:
        return sum(self.compile_times_ms) if self.compile_times_ms else None

    @property
    def last_attempt(self) -> int:
        return len(self.search_attempts)

    @property
    def failure(self) -> Optional[CompilerFailure]:
        """The failure that decides the outcome: the first specific one, else any generic failure text."""
        live = [f for f in self.failures if not f.superseded]
        if live:
            return live[0]
        generic = [line for attempt, line in self.failure_lines if attempt == self.last_attempt]
        if generic:
            return CompilerFailure("unknown_failure", " / ".join(generic), attempt=self.last_attempt)
        return None

    @property
    def failure_text(self) -> str:
        """All failure lines of the deciding attempt, in order: the compiler's own words."""
        return " / ".join(line for attempt, line in self.failure_lines if attempt == self.last_attempt)

    def _total(self, attr: str) -> Optional[int]:
        values = [getattr(b, attr) for b in self.blocks]
        return None if not values or any(v is None for v in values) else sum(values)

    @property
    def total_ops(self) -> Optional[int]:
        return self._total("ops_total")

    @property
    def tpu_ops(self) -> Optional[int]:
        return self._total("tpu_ops")

    @property
    def cpu_ops(self) -> Optional[int]:
        return self._total("cpu_ops")

    @property
    def subgraphs(self) -> Optional[int]:
        return self._total("subgraphs")

    @property
    def operators(self) -> List[OperatorRow]:
        return merge_rows(r for b in self.blocks for r in b.operators)


def merge_rows(rows: Any) -> List[OperatorRow]:
    """Sum rows with the same op and status, keeping first-seen order."""
    merged: Dict[Tuple[str, str], OperatorRow] = {}
    for r in rows:
        key = (r.name, r.status)
        if key in merged:
            merged[key].count += r.count
        else:
            merged[key] = OperatorRow(r.name, r.count, r.status, r.mapped)
    return list(merged.values())


def _parse(text: str) -> CompilerOutput:
    out = CompilerOutput()
    block: Optional[ModelBlock] = None
    in_table = False

    def current() -> ModelBlock:
        nonlocal block
        if block is None:
            block = ModelBlock()
            out.blocks.append(block)
        return block

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if in_table:
            row = _RE["row"].match(line)
            if row:
                status = row.group(3).strip()
                b = current()
                b.operators.append(OperatorRow(row.group(1), int(row.group(2)), status, status == MAPPED))
                b.table_source = b.table_source or ("log" if b.log_format else "console")
                continue
            in_table = False
        if _RE["all_other"].search(line):
            current().table_partial = True
            continue
        if _RE["table_header"].match(line):
            in_table = True
            continue
        m = _RE["version"].match(line)
        if m:
            out.version = out.version or m.group(1)
            continue
        m = _RE["timer"].match(line)
        if m:
            out.timer_s = out.timer_s if out.timer_s is not None else int(m.group(1))
            continue
        m = _RE["attempt"].match(line)
        if m:
            out.search_attempts.append(int(m.group(1)))
            continue
        m = _RE["compiled"].match(line)
        if m:
            out.compile_times_ms.append(int(m.group(2)))
            out.cocompiled = out.cocompiled or m.group(1) == "Models"
            continue
        m = _RE["size"].match(line)
        if m:
            attr = "input_bytes" if m.group(1) == "Input" else "output_bytes"
            setattr(current(), attr, _bytes(m.group(2), m.group(3)))
            continue
        m = _RE["input"].match(line)
        if m:  # "Input model:" opens a console block, "Input:" a .log
            block = ModelBlock(input=m.group(2).strip(), log_format=not m.group(1))
            out.blocks.append(block)
            continue
        m = _RE["output"].match(line)
        if m:
            current().output = m.group(1).strip()
            continue
        m = _RE["on_chip"].match(line)
        if m:
            attr = "on_chip_bytes" if m.group(1) == "used" else "on_chip_remaining_bytes"
            setattr(current(), attr, _bytes(m.group(2), m.group(3)))
            continue
        m = _RE["off_chip"].match(line)
        if m:
            current().off_chip_bytes = _bytes(m.group(1), m.group(2))
            continue
        m = _RE["subgraphs"].match(line)
        if m:
            current().subgraphs = int(m.group(1))
            continue
        m = _RE["total"].match(line)
        if m:
            current().total_ops = int(m.group(1))
            continue
        m = _RE["oplog"].match(line)
        if m:
            current().log_name = m.group(1).strip()
            continue
        m = _RE["run_on"].match(line)
        if m:
            attr = "reported_tpu_ops" if m.group(1) == "Edge TPU" else "reported_cpu_ops"
            setattr(current(), attr, int(m.group(2)))
            continue
        if _RE["not_all"].match(line):
            current().not_all_mapped = True
            continue
        if _RE["succeeded"].match(line):
            out.succeeded_lines += 1
            continue
        if _RE["warning"].match(line):
            out.compiler_warnings.append(line)
            continue
        _parse_failure(out, line)
    if out.search_attempts:
        for f in out.failures:
            f.superseded = f.attempt != out.last_attempt
    _fold_pasted_logs(out)
    return out


def _fold_pasted_logs(out: CompilerOutput) -> None:
    """A .log pasted after its console output describes the same model: merge, don't count twice."""
    for log_block in [b for b in out.blocks if b.log_format]:
        target = _find_block([b for b in out.blocks if not b.log_format], output=log_block.output)
        if target is not None:
            _take_table(out, target, log_block, "the pasted .log")
            out.blocks.remove(log_block)


def _take_table(out: CompilerOutput, target: ModelBlock, log_block: ModelBlock, log_name: str) -> None:
    """The .log's table is always complete, so it replaces a console table (maybe the partial variant)."""
    if target.table_complete and _row_key(target.operators) != _row_key(log_block.operators):
        out.notes.append("the operator table on the console and in %s differ; using the log's" % log_name)
    target.operators = log_block.operators
    target.table_partial = False
    target.table_source = "log"
    target.input = target.input or log_block.input
    target.output = target.output or log_block.output


def _parse_failure(out: CompilerOutput, line: str) -> None:
    attempt = len(out.search_attempts)
    for kind, regex in _FAILURES:
        m = regex.search(line)
        if not m:
            continue
        failure = CompilerFailure(kind, line, attempt=attempt)
        if kind == "op_version":
            failure.op, failure.op_version = m.group(1), int(m.group(2))
        elif kind == "builtin_out_of_range":
            failure.op = "BUILTIN_%s" % m.group(1)  # as edgepipe.runtime.schema names unknown codes
        elif kind == "unresolved_custom_op":
            failure.op = m.group(1)
        out.failures.append(failure)
        out.failure_lines.append((attempt, line))
        return
    if _GENERIC_FAILURE.match(line):
        out.failure_lines.append((attempt, line))


def attach_log(out: CompilerOutput, log_text: str, log_name: Optional[str] = None) -> Optional[ModelBlock]:
    """Merge one `.log` (its complete operator table) into the console block it belongs to."""
    log = _parse(log_text)
    if not log.blocks:
        out.notes.append("operation log %s holds no operator table" % (log_name or "text"))
        return None
    source = log.blocks[0]
    out.version = out.version or log.version
    target = _find_block(out.blocks, output=source.output, log_name=log_name)
    if target is None and len(out.blocks) == 1:
        target = out.blocks[0]  # one model compiled, one log: theirs, whatever the paths say
    if target is None:
        source.table_source = "log"
        source.log_name = source.log_name or log_name
        out.blocks.append(source)
        return source
    _take_table(out, target, source, log_name or "the log")
    return target


def _row_key(rows: List[OperatorRow]) -> List[Tuple[str, int, str]]:
    return sorted((r.name, r.count, r.status) for r in rows)


def _find_block(
    blocks: List[ModelBlock], output: Optional[str] = None, log_name: Optional[str] = None
) -> Optional[ModelBlock]:
    """The block naming the same operation log, else the same output file. By base name: the console
    shows paths as given or under `-o`, a pasted log those of another machine."""
    for wanted, attr in ((log_name, "log_name"), (output, "output")):
        if not wanted:
            continue
        for b in blocks:
            value = getattr(b, attr)
            if value and os.path.basename(value) == os.path.basename(wanted):
                return b
    return None


def parse_compiler_output(text: str, log_text: Optional[str] = None) -> CompilerOutput:
    """Parse the compiler's console text (stdout+stderr) and, optionally, one model's `.log`."""
    out = _parse(text)
    if log_text is not None:
        attach_log(out, log_text)
    return out


# --- the report ---------------------------------------------------------------------------------


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


def _decide(
    out: CompilerOutput,
    *,
    exit_code: Optional[int],
    killed_after: Optional[float],
    duration_s: Optional[float],
    timeout_s: Optional[int],
    allow_cpu_ops: int,
    missing_outputs: List[str],
    min_runtime_source: str,
) -> Tuple[str, List[str], Optional[CompilerFailure], List[str]]:
    """(verdict, reasons, failure, warnings) from the parsed output and how the process ended."""
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
            # The compiler's own watchdog gives no reason (REFERENCE §1.7); the clock says it was -t.
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
    if failure is not None:
        return "failed", [failure.message], failure, warnings

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
    return ("rejected" if reasons else "accepted"), reasons, None, warnings


def _error_dict(
    failure: Optional[CompilerFailure], out: CompilerOutput, compiler_output: str
) -> Optional[Dict[str, Any]]:
    if failure is None:
        return None
    message = failure.message
    text = out.failure_text
    if text and failure.kind not in ("timeout", "missing_output") and failure.message in text:
        message = text  # every failure line of the deciding attempt, not just the matching one
    error: Dict[str, Any] = {"kind": failure.kind, "message": message, "compiler_output": compiler_output}
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


# --- pre-flight comparison ----------------------------------------------------------------------


def _preflight_ops(model_path: str, multiple_subgraphs: bool) -> List[Any]:
    from .runtime.inspect import inspect_model  # late: only a finished compile needs the pre-flight

    return list(inspect_model(model_path, multiple_subgraphs=multiple_subgraphs).ops)


def compare_with_preflight(
    predicted_ops: List[Any], operators: List[OperatorRow], model: str = ""
) -> List[Dict[str, Any]]:
    """Per op name, the pre-flight's predicted mapped / not-mapped counts vs the compiler's table.

    `predicted_ops` are objects with `.name` and `.edgetpu` ("mapped" or a reason), as returned by
    `edgepipe.runtime.inspect.inspect_model(...).ops`. Custom ops count as "CUSTOM", as in the table.
    """
    predicted: Dict[str, Dict[str, Any]] = {}
    for op in predicted_ops:
        name = op.name
        if getattr(op, "custom_code", None) or getattr(op, "is_custom", False) is True:
            name = "CUSTOM"
        entry = predicted.setdefault(name, {"mapped": 0, "not_mapped": 0, "reasons": []})
        verdict = getattr(op, "edgetpu", None)
        if verdict == "mapped":
            entry["mapped"] += 1
        else:
            entry["not_mapped"] += 1
            if verdict and verdict not in entry["reasons"]:
                entry["reasons"].append(str(verdict))
    compiled: Dict[str, Dict[str, Any]] = {}
    for r in operators:
        entry = compiled.setdefault(r.name, {"mapped": 0, "not_mapped": 0, "statuses": []})
        entry["mapped" if r.mapped else "not_mapped"] += r.count
        if not r.mapped and r.status not in entry["statuses"]:
            entry["statuses"].append(r.status)
    disagreements = []
    for name in list(dict.fromkeys(list(compiled) + list(predicted))):
        p = predicted.get(name, {"mapped": 0, "not_mapped": 0, "reasons": []})
        c = compiled.get(name, {"mapped": 0, "not_mapped": 0, "statuses": []})
        if (p["mapped"], p["not_mapped"]) != (c["mapped"], c["not_mapped"]):
            item: Dict[str, Any] = {"op": name, "predicted": p, "compiler": c}
            if model:
                item["model"] = model
            disagreements.append(item)
    return disagreements


def _run_preflight(
    models: List[Path], results: List[ModelResult], multiple_subgraphs: bool
) -> Tuple[str, List[Dict[str, Any]]]:
    disagreements: List[Dict[str, Any]] = []
    for model in models:
        mine = [r for r in results if r.input and _stem_of(r.input) == model.stem]
        if not mine or any(not r.operators for r in mine):
            return "skipped: no complete operator table from the compiler", []
        rows = merge_rows(row for r in mine for row in r.operators)
        try:
            predicted = _preflight_ops(str(model), multiple_subgraphs)
        except EdgepipeError as exc:
            return "failed: %s" % exc.one_line(), []
        except Exception as exc:  # a pre-flight bug must not cost the user the compile report
            return "failed: %s: %s" % (type(exc).__name__, exc), []
        disagreements.extend(compare_with_preflight(predicted, rows, model=model.name))
    return "compared", disagreements


# --- running it ---------------------------------------------------------------------------------

_SEGMENT = re.compile(r"_segment_\d+_of_\d+$")


def _stem_of(path: str) -> str:
    """The input model's stem, also for a segment's input (`m_segment_0_of_2.tflite` -> `m`)."""
    return _SEGMENT.sub("", Path(path).stem)


def _detected_runtime_version() -> Optional[int]:
    """The local Edge TPU runtime version (libedgetpu, asked in a child process), or None without one."""
    from .runtime.edgetpu import runtime_version  # imported late: only compiling needs it

    try:
        return runtime_version()
    except (EdgepipeError, OSError):
        return None


def _resolve_min_runtime(requested: Optional[int], compiler_version: str) -> Tuple[Optional[int], str, bool]:
    """(min_runtime, where it came from, whether to pass `-m`)."""
    default = default_min_runtime(compiler_version)
    if requested is not None:
        return requested, "--min-runtime", True
    detected = _detected_runtime_version()
    if detected is not None:
        if default is not None and detected >= default:
            # Newer runtimes load older packages, and `-m` above the compiler's own target may fail.
            return default, "compiler default (detected Edge TPU runtime %d is as new)" % detected, False
        return detected, "detected Edge TPU runtime", True
    return default, "compiler default", False


def build_command(
    compiler_path: str,
    models: List[Path],
    out_dir: Path,
    *,
    timeout_s: Optional[int],
    min_runtime: Optional[int] = None,
    segments: Optional[int] = None,
    search_delegate: bool = False,
    search_step: Optional[int] = None,
    intermediate_tensors: Optional[List[str]] = None,
    multiple_subgraphs: bool = False,
) -> List[str]:
    """The compiler's argument list (never a shell string)."""
    argv = [compiler_path, "-s", "-o", str(out_dir)]
    if timeout_s is not None:
        argv += ["-t", str(int(timeout_s))]
    if min_runtime is not None:
        argv += ["-m", str(int(min_runtime))]
    if segments is not None:
        argv += ["-n", str(int(segments))]
    if search_delegate:
        argv += ["-d"]
        if search_step is not None:
            argv += ["-k", str(int(search_step))]
    if intermediate_tensors:
        argv += ["-i", ",".join(intermediate_tensors)]
    if multiple_subgraphs:
        argv += ["-a"]
    return argv + [str(m) for m in models]


def expected_outputs(model: Path, segments: Optional[int]) -> List[str]:
    """File names the compiler writes for one input (REFERENCE §1.2)."""
    if segments and segments > 1:
        return ["%s_segment_%d_of_%d_edgetpu.tflite" % (model.stem, i, segments) for i in range(segments)]
    return ["%s_edgetpu.tflite" % model.stem]


def _check_input(model: Path) -> Any:
    parsed = read_model(str(model))  # InputNotFoundError / ModelFormatError for a bad file
    if parsed.compiled_for_edgetpu:
        raise ModelFormatError(
            "%s is already compiled for the Edge TPU (it contains edgetpu-custom-op)" % model,
            hint="Pass the uncompiled int8 .tflite instead",
        )
    return parsed


def _run(argv: List[str], deadline_s: float) -> Tuple[Optional[int], str, Optional[float], float]:
    """(exit code, stdout+stderr, killed_after_s, duration_s). Kills the whole process group on timeout."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream keeps the compiler's line order
            stdin=subprocess.DEVNULL,
            start_new_session=(os.name == "posix"),  # the compiler forks a child: kill them together
        )
    except OSError as exc:
        raise _not_found("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from None
    killed_after = None
    try:
        data, _ = proc.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        killed_after = time.monotonic() - start
        _kill(proc)
        try:
            data, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired as exc:
            # A descendant that left the process group still holds the pipe; keep what arrived.
            data = exc.stdout or b""
            if proc.stdout is not None:
                proc.stdout.close()
            proc.wait()
    except BaseException:  # Ctrl-C: in its own session the compiler never saw the SIGINT
        _kill(proc)
        proc.wait()
        raise
    duration = time.monotonic() - start
    text = (data or b"").decode("utf-8", "replace")
    return (None if killed_after is not None else proc.returncode), text, killed_after, duration


def _kill(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _watchdog_s(
    timeout_s: int, segments: Optional[int], search_delegate: bool, search_step: Optional[int], ops: int
) -> float:
    """Our own limit: the compiler's `-t` applies per segment and per `-d` attempt, plus a margin."""
    attempts = max(segments or 1, 1)
    if search_delegate:
        attempts *= math.ceil(max(ops, 1) / max(search_step or 1, 1)) + 1
    return float(timeout_s * attempts + WATCHDOG_MARGIN_S)


def compile_models(
    models: List[Path],
    out_dir: Path,
    *,
    compiler: Optional[str] = None,
    min_runtime: Optional[int] = None,
    segments: Optional[int] = None,
    timeout_s: int = 180,
    search_delegate: bool = False,
    search_step: Optional[int] = None,
    intermediate_tensors: Optional[List[str]] = None,
    multiple_subgraphs: bool = False,
    allow_cpu_ops: int = 0,
) -> CompileReport:
    """Compile `models` (several = one co-compilation) into `out_dir` and judge the result.

    Returns the report when accepted. Raises CompileRejected (compiled, but ops on the CPU or no TPU
    subgraph; files kept) or CompileError (failed), each with `.report`, after writing
    `out_dir/compile_report.json`. Bad inputs and a missing compiler raise before anything runs.
    """
    models = [Path(m) for m in models]
    out_dir = Path(out_dir)
    if not models:
        raise InputNotFoundError("no model to compile", hint="Name at least one .tflite file")
    if search_step is not None and not search_delegate:
        raise ValueError("search_step needs search_delegate")
    if segments is not None and segments < 1:
        raise ValueError("segments must be >= 1")
    parsed = [_check_input(m) for m in models]
    stems: Dict[str, Path] = {}
    for m in models:
        if m.stem in stems:
            raise OutputWriteError(
                "%s and %s would both compile to %s_edgetpu.tflite" % (stems[m.stem], m, m.stem),
                hint="Rename one of them",
            )
        stems[m.stem] = m

    info = find_compiler(compiler)
    runtime, runtime_source, pass_m = _resolve_min_runtime(min_runtime, info.version)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".compile-", dir=str(out_dir)))
    except OSError as exc:
        raise OutputWriteError("cannot create %s: %s" % (out_dir, exc.strerror or exc)) from None
    # The compiler's own watchdog (and so, we assume, `-t`) arrived in v16 (REFERENCE §1.5).
    has_timer = _major(info.version) >= 16
    argv = build_command(
        info.path,
        models,
        staging,
        timeout_s=timeout_s if has_timer else None,
        min_runtime=runtime if pass_m else None,
        segments=segments,
        search_delegate=search_delegate,
        search_step=search_step,
        intermediate_tensors=intermediate_tensors,
        multiple_subgraphs=multiple_subgraphs,
    )
    ops = max((len(p.main.operators) for p in parsed if p.subgraphs), default=1)
    try:
        exit_code, text, killed_after, duration = _run(
            argv, _watchdog_s(timeout_s, segments, search_delegate, search_step, ops)
        )
        out = _parse(text)
        results, missing, log_warnings = _read_staged(out, staging, models, parsed, segments, killed_after is None)
        verdict, reasons, failure, warnings = _decide(
            out,
            exit_code=exit_code,
            killed_after=killed_after,
            duration_s=duration,
            timeout_s=timeout_s,
            allow_cpu_ops=allow_cpu_ops,
            missing_outputs=missing if out.failure is None else [],
            min_runtime_source=runtime_source,
        )
        warnings += log_warnings
        if not has_timer:
            warnings.append("compiler %s predates -t (v16): only edgepipe's own timeout applied" % info.version)
        kept = _publish(staging, out_dir, keep_models=verdict != "failed")
        if verdict == "failed" and kept["discarded"]:
            warnings.append("partial or untrusted outputs discarded: %s" % ", ".join(kept["discarded"]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    _fill_results(results, out, out_dir, kept["kept"])
    preflight, disagreements = ("skipped: compile failed", [])
    if verdict != "failed":
        preflight, disagreements = _run_preflight(models, results, multiple_subgraphs)
    report = _report(
        out,
        verdict=verdict,
        reasons=reasons,
        failure=failure,
        compiler_output=text,
        warnings=warnings,
        results=results,
        compiler_path=info.path,
        compiler_version=info.version,
        command=argv,
        exit_code=exit_code,
        duration_s=round(duration, 3),
        timeout_s=timeout_s,
        min_runtime=runtime,
        min_runtime_source=runtime_source,
        allow_cpu_ops=allow_cpu_ops,
        preflight=preflight,
        disagreements=disagreements,
        source="edgetpu_compiler",
        out_dir=str(out_dir),
    )
    report.report_path = str(out_dir / REPORT_NAME)
    write_json_atomic(report.report_path, report)
    exc = verdict_error(report)
    if exc is not None:
        raise exc
    return report


def _read_staged(
    out: CompilerOutput, staging: Path, models: List[Path], parsed: List[Any], segments: Optional[int], finished: bool
) -> Tuple[List[ModelResult], List[str], List[str]]:
    """Attach each expected `.log` to the parsed output; (results, missing models, warnings)."""
    results: List[ModelResult] = []
    missing: List[str] = []
    warnings: List[str] = []
    for model, model_parsed in zip(models, parsed):
        for i, name in enumerate(expected_outputs(model, segments)):
            log_name = name[: -len(".tflite")] + ".log"
            produced = (staging / name).exists()
            if finished and not produced:
                missing.append(name)
            if (staging / log_name).exists():
                attach_log(out, (staging / log_name).read_text("utf-8", "replace"), log_name)
            elif finished and produced and out.failure is None:
                printed = any(b.operators for b in out.blocks)
                warnings.append(
                    "the compiler wrote no %s; %s"
                    % (log_name, "using the operator table it printed" if printed else "no operator table is known")
                )
            segment = i if segments and segments > 1 else None
            results.append(ModelResult(str(model), name, log_name, segment=segment, input_sha256=model_parsed.sha256))
    return results, missing, warnings


def _publish(staging: Path, out_dir: Path, keep_models: bool) -> Dict[str, List[str]]:
    """Move what the compiler wrote into out_dir (an atomic rename each); drop models of a failed run."""
    kept: List[str] = []
    discarded: List[str] = []
    for path in sorted(staging.iterdir()):
        if not path.is_file():
            continue
        if path.suffix == ".tflite" and not keep_models:
            discarded.append(path.name)
            continue
        try:
            os.replace(path, out_dir / path.name)
        except OSError as exc:
            raise OutputWriteError("cannot move %s into %s: %s" % (path.name, out_dir, exc.strerror or exc)) from None
        kept.append(path.name)
    return {"kept": kept, "discarded": discarded}


def _fill_results(results: List[ModelResult], out: CompilerOutput, out_dir: Path, kept: List[str]) -> None:
    """Per model (or segment): its summary block, final paths, sizes and checksums."""
    for r in results:
        block = _find_block(out.blocks, output=r.output, log_name=r.log)
        output = r.output
        r.output = str(out_dir / output) if output in kept else None
        r.log = str(out_dir / r.log) if r.log in kept else None
        if r.input and os.path.exists(r.input):
            r.input_bytes = os.path.getsize(r.input)
        if r.output:
            r.output_bytes = os.path.getsize(r.output)
            r.sha256 = sha256_file(r.output)
        if block is not None:
            r.on_chip_bytes = block.on_chip_bytes
            r.on_chip_remaining_bytes = block.on_chip_remaining_bytes
            r.off_chip_bytes = block.off_chip_bytes
            r.subgraphs = block.subgraphs
            r.total_ops = block.ops_total
            r.tpu_ops = block.tpu_ops
            r.cpu_ops = block.cpu_ops
            r.operators = list(block.operators)
            if r.output_bytes is None:
                r.output_bytes = block.output_bytes


def _report(
    out: CompilerOutput,
    *,
    verdict: str,
    reasons: List[str],
    failure: Optional[CompilerFailure],
    compiler_output: str,
    warnings: List[str],
    results: List[ModelResult],
    allow_cpu_ops: int,
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
    error = _error_dict(failure, out, compiler_output)
    return CompileReport(
        verdict=verdict,
        reasons=[error["message"]] if error else reasons,
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
        allow_cpu_ops=allow_cpu_ops,
        total_ops=out.total_ops,
        subgraphs=out.subgraphs,
        on_chip_bytes=sum(on_chip) if on_chip else None,
        off_chip_bytes=sum(off_chip) if off_chip else None,
        operators=out.operators,
        models=results,
        warnings=warnings,
        preflight=preflight,
        preflight_disagreements=disagreements,
        source=source,
        out_dir=out_dir,
    )


# --- reading an existing output -----------------------------------------------------------------


def report_from_log(path: Path, allow_cpu_ops: int = 0) -> CompileReport:
    """A report from saved compiler output: console text, a `.log`, or both pasted together.

    The verdict rests on the text alone: the exit code is unknown. When the console text names its
    operation log and that file sits beside it, its full operator table is read too.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8", "replace")
    except FileNotFoundError:
        raise InputNotFoundError("compiler output not found: %s" % path, hint="Check the path") from None
    except OSError as exc:
        raise InputNotFoundError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    out = _parse(text)
    if out.version is None and not out.blocks and not out.failure_lines:
        raise ModelFormatError(
            "%s is not edgetpu_compiler output: no version line, summary, operator table or failure text" % path,
            hint="Give the compiler's console text or its <model>_edgetpu.log",
        )
    for block in list(out.blocks):
        if block.log_name and not block.table_complete:
            sibling = path.parent / os.path.basename(block.log_name)
            if sibling.is_file() and sibling.resolve() != path.resolve():
                attach_log(out, sibling.read_text("utf-8", "replace"), str(sibling))
    warnings = ["exit code unknown (read from %s): the verdict rests on the text alone" % path.name]
    if out.blocks and all(b.log_format for b in out.blocks):
        warnings.append("a .log has no memory or subgraph summary: on-chip, off-chip and subgraphs unknown")
    verdict, reasons, failure, decided_warnings = _decide(
        out,
        exit_code=None,
        killed_after=None,
        duration_s=None,
        timeout_s=None,
        allow_cpu_ops=allow_cpu_ops,
        missing_outputs=[],
        min_runtime_source="unknown",
    )
    results = [
        ModelResult(
            input=b.input,
            output=b.output,
            log=b.log_name,
            input_bytes=b.input_bytes,
            output_bytes=b.output_bytes,
            on_chip_bytes=b.on_chip_bytes,
            on_chip_remaining_bytes=b.on_chip_remaining_bytes,
            off_chip_bytes=b.off_chip_bytes,
            subgraphs=b.subgraphs,
            total_ops=b.ops_total,
            tpu_ops=b.tpu_ops,
            cpu_ops=b.cpu_ops,
            operators=list(b.operators),
        )
        for b in out.blocks
    ]
    return _report(
        out,
        verdict=verdict,
        reasons=reasons,
        failure=failure,
        compiler_output=text,
        warnings=warnings + decided_warnings,
        results=results,
        min_runtime=None,
        min_runtime_source="not recorded in the compiler's output",
        allow_cpu_ops=allow_cpu_ops,
        preflight="skipped: no model given",
        disagreements=[],
        source="text file %s" % path,
    )
