"""Host-side rendering: every table and line the `edgepipe` command prints for a report.

Commands call one `show_*` (warnings to stderr, then the report) or `emit(report, as_json, render_*)`;
with --json the report goes to stdout as JSON and nothing else is printed there. The device side
(edgepipe/runtime/) keeps its own plain-text output and never imports this module (no rich there).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, List, Optional

from rich.console import Console
from rich.table import Table

from .runtime.report import dumps

# Piped or captured output (CI logs, `| less`) gets room for the wide tables instead of rich's 80 columns.
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
out = Console(highlight=False, soft_wrap=True, width=_PIPE_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line, even in a pipe


def emit(report: Any, as_json: bool, render: Optional[Callable[[Any], None]] = None) -> None:
    """Print a report: JSON on stdout with --json, else the stage's own table renderer."""
    if as_json or render is None:
        sys.stdout.write(dumps(report) + "\n")
        sys.stdout.flush()
    else:
        render(report)


def kv_table(title: str, rows: List[tuple]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(str(key), "" if value is None else str(value))
    return table


def io_text(t: dict) -> str:
    q = t.get("quantization") or {}
    text = "%s %s %s" % (t["name"], t["dtype"], t["shape"])
    if q.get("scale"):
        text += ", scale %.6g, zero point %d" % (q["scale"], q["zero_point"])
    return text


def render_convert(report: Any) -> None:
    from rich.markup import escape

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
        rows.append(
            (
                "int8 vs float",
                "top-1 agrees on %.0f %% of %d calibration samples; the float model gives %d class(es)"
                % (100 * ic["top1_agreement"], ic["samples"], ic["float_top1_classes"]),
            )
        )
    src = getattr(report, "source", None)
    if src:
        rows.append(("source", "%s; ONNX input %s → converted input %s" % (
            src["converted_by"], src["onnx_input_shape"], src["converted_input_shape"])))  # fmt: skip
    rows.append(("sha256", report.sha256))
    rows.append(("versions", ", ".join("%s %s" % kv for kv in sorted(report.versions.items()))))
    rows.append(("duration", "%.1f s" % report.duration_s))
    out.print(kv_table("edgepipe convert", [(escape(k), escape(str(v))) for k, v in rows]))


def render_data_list(report: Any) -> None:
    from rich.markup import escape

    where = "%s (from %s)" % (report.data_dir, report.data_dir_from) if report.data_dir else "none found"
    out.print(kv_table("edgepipe data", [("data directory", escape(where)), ("registry", escape(report.registry))]))
    table = Table(title="Datasets", title_justify="left")
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
            table.add_row(escape(entry.name), escape(f.name), f.split, escape(status), style=style)
        usable = ", ".join(entry.usable_splits) or "nothing usable"
        table.add_row(escape(entry.name), "[bold]usable[/]", "", escape(usable), end_section=True)
    out.print(table)


def render_download(report: Any) -> None:
    from rich.markup import escape

    table = Table(title="edgepipe data download %s → %s" % (escape(report.dataset), escape(report.folder)))
    for column in ("File", "Action", "Bytes", "Verified by", "From"):
        table.add_column(column)
    for f in report.files:
        table.add_row(escape(f.name), f.action, str(f.bytes), f.verified_by, escape(f.url or ""))
    out.print(table)


def render_inspect(report: Any) -> None:
    from rich.markup import escape

    from .runtime.text import crossing_rows, first_cpu_text, op_rows, summary_rows

    out.print(kv_table("edgepipe inspect", [(escape(k), escape(v)) for k, v in summary_rows(report)]))
    title = "Operators (where they run)" if report.compiled_for_edgetpu else "Operators (Edge TPU pre-flight)"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Op")
    table.add_column("Version", justify="right")
    table.add_column("Runs on" if report.compiled_for_edgetpu else "Edge TPU")
    first = report.first_cpu_op["index"] if report.first_cpu_op else None
    for index, name, version, verdict, on_cpu in op_rows(report):
        if index == str(first):
            verdict += "  ← first CPU op"
        style = ("bold red" if index == str(first) else "yellow") if on_cpu else None
        table.add_row(index, escape(name), version, escape(verdict), style=style)
    out.print(table)
    crossing = crossing_rows(report)
    if crossing:
        predicted = "" if report.compiled_for_edgetpu else ", predicted"
        table = Table(title="Tensors crossing Edge TPU <-> CPU%s" % predicted, title_justify="left")
        for column in ("Tensor", "Type", "Direction", "Ops"):
            table.add_column(column)
        for row in crossing:
            table.add_row(*(escape(cell) for cell in row))
        out.print(table)
    if report.first_cpu_op:
        out.print("[bold]first CPU op:[/] " + escape(first_cpu_text(report)))
    for blocker in report.compile_blockers:
        out.print("[bold red]compile blocker:[/] " + escape(blocker))


def show_inspect(report: Any, as_json: bool) -> None:
    from rich.markup import escape

    notes = ([report.off_chip_warning] if report.off_chip_warning else []) + list(report.warnings)
    for warning in notes:
        err.print("[yellow]warning:[/] " + escape(warning), markup=True, highlight=False)
    emit(report, as_json, render_inspect)


def human_bytes(n: Optional[int]) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return "%.2f %s (%d bytes)" % (n / size, unit, n)
    return "%d bytes" % n


def render_compile(report: Any) -> None:
    import shlex

    from rich.markup import escape

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
    out.print(kv_table("edgetpu_compiler", [(key, escape(value)) for key, value in rows]))

    if report.operators:
        table = Table(title="Operators", title_justify="left")
        table.add_column("Operator")
        table.add_column("Count", justify="right")
        table.add_column("Status")
        for r in report.operators:
            table.add_row(escape(r.name), str(r.count), escape(r.status), style=None if r.mapped else "bold yellow")
        out.print(table)
    if report.preflight_disagreements:
        table = Table(title="Pre-flight vs compiler (mapped / not mapped)", title_justify="left")
        for column in ("Model", "Operator", "Predicted", "Compiler"):
            table.add_column(column)
        for d in report.preflight_disagreements:
            p, c = d["predicted"], d["compiler"]
            table.add_row(
                escape(d.get("model", "")),
                escape(d["op"]),
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
    out.print("[bold %s]verdict: %s[/] %s" % (colour, report.verdict, escape(detail)))


def show_compile(report: Any, as_json: bool) -> None:
    for warning in report.warnings:
        err.print("[yellow]warning:[/] " + warning, markup=True, highlight=False)
    emit(report, as_json, render_compile)


def backend_rows(report: Any) -> List[tuple]:
    rows = [("model", report.model["path"])]
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
    from rich.markup import escape

    if report.fallback_reason:
        text = report.fallback_reason + (". Fix: %s" % report.fallback_fix if report.fallback_fix else "")
        err.print("[yellow]warning:[/] " + escape(text), markup=True, highlight=False)


def render_bench(report: Any) -> None:
    from rich.markup import escape

    rows = backend_rows(report) + [("runs", "%d timed, %d warm-up" % (report.runs, report.warmup))]
    out.print(kv_table("edgepipe bench", [(k, escape(str(v))) for k, v in rows]))
    table = Table(title="Latency (ms)", title_justify="left")
    table.add_column("")
    for column in ("first", "min", "mean", "std", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    for label, stats in (("invoke only", report.latency_ms), ("end to end", report.end_to_end_ms)):
        values = [stats.first, stats.min, stats.mean, stats.std, stats.p50, stats.p90, stats.p99, stats.max]
        table.add_row(label, *["-" if v is None else "%.3f" % v for v in values])
    out.print(table)


def render_eval(report: Any) -> None:
    from rich.markup import escape

    data = report.dataset
    rows = backend_rows(report) + [
        ("dataset", "%s (%s, %d images)" % (data.get("spec"), data.get("source"), report.n)),
        ("top-1", "%.2f %% (%d of %d)" % (report.top1 * 100, report.correct_top1, report.n)),
        ("top-%d" % report.top_k, "%.2f %%" % (report.top5 * 100)),
        ("batching", report.batch_note),
        ("speed", "%.1f images/s" % report.images_per_s),
    ]
    out.print(kv_table("edgepipe eval", [(k, escape(str(v))) for k, v in rows]))
    if len(report.per_class) <= 20:
        table = Table(title="Per class", title_justify="left")
        for column in ("class", "name", "n", "top-1"):
            table.add_column(column, justify="right" if column != "name" else "left")
        for c in report.per_class:
            table.add_row(str(c["class"]), escape(str(c["name"] or "")), str(c["n"]), "%.2f %%" % (c["top1"] * 100))
        out.print(table)
    if report.confusion_matrix is not None and report.num_classes <= 10:
        table = Table(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left")
        table.add_column("")
        for c in range(report.num_classes):
            table.add_column(str(c), justify="right")
        for c, row in enumerate(report.confusion_matrix):
            table.add_row(str(c), *[str(v) for v in row])
        out.print(table)


def render_doctor(report: Any) -> None:
    from rich.markup import escape

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
    out.print(kv_table("edgepipe doctor", [(k, escape(str(v))) for k, v in rows]))
    for p in report.problems:
        colour = "red" if p.severity == "error" else "yellow"
        out.print("[bold %s]%s:[/] %s\n  [bold]fix:[/] %s" % (colour, p.severity, escape(p.what), escape(p.fix)))
    if not report.problems:
        out.print("[green]no problems found[/]")


def render_suite(report: Any) -> None:
    from rich.markup import escape

    table = Table(title="edgepipe suite %s  (%s)" % (report.suite, report.out_dir), title_justify="left")
    for column, justify in (("Variant", "left"), ("Backend", "left"), ("Top-1", "right"), ("Top-5", "right"),
                            ("n", "right"), ("p50 ms", "right"), ("first ms", "right"), ("Size", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in report.results:
        lat = r.latency_ms or {}
        backend = r.backend if r.backend == r.requested_backend else "%s (asked %s)" % (r.backend, r.requested_backend)
        table.add_row(
            escape(r.variant),
            escape(backend),
            "—" if r.top1 is None else "%.2f %%" % (100 * r.top1),
            "—" if r.top5 is None else "%.2f %%" % (100 * r.top5),
            str(r.n),
            "—" if lat.get("p50") is None else "%.3f" % lat["p50"],
            "—" if lat.get("first") is None else "%.3f" % lat["first"],
            human_bytes(r.size_bytes).split(" (")[0],
        )
    out.print(table)
    for key, value in report.comparisons.items():
        out.print("%s: %s" % (key, value))
    out.print("results: %s" % report.report_path)


def show_suite(report: Any, as_json: bool) -> None:
    from rich.markup import escape

    for warning in report.warnings:
        err.print("[yellow]warning:[/] " + escape(warning), markup=True, highlight=False)
    for r in report.results:
        if r.fallback_reason:
            err.print("[yellow]note:[/] %s ran on the CPU: %s" % (escape(r.variant), escape(r.fallback_reason)))
    emit(report, as_json, render_suite)


def render_deploy(report: Any) -> None:
    from rich.markup import escape

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
        ("bundle", "%s (%d files, %d bytes)" % (report.bundle["sha256"][:16], report.bundle["files"],
                                                report.bundle["bytes"])),
        ("remote dir", report.remote_dir + (" (kept)" if report.kept else " (removed)")),
        ("time", "%.2f s" % report.timings_s.get("total", 0.0)),
    ]  # fmt: skip
    out.print(kv_table("edgepipe deploy", [(k, escape(str(v))) for k, v in rows]))
    table = Table(title="Results", title_justify="left")
    for column, justify in (("Model", "left"), ("Backend", "left"), ("Why", "left"), ("p50 ms", "right"),
                            ("Top-1", "right")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in report.results:
        s = r.summary
        table.add_row(
            escape(r.model),
            escape(str(s.get("backend"))) + (" (%s)" % escape(s["device"]) if s.get("device") else ""),
            escape(str(s.get("fallback_reason") or s.get("backend_reason") or "")),
            "—" if s.get("p50_ms") is None else "%.3f" % s["p50_ms"],
            "—" if s.get("top1") is None else "%.2f %% (n=%s)" % (100 * s["top1"], s.get("n")),
        )
    out.print(table)
    if report.results_path:
        out.print("results: %s" % report.results_path)


def fleet_table(report: Any) -> Any:
    """A rich Table: one row per board (one line per model in the value columns)."""
    from rich.markup import escape
    from rich.table import Table

    colours = {"pass": "green", "fail": "red", "unreachable": "magenta"}
    counts = ", ".join("%d %s" % (n, verdict) for verdict, n in report.counts.items() if n)
    table = Table(title="Fleet validation: %s" % counts, title_justify="left")
    for column, justify in (("Board", "left"), ("Verdict", "left"), ("Backend", "left"), ("p50 ms", "right"),
                            ("Top-1", "right"), ("Reasons", "left")):  # fmt: skip
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for board in report.boards:
        summaries = [m.summary for m in board.models]
        table.add_row(
            escape(board.name),
            "[%s]%s[/]" % (colours.get(board.verdict, "white"), board.verdict),
            "\n".join(escape(str(s.get("backend"))) for s in summaries) or "—",
            "\n".join("—" if s.get("p50_ms") is None else "%.3f" % s["p50_ms"] for s in summaries) or "—",
            "\n".join("—" if s.get("top1") is None else pct(s["top1"]) for s in summaries) or "—",
            escape("\n".join(board.reasons + board.notes)),
        )
    return table


def pct(fraction: float) -> str:
    return "%.1f %%" % (100.0 * fraction)


def show_convert(report: Any, as_json: bool) -> None:
    from rich.markup import escape

    for warning in report.warnings:
        err.print("[yellow]warning:[/] " + escape(warning), markup=True, highlight=False)
    emit(report, as_json, render_convert)


def show_deploy(report: Any, as_json: bool) -> None:
    from rich.text import Text

    for r in report.results:
        if r.summary.get("fallback_reason"):
            note = Text.assemble(("note:", "yellow"), " %s: %s" % (r.model, r.summary["fallback_reason"]))
            err.print(note, highlight=False)
    emit(report, as_json, render_deploy)


def show_fleet(report: Any, as_json: bool) -> None:
    emit(report, as_json, lambda r: (out.print(fleet_table(r)), out.print("report: %s" % r.report_path, markup=False)))


def show_bench(report: Any, as_json: bool) -> None:
    warn_fallback(report)
    emit(report, as_json, render_bench)


def show_eval(report: Any, as_json: bool) -> None:
    warn_fallback(report)
    emit(report, as_json, render_eval)
