"""Latency and accuracy measurement on an open `backend.Session`, with results as versioned JSON.

Latency (`benchmark`): the first inference is timed on its own (on the Edge TPU it includes loading
the parameter cache), then `warmup` untimed runs, then `runs` timed runs twice over:
- invoke-only: `perf_counter()` around `interpreter.invoke()` and nothing else; the loop stores each
  time in a preallocated list, so it adds nothing measurable (`scripts/bench_runner_overhead.py`);
- end to end: raw pixels → model input (quantized with the model's own scale and zero point) →
  `set_tensor` → `invoke` → `get_tensor` → dequantize → top-1.

Accuracy (`evaluate`): top-1/top-5, per-class accuracy and (for up to 100 classes) a confusion
matrix. On the CPU, images go through in batches when the model can be resized to batch B; the first
8 images of the first batch are checked against batch-1 runs of the same images (and the output must
really have B rows after an invoke), and any failure falls back to batch 1, saying why in `batch_note`.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .backend import Session, open_session, pycoral_version
from .edgetpu import find_library
from .errors import DatasetError, InferenceError
from .preprocess import check_preset, dequantize, quantize, to_model_input
from .report import RESULT_SCHEMA_VERSION, sha256_file, utc_now

CONFUSION_MAX_CLASSES = 100
DEFAULT_BATCH = 64
BATCH_CHECK_IMAGES = 8  # images run both at batch 1 and batched before batching is trusted

Progress = Callable[[int, int], None]


# --- result pieces --------------------------------------------------------------------------------


def describe_file(path: str) -> Dict[str, Any]:
    return {"path": os.path.abspath(path), "sha256": sha256_file(path), "size_bytes": os.path.getsize(path)}


def environment(session: Optional[Session] = None) -> Dict[str, Any]:
    """Where a result was measured: host, OS, Python, runtime, libedgetpu, device."""
    env: Dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "pycoral": pycoral_version(),
    }
    if session is None:
        return env
    env["runtime"] = session.runtime.describe()
    target = session.edgetpu
    if target is not None:
        env["libedgetpu"] = {
            "path": target.library,
            "runtime_version": target.runtime_version,
            "version_string": target.version_string,
        }
        env["device"] = {"type": target.device.type, "path": target.device.path, "spec": target.device.spec}
    else:
        env["libedgetpu"] = {"path": find_library(), "runtime_version": None, "version_string": None}
        env["device"] = {"type": "cpu", "path": None, "spec": None}
    env["num_threads"] = session.num_threads
    env["reference_kernels"] = session.reference_kernels
    env["via_pycoral"] = session.via_pycoral
    return env


def _session_fields(session: Session) -> Dict[str, Any]:
    model = describe_file(session.model_path)
    model["compiled_for_edgetpu"] = session.model_compiled
    ran = dict(model) if session.run_model_path == session.model_path else describe_file(session.run_model_path)
    ran["compiled_for_edgetpu"] = session.model.compiled_for_edgetpu
    return {
        "model": model,
        "run_model": ran,
        "requested_backend": session.requested_backend,
        "backend": session.backend,
        "backend_reason": session.backend_reason,
        "device": session.device.spec if session.device else None,
        "fallback_reason": session.fallback_reason,
        "fallback_fix": session.fallback_fix,
        "notes": list(session.notes),
        "load_ms": round(session.load_ms, 3),
    }


# --- latency --------------------------------------------------------------------------------------


@dataclass
class LatencyStats:
    """Milliseconds. `first` is the first inference after loading, kept out of the other figures."""

    first: Optional[float]
    min: float
    mean: float
    std: float
    p50: float
    p90: float
    p99: float
    max: float
    n: int


def latency_stats(seconds: Sequence[float], first_s: Optional[float] = None) -> LatencyStats:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise InferenceError("no timed runs to summarise", hint="Use --runs 1 or more")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        first=None if first_s is None else round(first_s * 1e3, 4),
        min=round(float(ms.min()), 4),
        mean=round(float(ms.mean()), 4),
        std=round(float(ms.std(ddof=1)) if ms.size > 1 else 0.0, 4),
        p50=round(float(p50), 4),
        p90=round(float(p90), 4),
        p99=round(float(p99), 4),
        max=round(float(ms.max()), 4),
        n=int(ms.size),
    )


def top_outputs(scores: np.ndarray, k: int = 5) -> List[Dict[str, Any]]:
    """The k largest entries of the first row of `scores`, best first (ties: lowest index first)."""
    row = np.asarray(scores, dtype=np.float64).reshape(scores.shape[0] if scores.ndim > 1 else 1, -1)[0]
    best = np.argsort(-row, kind="stable")[:k]
    return [{"index": int(i), "score": round(float(row[i]), 6)} for i in best]


def time_invokes(interpreter: Any, runs: int) -> List[float]:
    """Seconds per `invoke()`: the timer wraps the call and nothing else, results go to a preallocated list."""
    times = [0.0] * runs
    invoke = interpreter.invoke
    clock = time.perf_counter
    for i in range(runs):
        start = clock()
        invoke()
        times[i] = clock() - start
    return times


@dataclass
class _Port:
    index: int
    dtype: Any
    shape: Tuple[int, ...]
    scale: float
    zero_point: int


def _ports(details: List[Dict[str, Any]]) -> List[_Port]:
    ports = []
    for d in details:
        scale, zero_point = d.get("quantization", (0.0, 0))
        ports.append(
            _Port(
                int(d["index"]), np.dtype(d["dtype"]), tuple(int(x) for x in d["shape"]), float(scale), int(zero_point)
            )
        )
    return ports


def _raw_input(port: _Port, rng: np.random.RandomState) -> np.ndarray:
    """Synthetic raw data for one input: random pixels for image-like inputs, zeros otherwise."""
    if port.dtype.kind in "uif" and port.dtype.itemsize <= 4 and port.dtype != np.int32:
        return rng.randint(0, 256, size=port.shape).astype(np.uint8)
    return np.zeros(port.shape, dtype=port.dtype)


@dataclass
class SessionResult:
    """What every result says about the run: the schema, the model, and where and why it ran."""

    schema_version: int
    kind: str
    created: str
    model: Dict[str, Any]
    run_model: Dict[str, Any]
    requested_backend: str
    backend: str  # where it ran: "edgetpu" or "cpu"
    backend_reason: str  # why it ran there (for `auto` on the CPU: why the Edge TPU was not used)
    device: Optional[str]
    fallback_reason: Optional[str]
    fallback_fix: Optional[str]
    notes: List[str]
    load_ms: float


@dataclass
class BenchResult(SessionResult):
    runs: int
    warmup: int
    preprocess: Optional[str]
    inputs: List[Dict[str, Any]]
    latency_ms: LatencyStats  # invoke only
    end_to_end_ms: LatencyStats  # preprocess + set_tensor + invoke + get_tensor + postprocess
    # The first output's top 5 after the first inference (raw output indices, dequantized scores):
    # with `pixels` given, what the model says about that image.
    prediction: List[Dict[str, Any]] = field(default_factory=list)
    environment: Dict[str, Any] = field(default_factory=dict)


def benchmark(
    session: Session,
    runs: int = 100,
    warmup: int = 10,
    preset: Optional[str] = None,
    pixels: Optional[np.ndarray] = None,
    seed: int = 0,
) -> BenchResult:
    """Time the session's model: first inference, then invoke-only and end-to-end runs (see module doc).

    `pixels` (raw uint8, one image of the input's shape) replaces the random input of the first input.
    """
    if runs < 1 or warmup < 0:
        raise InferenceError("runs must be at least 1 and warmup at least 0 (got %d, %d)" % (runs, warmup))
    if preset is not None:
        check_preset(preset)
    interpreter = session.interpreter
    inputs = _ports(interpreter.get_input_details())
    outputs = _ports(interpreter.get_output_details())
    rng = np.random.RandomState(seed)
    raws = [_raw_input(p, rng) for p in inputs]
    if pixels is not None:
        if int(np.prod(pixels.shape)) != int(np.prod(inputs[0].shape)):
            raise DatasetError("the bench input has shape %s, the model wants %s" % (pixels.shape, inputs[0].shape))
        raws[0] = np.asarray(pixels, dtype=np.uint8).reshape(inputs[0].shape)
    out = outputs[0]
    set_tensor, get_tensor, invoke = interpreter.set_tensor, interpreter.get_tensor, interpreter.invoke
    clock = time.perf_counter

    def prepare(port: _Port, raw: np.ndarray) -> np.ndarray:
        if raw.dtype != np.uint8:
            return raw
        return to_model_input(raw, port.dtype, port.scale, port.zero_point, preset)

    def end_to_end() -> Tuple[float, float]:
        start = clock()
        for port, raw in zip(inputs, raws):
            set_tensor(port.index, prepare(port, raw))
        invoke_start = clock()
        invoke()
        invoke_s = clock() - invoke_start
        scores = dequantize(get_tensor(out.index), out.scale, out.zero_point)
        scores.argmax(axis=-1)
        return clock() - start, invoke_s

    try:
        first_e2e, first_invoke = end_to_end()
        prediction = top_outputs(dequantize(get_tensor(out.index), out.scale, out.zero_point), 5)
        for _ in range(warmup):
            invoke()
        invoke_times = time_invokes(interpreter, runs)
        e2e_times = [0.0] * runs
        for i in range(runs):
            e2e_times[i] = end_to_end()[0]
    except (ValueError, RuntimeError) as exc:
        raise InferenceError(
            "invoking %s failed on the %s backend: %s"
            % (session.run_model_path, session.backend, " ".join(str(exc).split()))
        ) from None
    return BenchResult(
        schema_version=RESULT_SCHEMA_VERSION,
        kind="bench",
        created=utc_now(),
        runs=runs,
        warmup=warmup,
        preprocess=preset,
        inputs=[
            {"shape": list(p.shape), "dtype": p.dtype.name, "scale": p.scale, "zero_point": p.zero_point}
            for p in inputs
        ],
        latency_ms=latency_stats(invoke_times, first_invoke),
        end_to_end_ms=latency_stats(e2e_times, first_e2e),
        prediction=prediction,
        environment=environment(session),
        **_session_fields(session),
    )


# --- accuracy -------------------------------------------------------------------------------------


def fit_images(images: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """Raw images (N, ...) reshaped to the model's per-image shape when only the layout differs.

    MNIST is (N, 28, 28) but a model may want (1, 28, 28, 1) or (1, 28, 28): same pixels, so reshape.
    """
    per_image = tuple(int(d) for d in input_shape[1:])
    images = np.asarray(images)
    if images.ndim < 2:
        raise DatasetError("images must be an array of shape (N, ...), got shape %s" % (images.shape,))
    if tuple(images.shape[1:]) == per_image:
        return images
    if int(np.prod(images.shape[1:])) == int(np.prod(per_image)) and _same_pixels(images.shape[1:], per_image):
        return images.reshape((images.shape[0],) + per_image)
    raise DatasetError(
        "the images are %s but the model wants %s per image"
        % ("x".join(str(d) for d in images.shape[1:]), "x".join(str(d) for d in per_image)),
        hint="Load the dataset at the model's input size (eval does this from the model's input shape)",
    )


def _same_pixels(a: Sequence[int], b: Sequence[int]) -> bool:
    """True when two shapes differ only by dimensions of size 1 (e.g. 28x28 vs 28x28x1)."""
    return [d for d in a if d != 1] == [d for d in b if d != 1]


class _Batcher:
    """Runs (n, ...) model inputs through an interpreter in fixed batches of `size`."""

    def __init__(self, interpreter: Any, size: int, inp: _Port, out: _Port) -> None:
        self.interpreter, self.size, self.inp, self.out = interpreter, size, inp, out
        self.buffer = np.zeros((size,) + inp.shape[1:], dtype=inp.dtype)

    def run(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if n == self.size:
            batch = x
        else:  # the last, short batch: pad with copies of its last image and ignore their outputs
            self.buffer[:n] = x
            self.buffer[n:] = x[n - 1]
            batch = self.buffer
        self.interpreter.set_tensor(self.inp.index, batch)
        self.interpreter.invoke()
        result = self.interpreter.get_tensor(self.out.index)
        if result.shape[0] != self.size:  # never silently score fewer images than were given
            raise InferenceError("a batch of %d images gave %d outputs" % (self.size, result.shape[0]))
        return result[:n].copy()


def _outputs_agree(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "iu":
        return bool(np.array_equal(a, b))
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5))


def _open_batcher(session: Session, x: np.ndarray, batch_size: int, inp: _Port, out: _Port) -> Tuple[_Batcher, str]:
    """A batched runner if the model allows it on this backend, else batch 1; and why, in words."""
    single = _Batcher(session.interpreter, 1, inp, out)
    if session.backend != "cpu":
        return single, "batch 1: the Edge TPU runs compiled models at batch 1"
    size = min(batch_size, x.shape[0])
    if size <= 1:
        return single, "batch 1"
    compared = min(size, BATCH_CHECK_IMAGES)
    reference = np.concatenate([single.run(x[i : i + 1]) for i in range(compared)])
    try:
        interpreter = session.new_interpreter()
        interpreter.resize_tensor_input(inp.index, [size] + list(inp.shape[1:]))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp.index, x[:size])
        interpreter.invoke()
        # Read the shape after invoke: a model whose reshapes compute their shape at run time has
        # dynamic outputs, whose size allocate_tensors() does not know yet; one with a batch-1 shape
        # baked into a reshape gives (1, classes) here however large the input batch.
        got = tuple(int(d) for d in interpreter.get_tensor(out.index).shape)
        if got != (size,) + out.shape[1:]:
            return single, "batch 1: at batch %d the output is %s, not %s" % (size, got, (size,) + out.shape[1:])
        batched = _Batcher(interpreter, size, inp, out)
        check = batched.run(x[:size])
    except (ValueError, RuntimeError, KeyError) as exc:
        return single, "batch 1: the model cannot be resized to batch %d (%s)" % (
            size,
            " ".join(str(exc).split())[:200],
        )
    if not _outputs_agree(check[:compared], reference):
        return single, "batch 1: at batch %d the outputs of the first %d images differ from batch 1" % (size, compared)
    return batched, "batch %d" % size


def model_input(images: np.ndarray, port: "_Port", preset: Optional[str], preprocessed: bool) -> np.ndarray:
    """Images → values for `port`: raw pixels through `to_model_input`, or already-preprocessed floats
    (npy datasets) quantized with the tensor's own scale and zero point (as they are for a float input)."""
    if not preprocessed:
        return to_model_input(images, port.dtype, port.scale, port.zero_point, preset)
    x = np.asarray(images, dtype=np.float32)
    if port.dtype.kind == "f":
        return x.astype(port.dtype)
    return quantize(x, port.dtype, port.scale, port.zero_point)


def guess_label_offset(num_outputs: int, num_classes: Optional[int] = None) -> int:
    """1 when the model has one output more than the dataset has classes (Coral's ImageNet models put
    "background" at output 0, so they have 1001 outputs for 1000 classes), else 0."""
    if num_classes:
        return 1 if num_outputs == num_classes + 1 else 0
    return 1 if num_outputs == 1001 else 0


def load_eval_data(path: str) -> Tuple[np.ndarray, np.ndarray, Optional[List[str]]]:
    """(images, labels, class names) from an .npz with arrays `images`, `labels` and optionally
    `class_names`: how `python -m edgepipe.runtime eval` gets a dataset on a board without the host's loaders."""
    if not os.path.isfile(path):
        raise DatasetError(
            "evaluation data not found: %s" % path, hint="Give an .npz with `images` and `labels` arrays"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("images", "labels") if k not in data.files]
            if missing:
                raise DatasetError(
                    "%s has no %s array (it has: %s)"
                    % (path, " or ".join(missing), ", ".join(data.files) or "nothing"),
                    hint="Save it with numpy.savez(path, images=..., labels=...)",
                )
            images, labels = data["images"], data["labels"]
            names = [str(n) for n in data["class_names"].tolist()] if "class_names" in data.files else None
    except DatasetError:
        raise
    except (OSError, ValueError) as exc:
        raise DatasetError("%s is not a readable .npz file: %s" % (path, " ".join(str(exc).split()))) from None
    return images, labels, names


@dataclass
class Predictions:
    top_indices: np.ndarray  # (N, k) class indices, best first (label_offset already removed)
    top_scores: np.ndarray  # (N, k) dequantized scores
    num_classes: int
    batch_size: int
    batch_note: str
    seconds: float


def predict(
    session: Session,
    images: np.ndarray,
    preset: Optional[str] = None,
    label_offset: int = 0,
    top_k: int = 5,
    batch_size: int = DEFAULT_BATCH,
    progress: Optional[Progress] = None,
    preprocessed: Optional[bool] = None,
) -> Predictions:
    """Top-k classes for raw uint8 images (N, ...), inputs quantized with the model's own parameters.

    `label_offset` drops the first outputs (e.g. 1 for Coral's ImageNet models, whose index 0 is
    "background"), so class c is output c + label_offset. `preprocessed` (default: True for float
    images) means the images are model-ready floats (an npy dataset) and only get quantized.
    """
    if preset is not None:
        check_preset(preset)
    interpreter = session.interpreter
    inputs = _ports(interpreter.get_input_details())
    outputs = _ports(interpreter.get_output_details())
    if len(inputs) != 1:
        raise DatasetError(
            "%s has %d inputs; accuracy runs need a single image input" % (session.model_path, len(inputs))
        )
    inp, out = inputs[0], outputs[0]
    if len(out.shape) != 2:
        raise DatasetError(
            "%s's first output has shape %s, not (1, classes): not a classifier" % (session.model_path, list(out.shape))
        )
    num_classes = out.shape[1] - label_offset
    if label_offset < 0 or num_classes < 1:
        raise DatasetError("label offset %d does not fit a model with %d outputs" % (label_offset, out.shape[1]))
    images = fit_images(images, inp.shape)
    if preprocessed is None:
        preprocessed = images.dtype.kind == "f"
    n = images.shape[0]
    k = min(top_k, num_classes)
    top_indices = np.zeros((n, k), dtype=np.int64)
    top_scores = np.zeros((n, k), dtype=np.float32)
    start = time.perf_counter()
    try:
        x_first = model_input(images[: max(1, min(batch_size, n))], inp, preset, preprocessed)
        batcher, note = _open_batcher(session, x_first, batch_size, inp, out)
        step = batcher.size
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            x = model_input(images[lo:hi], inp, preset, preprocessed)
            scores = dequantize(batcher.run(x), out.scale, out.zero_point)[:, label_offset:]
            # A stable sort keeps the lowest index first among equal scores, as argmax does: quantized
            # outputs tie often, and an arbitrary tie order would make top-1 differ from run to run.
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            top_indices[lo:hi] = best
            top_scores[lo:hi] = np.take_along_axis(scores, best, axis=1)
            if progress is not None:
                progress(hi, n)
    except (ValueError, RuntimeError) as exc:
        raise InferenceError(
            "invoking %s failed on the %s backend: %s"
            % (session.run_model_path, session.backend, " ".join(str(exc).split()))
        ) from None
    return Predictions(top_indices, top_scores, num_classes, batcher.size, note, time.perf_counter() - start)


@dataclass
class EvalResult(SessionResult):
    dataset: Dict[str, Any]
    n: int
    top1: float
    top5: float
    top_k: int  # top5 is top-min(5, classes)
    correct_top1: int
    num_classes: int
    label_offset: int
    preprocess: Optional[str]  # None: quantized models get raw pixels (uint8) or pixels - 128 (int8)
    per_class: List[Dict[str, Any]]
    confusion_matrix: Optional[List[List[int]]]  # rows: true class, columns: predicted; up to 100 classes
    batch_size: int
    batch_note: str
    seconds: float
    images_per_s: float
    environment: Dict[str, Any] = field(default_factory=dict)


def evaluate(
    session: Session,
    images: np.ndarray,
    labels: np.ndarray,
    preset: Optional[str] = None,
    label_offset: int = 0,
    batch_size: int = DEFAULT_BATCH,
    class_names: Optional[Sequence[str]] = None,
    dataset: Optional[Dict[str, Any]] = None,
    progress: Optional[Progress] = None,
    preprocessed: Optional[bool] = None,
) -> EvalResult:
    """Accuracy of the session's model on raw uint8 `images` with integer `labels` (see `predict`)."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(images):
        raise DatasetError("%d images but %d labels" % (len(images), len(labels)))
    if len(labels) == 0:
        raise DatasetError("the dataset is empty")
    preds = predict(session, images, preset, label_offset, 5, batch_size, progress, preprocessed)
    num_classes = preds.num_classes
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise DatasetError(
            "label %d is outside the model's %d classes (label offset %d)" % (int(bad[0]), num_classes, label_offset),
            hint="Check --label-offset (1 for Coral's 1001-output ImageNet models) and that the dataset fits the model",
        )
    top1_pred = preds.top_indices[:, 0]
    hit1 = top1_pred == labels
    hitk = (preds.top_indices == labels[:, None]).any(axis=1)
    counts = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels[hit1], minlength=num_classes)
    per_class = []
    for c in np.nonzero(counts)[0]:
        per_class.append(
            {
                "class": int(c),
                "name": class_names[c] if class_names is not None and c < len(class_names) else None,
                "n": int(counts[c]),
                "correct": int(correct[c]),
                "top1": round(float(correct[c]) / float(counts[c]), 6),
            }
        )
    confusion = None
    if num_classes <= CONFUSION_MAX_CLASSES:
        matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(matrix, (labels, top1_pred), 1)
        confusion = matrix.tolist()
    n = int(len(labels))
    data = dict(dataset or {})
    data.setdefault("count", n)
    return EvalResult(
        schema_version=RESULT_SCHEMA_VERSION,
        kind="eval",
        created=utc_now(),
        dataset=data,
        n=n,
        top1=round(float(hit1.mean()), 6),
        top5=round(float(hitk.mean()), 6),
        top_k=int(preds.top_indices.shape[1]),
        correct_top1=int(hit1.sum()),
        num_classes=num_classes,
        label_offset=label_offset,
        preprocess=preset,
        per_class=per_class,
        confusion_matrix=confusion,
        batch_size=preds.batch_size,
        batch_note=preds.batch_note,
        seconds=round(preds.seconds, 4),
        images_per_s=round(n / preds.seconds, 2) if preds.seconds > 0 else 0.0,
        environment=environment(session),
        **_session_fields(session),
    )


def python_info() -> Dict[str, str]:
    return {
        "version": platform.python_version(),
        "executable": sys.executable,
        "implementation": platform.python_implementation(),
    }


__all__ = [
    "BenchResult",
    "EvalResult",
    "LatencyStats",
    "Predictions",
    "benchmark",
    "describe_file",
    "environment",
    "evaluate",
    "fit_images",
    "guess_label_offset",
    "latency_stats",
    "load_eval_data",
    "model_input",
    "open_session",
    "predict",
    "python_info",
    "time_invokes",
    "top_outputs",
]
