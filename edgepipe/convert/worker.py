"""The child process of `edgepipe convert`: with `onnx_worker`, the only code that imports TensorFlow.

Why a separate process: the TFLite calibrator can crash the whole interpreter (Keras 3 LSTM/GRU models
segfault during calibration), and TensorFlow's import costs seconds and floods stderr. The parent
(`edgepipe.convert.child`) survives a crash, keeps the noise in a log, and shows only what matters.

Protocol (the parent starts `python -m edgepipe.convert --model M --format F --target T --workdir W`):
1. The worker loads the model (an ONNX model: converts it to TensorFlow with onnx2tf first) and prints
   one JSON line on stdout: {"event": "probe", "input": {...}} (static input shape with batch 1, dtype;
   for ONNX also the source shape and the axes permutation onnx2tf applied), or fails as in 3.
2. The parent answers one line on stdin: "go" (calibration samples, if any, in W/calib.npy, float32,
   first axis = samples, already shaped like the input without its batch axis) or "abort".
3. The worker prints {"event": "phase" | "progress", ...} lines while it works, writes
   W/float.tflite, W/target.tflite and W/result.json, and exits 0; on failure result.json holds
   {"ok": false, "kind": ..., "message": ...} and it exits 2.
After an int8 conversion the worker also runs the float and the int8 model on a few calibration
samples and reports how far they agree (`int8_check`): a wrong --preprocess shows up there.
Everything else the worker or TensorFlow prints goes to stderr (fd 1 is redirected there), which the
parent captures into a log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .inputs import MODEL_FORMATS, TARGETS

FLOAT_CHECK_SAMPLES = 8
INT8_CHECK_SAMPLES = 32
# Relative tolerance of the float conversion against the source model at the same static shape:
# both run the same float32 graph, so only summation order and fused kernels may differ.
FLOAT_CHECK_RTOL = 1e-3


def spread(samples: np.ndarray, n: int) -> np.ndarray:
    """`n` of `samples` evenly spaced from first to last. A seeded calibration subset keeps the dataset's
    order, often class by class, so its first 32 of 200 CIFAR-10 images were only airplanes and cars."""
    if len(samples) <= n:
        return samples
    return samples[np.linspace(0, len(samples) - 1, n).round().astype(int)]


class WorkerError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Channel:
    """JSON lines to the parent on the real stdout; everything else printed goes to stderr."""

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        sys.stdout.flush()
        os.dup2(2, 1)

    def send(self, event: str, **fields: Any) -> None:
        self._out.write(json.dumps(dict(event=event, **fields)) + "\n")
        self._out.flush()


def _load(path: str, fmt: str) -> Any:
    import tensorflow as tf

    if fmt == "saved_model":
        return tf.saved_model.load(path)
    import keras

    return keras.models.load_model(path, compile=False)


def _input_spec(model: Any, fmt: str) -> Dict[str, Any]:
    """Name, shape (None = unknown) and dtype of the single model input."""
    if fmt == "saved_model":
        signatures = dict(model.signatures)
        if not signatures:
            raise WorkerError("input", "the SavedModel has no signatures; export it with model.export(DIR)")
        key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        args, kwargs = signatures[key].structured_input_signature
        specs = list(kwargs.items()) or [(getattr(s, "name", None) or "input_%d" % i, s) for i, s in enumerate(args)]
        if len(specs) != 1:
            raise WorkerError(
                "input", "the SavedModel signature %r has %d inputs; convert supports one" % (key, len(specs))
            )
        name, spec = specs[0]
        return {"name": name, "shape": spec.shape.as_list(), "dtype": spec.dtype.name, "signature": key}
    inputs = list(model.inputs or [])
    if len(inputs) != 1:
        raise WorkerError("input", "the model has %d inputs; convert supports one" % len(inputs))
    tensor = inputs[0]
    dtype = getattr(tensor.dtype, "name", None) or str(tensor.dtype)
    return {"name": getattr(tensor, "name", "input"), "shape": list(tensor.shape), "dtype": dtype, "signature": None}


def _static_shape(shape: List[Optional[int]]) -> List[int]:
    if not shape:
        raise WorkerError("input", "the model input is a scalar; convert needs a batch axis")
    batch = shape[0]
    if batch not in (None, 1):
        raise WorkerError(
            "input", "the model input has a fixed batch of %d; the Edge TPU (and edgepipe) need batch 1" % batch
        )
    unknown = [i for i, d in enumerate(shape[1:], start=1) if d is None]
    if unknown:
        raise WorkerError(
            "input",
            "the model input shape %s has unknown dimension(s) %s besides the batch; rebuild or re-export it "
            "with a fixed input shape (e.g. keras.Input(shape=(224, 224, 3)))" % (_fmt_shape(shape), unknown),
        )
    return [1] + [int(d) for d in shape[1:]]


def _fmt_shape(shape: List[Optional[int]]) -> str:
    return "(%s)" % ", ".join("None" if d is None else str(d) for d in shape)


def _static_saved_model(model: Any, fmt: str, spec: Dict[str, Any], shape: List[int], workdir: str) -> str:
    """Write a SavedModel whose only signature has the fully static input shape (batch 1).

    Converting from the model's own signature (batch None) leaves SHAPE/STRIDED_SLICE/PACK ops that
    rebuild the batch size at run time; tracing at [1, ...] folds them away.
    """
    import tensorflow as tf

    path = os.path.join(workdir, "static_saved_model")
    input_spec = tf.TensorSpec(shape, tf.as_dtype(spec["dtype"]), name="input")
    if fmt == "onnx":  # onnx2tf's tf_keras model: TF-native layers, so a tf.Module tracks its variables
        module = tf.Module()
        module.model = model

        @tf.function(input_signature=[input_spec])
        def serve_onnx(x: Any) -> Any:
            return model(x, training=False)

        module.serve = serve_onnx
        tf.saved_model.save(module, path, signatures={"serving_default": serve_onnx.get_concrete_function()})
        return path
    if fmt == "saved_model":
        signature = model.signatures[spec["signature"]]
        name = spec["name"]
        module = tf.Module()
        module.inner = model  # keeps the variables reachable so the converter can freeze them

        @tf.function(input_signature=[input_spec])
        def serve(x: Any) -> Any:
            return signature(**{name: x})

        module.serve = serve
        tf.saved_model.save(module, path, signatures={"serving_default": serve.get_concrete_function()})
        return path
    import keras

    # A plain tf.Module around a Keras 3 model does not track its variables (the converter then fails
    # with READ_VARIABLE); Keras' own ExportArchive does.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[input_spec])
    if _accepts_verbose(archive.write_out):
        archive.write_out(path, verbose=False)
    else:
        archive.write_out(path)
    return path


def _accepts_verbose(fn: Callable) -> bool:
    import inspect

    try:
        return "verbose" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _reference_outputs(static_path: str, samples: np.ndarray) -> List[List[np.ndarray]]:
    import tensorflow as tf

    loaded = tf.saved_model.load(static_path)
    fn = loaded.signatures["serving_default"]
    outputs = []
    for x in samples:
        result = fn(tf.constant(x[None]))
        outputs.append([np.asarray(result[k]) for k in sorted(result)])
    return outputs


def _interpreter(model_bytes: bytes) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # ai-edge-litert is a dependency, but TF's own interpreter is equivalent here
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    return interpreter


def _run_tflite(model_bytes: bytes, samples: np.ndarray) -> List[List[np.ndarray]]:
    """Outputs per sample (sorted by name, as the signature's keys), dequantized when the model's
    I/O is integer; float samples are quantized with the model's own input scale and zero point."""
    interpreter = _interpreter(model_bytes)
    inp = interpreter.get_input_details()[0]
    outs = sorted(interpreter.get_output_details(), key=lambda d: d["name"])
    results = []
    for x in samples:
        x = x[None]
        if np.issubdtype(inp["dtype"], np.integer):
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        row = []
        for o in outs:
            y = np.array(interpreter.get_tensor(o["index"]))
            if np.issubdtype(y.dtype, np.integer) and o["quantization"][0]:
                y = (y.astype(np.float32) - o["quantization"][1]) * o["quantization"][0]
            row.append(y)
        results.append(row)
    return results


def _float_check(reference: List[List[np.ndarray]], float_bytes: bytes, samples: np.ndarray) -> Dict[str, Any]:
    converted = _run_tflite(float_bytes, samples)
    worst, scale = 0.0, 1.0
    for ref, got in zip(reference, converted):
        if len(ref) != len(got):
            raise WorkerError("float_check", "the float conversion has %d outputs, the model %d" % (len(got), len(ref)))
        for r, g in zip(ref, got):
            r = _as_converted_layout(r, g.shape)
            if r.size != g.size:
                raise WorkerError("float_check", "output sizes differ: model %s, float TFLite %s" % (r.shape, g.shape))
            worst = max(worst, float(np.max(np.abs(r.reshape(-1) - g.reshape(-1)))))
            scale = max(scale, float(np.max(np.abs(r))))
    check = {"samples": int(len(samples)), "max_abs_diff": worst, "tolerance": FLOAT_CHECK_RTOL * scale}
    if worst > check["tolerance"]:
        raise WorkerError(
            "float_check",
            "the float TFLite model at the static batch-1 shape differs from the source model "
            "(max |diff| %.3g > %.3g on %d samples)" % (worst, check["tolerance"], len(samples)),
        )
    return check


def _as_converted_layout(ref: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """An ONNX output in channels-first layout, as onnx2tf's channels-last output holds it."""
    if ref.shape != tuple(shape) and ref.ndim >= 3:
        moved = np.moveaxis(ref, 1, -1)
        if moved.shape == tuple(shape):
            return moved
    return ref


def _int8_check(float_bytes: bytes, target_bytes: bytes, samples: np.ndarray) -> Dict[str, Any]:
    """The float and the int8 model on the same calibration samples (the first few): how far their
    outputs and top-1 answers agree, and how many classes each predicts. The parent judges the figures
    (`stage.int8_check_warnings`); they are reported either way."""
    reference = _run_tflite(float_bytes, samples)
    quantized = _run_tflite(target_bytes, samples)
    worst, low, high = 0.0, np.inf, -np.inf
    float_top1, int8_top1 = [], []
    for ref, got in zip(reference, quantized):
        for pos, (r, g) in enumerate(zip(ref, got)):
            r, g = r.reshape(-1).astype(np.float64), g.reshape(-1).astype(np.float64)
            if r.size != g.size:
                continue
            worst = max(worst, float(np.max(np.abs(r - g))))
            low, high = min(low, float(r.min())), max(high, float(r.max()))
            if pos == 0 and r.size > 1:  # the first output, if it is a vector of scores
                float_top1.append(int(np.argmax(r)))
                int8_top1.append(int(np.argmax(g)))
    compared = bool(np.isfinite(low))
    spread = high - low if compared else 0.0
    check: Dict[str, Any] = {
        "samples": int(len(samples)),
        "max_abs_diff": worst,
        "float_output_range": [low, high] if compared else None,
        "relative_diff": worst / spread if spread > 0 else (0.0 if worst == 0 else None),
        "top1_agreement": None,
    }
    if float_top1:
        counts = np.bincount(float_top1)
        check.update(
            top1_agreement=float(np.mean(np.array(float_top1) == np.array(int8_top1))),
            float_top1_classes=len(set(float_top1)),
            int8_top1_classes=len(set(int8_top1)),
            float_top1_most_common=[int(np.argmax(counts)), int(np.max(counts))],
        )
    return check


def _convert(static_path: str, target: str, samples: Optional[np.ndarray], channel: Channel) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(static_path)
    if target == "float":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if target == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return converter.convert()
    if target == "dynamic":
        return converter.convert()
    assert samples is not None and len(samples)  # the parent insists on calibration data for int8 targets

    def representative() -> Any:
        channel.send("phase", phase="calibrating", total=int(len(samples)))
        for i, x in enumerate(samples):
            yield [x[None]]
            channel.send("progress", done=i + 1)

    converter.representative_dataset = representative
    if target == "edgetpu":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    else:  # int8: integer where possible, float kernels allowed where not; float I/O
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _versions() -> Dict[str, str]:
    import tensorflow as tf

    versions = {"tensorflow": tf.__version__, "numpy": np.__version__}
    try:
        import keras

        versions["keras"] = keras.__version__
    except ImportError:
        pass
    return versions


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def run(args: argparse.Namespace, channel: Channel) -> Dict[str, Any]:
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise WorkerError("tf_import", "cannot import TensorFlow: %s" % exc) from None
    onnx = None
    if args.format == "onnx":
        from . import onnx_worker

        onnx = onnx_worker.load_onnx(args.model, args.workdir, args.seed, channel)
        model, spec, shape = onnx.model, onnx.spec, onnx.static_shape
    else:
        channel.send("phase", phase="loading model")
        try:
            model = _load(args.model, args.format)
        except Exception as exc:  # Keras and TF raise anything from ValueError to OSError on a bad file
            raise WorkerError("load", "%s: %s" % (type(exc).__name__, exc)) from None
        spec = _input_spec(model, args.format)
        if not spec["dtype"].startswith("float"):
            raise WorkerError("input", "the model input is %s; convert expects a float input" % spec["dtype"])
        shape = _static_shape(spec["shape"])
    probe = dict(spec, static_shape=shape)
    if onnx is not None:
        probe.update(source_shape=onnx.source_shape, layout_perm=onnx.layout_perm)
    channel.send("probe", input=probe)

    answer = sys.stdin.readline().strip()
    if answer != "go":
        raise WorkerError("aborted", "the parent stopped the conversion")
    calib_path = os.path.join(args.workdir, "calib.npy")
    samples = np.load(calib_path, allow_pickle=False) if os.path.exists(calib_path) else None
    if samples is not None and list(samples.shape[1:]) != shape[1:]:
        raise WorkerError("input", "calibration samples %s do not fit input %s" % (samples.shape[1:], shape))

    channel.send("phase", phase="tracing at static shape %s" % _fmt_shape(shape))
    try:
        static_path = _static_saved_model(model, args.format, spec, shape, args.workdir)
    except WorkerError:
        raise
    except Exception as exc:
        raise WorkerError("trace", "%s: %s" % (type(exc).__name__, exc)) from None

    channel.send("phase", phase="converting (float reference)")
    try:
        float_bytes = _convert(static_path, "float", None, channel)
    except Exception as exc:
        raise WorkerError("convert", "%s: %s" % (type(exc).__name__, exc)) from None
    _write(os.path.join(args.workdir, "float.tflite"), float_bytes)

    channel.send("phase", phase="checking the float conversion")
    if samples is not None:
        check_inputs = spread(samples, FLOAT_CHECK_SAMPLES)
    else:
        check_inputs = np.random.default_rng(args.seed).random((FLOAT_CHECK_SAMPLES, *shape[1:]), dtype=np.float32)
    check_inputs = check_inputs.astype(np.float32)
    # The ONNX route is checked against onnxruntime on the ONNX file itself, so that onnx2tf's own
    # rewrites are covered too, not only TF's conversion of them.
    reference = onnx.reference(check_inputs) if onnx is not None else _reference_outputs(static_path, check_inputs)
    float_check = _float_check(reference, float_bytes, check_inputs)
    float_check["reference"] = "onnxruntime on the ONNX model" if onnx is not None else "the source model (TensorFlow)"

    int8_check = None
    if args.target == "float":
        target_bytes = float_bytes
    else:
        channel.send("phase", phase="converting (%s)" % args.target)
        try:
            target_bytes = _convert(static_path, args.target, samples, channel)
        except Exception as exc:
            raise WorkerError("convert", "%s: %s" % (type(exc).__name__, exc)) from None
        if samples is not None:
            channel.send("phase", phase="comparing the float and %s models" % args.target)
            int8_check = _int8_check(float_bytes, target_bytes, spread(samples, INT8_CHECK_SAMPLES).astype(np.float32))
    _write(os.path.join(args.workdir, "target.tflite"), target_bytes)
    versions = _versions()
    if onnx is not None:
        versions.update(onnx.versions)
    return {
        "ok": True,
        "input": spec,
        "static_shape": shape,
        "float_check": float_check,
        "int8_check": int8_check,
        "source": onnx.describe() if onnx is not None else None,
        "versions": versions,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgepipe.convert")
    parser.add_argument("--model", required=True)
    parser.add_argument("--format", required=True, choices=MODEL_FORMATS)
    parser.add_argument("--target", required=True, choices=TARGETS)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    channel = Channel()
    result_path = os.path.join(args.workdir, "result.json")
    try:
        result = run(args, channel)
        code = 0
    except WorkerError as exc:
        result, code = {"ok": False, "kind": exc.kind, "message": str(exc)}, 2
    except Exception as exc:  # a bug here must still reach the parent as a report, with its traceback
        result = {"ok": False, "kind": "internal", "message": "%s: %s" % (type(exc).__name__, exc)}
        result["traceback"] = traceback.format_exc()
        code = 2
    with open(result_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    channel.send("done", ok=bool(result.get("ok")))
    return code
