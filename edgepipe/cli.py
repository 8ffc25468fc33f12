"""The `edgepipe` command: a thin layer that parses arguments, calls one stage, prints its report.

Conventions for every command:
- `--json` prints the report as JSON on stdout (and nothing else there); otherwise a table.
- Progress and warnings go to stderr, so `--json` output can be piped.
- A failure is one line on stderr, `error: ...`, and the exit code of its error class
  (README, "Exit codes"). `--debug` (before the command) shows the traceback too.

Over 500 lines because it is the whole command list: one function per command, its options and help,
and no logic that belongs to a stage or to rendering.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import signal
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, List, Optional, get_type_hints

import typer
from rich.text import Text
from typer._click.exceptions import NoArgsIsHelpError  # typer (pinned 0.28) carries its own click
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperGroup

from . import __version__
from .errors import EdgepipeError
from .render import (
    emit,
    err,
    note,
    out,
    render_data_list,
    render_doctor,
    render_download,
    show_bench,
    show_compile,
    show_convert,
    show_deploy,
    show_eval,
    show_fleet,
    show_inspect,
    show_suite,
)
from .runtime.errors import UsageError, error_line, exit_code_for, raise_terminated
from .runtime.options import (
    BACKEND_HELP,
    BACKENDS,
    CPU_MODEL_HELP,
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    DEVICE_HELP,
    TFLITE_RUNTIME_CHOICES,
    TFLITE_RUNTIME_HELP,
    THREADS_HELP,
    RunOptions,
)


class OneLineUsageErrors(TyperGroup):
    """The command tree whose command-line errors (an unknown option or command, a value out of a typer
    bound, a missing argument) are one `error:` line with exit 2, like every other error here, instead of
    typer's usage text and boxed panel. Bare `edgepipe` / `edgepipe suite` still print their help."""

    def parse_args(self, ctx: typer.Context, args: List[str]) -> List[str]:
        with _usage_errors_in_one_line():  # the top level's own options
            return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        with _usage_errors_in_one_line():  # a subcommand's name, its options and its own BadParameter
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors_in_one_line() -> Iterator[None]:
    """A click usage error inside becomes the one line of a UsageError (naming where the help is), exit 2."""
    try:
        yield
    except NoArgsIsHelpError:  # a bare group: its help is the answer
        raise
    except ClickUsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "edgepipe"
        raise _print_error(UsageError(exc.format_message(), hint="See `%s --help`" % where)) from None


def _print_error(exc: BaseException) -> typer.Exit:
    """Print `exc` as its one line on stderr and return the exit (its code) to raise.

    The message may hold a user's file name or a compiler's words: a Text is printed literally, never
    parsed as markup ("[/]nope.tflite", "model[int8].tflite")."""
    line = Text(error_line(exc) or "")
    if isinstance(exc, EdgepipeError):
        line.stylize("bold red", 0, len("error:"))
    err.print(line, highlight=False)
    return typer.Exit(exit_code_for(exc))


app = typer.Typer(
    cls=OneLineUsageErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Keras/TensorFlow → verified int8 TFLite → Edge TPU compile → measured on a Coral device.",
)
suite_app = typer.Typer(no_args_is_help=True, help="End-to-end accuracy and latency suites.")
app.add_typer(suite_app, name="suite")

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
            raise _print_error(exc) from None

    return wrapper


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


# --- options several commands take: each declared once here; a command gives its default (`as_json: AsJson = False`)

AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
DataDir = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Data directory (default: $EDGEPIPE_DATA, then the download cache)."),
]
Compiler = Annotated[
    Optional[str],
    typer.Option("--compiler", help="edgetpu_compiler to use (default: $EDGEPIPE_EDGETPU_COMPILER, then PATH)."),
]
Limit = Annotated[
    Optional[int],
    typer.Option(
        "--limit", min=1, help="Evaluate a seeded class-balanced sample of N images (an equal share of each class)."
    ),
]
AllowCpuOps = Annotated[int, typer.Option("--allow-cpu-ops", min=0, help="Accept up to N ops left on the CPU.")]
MultipleSubgraphs = Annotated[
    bool,
    typer.Option("--multiple-subgraphs", help="The compiler's experimental mode: several Edge TPU subgraphs (-a)."),
]
Preprocess = Annotated[
    Optional[str],
    typer.Option(
        "--preprocess",
        help="unit, raw, symmetric or caffe (default: quantized inputs take raw pixels, float inputs pixel/255).",
    ),
]
Baseline = Annotated[Optional[Path], typer.Option("--baseline", help="A previous fleet_report.json to compare.")]

# The run options' choices come from their one declaration (edgepipe.runtime.options), as typer Enums.
Backend = Enum("Backend", [(name, name) for name in BACKENDS], type=str)  # type: ignore[misc]
TfliteRuntimeChoice = Enum("TfliteRuntimeChoice", [(n, n) for n in TFLITE_RUNTIME_CHOICES], type=str)  # type: ignore[misc]


def _sentence(phrase: str) -> str:
    return phrase[0].upper() + phrase[1:] + "."


def takes_run_options(
    runs: Optional[int] = None, warmup: int = DEFAULT_WARMUP, every: bool = True, backend_help: str = BACKEND_HELP
) -> Callable[[Callable], Callable]:
    """Give a command the run options as typer options, and call it with them as one `options: RunOptions`
    (the host's counterpart of the device side's `options.add_arguments`).

    They go where the command declares `options` (keyword-only): --backend and --device; with `every`,
    --cpu-model, --runtime and --threads; with `runs`, --runs and --warmup (these defaults). RunOptions checks
    their values (a one-line error, exit 2), so their bounds are declared once, there, for both front doors.
    """
    declared = [
        ("backend", Annotated[Backend, typer.Option("--backend", help=_sentence(backend_help))], "auto"),
        ("device", Annotated[Optional[str], typer.Option("--device", help=_sentence(DEVICE_HELP))], None),
    ]
    if runs is not None:
        warmup_help = "Untimed runs after the first (timed separately) one."
        declared += [
            ("runs", Annotated[int, typer.Option("--runs", help="Timed runs.")], runs),
            ("warmup", Annotated[int, typer.Option("--warmup", help=warmup_help)], warmup),
        ]
    if every:
        declared += [
            ("cpu_model", Annotated[Optional[Path], typer.Option("--cpu-model", help=_sentence(CPU_MODEL_HELP))], None),
            (
                "tflite_runtime",
                Annotated[
                    Optional[TfliteRuntimeChoice], typer.Option("--runtime", help=_sentence(TFLITE_RUNTIME_HELP))
                ],
                None,
            ),
            ("threads", Annotated[Optional[int], typer.Option("--threads", help=_sentence(THREADS_HELP))], None),
        ]

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def with_options(**given: Any) -> Any:
            fields = {name: given.pop(name) for name, _, _ in declared}
            given["options"] = RunOptions(**{k: v.value if isinstance(v, Enum) else v for k, v in fields.items()})
            return command(**given)

        hints = get_type_hints(command, include_extras=True)  # the annotations are strings (__future__)
        params = []
        for param in inspect.signature(command).parameters.values():
            if param.name != "options":
                params.append(param.replace(annotation=hints[param.name]))
                continue
            for name, annotation, default in declared:
                params.append(inspect.Parameter(name, param.KEYWORD_ONLY, default=default, annotation=annotation))
        with_options.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # what typer reads
        return with_options

    return decorate


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
        None,
        "--calib",
        help="Calibration data: mnist, cifar10, images:DIR (class folders, or labels.csv of filename,class_index "
        "beside the images) or npy:FILE.npy.",
    ),
    calib_samples: int = typer.Option(200, "--calib-samples", min=1, help="Calibration samples (seeded choice)."),
    seed: int = typer.Option(0, "--seed", help="Seed for choosing calibration samples."),
    preprocess: PreprocessPreset = typer.Option(
        PreprocessPreset.unit,
        "--preprocess",
        help="Pixels → model input as in training: unit (/255), raw (0-255), symmetric ([-1,1]), caffe.",
    ),
    data_dir: DataDir = None,
    allow_cpu_ops: AllowCpuOps = 0,
    as_json: AsJson = False,
) -> None:
    """Convert a Keras, SavedModel or ONNX model to TFLite; for the Edge TPU, verify full int8 and pre-flight it."""
    from .convert import convert_model

    # Unwinds like Ctrl-C: the converter process is killed, its temp folder removed; exit 143.
    signal.signal(signal.SIGTERM, raise_terminated)

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
    show_convert(report, as_json)


data_app = typer.Typer(no_args_is_help=True, help="Datasets: the checksummed registry, what is found, download.")
app.add_typer(data_app, name="data")


@data_app.command("list")
@handles_errors
def data_list_command(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List the registry's datasets and what is found (each found file is checksum-verified)."""
    from .data import list_data

    emit(list_data(data_dir), as_json, render_data_list)


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
    as_json: AsJson = False,
) -> None:
    """Download a registry dataset; every file is checksum-verified before it is (atomically) written."""
    from .data import fetch_dataset

    emit(fetch_dataset(name, dest, base_url=base_url), as_json, render_download)


# --- inspect (issue: inspect) ---------------------------------------------------------------


@app.command("inspect")
@handles_errors
def inspect_command(
    model: Path = typer.Argument(..., help="A .tflite model, uncompiled or compiled (*_edgetpu.tflite)."),
    as_json: AsJson = False,
    multiple_subgraphs: MultipleSubgraphs = False,
) -> None:
    """Read a model without TensorFlow: Edge TPU pre-flight per op, or where a compiled model runs."""
    from .runtime.preflight import inspect_file

    show_inspect(inspect_file(str(model), multiple_subgraphs=multiple_subgraphs), as_json)


# --- compile (issue: compile) ---------------------------------------------------------------


@app.command("compile")
@handles_errors
def compile_command(
    models: Optional[List[Path]] = typer.Argument(
        None, help="Uncompiled int8 .tflite model(s); several are co-compiled to share the parameter cache."
    ),
    out_dir: Optional[Path] = typer.Option(None, "-o", "--out-dir", help="Where compiled models, logs, report go."),
    compiler: Compiler = None,
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
    multiple_subgraphs: MultipleSubgraphs = False,
    allow_cpu_ops: AllowCpuOps = 0,
    from_log: Optional[Path] = typer.Option(
        None,
        "--from-log",
        help="Judge saved compiler output (console text or .log) instead of compiling; "
        "with MODEL, also compare it with MODEL's pre-flight.",
    ),
    as_json: AsJson = False,
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
        show_compile(report, as_json)
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
        with err.status(Text("compiling %s with edgetpu_compiler (timeout %d s)" % (names, timeout))):
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
            show_compile(exc.report, as_json)
        raise
    show_compile(report, as_json)


# --- bench / eval / doctor (issue: runner) --------------------------------------------------


def _check_choice(value: Optional[str], choices: tuple, param: str) -> None:
    if value is not None and value not in choices:
        raise typer.BadParameter("%r is not one of: %s" % (value, ", ".join(choices)), param_hint=param)


@app.command("bench")
@handles_errors
@takes_run_options(runs=DEFAULT_RUNS)
def bench_command(
    model: Path = typer.Argument(..., help="A .tflite model: uncompiled, or compiled (*_edgetpu.tflite)."),
    *,
    options: RunOptions,
    preprocess: Preprocess = None,
    image: Optional[Path] = typer.Option(None, "--image", help="Time this image (resized) instead of random pixels."),
    as_json: AsJson = False,
) -> None:
    """Latency: first inference, then invoke-only and end-to-end min/mean/std/p50/p90/p99/max in ms."""
    from .host_runner import bench_model

    show_bench(bench_model(model, options, preset=preprocess, image=image), as_json)


@app.command("eval")
@handles_errors
@takes_run_options()
def eval_command(
    model: Path = typer.Argument(..., help="A .tflite classifier: uncompiled, or compiled (*_edgetpu.tflite)."),
    dataset: str = typer.Option(..., "--dataset", help="mnist, cifar10, images:DIR or npy:FILE (with --labels)."),
    limit: Limit = None,
    data_dir: DataDir = None,
    split: str = typer.Option("test", "--split", help="test, train or all."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Integer labels (.npy) for an npy: dataset."),
    *,
    options: RunOptions,
    preprocess: Preprocess = None,
    label_offset: Optional[int] = typer.Option(
        None, "--label-offset", min=0, help="Outputs before class 0 (default: 1 if the model has one extra output)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="CPU batch size, when the model can be resized."),
    offline: bool = typer.Option(
        False, "--offline", help="Never download the official MNIST files (or EDGEPIPE_OFFLINE=1)."
    ),
    as_json: AsJson = False,
) -> None:
    """Accuracy: top-1, top-5, per-class accuracy and (up to 100 classes) the confusion matrix."""
    from contextlib import nullcontext

    from rich.progress import Progress

    from .host_runner import eval_model

    _check_choice(split, ("test", "train", "all"), "--split")
    if dataset == "mnist":  # as the suite does: fetched into the cache (verified) when not found
        from .data.official import official_mnist

        data_dir = official_mnist(data_dir, offline=offline, say=lambda text: note("note", text)).data_dir or data_dir
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
    show_eval(report, as_json)


@app.command("doctor")
@handles_errors
def doctor_command(
    as_json: AsJson = False,
    check_tensorflow: bool = typer.Option(False, "--check-tensorflow", help="Also import TensorFlow (slow)."),
    compiler: Compiler = None,
    cpu_only: bool = typer.Option(
        False,
        "--cpu-only",
        help="A machine without an Edge TPU: exit 0 unless models cannot run on the CPU (Edge TPU errors still shown).",
    ),
) -> None:
    """Check Python, TFLite runtimes, libedgetpu, Edge TPUs, udev/plugdev and the compiler; say how to fix.

    Exit 21 when an error is reported or no Edge TPU is ready, 20 when no TFLite runtime works, else 0,
    so a CI step fails on a runner that lost its accelerator; the report (--json too) is printed first.
    """
    from .host_runner import host_doctor
    from .runtime.doctor import exit_code

    report = host_doctor(include_tensorflow=check_tensorflow, compiler=compiler)
    emit(report, as_json, render_doctor)
    code = exit_code(report, cpu_only)
    if code:
        why = "no TFLite runtime can run models" if code == 20 else "the Edge TPU is not ready (--cpu-only: ignore it)"
        note("exit %d" % code, why, style="red")
        raise typer.Exit(code)


# --- suite (issue: runner) ------------------------------------------------------------------


_SUITE_BACKEND_HELP = "backend for compiled variants (float and int8 ones run on the CPU): " + BACKEND_HELP


@suite_app.command("mnist")
@handles_errors
@takes_run_options(runs=200, every=False, backend_help=_SUITE_BACKEND_HELP)
def suite_mnist_command(
    out_dir: Path = typer.Option(Path("runs/mnist"), "--out", help="Folder for models and results.json."),
    data_dir: DataDir = None,
    epochs: int = typer.Option(5, "--epochs", min=1, help="Training epochs."),
    seed: int = typer.Option(0, "--seed", help="Seed for training, calibration and splits."),
    *,
    options: RunOptions,
    compiler: Compiler = None,
    limit: Limit = None,
    offline: bool = typer.Option(
        False,
        "--offline",
        help="Never download the official MNIST files into the download cache (or EDGEPIPE_OFFLINE=1); "
        "without them, the embedded 5k sample.",
    ),
    as_json: AsJson = False,
) -> None:
    """The seed notebook end to end: train, convert float + Edge TPU int8, compile, evaluate, bench."""
    from .suites.common import stdout_to_stderr
    from .suites.mnist import run_mnist_suite

    with stdout_to_stderr():
        report = run_mnist_suite(
            out_dir, data_dir=data_dir, epochs=epochs, seed=seed, options=options, compiler=compiler, limit=limit,
            download=not offline, say=lambda text: note("note", text),
        )  # fmt: skip
    show_suite(report, as_json)
    _exit_on_failures(report)


@suite_app.command("resnet")
@handles_errors
@takes_run_options(runs=50, warmup=5, every=False, backend_help=_SUITE_BACKEND_HELP)
def suite_resnet_command(
    out_dir: Path = typer.Option(Path("runs/resnet"), "--out", help="Folder for models and results.json."),
    models: List[str] = typer.Option(["resnet8", "resnet50"], "--model", help="resnet8 and/or resnet50 (repeat)."),
    data_dir: DataDir = None,
    resnet8: Optional[Path] = typer.Option(None, "--resnet8", help="MLPerf Tiny pretrainedResnet.h5."),
    weights: Optional[str] = typer.Option(
        None,
        "--weights",
        help="ResNet-50 weights: a file, imagenet (downloaded by Keras if not cached) or random (latency only). "
        "Default: Keras's cached ImageNet weights if present, else ResNet-50 is skipped (nothing is downloaded).",
    ),
    images: Optional[Path] = typer.Option(
        None, "--images", help="ImageNet-style folder for ResNet-50 (class folders, or labels.csv beside the images)."
    ),
    *,
    options: RunOptions,
    limit: Limit = None,
    calib_samples: int = typer.Option(
        200, "--calib-samples", min=1, help="Calibration images (ResNet-8: taken from CIFAR-10, not evaluated)."
    ),
    compiler: Compiler = None,
    as_json: AsJson = False,
) -> None:
    """ResNet-8 (MLPerf Tiny, CIFAR-10) and ResNet-50 (ImageNet-style folder): float vs int8 vs Edge TPU."""
    from .suites.common import stdout_to_stderr
    from .suites.resnet import run_resnet_suite

    with stdout_to_stderr():  # Keras prints "Downloading data from …" on stdout
        report = run_resnet_suite(
            out_dir, models=models, data_dir=data_dir, resnet8=resnet8, weights=weights, images=images,
            options=options, limit=limit, calib_samples=calib_samples, compiler=compiler,
        )  # fmt: skip
    show_suite(report, as_json)
    _exit_on_failures(report)


def _exit_on_failures(report: Any) -> None:
    """A suite whose variant failed has written the others' results; it still exits with that failure's code."""
    if report.failures:
        first = report.failures[0]
        err.print(Text("error: %s (the other results are in %s)" % (first["error"], report.report_path)))
        raise typer.Exit(first["exit_code"])


# --- deploy (issue: deploy) -----------------------------------------------------------------


@app.command("deploy")
@handles_errors
@takes_run_options(runs=DEFAULT_RUNS, every=False)
def deploy_command(
    models: List[Path] = typer.Argument(..., help="One or more .tflite models (a compiled one brings its twin)."),
    to: str = typer.Option(..., "--to", help="ssh://user@host[:port], local:DIR or labgrid://PLACE."),
    identity: Optional[Path] = typer.Option(None, "--identity", help="SSH private key (ssh -i)."),
    python: Optional[str] = typer.Option(None, "--python", help="Python on the target (default: python3 over ssh)."),
    remote_dir: Optional[str] = typer.Option(None, "--remote-dir", help="Parent folder there (default: /tmp)."),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts", help="SSH known_hosts file to use."),
    *,
    options: RunOptions,
    eval_spec: Optional[str] = typer.Option(None, "--eval", help="Also evaluate: mnist, cifar10 or images:DIR."),
    limit: Limit = None,
    data_dir: DataDir = None,
    keep: bool = typer.Option(False, "--keep", help="Leave the bundle on the target."),
    out_dir: Path = typer.Option(Path("runs/deploy"), "--out", help="Folder for results.json."),
    as_json: AsJson = False,
) -> None:
    """Put models on a device, run the device-side runner there (bench, eval), bring the results back."""
    from .deploy import deploy, parse_target

    target = parse_target(to, python=python, identity=identity, remote_dir=remote_dir, known_hosts=known_hosts)
    with target:  # a labgrid place is held for the run and released after, whatever happens
        # Progress and notes hold target names and a remote host's words: printed literally (markup=False).
        report = deploy(
            models, target, options, eval_spec=eval_spec, limit=limit, data_dir=data_dir, keep=keep, out_dir=out_dir,
            progress=lambda message: err.print(message, style="dim", markup=False),
        )  # fmt: skip
    show_deploy(report, as_json)
    report.raise_for_failures()  # a model crashed the runtime there: exit 23, after the others' results


# --- fleet (issue: fleet) -------------------------------------------------------------------

fleet_app = typer.Typer(no_args_is_help=True, help="Field validation of deployed boards (an inventory file).")
app.add_typer(fleet_app, name="fleet")


@fleet_app.command("validate")
@handles_errors
def fleet_validate_command(
    inventory: Path = typer.Argument(..., help="Inventory JSON: boards, models, expect (edgepipe/fleet/__init__.py)."),
    baseline: Baseline = None,
    out_dir: Path = typer.Option(Path("runs/fleet"), "--out", help="Folder for fleet_report.json and boards/."),
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Boards validated at once (default: min(4, boards))."),
    resume: bool = typer.Option(False, "--resume", help="Skip boards already judged in --out (pass or fail)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Validate shard K of N only (K/N; by board name)."),
    as_json: AsJson = False,
) -> None:
    """Deploy to every board, judge each against the expectations; exit 0 all pass, 1 any not, 2 bad inventory."""
    from .fleet import progress_for, validate_fleet

    signal.signal(signal.SIGTERM, raise_terminated)  # unwinds like Ctrl-C (the runner stops every board's worker)
    report = validate_fleet(inventory, baseline=baseline, out_dir=out_dir, progress=progress_for(err), jobs=jobs,
                            resume=resume, shard=shard)  # fmt: skip
    show_fleet(report, as_json)
    raise typer.Exit(report.exit_code)


@fleet_app.command("merge")
@handles_errors
def fleet_merge_command(
    reports: List[Path] = typer.Argument(..., help="The fleet_report.json of every --shard K/N run."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Folder for the merged fleet_report.json."),
    baseline: Baseline = None,
    as_json: AsJson = False,
) -> None:
    """Join shard reports into one fleet report, judged once against the baseline; exit 0 all pass, 1 any not."""
    from .fleet import merge_reports

    report = merge_reports(reports, out_dir, baseline=baseline)
    show_fleet(report, as_json)
    raise typer.Exit(report.exit_code)


# --- report (issue 12: a page people can look at) ------------------------------------------------


@app.command("report")
@handles_errors
def report_command(
    report: Path = typer.Argument(..., help="fleet_report.json, a suite's results.json, or bench/eval/deploy JSON."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="The HTML file (default: REPORT as .html)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """One self-contained HTML page from a result: tables and charts, no network needed to open it."""
    from .report import print_summary, write_html_report

    emit(write_html_report(report, output), as_json, lambda written: print_summary(written, out))


def main() -> None:
    app()


if __name__ == "__main__":
    main()


__all__ = ["app", "emit", "err", "handles_errors", "main", "out", "Path"]
