"""The device side's plain-text output: the inspect report as rows and as text.

One place for it, used by `python -m edgepipe.runtime inspect` and, as rows, by the host CLI's
tables. Standard library only (Python 3.7, no rich)."""

from __future__ import annotations

from typing import List, Optional, Tuple

from .preflight.graph import clip, dims_text, mib
from .preflight.result import CompiledOp, InspectReport
from .preflight.rules import MAPPED


def plural(n: int, word: str, words: Optional[str] = None) -> str:
    """'1 epoch', '5 epochs', '1 class', '3 classes'."""
    return "%d %s" % (n, word if n == 1 else (words or word + "s"))


def summary_rows(report: InspectReport) -> List[Tuple[str, str]]:
    """The header of the human-readable report, shared by the host CLI and the device-side one."""
    rows = [
        ("model", report.path),
        ("size", "%d bytes, sha256 %s" % (report.size_bytes, report.sha256[:16])),
        ("compiled for Edge TPU", "yes (needs the Edge TPU delegate)" if report.compiled_for_edgetpu else "no"),
        (
            "contents",
            "%s; main: %s, %s; %s"
            % (
                plural(report.tflite_subgraphs, "TFLite subgraph"),
                plural(report.ops_total, "op"),
                plural(len(report.tensors), "tensor"),
                plural(report.buffers, "buffer"),
            ),
        ),
    ]
    kind = "" if report.compiled_for_edgetpu else "predicted "
    rows.append(
        ("%sops on Edge TPU / CPU" % kind, "%d / %d of %d" % (report.tpu_ops, report.cpu_ops, report.ops_total))
    )
    rows.append(("%sEdge TPU subgraphs" % kind, str(report.subgraphs)))
    if report.compiled_for_edgetpu:
        rows.append(("Edge TPU executable", "%d bytes" % (report.edgetpu_executable_bytes or 0)))
        rows.append(("CPU-side parameters", "%d bytes" % report.parameter_bytes))
    else:
        rows.append(
            (
                "parameters",
                "%d bytes in the file, %d for the Edge TPU (on-chip cache ~%s)"
                % (report.parameter_bytes, report.tpu_parameter_bytes or 0, mib(report.on_chip_cache_bytes)),
            )
        )
        rows.append(("uncertain verdicts", str(report.uncertain_ops)))
    for t in report.inputs:
        rows.append(("input", _describe(t)))
    for t in report.outputs:
        rows.append(("output", _describe(t)))
    if report.first_cpu_op:
        rows.append(("first CPU op", first_cpu_text(report)))
    return rows


def first_cpu_text(report: InspectReport) -> str:
    f = report.first_cpu_op
    if not f:
        return ""
    text = "#%d %s v%d" % (f["index"], f["name"], f["version"])
    if "edgetpu" in f:
        text += ": %s" % f["edgetpu"]
        if f.get("detail"):
            text += " (%s)" % f["detail"]
    return text


def _describe(t: dict) -> str:
    text = "%s %s %s" % (t["name"], t["dtype"], t["shape"])
    if "shape_signature" in t:
        text += " (signature %s)" % t["shape_signature"]
    return text


def op_rows(report: InspectReport) -> List[Tuple[str, str, str, str, bool]]:
    """(index, op, version, verdict, on_cpu) per op."""
    rows = []
    for op in report.ops:
        if isinstance(op, CompiledOp):
            rows.append((str(op.index), op.name, str(op.version), op.on, op.on == "cpu"))
        else:
            verdict = op.edgetpu if op.certain else "%s (uncertain)" % op.edgetpu
            rows.append((str(op.index), op.name, str(op.version), verdict, op.edgetpu != MAPPED))
    return rows


def crossing_rows(report: InspectReport) -> List[Tuple[str, str, str, str]]:
    """(tensor, dtype and shape, direction, producer -> consumers) per tensor crossing Edge TPU <-> CPU."""
    rows = []
    for c in report.tensors_crossing:
        consumers = ", ".join("#%d" % i for i in c["consumers"][:5])
        if len(c["consumers"]) > 5:
            consumers += " and %d more" % (len(c["consumers"]) - 5)
        rows.append(
            (
                clip(c["name"]),
                "%s %s" % (c["dtype"], dims_text(c["shape"])),
                "%s -> %s" % (c["from"], c["to"]),
                "#%d -> %s" % (c["producer"], consumers),
            )
        )
    return rows


def render_text(report: InspectReport) -> str:
    lines = ["%-24s %s" % (k + ":", v) for k, v in summary_rows(report)]
    lines.append("")
    lines.append("%5s  %-30s %3s  %s" % ("#", "op", "v", "Edge TPU" if not report.compiled_for_edgetpu else "runs on"))
    for index, name, version, verdict, on_cpu in op_rows(report):
        lines.append("%5s%s %-30s %3s  %s" % (index, "*" if on_cpu else " ", name, version, verdict))
    if report.cpu_ops:
        lines.append("(* = on the CPU)")
    rows = crossing_rows(report)
    if rows:
        lines.append("")
        lines.append("tensors crossing Edge TPU <-> CPU%s:" % ("" if report.compiled_for_edgetpu else " (predicted)"))
        for name, kind, direction, ops in rows:
            lines.append("  %s  %s  %s  (ops %s)" % (name, kind, direction, ops))
    for blocker in report.compile_blockers:
        lines.append("compile blocker: " + blocker)
    if report.off_chip_warning:
        lines.append("warning: " + report.off_chip_warning)
    for warning in report.warnings:
        lines.append("warning: " + warning)
    return "\n".join(lines)
