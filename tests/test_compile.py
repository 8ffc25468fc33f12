"""Tests of the compile stage without the proprietary compiler.

- "real" tests parse the 15 real compiler outputs in ../shared/edgetpu/compiler_logs/ against values
  read from each file by hand (the table below).
- "documented format" tests compose outputs from real lines plus the variants REFERENCE.md §1.6-1.7
  quotes from public threads (v2.0 "available", co-compilation, segments, -d retries, failures with
  no recording here). They say so in their names.
- "replay" tests run `compile_models` / the CLI against tests/replay/edgetpu_compiler, a stand-in that
  replays those recorded outputs and writes files the way the real compiler does. It compiles nothing.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

import pytest
from conftest import REPLAY, SHARED, missing, replay, shared_path
from typer.testing import CliRunner

from edgepipe import compile as stage
from edgepipe.cli import app
from edgepipe.compile import (
    command,
    compare_with_preflight,
    compile_models,
    find_compiler,
    parse_compiler_output,
    preflight_compare,
    process,
    report_from_log,
)
from edgepipe.errors import CompileError, CompileRejected, CompilerNotFound, ModelFormatError
from edgepipe.runtime.report import sha256_file

MIB, KIB = 1024 * 1024, 1024

# Expected values, read from each real file by hand. rows = operator table rows; sizes in bytes
# are the printed 2-decimal figures converted (so 8.58MiB -> round(8.58 * 2**20)).
REAL: Dict[str, dict] = {
    "01_tiny_yolo_edgetpu_v14.1.log": dict(
        version="14.1.317412892",
        total=25,
        tpu=19,
        cpu=6,
        rows=8,
        input="tiny_yolo.tflite",
        output="tiny_yolo_edgetpu.tflite",
    ),
    "02_efficientnet-edgetpu-M_quant_edgetpu_v16.log": dict(
        version="16.0.384591198",
        total=86,
        tpu=86,
        cpu=0,
        rows=7,
        input="test/model/efficientnet-edgetpu-M_quant.tflite",
        output="test/model/compiled/efficientnet-edgetpu-M_quant_edgetpu.tflite",
    ),
    "03_dummy_edgetpu_v16.log": dict(
        version="16.0.384591198",
        total=3,
        tpu=3,
        cpu=0,
        rows=2,
        input="test/model/dummy.tflite",
        output="test/model/compiled/dummy_edgetpu.tflite",
    ),
    "04_mobilenet_v2_inat_bird_quant_edgetpu_v16.log": dict(
        version="16.0.384591198",
        total=65,
        tpu=65,
        cpu=0,
        rows=6,
        input="test/model/mobilenet_v2_1.0_224_inat_bird_quant.tflite",
        output="test/model/compiled/mobilenet_v2_1.0_224_inat_bird_quant_edgetpu.tflite",
    ),
    "05_mnist9_edgetpu_v15.log": dict(
        version="15.0.340273435",
        total=10,
        tpu=10,
        cpu=0,
        rows=6,
        input="mnist9.tflite",
        output="mnist9_edgetpu.tflite",
    ),
    "06_mnist7_edgetpu_v15.log": dict(
        version="15.0.340273435",
        total=8,
        tpu=8,
        cpu=0,
        rows=5,
        input="mnist7.tflite",
        output="mnist7_edgetpu.tflite",
    ),
    "07_yolov3-tiny_int8_stdout_v15.txt": dict(
        version="15.0.340273435",
        time_ms=577,
        total=36,
        tpu=2,
        cpu=34,
        subgraphs=1,
        rows=9,
        input="/home/yolo/yolov3-tiny_int8.tflite",
        output="/home/yolo/yolov3-tiny_int8_edgetpu.tflite",
        log="/home/yolo/yolov3-tiny_int8_edgetpu.log",
        input_bytes=round(8.58 * MIB),
        output_bytes=round(8.70 * MIB),
        on_chip=3 * KIB,
        remaining=round(7.67 * MIB),
        off_chip=0,
    ),
    "08_yolov5s_int8_stdout_v15.txt": dict(
        version="15.0.340273435",
        time_ms=93,
        total=294,
        tpu=1,
        cpu=293,
        subgraphs=1,
        rows=18,
        input="/home/yolov5/yolov5s_int8.tflite",
        output="/home/yolov5/yolov5s_int8_edgetpu.tflite",
        log="/home/yolov5/yolov5s_int8_edgetpu.log",
        input_bytes=round(7.39 * MIB),
        output_bytes=round(7.34 * MIB),
        on_chip=0,
        remaining=round(8.05 * MIB),
        off_chip=0,
    ),
    "09_mnist4_edgetpu_v15.log": dict(
        version="15.0.340273435",
        total=10,
        tpu=8,
        cpu=2,
        rows=7,
        input="mnist4.tflite",
        output="mnist4_edgetpu.tflite",
    ),
    "10_tiny_yolo_quantized_edgetpu_v2.0.log": dict(
        version="2.0.267685300",
        total=25,
        tpu=25,
        cpu=0,
        rows=5,
        input="quantized.tflite",
        output="quantized_edgetpu.tflite",
    ),
    "11_efficientdet_coral_v2_stdout_v16.txt": dict(
        version="16.0.384591198",
        time_ms=1524,
        timer_s=180,
        total=267,
        tpu=264,
        cpu=3,
        subgraphs=1,
        rows=0,
        input="efficientdet_coral_v2.tflite",
        output="efficientdet_coral_v2_edgetpu.tflite",
        log="efficientdet_coral_v2_edgetpu.log",
        input_bytes=round(4.24 * MIB),
        output_bytes=round(5.57 * MIB),
        on_chip=round(4.21 * MIB),
        remaining=round(3.29 * MIB),
        off_chip=0,
    ),
    "12_efficientdet_coral_v2_edgetpu_v16.log": dict(
        version="16.0.384591198",
        total=267,
        tpu=264,
        cpu=3,
        rows=11,
        input="efficientdet_coral_v2.tflite",
        output="efficientdet_coral_v2_edgetpu.tflite",
    ),
    "13_fail_opversion_transpose_conv_v16.txt": dict(
        version="16.0.384591198",
        failure="op_version",
        op="TRANSPOSE_CONV",
        op_version=4,
        words="Model could not be parsed",
    ),
    "14_fail_model_not_quantized_v14.1.txt": dict(
        version="14.1.317412892", failure="not_quantized", words="Invalid model: my_mnist_quant.tflite"
    ),
    "15_fail_large_activation_v16.txt": dict(
        version="16.0.384591198",
        timer_s=180,
        failure="large_activations",
        words="Compilation failed due to large activation tensors in model.",
    ),
}
VERDICT_FROM_TEXT = {  # what `--from-log` must say for each real file
    "01_tiny_yolo_edgetpu_v14.1.log": "rejected",
    "02_efficientnet-edgetpu-M_quant_edgetpu_v16.log": "accepted",
    "03_dummy_edgetpu_v16.log": "accepted",
    "04_mobilenet_v2_inat_bird_quant_edgetpu_v16.log": "accepted",
    "05_mnist9_edgetpu_v15.log": "accepted",
    "06_mnist7_edgetpu_v15.log": "accepted",
    "07_yolov3-tiny_int8_stdout_v15.txt": "rejected",
    "08_yolov5s_int8_stdout_v15.txt": "rejected",
    "09_mnist4_edgetpu_v15.log": "rejected",
    "10_tiny_yolo_quantized_edgetpu_v2.0.log": "accepted",
    "11_efficientdet_coral_v2_stdout_v16.txt": "rejected",
    "12_efficientdet_coral_v2_edgetpu_v16.log": "rejected",
    "13_fail_opversion_transpose_conv_v16.txt": "failed",
    "14_fail_model_not_quantized_v14.1.txt": "failed",
    "15_fail_large_activation_v16.txt": "failed",
}


def real_text(name: str) -> str:
    return shared_path("edgetpu", "compiler_logs", name).read_text(encoding="utf-8")


def real_lines(name: str) -> List[str]:
    return real_text(name).splitlines()


# --- the real outputs -----------------------------------------------------------------------------


# Every file in ../shared/edgetpu/compiler_logs/ becomes a test id, whatever the folder holds today:
# 01-15 against REAL above, 16 onward against TRUTH_16-35.json (hand-read, independent of this code),
# SOURCES.md and the truth file against the outputs they describe. No count is pinned.
LOGS = SHARED / "edgetpu" / "compiler_logs"
_MISSING = "(../shared/edgetpu/compiler_logs missing)"
LOG_FILES = sorted(p.name for p in LOGS.iterdir() if p.is_file()) if LOGS.is_dir() else [_MISSING]
OUTPUT_FILES = [n for n in LOG_FILES if n[:2].isdigit()] or [_MISSING]
TRUTH_NAME = "TRUTH_16-35.json"


def log_path(name: str) -> Path:
    return shared_path("edgetpu", "compiler_logs", *([name] if name != _MISSING else []))


def truth() -> Dict[str, dict]:
    return json.loads(log_path(TRUTH_NAME).read_text(encoding="utf-8"))["files"]


def size_bytes(printed: Optional[str]) -> Optional[int]:
    """'18.00KiB' -> bytes, as the parser converts the compiler's 2-decimal figures."""
    if printed is None:
        return None
    number, unit = re.match(r"^([\d.]+)\s*(B|KiB|MiB|GiB)$", printed).groups()
    return round(float(number) * {"B": 1, "KiB": KIB, "MiB": MIB, "GiB": 1024 * MIB}[unit])


@pytest.mark.parametrize("name", LOG_FILES)
def test_replay_every_file_in_compiler_logs_is_covered(name: str) -> None:
    path = log_path(name)
    sources = log_path("SOURCES.md").read_text(encoding="utf-8")
    outputs = [n for n in LOG_FILES if n[:2].isdigit()]
    if name[:2].isdigit():
        assert name in REAL or name in truth(), "%s has no hand-read values (REAL here, or %s)" % (name, TRUTH_NAME)
        assert name in sources, "%s is not in SOURCES.md" % name
    elif name == TRUTH_NAME:
        assert sorted(truth()) == sorted(n for n in outputs if n not in REAL)
    elif name == "SOURCES.md":
        assert [n for n in outputs if n not in sources] == []
    else:  # anything else in the folder must at least not be compiler output left without an oracle
        out = parse_compiler_output(path.read_text(encoding="utf-8", errors="replace"))
        assert out.version is None and not out.blocks and not out.failure_lines, name


@pytest.mark.parametrize("name", OUTPUT_FILES)
def test_replay_real_output_matches_hand_read_values(name: str) -> None:
    log_path(name)
    if name in REAL:
        check_hand_read_01_15(name)
        check_from_log_verdict_01_15(name)
    else:
        check_truth_16_on(name, truth()[name])


def check_truth_16_on(name: str, want: dict) -> None:
    """Every field of the file's TRUTH_16-35.json entry, against the parsed output and its verdict."""
    path = log_path(name)
    text = path.read_text(encoding="utf-8")
    out = parse_compiler_output(text)
    report = report_from_log(path)
    assert report.compiler_version == want["compiler_version"]
    assert report.verdict == want["verdict"]
    assert (report.tpu_ops, report.cpu_ops, report.total_ops) == (want["tpu_ops"], want["cpu_ops"], want["total_ops"])
    per_file = not isinstance(want["subgraphs"], list)
    got_sub = report.subgraphs if per_file else [m.subgraphs for m in report.models]
    assert got_sub == want["subgraphs"]
    for key, attr in (("on_chip", "on_chip_bytes"), ("off_chip", "off_chip_bytes")):
        if per_file:
            assert getattr(report, attr) == size_bytes(want[key]), key
        else:
            assert [getattr(m, attr) for m in report.models] == [size_bytes(v) for v in want[key]], key
    for model, expected in zip(report.models, want.get("per_model", [])):
        assert model.input == expected["input"]
        assert (model.total_ops, model.tpu_ops, model.cpu_ops) == (
            expected["total_ops"],
            expected["tpu_ops"],
            expected["cpu_ops"],
        )
    if "per_model" in want:
        assert len(report.models) == len(want["per_model"])
    if want["verdict"] == "failed":
        assert out.blocks == [] and report.error is not None
        assert report.error["kind"] != "unknown_failure", "a real failure without a named kind"
        assert report.error["cause"].strip() in text  # the compiler's own line
    else:
        assert report.error is None and out.failure is None
        # derived_from_table: the text has no "will run on" lines; the counts are the table's sums
        from_table = bool(want.get("derived_from_table"))
        assert all(b.reported_cpu_ops is None and b.reported_tpu_ops is None for b in out.blocks) == from_table
        if from_table:
            assert all(b.table_complete for b in out.blocks)
    kind = want["kind"]
    if kind.startswith(".log"):
        assert out.blocks and all(b.log_format for b in out.blocks)
    elif "console" in kind and want["verdict"] != "failed":
        assert out.blocks and not any(b.log_format for b in out.blocks)
    if "co-compilation" in kind:
        assert out.cocompiled and len(out.blocks) == 2
    if "with operator table" in kind or "has operator table" in kind:
        assert all(b.table_complete for b in out.blocks)
    if "no operator table" in kind:
        assert not any(b.operators for b in out.blocks)
    if "failed compile" in kind or "Internal compiler error" in kind:
        assert want["verdict"] == "failed"
    source = want["source"]
    line = next(line for line in log_path("SOURCES.md").read_text(encoding="utf-8").splitlines() if name in line)
    for value in (source.get("repo"), source.get("commit"), source.get("issue")):
        if value:
            assert value in line
    notes = want.get("notes", "")
    cpu_rows = re.match(r"^CPU: ((?:[A-Z_0-9]+ \d+(?: \([^)]*\))?(?: \+ )?)+)", notes)
    if cpu_rows:  # e.g. "CPU: DEQUANTIZE 1 (unsupported data type) + QUANTIZE 1 (...)"
        named: Dict[str, int] = {}
        for op, count in re.findall(r"([A-Z_0-9]+) (\d+)", cpu_rows.group(1)):
            named[op] = named.get(op, 0) + int(count)
        got: Dict[str, int] = {}
        for r in out.operators:
            if not r.mapped:
                got[r.name] = got.get(r.name, 0) + r.count
        assert got == named
    if notes.startswith("all ops mapped"):
        assert out.operators and all(r.mapped for r in out.operators)
    if "0 on TPU" in notes:
        assert out.operators and not any(r.mapped for r in out.operators)


def test_replay_real_failures_28_and_29_have_a_named_kind_and_the_cause_line() -> None:
    """Read by hand from the two files (google-coral/edgetpu#829 and #728)."""
    dynamic = report_from_log(log_path("28_fail_dynamic_sized_tensors_v16.txt"))
    assert dynamic.error["kind"] == "dynamic_tensors"
    assert dynamic.error["cause"].startswith("ERROR: Attempting to use a delegate that only supports static-sized")
    crash = report_from_log(log_path("29_fail_std_out_of_range_v16.txt"))
    assert crash.error["kind"] == "compiler_exception"
    assert crash.error["cause"] == "libc++abi: terminating with uncaught exception of type std::out_of_range: vector"
    assert crash.error["message"].startswith(crash.error["cause"])  # not just "Compilation failed!"
    for report in (dynamic, crash):
        problem = stage.verdict_error(report)
        assert problem.exit_code == 41 and problem.hint and report.error["kind"] in problem.one_line()


def check_hand_read_01_15(name: str) -> None:
    want = REAL[name]
    out = parse_compiler_output(real_text(name))
    assert out.version == want["version"]
    assert out.compile_time_ms == want.get("time_ms")
    assert out.timer_s == want.get("timer_s")
    failure = out.failure
    if "failure" in want:
        assert failure is not None and failure.kind == want["failure"]
        assert want["words"] in out.failure_text  # the compiler's own words are kept
        assert failure.op == want.get("op") and failure.op_version == want.get("op_version")
        assert out.blocks == []
        return
    assert failure is None and out.failure_text == ""
    assert len(out.blocks) == 1
    block = out.blocks[0]
    assert (out.total_ops, out.tpu_ops, out.cpu_ops) == (want["total"], want["tpu"], want["cpu"])
    assert out.subgraphs == want.get("subgraphs")
    assert len(block.operators) == want["rows"]
    assert (block.input, block.output, block.log_name) == (want["input"], want["output"], want.get("log"))
    if block.total_ops is not None:  # console text: its own counts add up, table or not
        assert block.reported_tpu_ops + block.reported_cpu_ops == block.total_ops
    for key, attr in (
        ("input_bytes", "input_bytes"),
        ("output_bytes", "output_bytes"),
        ("on_chip", "on_chip_bytes"),
        ("remaining", "on_chip_remaining_bytes"),
        ("off_chip", "off_chip_bytes"),
    ):
        assert getattr(block, attr) == want.get(key), attr


@pytest.mark.parametrize("name", [n for n in sorted(REAL) if REAL[n].get("rows")])
def test_real_table_counts_add_up_to_reported_totals(name: str) -> None:
    block = parse_compiler_output(real_text(name)).blocks[0]
    rows = block.operators
    assert sum(r.count for r in rows) == REAL[name]["total"]
    assert sum(r.count for r in rows if r.mapped) == REAL[name]["tpu"]
    assert sum(r.count for r in rows if not r.mapped) == REAL[name]["cpu"]
    if block.total_ops is not None:  # console text: the compiler's own totals, independent of the table
        assert block.table_cpu_ops == block.reported_cpu_ops
        assert block.table_tpu_ops == block.reported_tpu_ops
        assert sum(r.count for r in rows) == block.total_ops


def test_real_console_and_log_pair_agree() -> None:
    """11 (console, no table) + 12 (its .log): the log's rows sum to the console's reported counts."""
    out = parse_compiler_output(
        real_text("11_efficientdet_coral_v2_stdout_v16.txt"), real_text("12_efficientdet_coral_v2_edgetpu_v16.log")
    )
    block = out.blocks[0]
    assert block.table_source == "log" and len(block.operators) == 11
    assert (block.reported_tpu_ops, block.reported_cpu_ops) == (264, 3)
    assert (block.table_tpu_ops, block.table_cpu_ops) == (264, 3)
    assert sum(r.count for r in block.operators) == block.total_ops == 267
    assert {(r.name, r.count) for r in block.operators if not r.mapped} == {("CUSTOM", 1), ("DEQUANTIZE", 2)}
    assert out.succeeded_lines == 1  # "Compilation succeeded! " with its trailing space


def test_real_one_op_over_several_unsorted_rows() -> None:
    rows = parse_compiler_output(real_text("01_tiny_yolo_edgetpu_v14.1.log")).operators
    conv = [(r.count, r.status, r.mapped) for r in rows if r.name == "CONV_2D"]
    assert conv == [(11, "Mapped to Edge TPU", True), (2, "More than one subgraph is not supported", False)]
    quantize = sorted(r.count for r in rows if r.name == "QUANTIZE")
    assert quantize == [1, 1, 2]
    strided = [
        (r.count, r.status)
        for r in parse_compiler_output(real_text("08_yolov5s_int8_stdout_v15.txt")).operators
        if r.name == "STRIDED_SLICE"
    ]
    assert strided == [
        (9, "More than one subgraph is not supported"),
        (4, "Only Strided-Slice with unitary strides supported"),
    ]


def test_real_statuses_are_kept_verbatim() -> None:
    statuses = {r.status for r in parse_compiler_output(real_text("07_yolov3-tiny_int8_stdout_v15.txt")).operators}
    assert statuses == {
        "Mapped to Edge TPU",
        "More than one subgraph is not supported",
        "Operation is otherwise supported, but not mapped due to some unspecified limitation",
        "Operation version not supported",
        "Operation not supported",
    }


def test_real_v2_log_without_blank_lines() -> None:
    block = parse_compiler_output(real_text("10_tiny_yolo_quantized_edgetpu_v2.0.log")).blocks[0]
    assert (block.input, block.output) == ("quantized.tflite", "quantized_edgetpu.tflite")
    assert [r.name for r in block.operators] == [
        "RESIZE_NEAREST_NEIGHBOR",
        "MAX_POOL_2D",
        "CONCATENATION",
        "QUANTIZE",
        "CONV_2D",
    ]


def test_real_two_logs_pasted_together_give_two_blocks() -> None:
    out = parse_compiler_output(real_text("09_mnist4_edgetpu_v15.log") + "\n" + real_text("06_mnist7_edgetpu_v15.log"))
    assert [b.input for b in out.blocks] == ["mnist4.tflite", "mnist7.tflite"]
    assert [b.ops_total for b in out.blocks] == [10, 8]
    assert out.cpu_ops == 2


def check_from_log_verdict_01_15(name: str) -> None:
    report = report_from_log(shared_path("edgetpu", "compiler_logs", name))
    assert report.verdict == VERDICT_FROM_TEXT[name]
    assert report.exit_code is None
    assert any("exit code unknown" in w for w in report.warnings)
    if report.verdict == "failed":
        assert report.error["kind"] == REAL[name]["failure"]
        assert report.error["compiler_output"] == real_text(name)
    elif report.verdict == "rejected":
        assert report.cpu_ops == REAL[name]["cpu"] and report.error is None
    else:
        assert report.cpu_ops == 0 and report.tpu_ops == REAL[name]["total"]


def test_real_from_log_rejection_names_the_cpu_ops() -> None:
    report = report_from_log(shared_path("edgetpu", "compiler_logs", "07_yolov3-tiny_int8_stdout_v15.txt"))
    assert "LEAKY_RELU x11 (Operation not supported)" in report.reasons[0]
    assert "RESIZE_NEAREST_NEIGHBOR x1 (Operation version not supported)" in report.reasons[0]
    assert "34 ops would run on the CPU (allowed 0)" in report.reasons[0]


def test_real_from_log_reads_the_named_log_beside_the_console_text(tmp_path: Path) -> None:
    (tmp_path / "console.txt").write_text(real_text("11_efficientdet_coral_v2_stdout_v16.txt"))
    (tmp_path / "efficientdet_coral_v2_edgetpu.log").write_text(real_text("12_efficientdet_coral_v2_edgetpu_v16.log"))
    report = report_from_log(tmp_path / "console.txt")
    assert len(report.operators) == 11
    assert "CUSTOM x1 (Operation is working on an unsupported data type)" in report.reasons[0]
    assert report_from_log(tmp_path / "console.txt", allow_cpu_ops=3).verdict == "accepted"


# --- documented formats (composed from real lines + REFERENCE.md's quoted variants) ---------------


def efficientdet_console() -> List[str]:
    return real_lines("11_efficientdet_coral_v2_stdout_v16.txt")


def block_of(lines: List[str]) -> List[str]:
    """The 'Input model:' ... counts block of a real console output."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Input model:"))
    end = next(i for i, line in enumerate(lines) if line.startswith("See the operation log file"))
    return lines[start : end + 1]


def test_documented_format_v20_available_line_before_used() -> None:
    lines = efficientdet_console()
    used = next(i for i, line in enumerate(lines) if line.startswith("On-chip memory used"))
    lines = [line for line in lines if not line.startswith("On-chip memory remaining")]
    lines.insert(used, "On-chip memory available for caching model parameters: 7.69MiB")
    block = parse_compiler_output("\n".join(lines)).blocks[0]
    assert block.on_chip_remaining_bytes == round(7.69 * MIB)
    assert block.on_chip_bytes == round(4.21 * MIB)


def test_documented_format_cocompilation_has_one_time_and_a_block_per_model() -> None:
    lines = efficientdet_console()
    block = block_of(lines)
    second = [line.replace("efficientdet_coral_v2", "other") for line in block]
    text = "\n".join(lines[:3] + ["Models compiled successfully in 1717 ms.", ""] + block + second + lines[-3:])
    out = parse_compiler_output(text)
    assert out.cocompiled and out.compile_times_ms == [1717]
    assert [b.input for b in out.blocks] == ["efficientdet_coral_v2.tflite", "other.tflite"]
    assert (out.total_ops, out.tpu_ops, out.cpu_ops, out.subgraphs) == (534, 528, 6, 2)


def test_documented_format_segments_repeat_the_block() -> None:
    lines = efficientdet_console()
    segment = [line.replace("efficientdet_coral_v2", "m_segment_%d_of_2") for line in lines[1:]]
    text = "\n".join(
        lines[:1]
        + [line % 0 if "%d" in line else line for line in segment]
        + [line % 1 if "%d" in line else line for line in segment]
    )
    out = parse_compiler_output(text)
    assert out.compile_times_ms == [1524, 1524] and out.succeeded_lines == 2
    assert [b.output for b in out.blocks] == ["m_segment_0_of_2_edgetpu.tflite", "m_segment_1_of_2_edgetpu.tflite"]


def test_documented_format_all_other_operators_variant_is_a_partial_table() -> None:
    lines = efficientdet_console()
    see = next(i for i, line in enumerate(lines) if line.startswith("See the operation log file"))
    table = [
        "",
        "Operator                       Count      Status",
        "",
        "CUSTOM                         1          Operation is working on an unsupported data type",
        "DEQUANTIZE                     2          Operation is working on an unsupported data type",
        "... All other operators were mapped successfully. See efficientdet_coral_v2_edgetpu.log.",
    ]
    out = parse_compiler_output("\n".join(lines[:see] + table + lines[see + 1 :]))
    block = out.blocks[0]
    assert block.table_partial and not block.table_complete
    assert (block.cpu_ops, block.tpu_ops) == (3, 264)  # from the count lines, not the partial table
    merged = parse_compiler_output(
        "\n".join(lines[:see] + table), real_text("12_efficientdet_coral_v2_edgetpu_v16.log")
    )
    assert merged.blocks[0].table_complete and len(merged.blocks[0].operators) == 11


def test_documented_format_all_mapped_console_has_no_count_lines() -> None:
    lines = [
        line
        for line in efficientdet_console()
        if not line.startswith(("Model successfully compiled but", "Number of operations that will run"))
    ]
    out = parse_compiler_output("\n".join(lines))
    assert (out.cpu_ops, out.tpu_ops) == (0, 267)


def test_documented_format_zero_subgraphs_is_rejected(tmp_path: Path) -> None:
    lines = [
        line.replace("Number of Edge TPU subgraphs: 1", "Number of Edge TPU subgraphs: 0")
        for line in real_lines("07_yolov3-tiny_int8_stdout_v15.txt")
    ]
    (tmp_path / "zero.txt").write_text("\n".join(lines))
    report = report_from_log(tmp_path / "zero.txt", allow_cpu_ops=1000)
    assert report.verdict == "rejected"
    assert "0 Edge TPU subgraphs" in report.reasons[0]


def test_documented_format_unknown_status_counts_as_not_mapped() -> None:
    text = real_text("05_mnist9_edgetpu_v15.log").replace(
        "RESHAPE                        1          Mapped to Edge TPU",
        "RESHAPE                        1          Some status no one has seen yet",
    )
    out = parse_compiler_output(text)
    row = next(r for r in out.operators if r.name == "RESHAPE")
    assert (row.status, row.mapped) == ("Some status no one has seen yet", False)
    assert out.cpu_ops == 1


def search_delegate_text(final_ok: bool) -> str:
    """`-d` output shape of #651: failed attempts, then a last attempt (REFERENCE §1.3, §1.6)."""
    failed = real_lines("15_fail_large_activation_v16.txt")[1:]
    text = real_lines("11_efficientdet_coral_v2_stdout_v16.txt")[1:] if final_ok else failed
    return "\n".join(
        [
            "Edge TPU Compiler version 16.0.384591198",
            "Searching for valid delegate with step 1",
            "Try to compile segment with 268 ops",
        ]
        + failed
        + ["Try to compile segment with 267 ops", "Intermediate tensors: a,b"]
        + text
    )


def test_documented_format_search_delegate_earlier_failures_are_superseded() -> None:
    out = parse_compiler_output(search_delegate_text(final_ok=True))
    assert out.search_attempts == [268, 267]
    assert out.failure is None
    assert [f.superseded for f in out.failures] == [True]
    assert out.cpu_ops == 3


def test_documented_format_search_delegate_final_failure_counts() -> None:
    out = parse_compiler_output(search_delegate_text(final_ok=False))
    assert out.failure is not None and out.failure.kind == "large_activations" and out.failure.attempt == 2


DOCUMENTED_FAILURES = {  # REFERENCE §1.7, verbatim lines quoted from public threads
    "builtin_out_of_range": [
        "ERROR: Op builtin_code out of range: 151. Are you using old TFLite binary with newer model?"
    ],
    "unresolved_custom_op": [
        "ERROR: Encountered unresolved custom op: Atan.",
        "ERROR: Node number 1 (Atan) failed to prepare.",
        "",
        "Compilation failed: Model failed in Tflite interpreter. Please ensure model can be loaded",
    ],
    "internal_error": ["", "Internal compiler error. Aborting! "],
    "input_missing": ["Error opening file for reading: missing.tflite"],
    "unknown_failure": [
        "Started a compilation timeout timer of 180 seconds.",
        "Compilation child process completed within timeout period.",
        "Compilation failed!",
    ],
}


@pytest.mark.parametrize("kind", sorted(DOCUMENTED_FAILURES))
def test_documented_format_failure_kinds(kind: str) -> None:
    text = "\n".join(["Edge TPU Compiler version 16.0.384591198"] + DOCUMENTED_FAILURES[kind])
    failure = parse_compiler_output(text).failure
    assert failure is not None and failure.kind == kind
    if kind == "unresolved_custom_op":
        assert failure.op == "Atan"


def test_documented_format_v15_op_version_without_suffix() -> None:
    failure = parse_compiler_output(
        "Edge TPU Compiler version 15.0.340273435\nERROR: Didn't find op for builtin opcode 'REVERSE_V2' version '3'\n"
    ).failure
    assert (failure.kind, failure.op, failure.op_version) == ("op_version", "REVERSE_V2", 3)


# --- pre-flight comparison ------------------------------------------------------------------------


def test_preflight_comparison_lists_each_disagreement() -> None:
    rows = parse_compiler_output(real_text("09_mnist4_edgetpu_v15.log")).operators
    predicted = (
        [SimpleNamespace(name="CONV_2D", edgetpu="mapped")] * 2
        + [SimpleNamespace(name="QUANTIZE", edgetpu="mapped")]  # compiler: not mapped
        + [SimpleNamespace(name="DEQUANTIZE", edgetpu="Operation is working on an unsupported data type")]
        + [SimpleNamespace(name="RESHAPE", edgetpu="mapped"), SimpleNamespace(name="SOFTMAX", edgetpu="mapped")]
        + [SimpleNamespace(name="MAX_POOL_2D", edgetpu="mapped")] * 2
        + [SimpleNamespace(name="FULLY_CONNECTED", edgetpu="mapped")] * 2
        + [SimpleNamespace(name="TANH", edgetpu="mapped")]  # compiler never saw it
    )
    found = {d["op"]: d for d in compare_with_preflight(predicted, rows, model="mnist4.tflite")}
    assert set(found) == {"QUANTIZE", "TANH"}
    assert found["QUANTIZE"]["predicted"]["mapped"] == 1 and found["QUANTIZE"]["compiler"]["not_mapped"] == 1
    assert found["QUANTIZE"]["compiler"]["statuses"] == [
        "Operation is otherwise supported, but not mapped due to some unspecified limitation"
    ]
    assert found["TANH"]["compiler"] == {"mapped": 0, "not_mapped": 0, "statuses": []}


# --- finding the compiler -------------------------------------------------------------------------


@pytest.fixture
def mobilenet(tmp_path: Path, coral_data: Path) -> Path:
    return Path(shutil.copy(coral_data / "mobilenet_v1_0.25_128_quant.tflite", tmp_path))


@pytest.fixture
def lstm(tmp_path: Path, coral_data: Path) -> Path:
    return Path(shutil.copy(coral_data / "keras_lstm_mnist_ptq.tflite", tmp_path))


def test_replay_find_compiler_by_option_env_and_path(replay_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    replay(monkeypatch, "07_yolov3-tiny_int8_stdout_v15.txt")
    assert find_compiler(str(REPLAY)).version == "15.0.340273435"
    monkeypatch.setenv(stage.COMPILER_ENV, str(REPLAY))
    assert find_compiler().source == "$" + stage.COMPILER_ENV
    monkeypatch.delenv(stage.COMPILER_ENV)
    monkeypatch.setenv("PATH", str(REPLAY.parent) + os.pathsep + os.environ["PATH"])
    info = find_compiler()
    assert (info.path, info.source) == (str(REPLAY), "PATH")


def test_missing_compiler_is_compiler_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stage.COMPILER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CompilerNotFound) as caught:
        find_compiler()
    line = caught.value.one_line()
    assert "edgepipe inspect" in line and "apt-get install edgetpu-compiler" in line and "x86-64" in line
    with pytest.raises(CompilerNotFound, match="not found at"):
        find_compiler(str(tmp_path / "nope"))


def test_a_program_that_is_not_the_compiler_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "edgetpu_compiler"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(CompilerNotFound, match="does not look like edgetpu_compiler"):
        find_compiler(str(fake))


def test_missing_compiler_through_the_cli_exits_40(tmp_path: Path, mobilenet: Path) -> None:
    env = {"PATH": str(tmp_path), stage.COMPILER_ENV: ""}
    result = CliRunner().invoke(app, ["compile", str(mobilenet), "-o", str(tmp_path / "out")], env=env)
    assert result.exit_code == 40
    assert "edgepipe inspect" in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


# --- replay: running the compiler -----------------------------------------------------------------


def staged_files(out: Path) -> List[str]:
    return sorted(p.name for p in out.iterdir())


def test_replay_partial_mapping_is_rejected(replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path) -> None:
    replay(monkeypatch, "07_yolov3-tiny_int8_stdout_v15.txt")
    out = replay_env["out"]
    with pytest.raises(CompileRejected) as caught:
        compile_models([mobilenet], out)
    report = caught.value.report
    assert caught.value.exit_code == 42
    assert (report.verdict, report.tpu_ops, report.cpu_ops, report.subgraphs) == ("rejected", 2, 34, 1)
    assert "-t" not in json.loads(replay_env["argv"].read_text())  # a v15 compiler has no -t watchdog
    assert any("predates -t" in w for w in report.warnings)
    assert "LEAKY_RELU x11 (Operation not supported)" in str(caught.value)
    # the compiled model and its log stay for diagnosis; the report is on disk too
    assert staged_files(out) == [
        "compile_report.json",
        "mobilenet_v1_0.25_128_quant_edgetpu.log",
        "mobilenet_v1_0.25_128_quant_edgetpu.tflite",
    ]
    saved = json.loads((out / "compile_report.json").read_text())
    assert saved["verdict"] == "rejected" and saved["cpu_ops"] == 34 and saved["error"] is None
    assert {r["name"] for r in saved["operators"] if not r["mapped"]} >= {"LEAKY_RELU", "RESIZE_NEAREST_NEIGHBOR"}
    model = saved["models"][0]
    assert model["sha256"] == sha256_file(out / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    assert model["on_chip_bytes"] == 3 * KIB and model["log"].endswith("_edgetpu.log")
    # the real pre-flight (edgepipe inspect) of mobilenet against the replayed yolov3 table: they disagree
    assert saved["preflight"] == "compared"
    by_op = {d["op"]: d for d in saved["preflight_disagreements"]}
    assert by_op["LEAKY_RELU"]["predicted"] == {"mapped": 0, "not_mapped": 0, "reasons": []}
    assert by_op["LEAKY_RELU"]["compiler"] == {"mapped": 0, "not_mapped": 11, "statuses": ["Operation not supported"]}
    assert by_op["DEPTHWISE_CONV_2D"]["predicted"]["mapped"] == 13


def test_replay_real_pair_with_allowed_cpu_ops_is_accepted(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    report = compile_models([mobilenet], replay_env["out"], allow_cpu_ops=3)
    assert report.verdict == "accepted" and report.error is None
    assert (report.tpu_ops, report.cpu_ops, report.total_ops) == (264, 3, 267)
    assert len(report.operators) == 11  # from the .log
    assert report.min_runtime == 14 and report.min_runtime_source == "compiler default"


def replay_all_mapped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, off_chip: str = "0.00B") -> None:
    """All-mapped console ending (REFERENCE §1.6 item 7) from real v16 lines, with the real all-mapped log 02."""
    lines = [
        line.replace("Total number of operations: 267", "Total number of operations: 86").replace(
            "uncached model parameters: 0.00B", "uncached model parameters: " + off_chip
        )
        for line in efficientdet_console()
        if not line.startswith(("Model successfully compiled but", "Number of operations that will run"))
    ]
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "all_mapped.txt").write_text("\n".join(lines) + "\n")
    shutil.copy(
        shared_path("edgetpu", "compiler_logs", "02_efficientnet-edgetpu-M_quant_edgetpu_v16.log"), rec / "02.log"
    )
    monkeypatch.setenv("EDGEPIPE_REPLAY_DIR", str(rec))
    replay(monkeypatch, "all_mapped.txt", "02.log")


def test_replay_documented_all_mapped_is_accepted(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, tmp_path: Path
) -> None:
    replay_all_mapped(monkeypatch, tmp_path)
    report = compile_models([mobilenet], replay_env["out"])
    assert report.verdict == "accepted"
    assert (report.tpu_ops, report.cpu_ops) == (86, 0)
    assert report.warnings == []
    assert json.loads((replay_env["out"] / "compile_report.json").read_text())["verdict"] == "accepted"


@pytest.mark.parametrize(
    "recording, kind",
    [
        ("13_fail_opversion_transpose_conv_v16.txt", "op_version"),
        ("14_fail_model_not_quantized_v14.1.txt", "not_quantized"),
        ("15_fail_large_activation_v16.txt", "large_activations"),
    ],
)
def test_replay_real_failure_is_a_compile_error(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, recording: str, kind: str
) -> None:
    replay(monkeypatch, recording)
    with pytest.raises(CompileError) as caught:
        compile_models([mobilenet], replay_env["out"])
    exc = caught.value
    assert exc.exit_code == 41 and exc.kind == kind
    assert real_lines(recording)[-1].strip() in exc.compiler_output
    assert exc.report.verdict == "failed" and exc.report.exit_code == 1
    assert staged_files(replay_env["out"]) == ["compile_report.json"]
    assert json.loads((replay_env["out"] / "compile_report.json").read_text())["error"]["kind"] == kind


@pytest.mark.parametrize("kind", sorted(DOCUMENTED_FAILURES))
def test_replay_documented_failure_kinds(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, tmp_path: Path, kind: str
) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "fail.txt").write_text("\n".join(["Edge TPU Compiler version 16.0.384591198"] + DOCUMENTED_FAILURES[kind]))
    monkeypatch.setenv("EDGEPIPE_REPLAY_DIR", str(rec))
    replay(monkeypatch, "fail.txt")
    with pytest.raises(CompileError) as caught:
        compile_models([mobilenet], replay_env["out"])
    assert caught.value.kind == kind
    assert DOCUMENTED_FAILURES[kind][-1].strip() in caught.value.report.error["message"]


def ends(pid: int, within_s: float = 30.0) -> bool:
    """Whether the process ends within `within_s`, waited on as an event (a pidfd turns readable when
    it ends; a zombie counts as ended). SIGKILL is not instant: a grandchild killed with its group can
    still be running for a moment after the killer has reaped its own child. A process that was never
    killed (the replay's child sleeps 120 s) makes this False."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # already gone and reaped
    try:
        return bool(select.select([fd], [], [], within_s)[0])
    finally:
        os.close(fd)


def _need_proc() -> None:
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "setitimer"):
        missing("needs os.pidfd_open to wait for the killed processes, and SIGALRM (Linux, as CI, has both)")


def test_replay_timeout_kills_the_compiler_and_its_child(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, tmp_path: Path
) -> None:
    _need_proc()
    # time for the replay to start its child, even on a busy machine
    monkeypatch.setattr(process, "WATCHDOG_MARGIN_S", 4)
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", SLEEP="120", PIDS=str(tmp_path / "pids.json"))
    with pytest.raises(CompileError) as caught:
        compile_models([mobilenet], replay_env["out"], timeout_s=1)
    assert caught.value.kind == "timeout"
    report = caught.value.report
    assert report.exit_code is None and "killed by edgepipe" in report.error["message"]
    pids = json.loads((tmp_path / "pids.json").read_text())
    assert len(pids) == 2 and all(ends(p) for p in pids)
    assert staged_files(replay_env["out"]) == ["compile_report.json"]  # no staging dir, no partial output


def test_replay_documented_compiler_watchdog_expiry_is_a_timeout(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, tmp_path: Path
) -> None:
    """The compiler's own -t ends with a bare "Compilation failed!" (REFERENCE §1.7); the clock says why."""
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "short.txt").write_text(
        "\n".join(
            [
                "Edge TPU Compiler version 16.0.384591198",
                "Started a compilation timeout timer of 1 seconds.",
                "Compilation child process completed within timeout period.",
                "Compilation failed!",
            ]
        )
    )
    monkeypatch.setenv("EDGEPIPE_REPLAY_DIR", str(rec))
    replay(monkeypatch, "short.txt", SLEEP="1.2")
    with pytest.raises(CompileError) as caught:
        compile_models([mobilenet], replay_env["out"], timeout_s=1)
    assert caught.value.kind == "timeout" and "Compilation failed!" in caught.value.report.error["message"]


def test_replay_nonzero_exit_with_success_text_is_failed(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log", EXIT="3")
    with pytest.raises(CompileError) as caught:
        compile_models([mobilenet], replay_env["out"], allow_cpu_ops=10)
    assert caught.value.kind == "unknown_failure"
    assert "exited with code 3 although its output reports success" in str(caught.value)
    # the untrusted model is not published; its log is kept for diagnosis
    assert staged_files(replay_env["out"]) == ["compile_report.json", "mobilenet_v1_0.25_128_quant_edgetpu.log"]
    assert any("discarded" in w for w in caught.value.report.warnings)


def test_replay_missing_log_is_tolerated(replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path) -> None:
    replay(monkeypatch, "07_yolov3-tiny_int8_stdout_v15.txt", NO_LOG="1")
    with pytest.raises(CompileRejected) as caught:
        compile_models([mobilenet], replay_env["out"])
    report = caught.value.report
    assert len(report.operators) == 9  # the table printed by -s
    assert any("wrote no mobilenet_v1_0.25_128_quant_edgetpu.log" in w for w in report.warnings)
    assert report.models[0].log is None


def test_replay_missing_output_model_is_failed(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    replay(monkeypatch, "07_yolov3-tiny_int8_stdout_v15.txt", NO_MODEL="1")
    with pytest.raises(CompileError) as caught:
        compile_models([mobilenet], replay_env["out"])
    assert caught.value.kind == "missing_output"


def test_replay_segments_write_segment_files(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    report = compile_models([mobilenet], replay_env["out"], segments=2, allow_cpu_ops=6)
    argv = json.loads(replay_env["argv"].read_text())
    assert argv[argv.index("-n") + 1] == "2"
    assert [m.segment for m in report.models] == [0, 1]
    assert [Path(m.output).name for m in report.models] == [
        "mobilenet_v1_0.25_128_quant_segment_0_of_2_edgetpu.tflite",
        "mobilenet_v1_0.25_128_quant_segment_1_of_2_edgetpu.tflite",
    ]
    assert all(Path(m.output).is_file() and Path(m.log).is_file() for m in report.models)
    assert report.cpu_ops == 6 and report.compile_time_ms == 2 * 1524


def test_replay_cocompilation_is_one_call_with_two_blocks(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, lstm: Path
) -> None:
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    report = compile_models([mobilenet, lstm], replay_env["out"], allow_cpu_ops=6)
    argv = json.loads(replay_env["argv"].read_text())
    assert argv[-2:] == [str(mobilenet), str(lstm)]  # both models in one call
    assert [Path(m.output).name for m in report.models] == [
        "mobilenet_v1_0.25_128_quant_edgetpu.tflite",
        "keras_lstm_mnist_ptq_edgetpu.tflite",
    ]
    assert [m.cpu_ops for m in report.models] == [3, 3]
    assert report.compile_time_ms == 1524  # one shared time ("Models compiled successfully in ...")


def test_replay_cli_options_become_exactly_this_argument_list(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    options = ["--min-runtime", "13", "--segments", "2", "--timeout", "60", "--search-delegate", "--search-step", "10"]
    options += ["--intermediate-tensors", "a, b;c", "--multiple-subgraphs", "--allow-cpu-ops", "100"]
    result = CliRunner().invoke(app, ["compile", str(mobilenet), "-o", str(replay_env["out"]), *options, "--json"])
    assert result.exit_code == 0, result.stderr
    argv = json.loads(replay_env["argv"].read_text())  # what the compiler received, one item per argument
    staging = Path(argv[2])
    assert staging.parent == replay_env["out"] and not staging.exists()  # private -o dir, removed after
    assert argv == [
        "-s",
        "-o",
        str(staging),
        "-t",
        "60",
        "-m",
        "13",
        "-n",
        "2",
        "-d",
        "-k",
        "10",
        "-i",
        "a,b;c",  # no shell: ';' reaches the compiler as a character
        "-a",
        str(mobilenet),
    ]
    report = json.loads(result.stdout)
    assert (report["min_runtime"], report["min_runtime_source"], report["timeout_s"]) == (13, "--min-runtime", 60)


@pytest.mark.parametrize(
    "detected, passed, source",
    [
        (None, None, "compiler default"),
        (12, "12", "detected Edge TPU runtime"),
        (14, None, "compiler default (detected"),
    ],
)
def test_replay_min_runtime_follows_the_detected_runtime(
    replay_env: dict,
    monkeypatch: pytest.MonkeyPatch,
    mobilenet: Path,
    detected: Optional[int],
    passed: Optional[str],
    source: str,
) -> None:
    monkeypatch.setattr(command, "_detected_runtime_version", lambda: detected)
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    report = compile_models([mobilenet], replay_env["out"], allow_cpu_ops=3)
    argv = json.loads(replay_env["argv"].read_text())
    assert (argv[argv.index("-m") + 1] if "-m" in argv else None) == passed
    assert report.min_runtime == (detected if passed else 14)
    assert report.min_runtime_source.startswith(source)


def test_replay_search_delegate_success_after_failed_attempts(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, tmp_path: Path
) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "d.txt").write_text(search_delegate_text(final_ok=True))
    shutil.copy(shared_path("edgetpu", "compiler_logs", "12_efficientdet_coral_v2_edgetpu_v16.log"), rec / "12.log")
    monkeypatch.setenv("EDGEPIPE_REPLAY_DIR", str(rec))
    replay(monkeypatch, "d.txt", "12.log")
    report = compile_models([mobilenet], replay_env["out"], search_delegate=True, allow_cpu_ops=3)
    assert report.verdict == "accepted"
    assert any("--search-delegate: 1 of 2 attempts failed" in w for w in report.warnings)


def test_replay_already_compiled_input_is_refused_before_running(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, coral_data: Path, tmp_path: Path
) -> None:
    replay(monkeypatch, "07_yolov3-tiny_int8_stdout_v15.txt")
    compiled = Path(shutil.copy(coral_data / "mobilenet_v1_0.25_128_quant_edgetpu.tflite", tmp_path))
    with pytest.raises(ModelFormatError, match="already compiled"):
        compile_models([compiled], replay_env["out"], compiler=str(REPLAY))
    not_tflite = tmp_path / "notes.tflite"
    not_tflite.write_text("not a model")
    with pytest.raises(ModelFormatError):
        compile_models([not_tflite], replay_env["out"], compiler=str(REPLAY))
    assert not replay_env["argv"].exists() and not replay_env["out"].exists()


def test_replay_documented_off_chip_streaming_is_a_warning_with_the_number(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, tmp_path: Path
) -> None:
    replay_all_mapped(monkeypatch, tmp_path, off_chip="1.50MiB")
    report = compile_models([mobilenet], replay_env["out"])
    assert report.verdict == "accepted"  # streaming slows inference down but is not a rejection
    assert report.off_chip_bytes == round(1.5 * MIB) == report.models[0].off_chip_bytes
    streamed = [w for w in report.warnings if "off-chip" in w]
    assert len(streamed) == 1 and str(round(1.5 * MIB)) in streamed[0]


# --- CLI ------------------------------------------------------------------------------------------

REPORT_KEYS = (
    "compiler_version",
    "tpu_ops",
    "cpu_ops",
    "subgraphs",
    "operators",
    "on_chip_bytes",
    "off_chip_bytes",
    "verdict",
    "error",
    "models",
    "command",
    "exit_code",
    "duration_s",
    "min_runtime",
    "min_runtime_source",
    "warnings",
    "preflight",
    "preflight_disagreements",
)


@pytest.mark.parametrize(
    "recording, code, verdict",
    [
        ("all_mapped", 0, "accepted"),
        ("07_yolov3-tiny_int8_stdout_v15.txt", 42, "rejected"),
        ("13_fail_opversion_transpose_conv_v16.txt", 41, "failed"),
        ("15_fail_large_activation_v16.txt", 41, "failed"),
    ],
)
def test_replay_cli_compile_exit_code_and_json_keys(
    replay_env: dict,
    monkeypatch: pytest.MonkeyPatch,
    mobilenet: Path,
    tmp_path: Path,
    recording: str,
    code: int,
    verdict: str,
) -> None:
    if recording == "all_mapped":
        replay_all_mapped(monkeypatch, tmp_path)
    else:
        replay(monkeypatch, recording)
    out = replay_env["out"]
    result = CliRunner().invoke(app, ["compile", str(mobilenet), "-o", str(out), "--json"])
    assert result.exit_code == code, result.stderr
    report = json.loads(result.stdout)  # --json: nothing but the report on stdout, also when it fails
    assert set(REPORT_KEYS) <= set(report)
    assert report["verdict"] == verdict and report["exit_code"] == (0 if code != 41 else 1)
    assert report["command"][0] == str(REPLAY) and report["command"][-1] == str(mobilenet)
    assert json.loads((out / "compile_report.json").read_text()) == report
    if verdict == "accepted":
        assert result.stderr == "" and report["error"] is None
        assert (report["tpu_ops"], report["cpu_ops"], report["subgraphs"]) == (86, 0, 1)
        assert report["operators"][0] == {
            "name": "FULLY_CONNECTED",
            "count": 1,
            "status": "Mapped to Edge TPU",
            "mapped": True,
        }
    elif verdict == "rejected":
        assert report["error"] is None and "compile rejected: 34 ops would run on the CPU" in result.stderr
    else:
        assert report["error"]["kind"] == REAL[recording]["failure"]
        assert real_lines(recording)[-1] in report["error"]["compiler_output"]  # the compiler's words, verbatim
        assert "edgetpu_compiler failed (%s)" % report["error"]["kind"] in result.stderr


def test_replay_cli_rejected_prints_report_and_exits_42(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    replay(monkeypatch, "07_yolov3-tiny_int8_stdout_v15.txt")
    out = replay_env["out"]
    result = CliRunner().invoke(app, ["compile", str(mobilenet), "-o", str(out), "--compiler", str(REPLAY), "--json"])
    assert result.exit_code == 42
    report = json.loads(result.stdout)
    assert report["verdict"] == "rejected" and report["cpu_ops"] == 34
    assert "compile rejected" in result.stderr
    assert json.loads((out / "compile_report.json").read_text())["cpu_ops"] == 34


def test_replay_cli_human_output_highlights_cpu_rows(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    replay(monkeypatch, "07_yolov3-tiny_int8_stdout_v15.txt")
    result = CliRunner().invoke(
        app, ["compile", str(mobilenet), "-o", str(replay_env["out"]), "--compiler", str(REPLAY)]
    )
    assert result.exit_code == 42
    assert "LEAKY_RELU" in result.stdout and "verdict: rejected" in result.stdout


@pytest.mark.parametrize(
    "name, code",
    [
        ("02_efficientnet-edgetpu-M_quant_edgetpu_v16.log", 0),
        ("07_yolov3-tiny_int8_stdout_v15.txt", 42),
        ("13_fail_opversion_transpose_conv_v16.txt", 41),
    ],
)
def test_real_cli_from_log(name: str, code: int, tmp_path: Path) -> None:
    path = shared_path("edgetpu", "compiler_logs", name)
    result = CliRunner().invoke(app, ["compile", "--from-log", str(path), "--json", "-o", str(tmp_path)])
    assert result.exit_code == code
    report = json.loads(result.stdout)
    assert report["verdict"] == VERDICT_FROM_TEXT[name]
    assert json.loads((tmp_path / "compile_report.json").read_text())["verdict"] == report["verdict"]
    for key in (
        "compiler_version",
        "tpu_ops",
        "cpu_ops",
        "subgraphs",
        "operators",
        "on_chip_bytes",
        "off_chip_bytes",
        "verdict",
        "error",
        "models",
        "command",
        "exit_code",
        "duration_s",
        "min_runtime",
        "warnings",
        "preflight_disagreements",
    ):
        assert key in report
    if code == 41:
        assert report["error"]["kind"] == "op_version" and report["error"]["op"] == "TRANSPOSE_CONV"


def test_cli_usage_errors() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["compile"]).exit_code == 2
    assert runner.invoke(app, ["compile", "m.tflite"]).exit_code == 2  # no -o
    assert runner.invoke(app, ["compile", "m.tflite", "-o", "x", "--search-step", "3"]).exit_code == 2


def rows_from_compiled_pair(uncompiled: Path, compiled: Path) -> List[stage.OperatorRow]:
    """What the real compiler decided, per op name, read from a real uncompiled/compiled pair.

    Ops still present in the compiled model ran on the CPU; the rest went into edgetpu-custom-op.
    (The pair records no status strings, so the not-mapped rows carry a neutral one.)
    """
    from edgepipe.runtime.tflite_reader import read_model

    before: Dict[str, int] = {}
    for op in read_model(str(uncompiled)).main.operators:
        before[op.name] = before.get(op.name, 0) + 1
    left: Dict[str, int] = {}
    for op in read_model(str(compiled)).main.operators:
        if op.name != "edgetpu-custom-op":
            left[op.name] = left.get(op.name, 0) + 1
    rows = [stage.OperatorRow(name, n - left.get(name, 0), stage.MAPPED, True) for name, n in before.items()]
    rows += [stage.OperatorRow(name, n, "left on the CPU by the real compiler", False) for name, n in left.items()]
    return [r for r in rows if r.count]


@pytest.mark.parametrize(
    "stem", ["mobilenet_v1_0.25_128_quant", "keras_lstm_mnist_ptq", "deeplabv3_mnv2_dm05_pascal_quant"]
)
def test_real_pairs_preflight_agrees_with_the_compiler(coral_data: Path, stem: str) -> None:
    """The pre-flight (edgepipe inspect) against the real compiler's decisions on Coral's pairs."""
    rows = rows_from_compiled_pair(coral_data / (stem + ".tflite"), coral_data / (stem + "_edgetpu.tflite"))
    predicted = preflight_compare._preflight_ops(str(coral_data / (stem + ".tflite")), multiple_subgraphs=False)
    assert compare_with_preflight(predicted, rows, model=stem) == []


def test_real_console_with_its_log_pasted_after_counts_once(tmp_path: Path) -> None:
    pasted = tmp_path / "pasted.txt"
    pasted.write_text(
        real_text("11_efficientdet_coral_v2_stdout_v16.txt")
        + "\n"
        + real_text("12_efficientdet_coral_v2_edgetpu_v16.log")
    )
    report = report_from_log(pasted)
    assert (report.total_ops, report.tpu_ops, report.cpu_ops) == (267, 264, 3)
    assert len(report.models) == 1 and len(report.operators) == 11
    assert "DEQUANTIZE x2" in report.reasons[0]


def test_from_log_refuses_text_that_is_not_compiler_output(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    result = CliRunner().invoke(app, ["compile", "--from-log", str(tmp_path / "notes.txt")])
    assert result.exit_code == 4 and "not edgetpu_compiler output" in result.stderr
    assert CliRunner().invoke(app, ["compile", "--from-log", str(tmp_path / "missing.txt")]).exit_code == 3
    # a bare version line is real compiler output (15.0 with -n on some models, REFERENCE §1.4): a failure
    (tmp_path / "bare.txt").write_text(real_lines("07_yolov3-tiny_int8_stdout_v15.txt")[0] + "\n")
    assert report_from_log(tmp_path / "bare.txt").verdict == "failed"


def test_real_log_only_says_what_it_cannot_know() -> None:
    report = report_from_log(shared_path("edgetpu", "compiler_logs", "05_mnist9_edgetpu_v15.log"))
    assert report.subgraphs is None and report.on_chip_bytes is None
    assert any("no memory or subgraph summary" in w for w in report.warnings)


def test_replay_report_lists_preflight_disagreements(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    """Wiring only: a stand-in prediction that calls every op mapped, against the real table of 07."""
    asked = []

    def predict(model: str, multiple_subgraphs: bool) -> list:
        asked.append((Path(model).name, multiple_subgraphs))
        rows = parse_compiler_output(real_text("07_yolov3-tiny_int8_stdout_v15.txt")).operators
        return [SimpleNamespace(name=r.name, edgetpu="mapped") for r in rows for _ in range(r.count)]

    monkeypatch.setattr(preflight_compare, "_preflight_ops", predict)
    replay(monkeypatch, "07_yolov3-tiny_int8_stdout_v15.txt")
    report = compile_models([mobilenet], replay_env["out"], multiple_subgraphs=True, allow_cpu_ops=100)
    assert asked == [("mobilenet_v1_0.25_128_quant.tflite", True)]
    assert report.preflight == "compared"
    by_op = {d["op"]: d for d in report.preflight_disagreements}
    assert set(by_op) == {
        "MAX_POOL_2D",
        "QUANTIZE",
        "CONV_2D",
        "RESIZE_NEAREST_NEIGHBOR",
        "LEAKY_RELU",
        "CONCATENATION",
    }
    assert by_op["LEAKY_RELU"]["predicted"]["mapped"] == 11 and by_op["LEAKY_RELU"]["compiler"]["not_mapped"] == 11
    assert by_op["LEAKY_RELU"]["model"] == "mobilenet_v1_0.25_128_quant.tflite"


def test_replay_interrupt_kills_the_compiler_and_its_child(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, tmp_path: Path
) -> None:
    """Ctrl-C while compiling: the compiler runs in its own session, so edgepipe must end it."""
    _need_proc()
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", SLEEP="120", PIDS=str(tmp_path / "pids.json"))

    def interrupt(signum: int, frame: object) -> None:
        # Only once the replay has written both pids (the file exists, empty, before they are written):
        # until then, look again shortly.
        try:
            started = len(json.loads((tmp_path / "pids.json").read_text())) == 2
        except (OSError, ValueError):
            started = False
        if not started:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            compile_models([mobilenet], replay_env["out"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    pids = json.loads((tmp_path / "pids.json").read_text())
    assert all(ends(p) for p in pids)
    assert staged_files(replay_env["out"]) == []  # staging removed, nothing half-written


# --- the CPU-op allowance at its edge (issue 13: `> allow + 1` must fail a test) -------------------


@pytest.mark.parametrize("allow, verdict", [(3, "accepted"), (2, "rejected")])
def test_replay_allowance_exactly_at_and_one_over_through_compile(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, allow: int, verdict: str
) -> None:
    """11 + its .log 12: 3 ops on the CPU (hand-read). Allowing 3 accepts, allowing 2 is one over."""
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    if verdict == "accepted":
        assert compile_models([mobilenet], replay_env["out"], allow_cpu_ops=allow).verdict == "accepted"
        return
    with pytest.raises(CompileRejected) as caught:
        compile_models([mobilenet], replay_env["out"], allow_cpu_ops=allow)
    assert caught.value.report.verdict == "rejected" and caught.value.exit_code == 42
    assert "3 ops would run on the CPU (allowed 2)" in caught.value.report.reasons[0]


@pytest.mark.parametrize(
    "name, cpu_ops",
    [("12_efficientdet_coral_v2_edgetpu_v16.log", 3), ("18_yolov8s_integer_quant_160_cpu_v16.log", 2)],
)
def test_real_log_allowance_exactly_at_and_one_over(name: str, cpu_ops: int) -> None:
    path = log_path(name)
    assert report_from_log(path, allow_cpu_ops=cpu_ops).verdict == "accepted"
    over = report_from_log(path, allow_cpu_ops=cpu_ops - 1)
    assert over.verdict == "rejected"
    assert "%d ops would run on the CPU (allowed %d)" % (cpu_ops, cpu_ops - 1) in over.reasons[0]


# --- what the compiler wrote is read back (issue 8.5) ----------------------------------------------


@pytest.mark.parametrize(
    "write, reason",
    [
        ("garbage", "is not a readable TFLite model"),
        ("copy", "is not compiled for the Edge TPU (no edgetpu-custom-op), though the compiler reported 86 ops"),
    ],
)
def test_replay_success_text_with_an_unusable_model_is_failed(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path, tmp_path: Path, write: str, reason: str
) -> None:
    replay_all_mapped(monkeypatch, tmp_path)
    monkeypatch.setenv("EDGEPIPE_REPLAY_WRITE", write)
    out = replay_env["out"]
    result = CliRunner().invoke(app, ["compile", str(mobilenet), "-o", str(out), "--json"])
    assert result.exit_code == 41, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "failed" and report["error"]["kind"] == "invalid_output"
    assert reason in report["error"]["message"] and "\n" not in report["error"]["message"]
    assert not list(out.glob("*.tflite"))  # nothing accepted, nothing published
    assert any("untrusted outputs discarded" in w for w in report["warnings"])


def test_replay_cpu_ops_in_the_written_model_disagreeing_with_the_summary_is_failed(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    replay(
        monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log", CPU_OPS="2"
    )
    with pytest.raises(CompileError) as caught:
        compile_models([mobilenet], replay_env["out"], allow_cpu_ops=3)
    assert caught.value.kind == "invalid_output" and caught.value.exit_code == 41
    assert "holds 2 op(s) outside the Edge TPU, the compiler reported 3 on the CPU" in str(caught.value)


def test_replay_written_model_agreeing_with_the_summary_is_kept(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    from edgepipe.runtime.tflite_reader import read_model

    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    report = compile_models([mobilenet], replay_env["out"], allow_cpu_ops=3)
    written = read_model(report.models[0].output)
    assert [op.name for op in written.main.operators].count("edgetpu-custom-op") == 1
    assert len(written.main.operators) - 1 == report.cpu_ops == 3


def test_bounded_output_keeps_whole_lines_at_both_ends() -> None:
    kept = process.BoundedOutput(16, 16)
    for i in range(1000):
        kept.add(b"line %04d\n" % i)
    text, dropped = kept.text()
    lines = text.splitlines()
    assert lines[0] == "line 0000" and lines[-1] == "line 0999"
    assert [x for x in lines if not x.startswith("line ")] == [
        "[edgepipe: %d bytes of compiler output dropped here; kept the first 10 and the last 10]" % dropped
    ]
    assert dropped == 10_000 - sum(len(x) + 1 for x in lines if x.startswith("line "))
    small = process.BoundedOutput(100, 100)
    small.add(b"all of it\n")
    assert small.text() == ("all of it\n", 0)


def test_replay_runaway_compiler_output_is_bounded(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, mobilenet: Path
) -> None:
    """300 MiB printed before a real failure text: memory and report stay at the 1 MiB head + tail."""
    import tracemalloc

    replay(monkeypatch, "13_fail_opversion_transpose_conv_v16.txt", NOISE_MB="300")
    # Memory: traced around the compiler run alone (reading the input model is not this test's business).
    tracemalloc.start()
    try:
        run = process.run_compiler([str(REPLAY), "-s", str(mobilenet)], 600)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert run.output_bytes >= 300 * 10**6 and run.dropped_bytes > 298 * 10**6
    assert peak < 16 * MIB, peak
    with pytest.raises(CompileError) as caught:
        compile_models([mobilenet], replay_env["out"])
    assert caught.value.kind == "op_version"  # the failure at the end of the output is still read
    report_path = replay_env["out"] / "compile_report.json"
    assert report_path.stat().st_size < 2 * process.OUTPUT_HEAD_BYTES + 256 * KIB
    report = json.loads(report_path.read_text())
    note = [w for w in report["warnings"] if "were dropped" in w]
    assert len(note) == 1
    assert int(re.search(r"printed (\d+) bytes", note[0]).group(1)) >= 300 * 10**6
    assert "bytes of compiler output dropped here" in report["error"]["compiler_output"]


# --- compile MODEL --from-log LOG (issue 14.5) -----------------------------------------------------


def dummy_like_model(path: Path) -> Path:
    """A synthetic model consistent with the real log 03 (its ops: QUANTIZE x2, DEPTHWISE_CONV_2D x1,
    all mapped): uint8 in -> QUANTIZE -> 3x3 depthwise -> QUANTIZE -> uint8 out. No real pair exists
    for any of the real logs, so this model is built to match one."""
    import struct

    import _tflite_builder as tb

    scale = [0.02]
    tensors = [
        tb.tensor([1, 8, 8, 4], "UINT8", "in", scales=scale),
        tb.tensor([1, 8, 8, 4], "INT8", "q", scales=scale),
        tb.tensor([1, 3, 3, 4], "INT8", "w", buffer=1, scales=[0.01] * 4),
        tb.tensor([4], "INT32", "b", buffer=2, scales=[0.0002] * 4),
        tb.tensor([1, 8, 8, 4], "INT8", "dw", scales=scale),
        tb.tensor([1, 8, 8, 4], "UINT8", "out", scales=scale),
    ]
    ops = [tb.op(0, [0], [1]), tb.op(1, [1, 2, 3], [4]), tb.op(0, [4], [5])]
    data = tb.model(
        [tb.opcode("QUANTIZE"), tb.opcode("DEPTHWISE_CONV_2D")],
        tensors,
        ops,
        [0],
        [5],
        buffers=[bytes(36), struct.pack("<4i", 0, 0, 0, 0)],
    )
    path.write_bytes(data)
    return path


def test_real_log_from_log_with_a_synthetic_consistent_model_is_compared(tmp_path: Path) -> None:
    model = dummy_like_model(tmp_path / "dummy.tflite")
    log = log_path("03_dummy_edgetpu_v16.log")
    result = CliRunner().invoke(app, ["compile", str(model), "--from-log", str(log), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "accepted" and report["preflight"] == "compared"
    assert report["preflight_disagreements"] == []
    assert not any("may be the output of another model" in w for w in report["warnings"])


def test_real_log_from_log_with_a_synthetic_other_model_lists_disagreements(tmp_path: Path) -> None:
    model = dummy_like_model(tmp_path / "dummy.tflite")
    report = report_from_log(log_path("05_mnist9_edgetpu_v15.log"), models=[model])
    assert report.preflight == "compared"
    assert any("dummy.tflite has 3 ops but the compiler's output counts 10" in w for w in report.warnings)
    by_op = {d["op"]: d for d in report.preflight_disagreements}
    assert set(by_op) == {"MAX_POOL_2D", "FULLY_CONNECTED", "RESHAPE", "CONV_2D", "SOFTMAX", "DEPTHWISE_CONV_2D"}
    assert by_op["CONV_2D"]["compiler"]["mapped"] == 2 and by_op["CONV_2D"]["predicted"]["mapped"] == 0


def test_from_log_with_a_compiled_or_missing_model_is_refused(tmp_path: Path, coral_data: Path) -> None:
    log = str(log_path("03_dummy_edgetpu_v16.log"))
    compiled = coral_data / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    result = CliRunner().invoke(app, ["compile", str(compiled), "--from-log", log])
    assert result.exit_code == 4 and "already compiled" in result.stderr
    assert CliRunner().invoke(app, ["compile", str(tmp_path / "none.tflite"), "--from-log", log]).exit_code == 3


def test_real_log_padded_to_megabytes_is_read_as_head_and_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--from-log of a huge file: the real output 11 after 3 MiB of filler, read with 64 KiB bounds."""
    monkeypatch.setattr(process, "OUTPUT_HEAD_BYTES", 64 * KIB)
    monkeypatch.setattr(process, "OUTPUT_TAIL_BYTES", 64 * KIB)
    padded = tmp_path / "padded.txt"
    padded.write_text(
        "filler line of a saved terminal session\n" * 80_000 + real_text("11_efficientdet_coral_v2_stdout_v16.txt")
    )
    report = report_from_log(padded, allow_cpu_ops=3)
    assert (report.verdict, report.cpu_ops, report.total_ops) == ("accepted", 3, 267)
    assert any("padded.txt is %d bytes" % padded.stat().st_size in w and "not read" in w for w in report.warnings)


def test_real_compiled_pairs_pass_the_read_back_check(coral_data: Path) -> None:
    """Google's own compiled models (MANIFEST: 1 edgetpu-custom-op, and 8 / 2 / 0 / 0 ops left on the CPU)
    agree with a summary giving those counts, and not with one op more or less."""
    from edgepipe.compile.readback import check_written_model

    left = {
        "deeplabv3_mnv2_dm05_pascal_quant": 8,
        "deeplab_mobilenet_edgetpu_slim_cityscapes_quant": 2,
        "mobilenet_v1_0.25_128_quant": 0,
        "keras_lstm_mnist_ptq": 0,
    }
    for stem, cpu in left.items():
        compiled = coral_data / (stem + "_edgetpu.tflite")
        assert check_written_model(compiled, stage.ModelBlock(reported_cpu_ops=cpu, subgraphs=1)) is None
        wrong = check_written_model(compiled, stage.ModelBlock(reported_cpu_ops=cpu + 1, subgraphs=1))
        assert wrong == "%s holds %d op(s) outside the Edge TPU, the compiler reported %d on the CPU" % (
            compiled.name,
            cpu,
            cpu + 1,
        )
        two = check_written_model(compiled, stage.ModelBlock(reported_cpu_ops=cpu, subgraphs=2))
        assert two is not None and "reported 2 Edge TPU subgraph(s)" in two
        uncompiled = check_written_model(coral_data / (stem + ".tflite"), stage.ModelBlock(reported_tpu_ops=5))
        assert uncompiled is not None and "is not compiled for the Edge TPU" in uncompiled
