"""`edgepipe convert`, the stage: a Keras, SavedModel or ONNX model → a TFLite model and its report.

For the Edge TPU (`--target edgetpu`) the written flatbuffer must pass the strict int8 verification
(`verify`) and the pre-flight; an ONNX model goes the same way after onnx2tf has made it a TensorFlow
model in the child process (`child`, `worker`, `onnx_worker`). OUT and OUT.json are staged as
temporary files beside OUT and published only when both are written, so a failure never costs an
existing good model.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import __version__
from ..errors import ConversionError, DatasetError, OutputWriteError, TensorFlowMissingError
from ..runtime.preprocess import check_preset
from ..runtime.report import dumps, make_dirs
from ..runtime.tflite_reader import describe_tensor, read_model_bytes
from .calibration import layout_text, preload_calibration, prepare_calibration
from .child import run_worker
from .inputs import (
    CALIBRATED_TARGETS,
    DEFAULT_CALIB_SAMPLES,
    TARGETS,
    TF_INSTALL_HINT,
    check_onnx_extra,
    check_output_path,
    detect_model_format,
)
from .verify import float_ops, preflight_error, preflight_summary, unquantizable_error, verify_edgetpu

# The float and the int8 model on the same calibration samples (worker._int8_check). Quantization
# moves outputs by a few steps and flips the top-1 of a near tie now and then; below this agreement the
# int8 model no longer answers like the float one. A --preprocess other than the training one often
# does something else: both models then give one class for every sample (measured on ResNet-8 with
# unit instead of raw: 1 class for 32 CIFAR-10 samples; 7 with raw), so that is warned about too.
INT8_MIN_TOP1_AGREEMENT = 0.8
COLLAPSE_MIN_SAMPLES = 16  # fewer calibration samples than this say little about the spread of classes
LABELLED_CALIBRATION = ("mnist", "cifar10", "images:")  # calibration sets that span several classes


@dataclass
@dataclass
class ConvertReport:
    target: str
    model: str
    model_format: str  # "keras", "h5", "saved_model" or "onnx"
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
    float_check: Dict[str, Any]  # float TFLite vs the source model (ONNX: onnxruntime) at the static shape
    calibration: Optional[Dict[str, Any]]
    versions: Dict[str, str]
    duration_s: float
    warnings: List[str] = field(default_factory=list)
    int8_check: Optional[Dict[str, Any]] = None  # calibrated targets: float vs int8 model on calibration samples
    source: Optional[Dict[str, Any]] = None  # ONNX: onnx2tf, the input layout it chose, the network guard


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
    if fmt == "onnx":
        check_onnx_extra()
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
            calib,
            calib_samples,
            seed,
            preprocess,
            probe["static_shape"],
            data_dir,
            preloaded=preloaded,
            source_shape=probe.get("source_shape"),
            layout_perm=probe.get("layout_perm"),
        )

    with tempfile.TemporaryDirectory(prefix="edgepipe-convert-") as tmp:
        workdir = Path(tmp)
        result, calibration = run_worker(model, fmt, target, workdir, seed, debug, quiet, prepare)
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
    warnings += int8_check_warnings(result.get("int8_check"), preprocess, calibration)
    if result.get("source"):
        warnings += onnx_notes(result["source"], converted, preflight)

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
        int8_check=result.get("int8_check"),
        source=result.get("source"),
    )
    make_dirs(out.parent)
    report.duration_s = round(time.monotonic() - started, 2)
    publish(out, data, report)
    return report


def int8_check_warnings(
    check: Optional[Dict[str, Any]], preprocess: str, calibration: Optional[Dict[str, Any]]
) -> List[str]:
    """Warnings when the int8 model stops answering like the float one on the calibration samples, or
    when both answer one class for samples drawn from a dataset of many classes."""
    if not check or check.get("top1_agreement") is None:
        return []
    bad = []
    if check["top1_agreement"] < INT8_MIN_TOP1_AGREEMENT:
        bad.append(
            "the int8 model's top-1 agrees with the float model's on only %.0f %% of %d calibration samples"
            % (100 * check["top1_agreement"], check["samples"])
        )
    spec = (calibration or {}).get("spec", "")
    labelled = spec in LABELLED_CALIBRATION or spec.startswith(LABELLED_CALIBRATION[-1])
    if labelled and check["samples"] >= COLLAPSE_MIN_SAMPLES and check["float_top1_classes"] == 1:
        bad.append(
            "the float model gives class %d for all %d calibration samples of %s"
            % (check["float_top1_most_common"][0], check["samples"], spec)
        )
    if not bad:
        return []
    return [
        "%s: check that --preprocess %s is how the model's training input was scaled" % ("; ".join(bad), preprocess)
    ]


def onnx_notes(source: Dict[str, Any], converted: Any, preflight: Optional[Dict[str, Any]]) -> List[str]:
    """What the ONNX route changed that a user must know: the input layout, and the TRANSPOSE ops
    onnx2tf leaves where a PyTorch model flattens channels-first (the pre-flight judges them)."""
    notes = []
    if source.get("layout_changed"):
        notes.append(
            "the converted model takes %s input %s, not the ONNX model's %s (%s): feed it channels-last data"
            % (
                "NHWC" if len(source["converted_input_shape"]) == 4 else "channels-last",
                source["converted_input_shape"],
                source["onnx_input_shape"],
                layout_text(source["layout_perm"]),
            )
        )
    transposes = [op.index for op in converted.main.operators if op.name == "TRANSPOSE"]
    if transposes:
        cpu = {o["index"] for o in (preflight or {}).get("cpu_op_list", [])}
        verdict = ""
        if preflight is not None:
            on_cpu = [i for i in transposes if i in cpu]
            verdict = "; pre-flight: %s" % (
                "on the Edge TPU" if not on_cpu else "op(s) %s on the CPU" % ", ".join(map(str, on_cpu))
            )
        notes.append(
            "%d TRANSPOSE op(s) (op %s) kept: onnx2tf's channels-last model needs them where the ONNX graph "
            "flattens or reshapes channels-first (a PyTorch NCHW flatten)%s"
            % (len(transposes), ", ".join(map(str, transposes)), verdict)
        )
    return notes


def publish(out: Path, data: bytes, report: ConvertReport) -> None:
    """Write OUT and OUT.json so that a failure at any point leaves the previous pair as it was.

    Both are staged as temporary files beside OUT first (a full disk or a bad report fails here, with
    nothing published); then OUT is renamed into place and OUT.json after it; if that second rename
    fails, the previous OUT (kept as a hard link, else a copy) is put back."""
    report_path = Path(report.report_path)
    staged: List[str] = []
    backup = None
    try:
        staged.append(_stage(out, data))
        staged.append(_stage(report_path, (dumps(report) + "\n").encode("utf-8")))
        if out.exists():
            backup = _stage_backup(out)
        os.replace(staged[0], out)
        staged[0] = ""
        try:
            os.replace(staged[1], report_path)
            staged[1] = ""
        except BaseException:
            if backup is not None:
                os.replace(backup, out)
                backup = None
            else:
                os.unlink(out)
            raise
    except OSError as exc:
        raise OutputWriteError("cannot write %s: %s" % (out, exc.strerror or exc), hint="Choose another -o") from None
    finally:
        for leftover in staged + [backup]:
            if leftover:
                try:
                    os.unlink(leftover)
                except OSError:
                    pass


def _stage(path: Path, data: bytes) -> str:
    """`data` in a new temporary file beside `path`, flushed to disk; its name."""
    fd, tmp = tempfile.mkstemp(prefix=".%s." % path.name, suffix=".tmp", dir=str(path.absolute().parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; a model or report gets the usual umask-derived mode.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _stage_backup(path: Path) -> str:
    """The current file at `path` under a temporary name beside it (a hard link where possible)."""
    fd, tmp = tempfile.mkstemp(prefix=".%s." % path.name, suffix=".bak.tmp", dir=str(path.absolute().parent))
    os.close(fd)
    try:
        os.unlink(tmp)
        os.link(path, tmp)
    except OSError:
        import shutil

        shutil.copy2(path, tmp)
    return tmp
