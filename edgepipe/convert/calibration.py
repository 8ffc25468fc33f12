"""Calibration samples for `edgepipe convert`: loaded, seeded, preprocessed and shaped like the
converted model's input.

The converted model's layout is what counts. An ONNX model from PyTorch takes NCHW; onnx2tf turns
its input into NHWC, so `npy:` data given in the ONNX layout is transposed here (and the report says
so). Data edgepipe loads itself (mnist, cifar10, images:DIR) is NHWC already.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import DatasetError, InputNotFoundError
from ..runtime.preprocess import to_float


def to_converted_layout(
    samples: np.ndarray, shape: List[int], source_shape: Optional[List[int]], layout_perm: Optional[List[int]]
) -> Tuple[np.ndarray, bool]:
    """Samples (N, ...) given in the source model's layout, transposed to the converted model's.

    Only when they fit the source input and not the converted one: data that already fits the
    converted input (or fits both, e.g. a 3x3x3 input) is taken as it is. Returns (samples, transposed)."""
    if not layout_perm or source_shape is None or list(layout_perm) == sorted(layout_perm):
        return samples, False
    have = tuple(samples.shape[1:])
    if have == tuple(shape[1:]) or have != tuple(source_shape[1:]):
        return samples, False
    return np.transpose(samples, list(layout_perm)), True


def layout_text(layout_perm: List[int]) -> str:
    """'NCHW → NHWC' for the usual 4-D case, else the permutation itself."""
    if len(layout_perm) == 4 and list(layout_perm) == [0, 2, 3, 1]:
        return "NCHW → NHWC"
    if len(layout_perm) == 3 and list(layout_perm) == [0, 2, 1]:
        return "NCW → NWC"
    return "axes %s" % list(layout_perm)


def recorded_layout(model: Path) -> Optional[Dict[str, Any]]:
    """The input layout `edgepipe convert` recorded for a model made from ONNX (in OUT.json beside it, or
    beside the model it was compiled from), when that changed the layout; None otherwise."""
    stem = model.stem[: -len("_edgetpu")] if model.stem.endswith("_edgetpu") else model.stem
    for report in (model.with_suffix(".json"), model.with_name(stem + ".json")):
        try:
            source = json.loads(report.read_text()).get("source") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(source, dict) and source.get("layout_changed") and source.get("onnx_input_shape"):
            return source
    return None


def to_model_layout(model: Path, images: np.ndarray, shape: List[int]) -> Tuple[np.ndarray, Optional[str]]:
    """npy data for `model` (input `shape`), transposed when it was given in the ONNX model's layout that
    convert recorded, with a sentence saying so; otherwise the data as it is and None (host eval's npy: data;
    a deploy bundle takes only labelled datasets, which edgepipe loads NHWC itself)."""
    source = recorded_layout(model)
    if source is None:
        return images, None
    given = tuple(images.shape[1:])
    moved, transposed = to_converted_layout(images, shape, source["onnx_input_shape"], source["layout_perm"])
    if not transposed:
        return images, None
    perm = layout_text(source["layout_perm"])
    return moved, "given in the ONNX model's layout %s, transposed (%s) to its input %s" % (given, perm, shape)


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
    from ..data import calibration_split, load_dataset

    if count < 1:
        raise DatasetError("--calib-samples must be at least 1, got %d" % count)
    kind, _, arg = spec.partition(":")
    if kind == "images" and arg:
        from ..data import IMAGE_SUFFIXES

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
    source_shape: Optional[List[int]] = None,
    layout_perm: Optional[List[int]] = None,
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Seeded calibration samples as float32 model input, and their description for the report.

    `source_shape`/`layout_perm`: the source model's input shape and the axes permutation from it to
    the converted input (ONNX: NCHW → NHWC), for `npy:` data given in the source layout."""
    from ..data import calibration_split, load_dataset, select_samples

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
    try:
        x = chosen.images.astype(np.float32) if ds.preprocessed else to_float(chosen.images, preprocess)
    except ValueError:  # a per-channel preset (caffe: three means) on images with another channel count
        raise DatasetError(
            "--preprocess %s does not fit the images of %s (shape %s)"
            % (preprocess, spec, _shape_text(tuple(chosen.images.shape[1:]))),
            hint="Use the preprocessing the model was trained with (caffe is for RGB images)",
        ) from None
    x, transposed = to_converted_layout(x.astype(np.float32), static_shape, source_shape, layout_perm)
    x = np.ascontiguousarray(_fit_to_input(x, static_shape, spec))
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
    if transposed:
        info["layout"] = "given in the source model's layout %s, transposed (%s) to the converted input %s" % (
            _shape_text(tuple(source_shape[1:])),
            layout_text(layout_perm),
            _shape_text(tuple(static_shape[1:])),
        )
    if count > len(ds):
        info["note"] = "asked for %d samples, the dataset has %d: all used" % (count, len(ds))
    return x, info
