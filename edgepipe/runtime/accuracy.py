"""Accuracy measurement on an open `session.Session`: `evaluate` (and `predict`, its top-k part).

`evaluate` gives top-1/top-5, per-class accuracy and (for up to 100 classes) a confusion
matrix. On the CPU, images go through in batches when the model can be resized to batch B; the first
8 images of the first batch are checked against batch-1 runs of the same images (and the output must
really have B rows after an invoke), and any failure falls back to batch 1, saying why in `batch_note`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DatasetError, InferenceError, InputNotFoundError
from .preprocess import check_preset, dequantize, quantize, to_model_input
from .report import header
from .runner import Port, Progress, SessionResult, environment, ports, session_fields
from .session import Session

CONFUSION_MAX_CLASSES = 100
DEFAULT_BATCH = 64
BATCH_CHECK_IMAGES = 8  # images run both at batch 1 and batched before batching is trusted
# Predictions "collapse" when this share of the images gets one class although fewer than half as many
# really are of it: the usual sign of a wrong --preprocess (every input looks alike to the model).
# Measured: MLPerf's ResNet-8 fed pixel/255 puts 88.5 % of a balanced CIFAR-10 sample in one class.
COLLAPSE_SHARE = 0.75
COLLAPSE_MIN_IMAGES = 20


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

    def __init__(self, interpreter: Any, size: int, inp: Port, out: Port) -> None:
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


def _open_batcher(session: Session, x: np.ndarray, batch_size: int, inp: Port, out: Port) -> Tuple[_Batcher, str]:
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


def model_input(images: np.ndarray, port: Port, preset: Optional[str], preprocessed: bool) -> np.ndarray:
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
        raise InputNotFoundError(
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
    inputs = ports(interpreter.get_input_details())
    outputs = ports(interpreter.get_output_details())
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
    warnings: List[str] = field(default_factory=list)  # e.g. predictions collapsed onto one class


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
    warnings = []
    collapse = collapse_warning(labels, top1_pred, class_names)
    if collapse:
        warnings.append(collapse)
    data = dict(dataset or {})
    data.setdefault("count", n)
    return EvalResult(
        **header("eval"),
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
        warnings=warnings,
        **session_fields(session),
    )


def collapse_warning(labels: np.ndarray, predicted: np.ndarray, class_names: Optional[Sequence[str]] = None) -> str:
    """A warning when nearly every prediction is one class though the labels are not ("" otherwise)."""
    n = len(labels)
    if n < COLLAPSE_MIN_IMAGES:
        return ""
    counts = np.bincount(predicted)
    top = int(np.argmax(counts))
    share = float(counts[top]) / n
    truly = np.bincount(labels, minlength=top + 1)
    if share < COLLAPSE_SHARE or float(truly[top]) / n >= share / 2:
        return ""
    name = " (%s)" % class_names[top] if class_names is not None and top < len(class_names) else ""
    return (
        "predictions collapsed: %.0f %% of the %d images were predicted as class %d%s, though the labels spread "
        "over %d classes; the input preprocessing (--preprocess) is probably wrong for this model"
        % (100 * share, n, top, name, int(np.count_nonzero(np.bincount(labels))))
    )


__all__ = [
    "EvalResult",
    "Predictions",
    "collapse_warning",
    "evaluate",
    "fit_images",
    "guess_label_offset",
    "load_eval_data",
    "model_input",
    "predict",
]
