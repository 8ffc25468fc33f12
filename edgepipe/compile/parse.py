"""Parsing the compiler's console output and `.log` files: a pure function of text, no I/O.

Output formats differ by version and flags (timer line since v16, co-compilation, segments, delegate
search), so the parser works line by line with tolerant regexes, never by line number. The strings
are the compiler's own, as quoted in https://coral.ai/docs/edgetpu/compiler/ and the issue threads of
https://github.com/google-coral/edgetpu.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

MAPPED = "Mapped to Edge TPU"

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
# Failure strings as the compiler prints them (quoted in google-coral/edgetpu issues, e.g. #168, #845, #862,
# #601, #211, #829, #728), most specific first; the compiler's own line is kept as message.
_FAILURES = (
    ("op_version", re.compile(r"Didn't find op for builtin opcode '([^']+)' version '(\d+)'")),
    ("builtin_out_of_range", re.compile(r"Op builtin_code out of range: (\d+)")),
    ("not_quantized", re.compile(r"^Model not quantized")),
    ("unresolved_custom_op", re.compile(r"Encountered unresolved custom op: ([^\s.]+)")),
    ("large_activations", re.compile(r"Compilation failed due to large activation tensors")),
    ("internal_error", re.compile(r"Internal compiler error|Segmentation fault|core dumped")),
    # google-coral/edgetpu#829 and #831: a graph whose tensor shapes are only known at run time.
    ("dynamic_tensors", re.compile(r"only supports static-sized tensors with a graph that has dynamic-sized")),
    # google-coral/edgetpu#728: the compiler itself died of a C++ exception (libc++abi's last words).
    ("compiler_exception", re.compile(r"terminating with uncaught exception of type (\S+?):?(\s|$)")),
    ("input_missing", re.compile(r"^Error opening file for reading:\s*(.*)$")),
)
# Lines that mean "failed" without saying why; alone they make an `unknown_failure`.
_GENERIC_FAILURE = re.compile(r"^(ERROR:|Compilation failed|Invalid model:|Model could not be parsed|Aborted)")


def _bytes(value: str, unit: str) -> int:
    return int(round(float(value) * _UNITS[unit]))


# Summary lines that set one field of the current model block: pattern name -> (field, value) of its match.
_BLOCK_FIELDS: Tuple[Tuple[str, Callable[[re.Match[str]], Tuple[str, Any]]], ...] = (
    ("size", lambda m: ("input_bytes" if m.group(1) == "Input" else "output_bytes", _bytes(m.group(2), m.group(3)))),
    ("output", lambda m: ("output", m.group(1).strip())),
    ("on_chip", lambda m: (_ON_CHIP_FIELD[m.group(1)], _bytes(m.group(2), m.group(3)))),
    ("off_chip", lambda m: ("off_chip_bytes", _bytes(m.group(1), m.group(2)))),
    ("subgraphs", lambda m: ("subgraphs", int(m.group(1)))),
    ("total", lambda m: ("total_ops", int(m.group(1)))),
    ("oplog", lambda m: ("log_name", m.group(1).strip())),
    ("run_on", lambda m: ("reported_tpu_ops" if m.group(1) == "Edge TPU" else "reported_cpu_ops", int(m.group(2)))),
    ("not_all", lambda m: ("not_all_mapped", True)),
)
_ON_CHIP_FIELD = {
    "used": "on_chip_bytes",
    "remaining": "on_chip_remaining_bytes",
    "available": "on_chip_remaining_bytes",
}


def _set_block_field(current: Callable[[], ModelBlock], line: str) -> bool:
    """Set the block field `line` states (see _BLOCK_FIELDS); False when it states none."""
    for name, field_of in _BLOCK_FIELDS:
        m = _RE[name].match(line)
        if m:
            setattr(current(), *field_of(m))
            return True
    return False


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

    def _stated_ops(self, reported: Optional[int], in_table: int) -> Optional[int]:
        """A count as the compiler reported it, else as its complete operator table adds up; None if neither."""
        if reported is not None:
            return reported
        return in_table if self.table_complete else None

    @property
    def cpu_ops(self) -> Optional[int]:
        stated = self._stated_ops(self.reported_cpu_ops, self.table_cpu_ops)
        if stated is None and self.total_ops is not None and not self.not_all_mapped:
            return 0  # an all-mapped compile prints no "will run on" lines
        return stated

    @property
    def tpu_ops(self) -> Optional[int]:
        stated = self._stated_ops(self.reported_tpu_ops, self.table_tpu_ops)
        if stated is None and self.total_ops is not None and self.cpu_ops is not None:
            return self.total_ops - self.cpu_ops
        return stated

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


def _summed(attr: str) -> property:
    """A read-only property: the blocks' `attr` added up, None when a block lacks it or there is none."""

    def total(self: CompilerOutput) -> Optional[int]:
        values = [getattr(b, attr) for b in self.blocks]
        return None if not values or any(v is None for v in values) else sum(values)

    return property(total)


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

    # Summed over the model blocks; unknown (None) unless every block states it.
    total_ops = _summed("ops_total")
    tpu_ops = _summed("tpu_ops")
    cpu_ops = _summed("cpu_ops")
    subgraphs = _summed("subgraphs")

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
        m = _RE["input"].match(line)
        if m:  # "Input model:" opens a console block, "Input:" a .log
            block = ModelBlock(input=m.group(2).strip(), log_format=not m.group(1))
            out.blocks.append(block)
            continue
        if _set_block_field(current, line):
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
        target = find_block([b for b in out.blocks if not b.log_format], output=log_block.output)
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
    target = find_block(out.blocks, output=source.output, log_name=log_name)
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


def find_block(
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
