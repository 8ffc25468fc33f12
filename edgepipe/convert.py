"""`edgepipe convert`: Keras / SavedModel → TFLite, and for the Edge TPU a verified full-int8 model.

The TensorFlow converter runs in a child process (`edgepipe._convert_worker`), so that a crash in the
calibrator becomes a reported error and TensorFlow's log noise stays in a log. This module never
imports TensorFlow.

Why verify: TensorFlow 2.21 under TFLITE_BUILTINS_INT8 no longer refuses ops it cannot quantize; it
keeps e.g. SIN, COS, CUMSUM or FLOOR in float32 between DEQUANTIZE/QUANTIZE and reports success. The
written flatbuffer is therefore read back with `edgepipe.runtime.tflite_reader` and checked against
the int8 rules below before anything appears at OUT.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from . import __version__
from .errors import (
    ConversionError,
    DatasetError,
    EdgeTpuIncompatibleError,
    InputNotFoundError,
    ModelFormatError,
    OutputWriteError,
    TensorFlowMissingError,
    UnquantizableOpsError,
)
from .runtime.preprocess import check_preset, to_float
from .runtime.report import make_dirs, write_bytes_atomic, write_json_atomic
from .runtime.tflite_reader import Model, Operator, Tensor, describe_tensor, read_model_bytes

TARGETS = ("edgetpu", "int8", "float16", "dynamic", "float")
CALIBRATED_TARGETS = ("edgetpu", "int8")
DEFAULT_CALIB_SAMPLES = 200
TF_INSTALL_HINT = "Install it with: pip install 'edgepipe[convert]'"

# Where the TFLite int8 quantization spec (tensorflow.org/lite/performance/quantization_spec and the
# op definitions in TFLite's schema) puts int32 in a fully-int8 model, by operator input index. Two
# kinds only, and both must be compile-time constants:
# - the bias of the matmul/convolution family: int32 with scale = input_scale * weight_scale and
#   zero point 0, because it is added to the int32 accumulator;
# - shape-like operands that are indices, never quantized values: a target shape, reduction axes,
#   paddings, a permutation, begin/end/strides, a resize size, block shape and crops, tile multiples,
#   split sizes, gather positions.
# An int32 anywhere else (an activation, an op output, or one of these operands computed at run time
# by SHAPE/PACK arithmetic) means integer or shape computation in the graph, which the Edge TPU does
# not run; so does any other dtype (float32, int16, int64, bool).
INT32_CONSTANT_INPUTS: Dict[str, Tuple[int, ...]] = {
    "CONV_2D": (2,),  # bias
    "DEPTHWISE_CONV_2D": (2,),  # bias
    "FULLY_CONNECTED": (2,),  # bias
    "TRANSPOSE_CONV": (0, 3),  # output_shape, bias
    "RESHAPE": (1,),  # new shape
    "MEAN": (1,),  # axes
    "SUM": (1,),
    "REDUCE_MAX": (1,),
    "REDUCE_MIN": (1,),
    "REDUCE_PROD": (1,),
    "PAD": (1,),  # paddings
    "PADV2": (1,),
    "MIRROR_PAD": (1,),
    "TRANSPOSE": (1,),  # perm
    "STRIDED_SLICE": (1, 2, 3),  # begin, end, strides
    "SLICE": (1, 2),  # begin, size
    "RESIZE_BILINEAR": (1,),  # size
    "RESIZE_NEAREST_NEIGHBOR": (1,),
    "SPACE_TO_BATCH_ND": (1, 2),  # block shape, paddings
    "BATCH_TO_SPACE_ND": (1, 2),  # block shape, crops
    "EXPAND_DIMS": (1,),  # axis
    "SPLIT": (0,),  # axis
    "SPLIT_V": (1, 2),  # size splits, axis
    "TILE": (1,),  # multiples
    "BROADCAST_TO": (1,),  # shape
    "GATHER": (1,),  # positions (constant only: data-dependent indexing is not an Edge TPU op)
}
INT8_TYPES = ("INT8", "UINT8")
DYNAMIC_SHAPE_OPS = ("SHAPE",)
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")
FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64")


# --- report ----------------------------------------------------------------------------------


@dataclass
class Offender:
    """One operator (or graph input/output) that breaks the Edge TPU int8 rules."""

    op: str  # builtin name, or "graph input" / "graph output"
    index: Optional[int]  # operator index in the main subgraph
    reasons: List[str]
    tensors: List[str]  # names that say where it came from (outputs first)
    boundary: bool = False  # a QUANTIZE/DEQUANTIZE that only bridges into or out of a float region

    def describe(self) -> str:
        where = ("op %d" % self.index) if self.index is not None else self.op
        label = self.op if self.index is not None else ""
        name = ", output '%s'" % self.tensors[0] if self.tensors and self.index is not None else ""
        if self.index is None and self.tensors:
            name = " '%s'" % self.tensors[0]
        return ("%s (%s%s: %s)" % (label, where, name, "; ".join(self.reasons))).strip()


@dataclass
class ConvertReport:
    target: str
    model: str
    model_format: str  # "keras", "h5" or "saved_model"
    out: str
    report_path: str
    size_bytes: int
    float_size_bytes: int
    size_ratio: float  # size_bytes / float_size_bytes (the float conversion at the same static shape)
    sha256: str
    inputs: List[Dict[str, Any]]
    outputs: List[Dict[str, Any]]
    model_input_shape: List[Optional[int]]  # as the source model declares it (None = unknown)
    static_shape: List[int]  # what was converted: batch fixed to 1
    op_histogram: Dict[str, int]
    float_ops: List[Dict[str, Any]]  # int8 target: operators left in float (CPU kernels)
    verification: Dict[str, Any]
    preflight: Optional[Dict[str, Any]]  # edgetpu target: the TF-free Edge TPU pre-flight (see preflight_summary)
    float_check: Dict[str, Any]  # float TFLite vs the source model at the static shape
    calibration: Optional[Dict[str, Any]]
    versions: Dict[str, str]
    duration_s: float
    warnings: List[str] = field(default_factory=list)


# --- verification (TF-free) ------------------------------------------------------------------


def _names(sg: Any, indices: List[int]) -> List[str]:
    return [sg.tensors[i].name for i in indices if i >= 0]


def verify_edgetpu(model: Model) -> List[Offender]:
    """Every rule an Edge TPU int8 model must meet; the list of what breaks them (empty = good)."""
    sg = model.main
    offenders: List[Offender] = []
    for t in model.input_tensors():
        if t.dtype != "UINT8":
            offenders.append(Offender("graph input", None, ["%s, expected uint8" % t.dtype.lower()], [t.name]))
    for t in model.output_tensors():
        if t.dtype != "UINT8":
            offenders.append(Offender("graph output", None, ["%s, expected uint8" % t.dtype.lower()], [t.name]))
    for op in sg.operators:
        reasons = _op_violations(op, sg.tensors)
        if reasons:
            offenders.append(
                Offender(
                    op.name, op.index, reasons, _names(sg, op.outputs) + _names(sg, op.inputs), op.name in BOUNDARY_OPS
                )
            )
    return offenders


def _op_violations(op: Operator, tensors: List[Tensor]) -> List[str]:
    reasons = []
    if op.name in DYNAMIC_SHAPE_OPS:
        reasons.append("computes a shape at run time")
    if op.is_custom:
        reasons.append("custom op %r" % op.custom_code)
    allowed_int32 = INT32_CONSTANT_INPUTS.get(op.name, ())
    for role, indices in (("input", op.inputs), ("output", op.outputs)):
        for pos, ti in enumerate(indices):
            if ti < 0:
                continue
            t = tensors[ti]
            if t.is_dynamic:
                reasons.append("%s '%s' has a dynamic shape %s" % (role, t.name, t.shape_signature))
            if t.dtype in INT8_TYPES:
                continue
            if t.dtype == "INT32" and role == "input" and pos in allowed_int32:
                if not t.is_constant:
                    reasons.append("int32 %s '%s' is computed at run time, not a constant" % (role, t.name))
                continue
            reasons.append("%s %s '%s'" % (t.dtype.lower(), role, t.name))
    return reasons


def float_ops(model: Model) -> List[Dict[str, Any]]:
    """Operators that compute in float (inputs or outputs float, constants aside), boundary ops excluded."""
    sg = model.main
    found = []
    for op in sg.operators:
        if op.name in BOUNDARY_OPS:
            continue
        tensors = [sg.tensors[i] for i in op.inputs + op.outputs if i >= 0]
        if any(t.dtype in FLOAT_TYPES and not t.is_constant for t in tensors):
            found.append({"op": op.name, "index": op.index, "outputs": _names(sg, op.outputs)})
    return found


def unquantizable_error(offenders: List[Offender], model_path: str) -> UnquantizableOpsError:
    main = [o for o in offenders if not o.boundary] or offenders
    shown = "; ".join(o.describe() for o in main[:6])
    if len(main) > 6:
        shown += "; and %d more" % (len(main) - 6)
    extra = len(offenders) - len(main)
    tail = " (plus %d QUANTIZE/DEQUANTIZE op(s) around them)" % extra if extra else ""
    dynamic = any("shape" in r for o in main for r in o.reasons)
    hint = (
        "Replace or remove these ops (the Edge TPU runs only int8 TFLite builtins), or convert with "
        "--target int8 to get a CPU model that keeps them in float"
    )
    if dynamic:
        hint = "Give the model a fully static input shape; " + hint[0].lower() + hint[1:]
    message = "%s is not a full-int8 Edge TPU model: %d op(s) break the int8 rules: %s%s; nothing was written" % (
        model_path,
        len(main),
        shown,
        tail,
    )
    return UnquantizableOpsError(message, [_offender_dict(o) for o in offenders], hint=hint)


def _offender_dict(o: Offender) -> Dict[str, Any]:
    return {"op": o.op, "index": o.index, "reasons": o.reasons, "tensors": o.tensors, "boundary": o.boundary}


# --- Edge TPU pre-flight gate (TF-free, edgepipe.runtime.preflight) ----------------------------


def preflight_summary(model: Model, allow_cpu_ops: int = 0) -> Dict[str, Any]:
    """What the pre-flight predicts edgetpu_compiler will do with `model`, for the ConvertReport.

    Passing int8 verification is not enough: an int8 op outside the Edge TPU op set (LEAKY_RELU, say),
    an op version newer than compiler 16 knows, or a tensor of rank > 3 leaves that op, and every op
    that depends on it, on the CPU.
    """
    from .runtime.preflight import MAPPED, inspect_model
    from .runtime.text import first_cpu_text

    report = inspect_model(model)
    cpu = [v for v in report.ops if getattr(v, "edgetpu", MAPPED) != MAPPED]
    first = dict(report.first_cpu_op, outputs=list(cpu[0].outputs), certain=cpu[0].certain) if cpu else None
    if not cpu:
        verdict = "fully mapped: all %d ops predicted on the Edge TPU" % report.ops_total
    else:
        verdict = "%d of %d ops predicted on the CPU (%s)" % (
            report.cpu_ops,
            report.ops_total,
            "allowed: --allow-cpu-ops %d" % allow_cpu_ops if report.cpu_ops <= allow_cpu_ops else "refused",
        )
    return {
        "checked_by": "edgepipe.runtime.preflight",
        "verdict": verdict,
        "fully_mapped": not cpu,
        "ops_total": report.ops_total,
        "tpu_ops": report.tpu_ops,
        "cpu_ops": report.cpu_ops,
        "allowed_cpu_ops": allow_cpu_ops,
        "subgraphs": report.subgraphs,
        "first_cpu_op": first,
        "first_cpu_op_text": first_cpu_text(report) if cpu else None,
        "cpu_op_list": [{"index": v.index, "op": v.name, "edgetpu": v.edgetpu, "certain": v.certain} for v in cpu],
        "uncertain_ops": report.uncertain_ops,
        "tpu_parameter_bytes": report.tpu_parameter_bytes,
        "off_chip_warning": report.off_chip_warning,
        "compile_blockers": list(report.compile_blockers),
        "warnings": list(report.warnings),
    }


def preflight_error(summary: Dict[str, Any], model_path: str) -> Optional[EdgeTpuIncompatibleError]:
    """The refusal when the pre-flight predicts more CPU ops than allowed, else None."""
    if summary["cpu_ops"] <= summary["allowed_cpu_ops"]:
        return None
    first = summary["first_cpu_op"]
    where = " (output '%s')" % first["outputs"][0] if first and first.get("outputs") else ""
    message = (
        "%s converts to a valid int8 model, but the Edge TPU pre-flight predicts %d of %d ops on the CPU "
        "(allowed: %d); first CPU op %s%s; nothing was written"
        % (
            model_path,
            summary["cpu_ops"],
            summary["ops_total"],
            summary["allowed_cpu_ops"],
            summary["first_cpu_op_text"],
            where,
        )
    )
    hint = (
        "Replace that op with one the Edge TPU runs, or accept the CPU ops with --allow-cpu-ops %d "
        "(then `edgepipe inspect OUT` shows every op's verdict)" % summary["cpu_ops"]
    )
    error = EdgeTpuIncompatibleError(message, hint=hint)
    error.preflight = summary  # type: ignore[attr-defined]  # for callers that want the whole prediction
    return error


# --- converter messages ----------------------------------------------------------------------

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


# --- inputs ----------------------------------------------------------------------------------


def detect_model_format(path: Path) -> str:
    """"keras", "h5" or "saved_model", from the path and the file's first bytes."""
    if not path.exists():
        raise InputNotFoundError("model not found: %s" % path, hint="Give a .keras, .h5 or SavedModel directory")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "saved_model"
        raise ModelFormatError(
            "%s is a directory but not a SavedModel (no saved_model.pb)" % path,
            hint="Give a .keras or .h5 file, or a directory written by model.export() / tf.saved_model.save()",
        )
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputNotFoundError("cannot read model %s: %s" % (path, exc.strerror or exc)) from None
    if suffix == ".keras":
        if head[:4] != b"PK\x03\x04":
            raise ModelFormatError(
                "%s is not a .keras file (not a zip archive)" % path, hint="Save it with model.save()"
            )
        return "keras"
    if suffix in (".h5", ".hdf5"):
        if head != b"\x89HDF\r\n\x1a\n":
            raise ModelFormatError("%s is not an HDF5 file" % path, hint="Save it with model.save('x.h5')")
        return "h5"
    raise ModelFormatError(
        "%s: unknown model format %r" % (path, suffix or "(no suffix)"),
        hint="Give a .keras or .h5 file or a SavedModel directory",
    )


def check_output_path(out: Path) -> None:
    """Fail before converting when OUT cannot be written (nothing is created here)."""
    if out.suffix.lower() != ".tflite":
        raise OutputWriteError("output %s must end in .tflite" % out, hint="e.g. -o model_int8.tflite")
    if out.is_dir():
        raise OutputWriteError("output %s is a directory" % out, hint="Give a file name ending in .tflite")
    ancestor = out.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputWriteError("cannot write %s: %s is not a directory" % (out, ancestor), hint="Choose another -o")
    report_path = out.with_suffix(".json")
    if report_path.is_dir():
        raise OutputWriteError(
            "cannot write the report %s beside %s: it is a directory" % (report_path, out), hint="Choose another -o"
        )
    # os.access says yes to root even on a read-only file system, so try for real: a temporary file
    # in the nearest existing directory, removed at once (converting takes seconds; failing after
    # that for an unwritable OUT would waste them).
    try:
        with tempfile.TemporaryFile(prefix=".edgepipe-write-check-", dir=str(ancestor)):
            pass
    except OSError as exc:
        raise OutputWriteError(
            "cannot write %s: %s is not writable (%s)" % (out, ancestor, exc.strerror or exc), hint="Choose another -o"
        ) from None


def _fit_to_input(samples: np.ndarray, shape: List[int], spec: str) -> np.ndarray:
    """Samples (N, ...) shaped like the model input without its batch axis; a missing or extra
    trailing channel of size 1 is fixed, anything else is an error."""
    want = tuple(shape[1:])
    have = tuple(samples.shape[1:])
    if have == want:
        return samples
    if have + (1,) == want:
        return samples[..., None]
    if have and have[-1] == 1 and have[:-1] == want:
        return samples[..., 0]
    raise DatasetError(
        "calibration samples from %s have shape %s, but the model input is %s (batch 1)"
        % (spec, _shape_text(have), _shape_text(want)),
        hint="Use calibration data that matches the model input",
    )


def _shape_text(shape: Tuple[int, ...]) -> str:
    return "(%s)" % ", ".join(str(d) for d in shape)


def _image_size_for(spec: str, static_shape: List[int]) -> Optional[Tuple[int, int]]:
    """The (height, width) images of `spec` must be resized to, or None to take them as they are."""
    item = static_shape[1:]
    if spec.startswith("images:") or (spec == "cifar10" and len(item) == 3 and tuple(item[:2]) != (32, 32)):
        if len(item) != 3:
            raise DatasetError(
                "%s gives RGB images, but the model input is %s (batch 1)" % (spec, _shape_text(tuple(item))),
                hint="Use calibration data that matches the model input",
            )
        return (item[0], item[1])
    return None


def preload_calibration(spec: str, count: int, data_dir: Optional[Path]) -> Optional[Any]:
    """Load (or, for images:DIR, look at) the calibration data before TensorFlow starts, so that a
    missing, corrupt or empty dataset fails in a fraction of a second, not after loading the model.

    Returns the loaded Dataset where it does not depend on the model's input size, else None."""
    from .data import calibration_split, load_dataset

    if count < 1:
        raise DatasetError("--calib-samples must be at least 1, got %d" % count)
    kind, _, arg = spec.partition(":")
    if kind == "images" and arg:
        from .data import IMAGE_SUFFIXES

        folder = Path(arg).expanduser()
        if not folder.is_dir():
            raise InputNotFoundError("image folder not found: %s" % folder, hint="images:DIR needs an existing folder")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*") if p.is_file()):
            raise DatasetError(
                "calibration dataset %s is empty: no image files in %s" % (spec, folder),
                hint="Use one sub-folder per class holding .jpg/.png files",
            )
        return None
    ds = load_dataset(spec, split=calibration_split(spec), data_dir=data_dir)
    if len(ds) == 0:
        raise DatasetError("calibration dataset %s is empty" % spec)
    return ds


def prepare_calibration(
    spec: str,
    count: int,
    seed: int,
    preprocess: str,
    static_shape: List[int],
    data_dir: Optional[Path],
    preloaded: Optional[Any] = None,
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Seeded calibration samples as float32 model input, and their description for the report."""
    from .data import calibration_split, load_dataset, select_samples

    if count < 1:
        raise DatasetError("--calib-samples must be at least 1, got %d" % count)
    image_size = _image_size_for(spec, static_shape)
    if preloaded is not None and image_size is None:
        ds = preloaded
    else:
        ds = load_dataset(spec, split=calibration_split(spec), data_dir=data_dir, image_size=image_size)
    if len(ds) == 0:
        raise DatasetError("calibration dataset %s is empty" % spec)
    chosen = select_samples(ds, count, seed)
    x = chosen.images.astype(np.float32) if ds.preprocessed else to_float(chosen.images, preprocess)
    x = np.ascontiguousarray(_fit_to_input(x.astype(np.float32), static_shape, spec))
    if not np.all(np.isfinite(x)):
        raise DatasetError("calibration samples from %s contain NaN or infinity" % spec)
    info = {
        "spec": spec,
        "split": ds.split,
        "source": ds.source,
        "checksum_verified": ds.checksum_verified,
        "available": len(ds),
        "count": int(len(x)),
        "seed": seed,
        "preprocess": "as given (npy)" if ds.preprocessed else preprocess,
        "sample_shape": list(x.shape[1:]),
        "value_range": [float(x.min()), float(x.max())],
    }
    if count > len(ds):
        info["note"] = "asked for %d samples, the dataset has %d: all used" % (count, len(ds))
    return x, info


# --- the child process -----------------------------------------------------------------------


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
    from .data import cache_dir

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
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def _run_worker(
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
        sys.executable, "-m", "edgepipe._convert_worker",
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
        raise _worker_failure(result, model, lambda: _keep_log(log_path, model))
    result["probe"] = probe
    return result, calibration


def _worker_failure(result: Dict[str, Any], model: Path, keep_log: Callable[[], str]) -> Exception:
    """The typed error for a worker's failure result. The worker's log is kept (copied out of the
    temporary directory) only for the kinds whose message points at it."""
    kind, text = result.get("kind", "internal"), result.get("message", "")

    def log_hint() -> str:
        kept = keep_log()
        return (". Converter log: %s" % kept) if kept else ""

    if kind == "tf_import":
        return TensorFlowMissingError("TensorFlow cannot be imported: %s" % _clip(text), hint=TF_INSTALL_HINT)
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
            hint="Check that the file is a whole, readable Keras model",
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


# --- the stage -------------------------------------------------------------------------------


def convert_model(
    model: Path,
    out: Path,
    *,
    target: str = "edgetpu",
    calib: Optional[str] = None,
    calib_samples: int = DEFAULT_CALIB_SAMPLES,
    seed: int = 0,
    preprocess: str = "unit",
    data_dir: Optional[Path] = None,
    allow_cpu_ops: int = 0,
    debug: bool = False,
    quiet: bool = False,
) -> ConvertReport:
    """Convert `model` for `target`, verify the flatbuffer, then write OUT and OUT.json (atomically).

    For `edgetpu` the written flatbuffer must pass the int8 verification (else UnquantizableOpsError)
    and the Edge TPU pre-flight may predict at most `allow_cpu_ops` ops on the CPU (else
    EdgeTpuIncompatibleError). Nothing is written at OUT unless every check passed; an existing OUT is
    only replaced by a good conversion.
    """
    started = time.monotonic()
    model, out = Path(model), Path(out)
    if target not in TARGETS:
        raise ConversionError("unknown target %r" % target, hint="Use one of: %s" % ", ".join(TARGETS))
    check_preset(preprocess)
    fmt = detect_model_format(model)
    check_output_path(out)
    if target in CALIBRATED_TARGETS and not calib:
        raise DatasetError(
            "--target %s needs calibration data" % target,
            hint="Pass --calib mnist, cifar10, images:DIR or npy:FILE.npy (with --preprocess matching training)",
        )
    if allow_cpu_ops < 0:
        raise ConversionError("--allow-cpu-ops must be 0 or more, got %d" % allow_cpu_ops)
    warnings = []
    if calib and target not in CALIBRATED_TARGETS:
        warnings.append("--calib %s ignored: --target %s is not calibrated" % (calib, target))
        calib = None
    if importlib.util.find_spec("tensorflow") is None:
        raise TensorFlowMissingError("converting needs TensorFlow, which is not installed", hint=TF_INSTALL_HINT)
    preloaded = preload_calibration(calib, calib_samples, data_dir) if calib else None

    def prepare(probe: Dict[str, Any]) -> Tuple[Optional[np.ndarray], Optional[Dict[str, Any]]]:
        if not calib:
            return None, None
        return prepare_calibration(
            calib, calib_samples, seed, preprocess, probe["static_shape"], data_dir, preloaded=preloaded
        )

    with tempfile.TemporaryDirectory(prefix="edgepipe-convert-") as tmp:
        workdir = Path(tmp)
        result, calibration = _run_worker(model, fmt, target, workdir, seed, debug, quiet, prepare)
        data = (workdir / "target.tflite").read_bytes()
        float_size = (workdir / "float.tflite").stat().st_size
    converted = read_model_bytes(data, "the converted model")

    verification: Dict[str, Any] = {"checked_by": "edgepipe.runtime.tflite_reader"}
    found_float = float_ops(converted)
    preflight = None
    if target == "edgetpu":
        offenders = verify_edgetpu(converted)
        if offenders:
            raise unquantizable_error(offenders, str(model))
        verification["rules"] = [
            "graph input and output are uint8",
            "every operator tensor is int8/uint8, int32 only as a constant bias or shape/axis operand",
            "no dynamic-shape op, no tensor with an unknown dimension",
        ]
        verification["passed"] = True
        preflight = preflight_summary(converted, allow_cpu_ops)
        refusal = preflight_error(preflight, str(model))
        if refusal is not None:
            raise refusal
        if preflight["cpu_ops"]:
            warnings.append("pre-flight: " + preflight["verdict"] + "; first CPU op " + preflight["first_cpu_op_text"])
        warnings += [w for w in [preflight["off_chip_warning"]] + preflight["compile_blockers"] if w]
    if target == "int8" and found_float:
        ops = ", ".join("%s (op %d)" % (f["op"], f["index"]) for f in found_float)
        warnings.append("%d op(s) stayed float and will run on the CPU: %s" % (len(found_float), ops))
    if calibration and calibration.get("note"):
        warnings.append(calibration["note"])

    shape = result["static_shape"]
    report = ConvertReport(
        target=target,
        model=str(model),
        model_format=fmt,
        out=str(out),
        report_path=str(out.with_suffix(".json")),
        size_bytes=len(data),
        float_size_bytes=float_size,
        size_ratio=round(len(data) / float_size, 4) if float_size else 0.0,
        sha256=converted.sha256,
        inputs=[describe_tensor(t) for t in converted.input_tensors()],
        outputs=[describe_tensor(t) for t in converted.output_tensors()],
        model_input_shape=result["input"]["shape"],
        static_shape=shape,
        op_histogram=converted.op_histogram(),
        float_ops=found_float if target == "int8" else [],
        verification=verification,
        preflight=preflight,
        float_check=result["float_check"],
        calibration=calibration,
        versions=dict(
            result.get("versions", {}), numpy=np.__version__, edgepipe=__version__, python=platform.python_version()
        ),
        duration_s=0.0,
        warnings=warnings,
    )
    make_dirs(out.parent)
    report.duration_s = round(time.monotonic() - started, 2)
    write_bytes_atomic(str(out), data)
    try:
        write_json_atomic(report.report_path, report)
    except OutputWriteError:
        out.unlink()  # a model without its report would be a half-written result
        raise
    return report


__all__ = [
    "CALIBRATED_TARGETS",
    "ConvertReport",
    "INT32_CONSTANT_INPUTS",
    "Offender",
    "TARGETS",
    "check_output_path",
    "convert_model",
    "detect_model_format",
    "float_ops",
    "preflight_error",
    "preflight_summary",
    "preload_calibration",
    "prepare_calibration",
    "summarize_converter_error",
    "unquantizable_error",
    "verify_edgetpu",
]
