"""Host-side rendering: every table and line the `edgepipe` command prints for a report.

Commands call one `show_*` (warnings to stderr, then the report) or `emit(report, as_json, render_*)`;
with --json the report goes to stdout as JSON and nothing else is printed there. The device side
(edgepipe/runtime/) keeps its own plain-text output and never imports this module (no rich there).

Literal text: almost every string shown here came from a user, a file, a compiler or a remote host
("model[int8].tflite", "[/]x"), and rich would read brackets in it as markup (a wrong name, or a
MarkupError). So the consoles have markup off, tables are `LiteralTable`s, and styling is applied
only through `Text` parts (`line`); nothing is ever parsed as markup.

Over 500 lines on purpose: one renderer per command, kept together as the one home of host rendering.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperOption

from .runtime.report import dumps
from .runtime.text import plural

# Piped or captured output (CI logs, `| less`) gets room for the wide tables instead of rich's 80 columns.
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
out = Console(highlight=False, soft_wrap=True, width=_PIPE_WIDTH, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)  # an error stays one line, even in a pipe

Part = Union[str, Tuple[str, str]]  # literal text, or (literal text, style)


def lit(value: Any) -> Text:
    """Any value as literal text (None: empty)."""
    return value if isinstance(value, Text) else Text("" if value is None else str(value))


def line(*parts: Part) -> Text:
    """One printed line from literal parts, some styled: line(("warning:", "yellow"), " ", text)."""
    return Text.assemble(*parts)


class LiteralTable(Table):
    """A rich Table whose title and cells are literal text, whatever console prints it."""

    def __init__(self, title: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("title_justify", "left")
        super().__init__(title=None if title is None else lit(title), **kwargs)

    def add_row(self, *cells: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().add_row(*(lit(c) for c in cells), **kwargs)


def note(label: str, text: Any, style: str = "yellow") -> None:
    """`label: text` on stderr (warnings and notes, so --json output stays clean)."""
    err.print(line((label + ":", style), " ", str(text)))


def emit(report: Any, as_json: bool, render: Optional[Callable[[Any], None]] = None) -> None:
    """Print a report: JSON on stdout with --json, else the stage's own table renderer."""
    if as_json or render is None:
        sys.stdout.write(dumps(report) + "\n")
        sys.stdout.flush()
    else:
        render(report)


# --- wording shared by several tables ---------------------------------------------------------------


def pct(fraction: float) -> str:
    return "%.1f %%" % (100.0 * fraction)


def human_bytes(n: Optional[int]) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return "%.2f %s (%d bytes)" % (n / size, unit, n)
    return "%d bytes" % n


def short_note(text: Optional[str]) -> str:
    """A note's words without the technical detail in brackets (a runtime's error text; --json keeps it)."""
    if not text:
        return ""
    head, _, detail = text.partition(" (")
    return head + " (details in --json)" if detail else head


# Suite comparisons: key suffix -> (label, value format). Keys may start with a model ("resnet8_...").
_COMPARISONS: Dict[str, Tuple[str, Callable[[Any], str]]] = {
    "int8_minus_float_top1_pp": ("int8 vs float top-1", lambda v: "%+.2f percentage points" % v),
    "int8_size_ratio": ("int8 model size", lambda v: "%.1f %% of the float model's" % (100 * v)),
    "int8_speedup": ("int8 speed-up over float (p50)", lambda v: "%.2f×" % v),
}
_MODEL_NAMES = {"resnet8": "ResNet-8", "resnet50": "ResNet-50", "mnist": "MNIST"}


def comparison_label(key: str, value: Any) -> Tuple[str, str]:
    """A suite comparison as (human label, value text), not its JSON key."""
    for suffix, (label, fmt) in _COMPARISONS.items():
        if key == suffix or key.endswith("_" + suffix):
            model = key[: -len(suffix) - 1]
            prefix = "%s: " % _MODEL_NAMES.get(model, model) if model else ""
            try:
                return prefix + label, fmt(value)
            except (TypeError, ValueError):
                return prefix + label, str(value)
    return key.replace("_", " "), str(value)


def kv_table(title: str, rows: Iterable[Tuple[Any, Any]]) -> LiteralTable:
    table = LiteralTable(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


def io_text(t: dict) -> str:
    q = t.get("quantization") or {}
    text = "%s %s %s" % (t["name"], t["dtype"], t["shape"])
    if q.get("scale"):
        text += ", scale %.6g, zero point %d" % (q["scale"], q["zero_point"])
    return text


# --- help screens: a flag takes no value ------------------------------------------------------------
# typer 0.29's rich help prints a type beside every option, flags too ("--json <bool>"), which reads as
# if `--json true` were the way to use it (a usage error). typer 0.28 (pinned) shows flags bare; should
# a 0.29-style typer be installed anyway, flags get no type column there either.

_typer_type_label = getattr(TyperOption, "display_type_rich", None)


def _type_label_unless_flag(self: TyperOption, ctx: Any) -> Optional[str]:
    return None if self.is_flag else _typer_type_label(self, ctx)  # type: ignore[misc]


if _typer_type_label is not None:
    TyperOption.display_type_rich = _type_label_unless_flag  # type: ignore[attr-defined]


# --- convert, data ----------------------------------------------------------------------------------


def render_convert(report: Any) -> None:
    rows = [
        ("model", "%s (%s)" % (report.model, report.model_format)),
        ("target", report.target),
        ("output", report.out),
        ("report", report.report_path),
        (
            "size",
            "%d bytes (float: %d bytes, ratio %.3f)" % (report.size_bytes, report.float_size_bytes, report.size_ratio),
        ),
        ("input shape", "%s → converted at %s" % (report.model_input_shape, report.static_shape)),
    ]
    rows += [("input", io_text(t)) for t in report.inputs]
    rows += [("output tensor", io_text(t)) for t in report.outputs]
    rows.append(("ops", ", ".join("%s ×%d" % (k, v) for k, v in report.op_histogram.items())))
    if report.calibration:
        c = report.calibration
        rows.append(
            (
                "calibration",
                "%s (%s split), %d of %d samples, seed %d, preprocess %s; %s%s"
                % (
                    c["spec"],
                    c["split"],
                    c["count"],
                    c["available"],
                    c["seed"],
                    c["preprocess"],
                    c["source"],
                    ", checksum verified" if c.get("checksum_verified") else "",
                ),
            )
        )
    if report.verification.get("passed"):
        rows.append(("int8 verification", "passed (%s)" % report.verification["checked_by"]))
    if report.float_ops:
        rows.append(("float ops (CPU)", ", ".join("%s (op %d)" % (f["op"], f["index"]) for f in report.float_ops)))
    p = report.preflight
    if p:
        rows.append(("Edge TPU pre-flight", p["verdict"]))
        rows.append(("predicted ops on Edge TPU / CPU", "%d / %d of %d" % (p["tpu_ops"], p["cpu_ops"], p["ops_total"])))
        if p["first_cpu_op_text"]:
            rows.append(("first CPU op", p["first_cpu_op_text"]))
    fc = report.float_check
    rows.append(
        (
            "float check",
            "float TFLite vs %s: max |diff| %.3g (tolerance %.3g, %d samples)"
            % (fc.get("reference", "source model"), fc["max_abs_diff"], fc["tolerance"], fc["samples"]),
        )
    )
    ic = getattr(report, "int8_check", None)
    if ic and ic.get("top1_agreement") is not None:
        classes = ic["float_top1_classes"]
        rows.append(
            (
                "int8 vs float",
                "top-1 agrees on %.0f %% of %s; the float model gives %s"
                % (
                    100 * ic["top1_agreement"],
                    plural(ic["samples"], "calibration sample"),
                    plural(classes, "class", "classes"),
                ),
            )
        )
    src = getattr(report, "source", None)
    if src:
        rows.append(("source", "%s; ONNX input %s → converted input %s" % (
            src["converted_by"], src["onnx_input_shape"], src["converted_input_shape"])))  # fmt: skip
    rows.append(("sha256", report.sha256))
    rows.append(("versions", ", ".join("%s %s" % kv for kv in sorted(report.versions.items()))))
    rows.append(("duration", "%.1f s" % report.duration_s))
    out.print(kv_table("edgepipe convert", rows))


def show_convert(report: Any, as_json: bool) -> None:
    for warning in report.warnings:
        note("warning", warning)
    emit(report, as_json, render_convert)


def render_data_list(report: Any) -> None:
    where = "%s (from %s)" % (report.data_dir, report.data_dir_from) if report.data_dir else "none found"
    out.print(kv_table("edgepipe data", [("data directory", where), ("registry", report.registry)]))
    table = LiteralTable(title="Datasets")
    for column in ("Dataset", "File", "Split", "Status"):
        table.add_column(column)
    for entry in report.datasets:
        for f in entry.files:
            if not f.found:
                status, style = "not found", "yellow"
            elif f.verified:
                status, style = "verified (%s)" % f.method, None
            else:
                status, style = "BAD: %s" % f.method, "bold red"
            table.add_row(entry.name, f.name, f.split, status, style=style)
        usable = ", ".join(entry.usable_splits) or "nothing usable"
        table.add_row(entry.name, Text("usable", style="bold"), "", usable, end_section=True)
    out.print(table)


def render_download(report: Any) -> None:
    title = "edgepipe data download %s → %s" % (report.dataset, report.folder)
    table = LiteralTable(title=title, title_justify="center")
    for column in ("File", "Action", "Bytes", "Verified by", "From"):
        table.add_column(column)
    for f in report.files:
        table.add_row(f.name, f.action, str(f.bytes), f.verified_by, f.url or "")
    out.print(table)


# --- inspect, compile -------------------------------------------------------------------------------


def _op_reason(op: Any) -> str:
    """Why a pre-flight verdict is what it is, where the table's verdict alone does not say (uncertain ones)."""
    if getattr(op, "certain", True) or not getattr(op, "detail", ""):
        return ""
    return op.detail


def render_inspect(report: Any) -> None:
    from .runtime.text import crossing_rows, first_cpu_text, op_rows, summary_rows

    out.print(kv_table("edgepipe inspect", summary_rows(report)))
    title = "Operators (where they run)" if report.compiled_for_edgetpu else "Operators (Edge TPU pre-flight)"
    table = LiteralTable(title=title)
    table.add_column("#", justify="right")
    table.add_column("Op")
    table.add_column("Version", justify="right")
    table.add_column("Runs on" if report.compiled_for_edgetpu else "Edge TPU")
    reasons = {str(op.index): _op_reason(op) for op in report.ops}
    if any(reasons.values()):
        table.add_column("Why uncertain", overflow="fold")
    first = report.first_cpu_op["index"] if report.first_cpu_op else None
    for index, name, version, verdict, on_cpu in op_rows(report):
        if index == str(first):
            verdict += "  ← first CPU op"
        style = ("bold red" if index == str(first) else "yellow") if on_cpu else None
        cells = [index, name, version, verdict] + ([reasons.get(index, "")] if any(reasons.values()) else [])
        table.add_row(*cells, style=style)
    out.print(table)
    crossing = crossing_rows(report)
    if crossing:
        predicted = "" if report.compiled_for_edgetpu else ", predicted"
        table = LiteralTable(title="Tensors crossing Edge TPU <-> CPU%s" % predicted)
        for column in ("Tensor", "Type", "Direction", "Ops"):
            table.add_column(column)
        for row in crossing:
            table.add_row(*row)
        out.print(table)
    if report.first_cpu_op:
        out.print(line(("first CPU op:", "bold"), " ", first_cpu_text(report)))
    for blocker in report.compile_blockers:
        out.print(line(("compile blocker:", "bold red"), " ", blocker))


def show_inspect(report: Any, as_json: bool) -> None:
    for warning in ([report.off_chip_warning] if report.off_chip_warning else []) + list(report.warnings):
        note("warning", warning)
    emit(report, as_json, render_inspect)


def render_compile(report: Any) -> None:
    def known(value: Any) -> str:
        return "unknown" if value is None else str(value)

    where = " at %s" % report.compiler_path if report.compiler_path else ""
    rows = [
        ("compiler", known(report.compiler_version) + where),
        ("source", report.source),
    ]
    if report.command:
        rows.append(("command", " ".join(shlex.quote(a) for a in report.command)))
    rows += [
        ("exit code", known(report.exit_code)),
        ("duration", "unknown" if report.duration_s is None else "%.1f s" % report.duration_s),
        ("min runtime", "%s (%s)" % (known(report.min_runtime), report.min_runtime_source)),
    ]
    for m in report.models:
        label = "segment %d" % m.segment if m.segment is not None else "model"
        rows.append((label, "%s -> %s" % (m.input or "?", m.output or "(not written)")))
    rows += [
        ("ops on Edge TPU / CPU", "%s / %s" % (known(report.tpu_ops), known(report.cpu_ops))),
        ("ops in total", known(report.total_ops)),
        ("Edge TPU subgraphs", known(report.subgraphs)),
        ("on-chip parameter cache", human_bytes(report.on_chip_bytes)),
        ("off-chip streaming", human_bytes(report.off_chip_bytes)),
        ("pre-flight", report.preflight),
    ]
    if report.report_path:
        rows.append(("report", report.report_path))
    out.print(kv_table("edgetpu_compiler", rows))

    if report.operators:
        table = LiteralTable(title="Operators")
        table.add_column("Operator")
        table.add_column("Count", justify="right")
        table.add_column("Status")
        for r in report.operators:
            table.add_row(r.name, str(r.count), r.status, style=None if r.mapped else "bold yellow")
        out.print(table)
    if report.preflight_disagreements:
        table = LiteralTable(title="Pre-flight vs compiler (mapped / not mapped)")
        for column in ("Model", "Operator", "Predicted", "Compiler"):
            table.add_column(column)
        for d in report.preflight_disagreements:
            p, c = d["predicted"], d["compiler"]
            table.add_row(
                d.get("model", ""),
                d["op"],
                "%d / %d" % (p["mapped"], p["not_mapped"]),
                "%d / %d" % (c["mapped"], c["not_mapped"]),
            )
        out.print(table)

    colour = {"accepted": "green", "rejected": "yellow", "failed": "red"}[report.verdict]
    if report.verdict == "accepted":
        detail = "%s of %s ops on the Edge TPU" % (known(report.tpu_ops), known(report.total_ops))
    elif report.verdict == "failed" and report.error:
        detail = "(%s) %s" % (report.error["kind"], report.error["message"])
    else:
        detail = "; ".join(report.reasons)
    out.print(line(("verdict: %s" % report.verdict, "bold " + colour), " ", detail))


def show_compile(report: Any, as_json: bool) -> None:
    for warning in report.warnings:
        note("warning", warning)
    emit(report, as_json, render_compile)


# --- bench, eval, doctor ----------------------------------------------------------------------------


def backend_rows(report: Any) -> List[Tuple[str, Any]]:
    rows: List[Tuple[str, Any]] = [("model", report.model["path"])]
    if report.run_model["path"] != report.model["path"]:
        rows.append(("ran", report.run_model["path"]))
    where = report.backend + (" (%s)" % report.device if report.device else "")
    rows += [("backend", "%s, requested %s" % (where, report.requested_backend)), ("why", report.backend_reason)]
    env = report.environment
    runtime = env.get("runtime") or {}
    rows.append(("runtime", "%s %s" % (runtime.get("name"), runtime.get("version"))))
    lib = env.get("libedgetpu") or {}
    if lib.get("path"):
        rows.append(("libedgetpu", "%s (runtime %s)" % (lib["path"], lib.get("runtime_version") or "?")))
    return rows


def warn_fallback(report: Any) -> None:
    if report.fallback_reason:
        note("warning", report.fallback_reason + (". Fix: %s" % report.fallback_fix if report.fallback_fix else ""))


def render_bench(report: Any) -> None:
    rows = backend_rows(report) + [("runs", "%d timed, %d warm-up" % (report.runs, report.warmup))]
    out.print(kv_table("edgepipe bench", rows))
    table = LiteralTable(title="Latency (ms)")
    table.add_column("")
    for column in ("first", "min", "mean", "std", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    for label, stats in (("invoke only", report.latency_ms), ("end to end", report.end_to_end_ms)):
        values = [stats.first, stats.min, stats.mean, stats.std, stats.p50, stats.p90, stats.p99, stats.max]
        table.add_row(label, *["-" if v is None else "%.3f" % v for v in values])
    out.print(table)


def show_bench(report: Any, as_json: bool) -> None:
    warn_fallback(report)
    emit(report, as_json, render_bench)


def render_eval(report: Any) -> None:
    data = report.dataset
    rows = backend_rows(report) + [
        ("dataset", "%s (%s, %s)" % (data.get("spec"), data.get("source"), plural(report.n, "image"))),
        ("sampled", data.get("sampling") or "all images"),
        ("top-1", "%.2f %% (%d of %d)" % (report.top1 * 100, report.correct_top1, report.n)),
        ("top-%d" % report.top_k, "%.2f %%" % (report.top5 * 100)),
        ("batching", short_note(report.batch_note)),
        ("speed", "%.1f images/s" % report.images_per_s),
    ]
    out.print(kv_table("edgepipe eval", rows))
    if len(report.per_class) <= 20:
        table = LiteralTable(title="Per class")
        for column in ("class", "name", "n", "top-1"):
            table.add_column(column, justify="right" if column != "name" else "left")
        for c in report.per_class:
            table.add_row(str(c["class"]), c["name"] or "", str(c["n"]), "%.2f %%" % (c["top1"] * 100))
        out.print(table)
    if report.confusion_matrix is not None and report.num_classes <= 10:
        table = LiteralTable(title="Confusion matrix (rows: true, columns: predicted)")
        table.add_column("")
        for c in range(report.num_classes):
            table.add_column(str(c), justify="right")
        for c, row in enumerate(report.confusion_matrix):
            table.add_row(str(c), *[str(v) for v in row])
        out.print(table)


def show_eval(report: Any, as_json: bool) -> None:
    warn_fallback(report)
    for warning in getattr(report, "warnings", None) or []:
        note("warning", warning)
    emit(report, as_json, render_eval)


def render_doctor(report: Any) -> None:
    def yes(value: Any) -> str:
        return {True: "yes", False: "no", None: "unknown"}[value]

    runtimes = ", ".join(
        "%s %s" % (r["name"], r["version"]) if r["found"] else "%s: %s" % (r["name"], r["error"])
        for r in report.runtimes
    )
    lib = report.libedgetpu
    if lib["found"]:
        state = "loads" if lib["loads"] else "does not load (%s)" % lib["error"]
        lib_text = "%s, runtime version %s, %s" % (lib["path"], lib["runtime_version"] or "?", state)
    else:
        lib_text = "not found (%s)" % lib["error"]
    devices = []
    for d in report.devices:
        text = "%s %s" % (d.get("spec") or d["type"], d["path"])
        if d.get("usb_id"):
            text += " [%s, %s, %s Mb/s]" % (d["usb_id"], d["state"], d.get("speed_mbps") or "?")
        if not d.get("listed_by_libedgetpu"):
            text += " (not listed by libedgetpu)"
        devices.append(text)
    compiler = report.compiler or {}
    compiler_text = (
        "%s (%s)" % (compiler.get("version"), compiler.get("path")) if compiler.get("found") else "not found"
    )
    rows = [
        ("python", "%s (%s)" % (report.python["version"], report.python["executable"])),
        ("platform", "%s %s" % (report.platform["system"], report.platform["machine"])),
        ("TFLite runtimes", runtimes),
        ("runtime used", "%s %s" % (report.runtime["name"], report.runtime["version"]) if report.runtime else "none"),
        ("libedgetpu", lib_text),
        ("Edge TPUs", "; ".join(devices) or "none"),
        ("udev rule", ", ".join(report.udev["files"]) or "none" if report.udev is not None else "n/a"),
        ("plugdev member", yes(report.plugdev.get("member")) if report.plugdev is not None else "n/a"),
        ("edgetpu_compiler", compiler_text),
        ("pycoral", report.pycoral["version"] or "not installed (optional)"),
        ("Edge TPU ready", yes(report.edgetpu_ready)),
    ]
    out.print(kv_table("edgepipe doctor", rows))
    for p in report.problems:
        colour = "red" if p.severity == "error" else "yellow"
        out.print(line(("%s:" % p.severity, "bold " + colour), " ", p.what, "\n  ", ("fix:", "bold"), " ", p.fix))
    if not report.problems:
        out.print(line(("no problems found", "green")))


# --- suites -----------------------------------------------------------------------------------------


def _training_line(report: Any) -> Optional[str]:
    """What the suite trained on and tested with, so its accuracy can be read against others'."""
    train = (report.steps or {}).get("train")
    data = report.data or {}
    if not isinstance(train, dict) or "epochs" not in train:
        return None
    text = "trained %s on %s" % (plural(train["epochs"], "epoch"), plural(train.get("samples", 0), "image"))
    if data.get("train_source"):
        text += " from %s" % data["train_source"]
    if data.get("test_count") is not None:
        text += "; tested on %s" % plural(data["test_count"], "image")
        if data.get("test_split"):
            text += ", %s" % data["test_split"]
    return text


def render_suite(report: Any) -> None:
    table = LiteralTable(title="edgepipe suite %s  (%s)" % (report.suite, report.out_dir))
    for column, justify in (("Variant", "left"), ("Backend", "left"), ("Top-1", "right"), ("Top-5", "right"),
                            ("n", "right"), ("p50 ms", "right"), ("first ms", "right"), ("Size", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in report.results:
        lat = r.latency_ms or {}
        backend = r.backend if r.backend == r.requested_backend else "%s (asked %s)" % (r.backend, r.requested_backend)
        table.add_row(
            r.variant,
            backend,
            "—" if r.top1 is None else "%.2f %%" % (100 * r.top1),
            "—" if r.top5 is None else "%.2f %%" % (100 * r.top5),
            str(r.n),
            "—" if lat.get("p50") is None else "%.3f" % lat["p50"],
            "—" if lat.get("first") is None else "%.3f" % lat["first"],
            human_bytes(r.size_bytes).split(" (")[0],
        )
    out.print(table)
    training = _training_line(report)
    if training:
        out.print(lit(training))
    for model, data in sorted((report.data or {}).items()):  # the ResNet suite: what each model saw
        if isinstance(data, dict) and data.get("calibration"):
            name = _MODEL_NAMES.get(model, model)
            out.print(lit("%s: evaluated on %s; calibrated on %s" % (name, data.get("sampling"), data["calibration"])))
    references = getattr(report, "references", None) or []
    for block in references:
        out.print(_reference_table(block))
        for text in block.get("notes") or []:
            out.print(lit("  note: %s" % text))
    if not references:  # the reference tables carry the same figures
        for key, value in report.comparisons.items():
            if value is not None:
                label, text = comparison_label(key, value)
                out.print(lit("%s: %s" % (label, text)))
    for failure in getattr(report, "failures", None) or []:
        out.print(line(("failed:", "bold red"), " ", "%s: %s" % (failure["model"], failure["error"])))
    out.print(lit("results: %s" % report.report_path))


def _reference_value(value: Any, unit: str, missing: str) -> str:
    if value is None:
        return missing
    if isinstance(value, str):
        return value
    if unit == "%":
        return "%.2f %%" % (100 * value)
    if unit == "pp":
        return "%+.2f pp" % value
    return "%.2f×" % value


def _reference_table(block: Dict[str, Any]) -> LiteralTable:
    """A model's measured figures beside its published reference; what is not published says so."""
    table = LiteralTable(title="%s: measured here vs %s" % (block["model"], block["reference"]))
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("published", justify="right")
    for row in block["rows"]:
        table.add_row(
            row["figure"],
            _reference_value(row["measured"], row["unit"], "—"),
            _reference_value(row["reference"], row["unit"], "not published"),
        )
    return table


def show_suite(report: Any, as_json: bool) -> None:
    for warning in report.warnings:
        note("warning", warning)
    for r in report.results:
        if r.fallback_reason:
            note("note", "%s ran on the CPU: %s" % (r.variant, r.fallback_reason))
    emit(report, as_json, render_suite)


# --- deploy, fleet ----------------------------------------------------------------------------------


def render_deploy(report: Any) -> None:
    remote = report.remote
    runtime = remote.get("runtime") or {}
    lib = remote.get("libedgetpu") or {}
    devices = ", ".join(str(d.get("path") or d.get("type") or d) for d in remote.get("devices") or []) or "none"
    rows = [
        ("target", report.target),
        ("python", "%s (%s)" % (remote.get("python"), remote.get("interpreter"))),
        ("runtime", "%s %s" % (runtime.get("name"), runtime.get("version"))),
        ("libedgetpu", lib.get("path") or "not found"),
        ("Edge TPUs", devices),
        ("bundle", "%s (%s, %d bytes)" % (report.bundle["sha256"][:16], plural(report.bundle["files"], "file"),
                                          report.bundle["bytes"])),
        ("remote dir", report.remote_dir + (" (kept)" if report.kept else " (removed)")),
        ("time", "%.2f s" % report.timings_s.get("total", 0.0)),
    ]  # fmt: skip
    out.print(kv_table("edgepipe deploy", rows))
    table = LiteralTable(title="Results")
    for column, justify in (("Model", "left"), ("Backend", "left"), ("Why", "left"), ("p50 ms", "right"),
                            ("Top-1", "right")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in report.results:
        s = r.summary
        table.add_row(
            r.model,
            (s.get("backend") or "—") + (" (%s)" % s["device"] if s.get("device") else ""),
            str(s.get("error") or s.get("fallback_reason") or s.get("backend_reason") or ""),
            "—" if s.get("p50_ms") is None else "%.3f" % s["p50_ms"],
            "—" if s.get("top1") is None else "%.2f %% (n=%s)" % (100 * s["top1"], s.get("n")),
        )
    out.print(table)
    if report.results_path:
        out.print(lit("results: %s" % report.results_path))


def show_deploy(report: Any, as_json: bool) -> None:
    for r in report.results:
        if r.summary.get("fallback_reason"):
            note("note", "%s: %s" % (r.model, r.summary["fallback_reason"]))
    emit(report, as_json, render_deploy)


def fleet_table(report: Any) -> LiteralTable:
    """One row per board (one line per model in the value columns); literal on any console."""
    colours = {"pass": "green", "fail": "red", "unreachable": "magenta"}
    counts = ", ".join("%d %s" % (n, verdict) for verdict, n in report.counts.items() if n)
    if getattr(report, "shard", None):
        counts += " (shard %s)" % report.shard
    if getattr(report, "resumed", None):
        counts += "; %d taken from the earlier run (--resume)" % len(report.resumed)
    table = LiteralTable(title="Fleet validation: %s" % counts)
    for column, justify in (("Board", "left"), ("Verdict", "left"), ("Backend", "left"), ("p50 ms", "right"),
                            ("Top-1", "right"), ("Reasons", "left")):  # fmt: skip
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for board in report.boards:
        summaries = [m.summary for m in board.models]
        table.add_row(
            board.name,
            Text(board.verdict, style=colours.get(board.verdict, "white")),
            "\n".join(s.get("backend") or "—" for s in summaries) or "—",
            "\n".join("—" if s.get("p50_ms") is None else "%.3f" % s["p50_ms"] for s in summaries) or "—",
            "\n".join("—" if s.get("top1") is None else pct(s["top1"]) for s in summaries) or "—",
            "\n".join(board.reasons + board.notes
                      + ["retried after: %s" % a.get("error") for a in getattr(board, "attempts", None) or []]),
        )
    return table


def show_fleet(report: Any, as_json: bool) -> None:
    emit(report, as_json, lambda r: (out.print(fleet_table(r)), out.print(lit("report: %s" % r.report_path))))
