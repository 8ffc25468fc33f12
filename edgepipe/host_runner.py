"""Host side of `edgepipe bench`, `eval` and `doctor`: the device-side runner plus the host's loaders.

The measuring itself is `edgepipe.runtime.runner` and `.accuracy` (the same code runs on a board),
the session is opened from a `RunOptions` (`edgepipe.runtime.options`); this module only
adds what needs the host: datasets through `edgepipe.data.load_dataset` (sized to the model's
input), images through Pillow, and the compiler in `doctor`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .errors import CompilerNotFound, DatasetError, InputNotFoundError
from .runtime.accuracy import EvalResult, evaluate, guess_label_offset
from .runtime.doctor import DoctorReport, Problem, diagnose
from .runtime.isolated import run_isolated
from .runtime.options import RunOptions
from .runtime.runner import BenchResult, Progress, benchmark
from .runtime.session import Session, open_session


def _input_geometry(session: Session) -> Tuple[int, int, Optional[int]]:
    """(height, width, channels or None) of the model's image input (NHWC or NHW)."""
    shape = [int(d) for d in session.interpreter.get_input_details()[0]["shape"]]
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    if len(shape) == 3:
        return shape[1], shape[2], None
    raise DatasetError("the model's input has shape %s, not an image (N, H, W[, C])" % shape)


def load_image(path: Path, session: Session) -> np.ndarray:
    """One image file as raw uint8 pixels at the model's input size (bilinear resize, whole image)."""
    from PIL import Image, UnidentifiedImageError

    height, width, channels = _input_geometry(session)
    if not path.is_file():
        raise InputNotFoundError("image not found: %s" % path, hint="Check the path")
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels in (None, 1) else "RGB").resize((width, height), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError("cannot decode image %s: %s" % (path, exc), hint="Give a JPEG, PNG or BMP file") from None


def bench_model(
    model: Path,
    options: RunOptions,
    *,
    preset: Optional[str] = None,
    image: Optional[Path] = None,
) -> BenchResult:
    """Latency of `model`, measured in a child process (`runtime.isolated`): a runtime crash is exit 23."""
    return run_isolated(str(model), _bench_here, model, options, preset, image)  # type: ignore[no-any-return]


def _bench_here(
    model: Path, options: RunOptions, preset: Optional[str], image: Optional[Path], progress: Progress
) -> BenchResult:
    session = open_session(str(model), options)
    pixels = load_image(image, session) if image is not None else None
    result = benchmark(session, runs=options.runs, warmup=options.warmup, preset=preset, pixels=pixels)
    if image is not None:
        result.notes.append("input: %s resized to the model's input" % image)
    return result


def eval_model(
    model: Path,
    dataset: str,
    options: RunOptions,
    *,
    split: str = "test",
    data_dir: Optional[Path] = None,
    limit: Optional[int] = None,
    labels: Optional[Path] = None,
    preset: Optional[str] = None,
    label_offset: Optional[int] = None,
    batch_size: int = 64,
    progress: Optional[Progress] = None,
) -> EvalResult:
    """Accuracy of `model` on a dataset spec (`mnist`, `cifar10`, `images:DIR`, `npy:FILE` + `labels`).

    Images are loaded at the model's input size. `label_offset=None` guesses it (1 when the model has
    one output more than the dataset has classes, as Coral's 1001-output ImageNet models do).
    It all runs in a child process (`runtime.isolated`): a crash of the TFLite runtime is exit 23.
    """
    work = (model, dataset, options, split, data_dir, limit, labels, preset, label_offset, batch_size)
    return run_isolated(str(model), _eval_here, *work, progress=progress)  # type: ignore[no-any-return]


def _eval_here(
    model: Path,
    dataset: str,
    options: RunOptions,
    split: str,
    data_dir: Optional[Path],
    limit: Optional[int],
    labels: Optional[Path],
    preset: Optional[str],
    label_offset: Optional[int],
    batch_size: int,
    progress: Progress,
) -> EvalResult:
    from .data import load_dataset_for_input

    session = open_session(str(model), options)
    height, width, _ = _input_geometry(session)
    ds = load_dataset_for_input(dataset, (height, width), split=split, data_dir=data_dir, limit=limit)
    targets = ds.labels
    if labels is not None:
        targets = _load_labels(labels, len(ds))
    if targets is None:
        raise DatasetError(
            "dataset %s has no labels, so its accuracy cannot be measured" % ds.name,
            hint="Pass --labels FILE.npy (integer class per sample) with an npy: dataset",
        )
    if label_offset is None:
        outputs = int(session.interpreter.get_output_details()[0]["shape"][-1])
        label_offset = guess_label_offset(outputs, len(ds.class_names) or None)
    layout = None  # set when npy: data given in an ONNX model's layout (NCHW) is transposed, as convert does
    if dataset.startswith("npy:"):
        from .convert.calibration import to_model_layout

        shape = [int(d) for d in session.interpreter.get_input_details()[0]["shape"]]
        images, layout = to_model_layout(model, ds.images, shape)
        if layout:
            ds = replace(ds, images=images)
    description = {
        "spec": dataset,
        "name": ds.name,
        "split": ds.split,
        "source": ds.source,
        "count": len(ds),
        "limit": limit,
        "sampling": ds.sampling or "all %d images" % len(ds),
        "checksum_verified": ds.checksum_verified,
        "preprocessed": ds.preprocessed,
    }
    if layout:
        description["layout"] = layout
    result = evaluate(
        session,
        ds.images,
        targets,
        preset=preset,
        label_offset=label_offset,
        batch_size=batch_size,
        class_names=ds.class_names or None,
        dataset=description,
        progress=progress,
        preprocessed=ds.preprocessed,
    )
    if layout:
        result.notes.append("dataset " + layout)
    return result


def _load_labels(path: Path, count: int) -> np.ndarray:
    if not path.is_file():
        raise InputNotFoundError("labels file not found: %s" % path, hint="Give an .npy of integer labels")
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError("%s is not a readable .npy file (%s)" % (path, exc)) from None
    if labels.dtype.kind not in "iu":
        raise DatasetError("%s holds %s values; labels must be integers" % (path, labels.dtype))
    labels = labels.reshape(-1)
    if len(labels) < count:
        raise DatasetError("%s has %d labels for %d samples" % (path, len(labels), count))
    return labels[:count]


def host_doctor(include_tensorflow: bool = False, compiler: Optional[str] = None) -> DoctorReport:
    """The device-side doctor plus the host's edgetpu_compiler (x86-64 Linux only)."""
    from .compile import find_compiler

    report = diagnose(include_tensorflow=include_tensorflow)
    try:
        info = find_compiler(compiler)
    except CompilerNotFound as exc:
        report.compiler = {"found": False, "path": None, "version": None, "source": None, "error": str(exc)}
        report.add_problem(Problem("warning", "no Edge TPU compiler: %s" % str(exc).rstrip("."), exc.hint))
    else:
        report.compiler = {
            "found": True,
            "path": info.path,
            "version": info.version,
            "source": info.source,
            "error": None,
        }
    return report


__all__ = ["bench_model", "eval_model", "host_doctor", "load_image"]
