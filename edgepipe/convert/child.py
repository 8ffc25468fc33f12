"""The converter's child process, seen from the parent: start it, answer its probe with the
calibration samples, show its progress, and turn its failure (or crash) into a typed error.

The TensorFlow converter (and, for ONNX models, onnx2tf) runs in `edgepipe.convert.worker`, so that a
crash in the calibrator becomes a reported error and TensorFlow's log noise stays in a log. This
module never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ..errors import ConversionError, ModelFormatError, TensorFlowMissingError
from .inputs import ONNX_INSTALL_HINT, TF_INSTALL_HINT

_NO_KERNEL = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_FUSED_LOC = re.compile(r'fused\["(\w+):", "([^"@]+)@')


def summarize_converter_error(text: str) -> str:
    """The one sentence of a TensorFlow converter error that says what is wrong."""
    ops = sorted(set(_NO_KERNEL.findall(text)))
    if ops:
        where: Dict[str, str] = {}
        for op, loc in _FUSED_LOC.findall(text):
            where.setdefault(op, loc)
        named = ["%s (at '%s')" % (op, where[op]) if op in where else op for op in ops]
        return "the model uses TensorFlow op(s) with no TFLite builtin kernel: %s" % ", ".join(named)
    for line in text.splitlines():
        if "error:" in line:
            return _clip(line.split("error:", 1)[1].strip())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return _clip(lines[0] if lines else "unknown error")


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _ChildView:
    """Shows the worker's phases and the calibration progress on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.progress = None
        self.task = None
        self.phase = "starting"
        if not quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting TensorFlow", total=None)

    def event(self, ev: Dict[str, Any]) -> None:
        if ev.get("event") == "phase":
            self.phase = ev.get("phase", self.phase)
        if self.progress is None:
            return
        if ev.get("event") == "phase":
            self.progress.update(self.task, description=self.phase, total=ev.get("total"), completed=0)
        elif ev.get("event") == "progress":
            self.progress.update(self.task, completed=ev.get("done", 0))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return "signal %d" % -returncode


def _keep_log(log_path: Optional[Path], model: Path) -> str:
    """Copy the worker's log out of the temporary directory (into <cache>/logs, else the temp dir)."""
    from ..data import cache_dir

    if log_path is None or not log_path.is_file():
        return ""
    for folder in (cache_dir() / "logs", None):
        try:
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
            fd, kept = tempfile.mkstemp(
                prefix="convert-%s-" % model.name, suffix=".log", dir=None if folder is None else str(folder)
            )
            os.close(fd)
            shutil.copyfile(log_path, kept)
            return kept
        except OSError:
            continue
    return ""


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def run_worker(
    model: Path,
    fmt: str,
    target: str,
    workdir: Path,
    seed: int,
    debug: bool,
    quiet: bool,
    prepare: Any,
) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """Run the worker; `prepare(probe)` returns the calibration samples (or None) once the input is known.

    Returns (worker result, calibration info)."""
    cmd = [
        sys.executable, "-m", "edgepipe.convert",
        "--model", str(model), "--format", fmt, "--target", target, "--workdir", str(workdir), "--seed", str(seed),
    ]  # fmt: skip
    log_path = None if debug else workdir / "worker.log"
    log = None if log_path is None else log_path.open("wb")
    view = _ChildView(quiet or debug)
    calibration = None
    probe = None
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=_child_env(), text=True
        )
        try:
            for line in proc.stdout:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue  # not ours: stray output that escaped the redirect
                view.event(ev)
                if ev.get("event") == "probe":
                    probe = ev["input"]
                    try:
                        samples, calibration = prepare(probe)
                    except BaseException:
                        proc.stdin.write("abort\n")
                        proc.stdin.close()
                        raise
                    if samples is not None:
                        np.save(workdir / "calib.npy", samples)
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    finally:
        view.close()
        if log is not None:
            log.close()

    result_path = workdir / "result.json"
    if returncode < 0 or not result_path.is_file():
        kept = _keep_log(log_path, model)
        if returncode < 0:
            message = "the TensorFlow converter crashed (%s) while %s" % (_signal_name(returncode), view.phase)
            hint = (
                "A known cause: Keras 3 LSTM/GRU layers crash the TFLite calibrator; try the model without them "
                "or another TensorFlow version"
            )
        else:
            message = "the converter process exited with code %d while %s, without a result" % (returncode, view.phase)
            hint = "Rerun with --debug to see its output"
        if kept:
            hint += ". Converter log: %s" % kept
        raise ConversionError(message, hint=hint)
    result = json.loads(result_path.read_text(encoding="utf-8"))
    if not result.get("ok"):
        if debug and result.get("traceback"):
            sys.stderr.write(result["traceback"])
        raise worker_failure(result, model, lambda: _keep_log(log_path, model))
    result["probe"] = probe
    return result, calibration


def worker_failure(result: Dict[str, Any], model: Path, keep_log: Callable[[], str]) -> Exception:
    """The typed error for a worker's failure result. The worker's log is kept (copied out of the
    temporary directory) only for the kinds whose message points at it."""
    kind, text = result.get("kind", "internal"), result.get("message", "")

    def log_hint() -> str:
        kept = keep_log()
        return (". Converter log: %s" % kept) if kept else ""

    if kind == "tf_import":
        return TensorFlowMissingError("TensorFlow cannot be imported: %s" % _clip(text), hint=TF_INSTALL_HINT)
    if kind == "onnx_import":
        return TensorFlowMissingError("the onnx extra cannot be imported: %s" % _clip(text), hint=ONNX_INSTALL_HINT)
    if kind == "onnx2tf":
        return ConversionError(
            "onnx2tf could not convert %s to TensorFlow: %s" % (model, _clip(text)),
            hint="Rerun with --debug for onnx2tf's output" + log_hint(),
        )
    if kind == "load":
        first_line = _clip(text.splitlines()[0] if text else "", 200)
        if "lambda" in text.lower() or "safe_mode" in text or "Could not locate function" in text:
            # Keras refuses to rebuild Lambda layers (their code is stored as Python bytecode) unless
            # safe_mode is off; edgepipe does not turn it off for a file it was handed.
            return ModelFormatError(
                "cannot load model %s: it holds a Lambda layer (or an unregistered custom function), which "
                "Keras does not deserialize in safe mode (%s)" % (model, _clip(first_line, 120)),
                hint="Export a SavedModel instead (model.export(DIR)) and convert that directory",
            )
        return ModelFormatError(
            "cannot load model %s: %s" % (model, first_line),
            hint="Check that the file is a whole, readable %s model"
            % ("ONNX" if model.suffix.lower() == ".onnx" else "Keras"),
        )
    if kind == "input":
        return ConversionError("%s: %s" % (model, text), hint="")
    if kind == "convert":
        return ConversionError(
            "TensorFlow could not convert %s: %s" % (model, summarize_converter_error(text)),
            hint="Rerun with --debug for the full converter output" + log_hint(),
        )
    if kind == "float_check":
        return ConversionError(text, hint="This model does not survive fixing its batch to 1" + log_hint())
    if kind == "trace":
        return ConversionError(
            "cannot trace %s at a static batch-1 shape: %s" % (model, _clip(text)),
            hint="Does the model hard-code its batch size? Rerun with --debug" + log_hint(),
        )
    if kind == "aborted":
        return ConversionError("the conversion was stopped")
    return ConversionError("internal error in the converter worker: %s" % _clip(text), hint=log_hint().lstrip(". "))
