"""`compile_models`: check the inputs, run the compiler into a staging folder, judge, publish, report."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InputNotFoundError, ModelFormatError, OutputWriteError
from ..runtime.report import sha256_file, write_json_atomic
from ..runtime.tflite_reader import read_model
from .command import build_command, expected_outputs, resolve_min_runtime
from .find import find_compiler, major_version
from .parse import CompilerOutput, attach_log, find_block, parse_compiler_output
from .preflight_compare import run_preflight
from .process import run_compiler, watchdog_s
from .readback import check_written_models
from .verdict import REPORT_NAME, CompileReport, ModelResult, build_report, decide, verdict_error


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
    parsed = [read_uncompiled(m) for m in models]
    stems: Dict[str, Path] = {}
    for m in models:
        if m.stem in stems:
            raise OutputWriteError(
                "%s and %s would both compile to %s_edgetpu.tflite" % (stems[m.stem], m, m.stem),
                hint="Rename one of them",
            )
        stems[m.stem] = m

    info = find_compiler(compiler)
    runtime, runtime_source, pass_m = resolve_min_runtime(min_runtime, info.version)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".compile-", dir=str(out_dir)))
    except OSError as exc:
        raise OutputWriteError("cannot create %s: %s" % (out_dir, exc.strerror or exc)) from None
    # The compiler's own watchdog (and so, we assume, `-t`) arrived in v16: it is the first to print its timer
    # line, and real v14/v15 outputs have none.
    has_timer = major_version(info.version) >= 16
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
        run = run_compiler(argv, watchdog_s(timeout_s, segments, search_delegate, search_step, ops))
        exit_code, text, killed_after, duration = run.exit_code, run.text, run.killed_after, run.duration_s
        out = parse_compiler_output(text)
        results, missing, log_warnings = _read_staged(out, staging, models, parsed, segments, killed_after is None)
        trusted = out.failure is None and killed_after is None and exit_code == 0
        decision = decide(
            out,
            exit_code=exit_code,
            killed_after=killed_after,
            duration_s=duration,
            timeout_s=timeout_s,
            allow_cpu_ops=allow_cpu_ops,
            missing_outputs=missing if out.failure is None else [],
            min_runtime_source=runtime_source,
            invalid_outputs=check_written_models(out, staging, results) if trusted else [],
        )
        warnings = decision.warnings  # the report's list: what follows is added to it
        warnings += log_warnings
        if run.dropped_bytes:
            warnings.append(
                "the compiler printed %d bytes: %d in the middle were dropped, its first and last lines kept"
                % (run.output_bytes, run.dropped_bytes)
            )
        if not has_timer:
            warnings.append("compiler %s predates -t (v16): only edgepipe's own timeout applied" % info.version)
        failed = decision.verdict == "failed"
        kept = _publish(staging, out_dir, keep_models=not failed)
        if failed and kept["discarded"]:
            warnings.append("partial or untrusted outputs discarded: %s" % ", ".join(kept["discarded"]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    _fill_results(results, out, out_dir, kept["kept"])
    preflight, disagreements = ("skipped: compile failed", [])
    if not failed:
        preflight, disagreements = run_preflight(models, results, multiple_subgraphs)
    report = build_report(
        out,
        decision,
        compiler_output=text,
        results=results,
        compiler_path=info.path,
        compiler_version=info.version,
        command=argv,
        exit_code=exit_code,
        duration_s=round(duration, 3),
        timeout_s=timeout_s,
        min_runtime=runtime,
        min_runtime_source=runtime_source,
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
        block = find_block(out.blocks, output=r.output, log_name=r.log)
        output = r.output
        r.output = str(out_dir / output) if output in kept else None
        r.log = str(out_dir / r.log) if r.log in kept else None
        if r.input and os.path.exists(r.input):
            r.input_bytes = os.path.getsize(r.input)
        if r.output:
            r.output_bytes = os.path.getsize(r.output)
            r.sha256 = sha256_file(r.output)
        if block is not None:
            r.take_summary(block)
            if r.output_bytes is None:
                r.output_bytes = block.output_bytes


def read_uncompiled(model: Path) -> Any:
    """The parsed input model; a missing, malformed or already compiled file raises."""
    parsed = read_model(str(model))  # InputNotFoundError / ModelFormatError for a bad file
    if parsed.compiled_for_edgetpu:
        raise ModelFormatError(
            "%s is already compiled for the Edge TPU (it contains edgetpu-custom-op)" % model,
            hint="Pass the uncompiled int8 .tflite instead",
        )
    return parsed
