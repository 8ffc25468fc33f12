"""What every suite does with a model variant: load it on a backend, measure accuracy, measure latency.

Suites compose the stages (convert, compile, runner); they do no transport and no printing beyond
progress on stderr. A suite's report is JSON first: `{"suite": ..., "results": [VariantResult, ...]}`.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import CompileError, CompileRejected, CompilerNotFound, EdgepipeError
from ..runtime.accuracy import evaluate
from ..runtime.options import RunOptions
from ..runtime.report import ResultHeader, header
from ..runtime.runner import benchmark, environment
from ..runtime.session import open_session

Progress = Callable[[int, int], None]


@dataclass
class VariantResult:
    """One model variant measured on one backend: the row of a suite's table."""

    variant: str  # "float", "edgetpu-int8", "edgetpu-compiled", "mlperf-int8", ...
    model: str
    size_bytes: int
    requested_backend: str
    backend: str  # where it really ran: "cpu" or "edgetpu"
    top1: Optional[float]  # None: not measured (e.g. random weights), see notes
    top5: Optional[float]
    n: int  # images evaluated
    latency_ms: Optional[Dict[str, Any]]  # invoke-only: first, min, mean, std, p50, p90, p99, max
    end_to_end_ms: Optional[Dict[str, Any]]
    run_model: Optional[str] = None  # the file loaded (a compiled model's CPU twin when it fell back)
    backend_reason: Optional[str] = None  # why it ran where it ran, in words
    fallback_reason: Optional[str] = None  # set when auto wanted the Edge TPU and fell back to the CPU
    batch_note: Optional[str] = None
    per_class: Optional[List[Dict[str, Any]]] = None
    confusion_matrix: Optional[List[List[int]]] = None
    notes: List[str] = field(default_factory=list)


@dataclass
class SuiteReport(ResultHeader):
    suite: str
    out_dir: str
    results: List[VariantResult]
    data: Dict[str, Any]
    steps: Dict[str, Any]  # what each stage reported (training, conversions, compile)
    comparisons: Dict[str, Any]
    environment: Dict[str, Any]
    duration_s: float
    warnings: List[str] = field(default_factory=list)
    report_path: Optional[str] = None
    # Published figures beside the measured ones, one block per model (see `reference_block`).
    references: List[Dict[str, Any]] = field(default_factory=list)
    # Variants (models) that failed: {"model", "error", "exit_code"}; the others' results are kept.
    failures: List[Dict[str, Any]] = field(default_factory=list)


# (variant name, model file, whether it always runs on the CPU): float and uncompiled int8 variants do
# (a float model never runs on the Edge TPU, and the delegate would take none of an uncompiled model's
# ops); a compiled variant runs where the suite's RunOptions say.
Variant = Tuple[str, Path, bool]


def measure_variants(
    variants: List[Variant],
    options: RunOptions,
    progress: Any,
    *,
    test: Any,
    preset: str,
    dataset: Optional[Dict[str, Any]],
    keep_confusion: bool = False,
) -> List[VariantResult]:
    """Evaluate (on `test`, a Dataset, when given) and benchmark each variant, in order."""
    rows = []
    for name, path, on_cpu in variants:
        run = replace(options, backend="cpu", device=None) if on_cpu else options
        rows.append(
            measure_variant(
                name,
                path,
                run,
                images=None if test is None else test.images,
                labels=None if test is None else test.labels,
                preset=preset,
                class_names=None if test is None else list(test.class_names),
                dataset=dataset,
                progress=step_callback(progress, "evaluating %s (%s)" % (name, run.backend)),
                keep_confusion=keep_confusion,
            )
        )
    return rows


def measure_variant(
    variant: str,
    model_path: Path,
    options: RunOptions,
    *,
    images: Optional[np.ndarray],
    labels: Optional[np.ndarray],
    preset: Optional[str],
    class_names: Optional[List[str]] = None,
    dataset: Optional[Dict[str, Any]] = None,
    label_offset: int = 0,
    progress: Optional[Progress] = None,
    keep_confusion: bool = False,
) -> VariantResult:
    """Evaluate (when images are given) and benchmark one model as `options` say."""
    session = open_session(str(model_path), options)
    result = VariantResult(
        variant=variant,
        model=str(model_path),
        size_bytes=os.path.getsize(model_path),
        requested_backend=options.backend,
        backend=session.backend,
        top1=None,
        top5=None,
        n=0,
        latency_ms=None,
        end_to_end_ms=None,
        run_model=session.run_model_path,
        backend_reason=session.backend_reason,
        fallback_reason=session.fallback_reason,
        notes=list(session.notes),
    )
    if images is not None and labels is not None:
        ev = evaluate(
            session,
            images,
            labels,
            preset=preset,
            label_offset=label_offset,
            class_names=class_names,
            dataset=dataset,
            progress=progress,
        )
        result.top1, result.top5, result.n = ev.top1, ev.top5, ev.n
        result.batch_note = ev.batch_note
        result.per_class = ev.per_class
        if keep_confusion:
            result.confusion_matrix = ev.confusion_matrix
    pixels = images[0] if images is not None and len(images) else None
    bench = benchmark(session, runs=options.runs, warmup=options.warmup, preset=preset, pixels=pixels)
    result.latency_ms = _stats(bench.latency_ms)
    result.end_to_end_ms = _stats(bench.end_to_end_ms)
    return result


def finish_report(
    suite: str,
    out_dir: Path,
    started: float,
    results: List[VariantResult],
    data: Dict[str, Any],
    steps: Dict[str, Any],
    comparisons: Dict[str, Any],
    warnings: List[str],
    references: Optional[List[Dict[str, Any]]] = None,
    failures: Optional[List[Dict[str, Any]]] = None,
) -> SuiteReport:
    """Assemble the suite's report and write it as `out_dir/results.json` (atomically)."""
    from ..runtime.report import write_json_atomic

    report = SuiteReport(
        **header("suite"),
        suite=suite,
        out_dir=str(out_dir),
        results=results,
        data=data,
        steps=steps,
        comparisons=comparisons,
        environment=environment_without_session(),
        duration_s=round(time.monotonic() - started, 1),
        warnings=warnings,
        report_path=str(out_dir / "results.json"),
        references=references or [],
        failures=failures or [],
    )
    write_json_atomic(report.report_path, report)
    return report


def int8_figures(float_row: VariantResult, int8_row: VariantResult) -> Dict[str, Optional[float]]:
    """The measured figures a reference is compared on: top-1 of each, the gap, size ratio, speed-up."""
    float_p50 = (float_row.latency_ms or {}).get("p50")
    int8_p50 = (int8_row.latency_ms or {}).get("p50")
    gap = None
    if float_row.top1 is not None and int8_row.top1 is not None:
        gap = round((int8_row.top1 - float_row.top1) * 100, 3)
    return {
        "float_top1": float_row.top1,
        "int8_top1": int8_row.top1,
        "int8_minus_float_top1_pp": gap,
        "int8_size_ratio": round(int8_row.size_bytes / float_row.size_bytes, 4) if float_row.size_bytes else None,
        "int8_speedup": round(float_p50 / int8_p50, 3) if float_p50 and int8_p50 else None,
    }


# (key, figure in words, unit): the rows of every reference block, in this order.
REFERENCE_FIGURES = (
    ("float_top1", "float top-1", "%"),
    ("int8_top1", "int8 top-1", "%"),
    ("int8_minus_float_top1_pp", "int8 − float top-1", "pp"),
    ("int8_size_ratio", "int8 size ÷ float size", "x"),
    ("int8_speedup", "int8 speed-up over float (p50)", "x"),
)


def reference_block(
    model: str, reference: str, measured: Dict[str, Optional[float]], published: Dict[str, Any], notes: List[str]
) -> Dict[str, Any]:
    """One model's measured figures beside a published reference. `published` maps a figure's key to
    its value, or to a string when the reference gives it only in words; a missing key is "not published"."""
    rows = []
    for key, figure, unit in REFERENCE_FIGURES:
        rows.append(
            {"key": key, "figure": figure, "unit": unit, "measured": measured.get(key), "reference": published.get(key)}
        )
    return {"model": model, "reference": reference, "rows": rows, "notes": notes}


def failure_entry(model: str, exc: EdgepipeError) -> Dict[str, Any]:
    return {"model": model, "error": exc.one_line(), "exit_code": exc.exit_code}


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to file descriptor 1 (Python prints, C libraries, Keras's "Downloading
    data from …") to stderr while the suite works, so `--json` leaves only the report on stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 1)
        os.close(saved)


def _stats(stats: Any) -> Dict[str, Any]:
    from ..runtime.report import to_jsonable

    return to_jsonable(stats)


def compile_if_possible(model: Path, out_dir: Path, compiler: Optional[str]) -> Dict[str, Any]:
    """Compile for the Edge TPU when a compiler exists; a missing compiler is a note, not a failure."""
    from ..compile import compile_models
    from ..runtime.report import to_jsonable

    try:
        report = compile_models([model], out_dir, compiler=compiler)
    except CompilerNotFound as exc:
        return {"status": "skipped", "reason": exc.one_line()}
    except (CompileError, CompileRejected) as exc:
        return {"status": "failed", "reason": exc.one_line(), "report": to_jsonable(getattr(exc, "report", None))}
    compiled = [m.output for m in report.models if m.output]
    return {"status": "compiled", "model": compiled[0] if compiled else None, "report": to_jsonable(report)}


@contextmanager
def suite_progress(quiet: bool) -> Iterator[Any]:
    """A rich progress display on stderr (or a silent stand-in), with one task per step."""
    if quiet:
        yield _SilentProgress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        yield progress


class _SilentProgress:
    def add_task(self, description: str, total: Optional[float] = None, **_: Any) -> int:
        return 0

    def update(self, task: int, **_: Any) -> None:
        pass


def step_callback(progress: Any, description: str) -> Progress:
    task = progress.add_task(description, total=None)

    def report(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return report


def environment_without_session() -> Dict[str, Any]:
    try:
        return environment(None)
    except EdgepipeError:
        return {}


__all__ = [
    "REFERENCE_FIGURES",
    "SuiteReport",
    "Variant",
    "VariantResult",
    "compile_if_possible",
    "environment_without_session",
    "failure_entry",
    "finish_report",
    "int8_figures",
    "measure_variant",
    "measure_variants",
    "reference_block",
    "step_callback",
    "stdout_to_stderr",
    "suite_progress",
]
