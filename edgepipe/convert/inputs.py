"""What `edgepipe convert` accepts: targets, model formats (Keras, SavedModel, ONNX) and OUT.

Everything here runs before the converter process starts, so a wrong file, a missing extra or an
unwritable OUT fails in a fraction of a second instead of after TensorFlow has loaded.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import List

from ..errors import InputNotFoundError, ModelFormatError, OutputWriteError, TensorFlowMissingError

TARGETS = ("edgetpu", "int8", "float16", "dynamic", "float")
CALIBRATED_TARGETS = ("edgetpu", "int8")
DEFAULT_CALIB_SAMPLES = 200
MODEL_FORMATS = ("keras", "h5", "saved_model", "onnx")
TF_INSTALL_HINT = "Install it with: pip install 'edgepipe[convert]'"
ONNX_INSTALL_HINT = "Install it with: pip install 'edgepipe[convert,onnx]'"
# The modules the ONNX route imports in the converter process (onnx2tf 1.28.8 declares no
# dependencies of its own, so pyproject's `onnx` extra lists them; keep the two lists together).
ONNX_MODULES = ("onnx", "onnxruntime", "onnx2tf", "onnx_graphsurgeon", "sng4onnx", "sne4onnx", "psutil", "tf_keras")
_FORMATS_HINT = "Give a .keras, .h5 or .onnx file or a SavedModel directory"


def detect_model_format(path: Path) -> str:
    """The model format ("keras", "h5", "saved_model" or "onnx"), from the path and the first bytes."""
    if not path.exists():
        raise InputNotFoundError("model not found: %s" % path, hint=_FORMATS_HINT)
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "saved_model"
        raise ModelFormatError(
            "%s is a directory but not a SavedModel (no saved_model.pb)" % path,
            hint="Give a .keras, .h5 or .onnx file, or a directory written by model.export() / tf.saved_model.save()",
        )
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputNotFoundError("cannot read model %s: %s" % (path, exc.strerror or exc)) from None
    if suffix == ".tflite" or head[4:8] == b"TFL3":
        raise ModelFormatError(
            "%s is already a TFLite model; convert takes a Keras, SavedModel or ONNX model" % path,
            hint="See what it is with `edgepipe inspect %s`; if it is full int8, compile it with "
            "`edgepipe compile %s -o DIR`" % (path, path),
        )
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
    if suffix == ".onnx":
        # An ONNX file is a serialized ModelProto: its first field is ir_version (field 1, varint),
        # so the first byte is the tag 0x08. Anything else is not a model torch.onnx.export wrote.
        if head[:1] != b"\x08":
            raise ModelFormatError(
                "%s is not an ONNX model (not a serialized ModelProto)" % path,
                hint="Export it with torch.onnx.export() or onnx.save()",
            )
        return "onnx"
    raise ModelFormatError("%s: unknown model format %r" % (path, suffix or "(no suffix)"), hint=_FORMATS_HINT)


def missing_onnx_modules() -> List[str]:
    return [name for name in ONNX_MODULES if importlib.util.find_spec(name) is None]


def check_onnx_extra() -> None:
    """The ONNX route needs the `onnx` extra; say which modules are missing and the install line."""
    missing = missing_onnx_modules()
    if missing:
        raise TensorFlowMissingError(
            "converting an ONNX model needs the onnx extra; missing: %s" % ", ".join(missing), hint=ONNX_INSTALL_HINT
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
