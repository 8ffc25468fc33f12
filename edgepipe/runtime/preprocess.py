"""Input preprocessing: raw uint8 pixels → what a model's input tensor expects.

A preprocessing is an affine map per channel, `float = (pixel - mean) / std`, named by a preset.
Because it is affine, a quantized input (uint8 or int8, with the model's own scale and zero point)
is computed from the same preset without guessing: q = round(float / scale + zero_point).

Presets (the conventions the suites and Coral's models use):
- `unit`:      pixel / 255, range [0, 1] (the seed MNIST notebook)
- `raw`:       pixel as float, range [0, 255] (MLPerf Tiny ResNet-8)
- `symmetric`: (pixel - 127.5) / 127.5, range [-1, 1] (MobileNet, Inception)
- `caffe`:     RGB→BGR, minus the ImageNet channel means (keras.applications ResNet50)
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import DatasetError

PRESETS: Dict[str, Tuple[Sequence[float], Sequence[float]]] = {
    "unit": ((0.0,), (255.0,)),
    "raw": ((0.0,), (1.0,)),
    "symmetric": ((127.5,), (127.5,)),
    # Means in BGR order, applied after the channel flip.
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),
}


def check_preset(name: str) -> str:
    if name not in PRESETS:
        raise DatasetError(
            "unknown preprocessing %r" % name, hint="Use one of: %s" % ", ".join(sorted(PRESETS))
        )
    return name


def to_float(pixels: np.ndarray, preset: str) -> np.ndarray:
    """Raw pixels (any integer or float array, channels last) → float32 model input."""
    mean, std = PRESETS[check_preset(preset)]
    x = np.asarray(pixels, dtype=np.float32)
    if preset == "caffe":
        x = x[..., ::-1]
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def quantize(values: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float values → integer tensor values with the tensor's own quantization parameters."""
    info = np.iinfo(dtype)
    if not scale:
        raise DatasetError("the model's input tensor is %s but has no quantization scale" % np.dtype(dtype).name)
    q = np.round(values / np.float32(scale) + np.float32(zero_point))
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if not scale:
        return values.astype(np.float32)
    return (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def to_model_input(
    pixels: np.ndarray, dtype: np.dtype, scale: float = 0.0, zero_point: int = 0, preset: Optional[str] = None
) -> np.ndarray:
    """Raw pixels → input tensor values.

    With `preset=None` a quantized model gets the pixels as they are (uint8) or shifted by 128
    (int8): the convention of Coral's models and of edgepipe's `edgetpu` conversions of
    `unit`/`raw` models. A float model needs a preset.
    """
    dtype = np.dtype(dtype)
    if preset is None:
        if dtype == np.uint8:
            return np.asarray(pixels, dtype=np.uint8)
        if dtype == np.int8:
            return (np.asarray(pixels, dtype=np.int16) - 128).astype(np.int8)
        preset = "unit"
    x = to_float(pixels, preset)
    if dtype.kind == "f":
        return x.astype(dtype)
    return quantize(x, dtype, scale, zero_point)
