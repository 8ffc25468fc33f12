"""`edgepipe convert`: Keras / SavedModel / ONNX → TFLite, and for the Edge TPU a verified full-int8 model.

The package by what its parts do:
- `inputs`: targets, model formats (what a file is, before anything starts), the output path check;
- `calibration`: seeded calibration samples in the converted model's input layout;
- `verify`: the strict int8 rules read off the written flatbuffer, and the Edge TPU pre-flight gate;
- `child`: the parent's side of the converter process (start, probe, progress, typed failures);
- `worker` (+ `__main__`): that process, the only place TensorFlow is imported;
- `onnx_worker`: the ONNX route inside it (onnx2tf → TensorFlow, offline, layout, onnxruntime);
- `stage`: `convert_model` itself, its report, and publishing OUT with OUT.json.
Nothing here but `worker` and `onnx_worker` imports TensorFlow, onnx or onnx2tf.
"""

from .calibration import preload_calibration, prepare_calibration
from .child import summarize_converter_error
from .inputs import (
    CALIBRATED_TARGETS,
    DEFAULT_CALIB_SAMPLES,
    MODEL_FORMATS,
    ONNX_INSTALL_HINT,
    TARGETS,
    check_onnx_extra,
    check_output_path,
    detect_model_format,
)
from .stage import ConvertReport, convert_model, publish
from .verify import (
    INT32_CONSTANT_INPUTS,
    Offender,
    float_ops,
    preflight_error,
    preflight_summary,
    unquantizable_error,
    verify_edgetpu,
)

__all__ = [
    "CALIBRATED_TARGETS",
    "ConvertReport",
    "DEFAULT_CALIB_SAMPLES",
    "INT32_CONSTANT_INPUTS",
    "MODEL_FORMATS",
    "ONNX_INSTALL_HINT",
    "Offender",
    "TARGETS",
    "check_onnx_extra",
    "check_output_path",
    "convert_model",
    "detect_model_format",
    "float_ops",
    "preflight_error",
    "preflight_summary",
    "preload_calibration",
    "prepare_calibration",
    "publish",
    "summarize_converter_error",
    "unquantizable_error",
    "verify_edgetpu",
]
