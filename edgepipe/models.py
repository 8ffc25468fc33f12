"""Reference models the suites and tests build. TensorFlow/Keras is imported inside the functions only."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import numpy as np


def quiet_tensorflow() -> None:
    """Import TensorFlow/Keras without its C++ start-up chatter (CUDA probing on a CPU-only host, CPU
    feature notes), which would bury edgepipe's own output. absl prints part of it before any log
    level applies, so the native stderr is muted for the import only; Python errors still raise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # a user's own setting wins
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def build_seed_mnist_model(compile: bool = True) -> Any:
    """The seed notebook's MNIST classifier: 28x28 float input (pixel / 255, unknown batch), 10 logits.

    InputLayer(28, 28) → Reshape(28, 28, 1) → Conv2D(12, 3x3, relu) → MaxPool(2) → Flatten → Dense(10).
    """
    quiet_tensorflow()
    import keras

    model = keras.Sequential(
        [
            keras.layers.InputLayer(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(12, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ],
        name="seed_mnist",
    )
    if compile:
        model.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    return model


def train_seed_mnist_model(
    images: np.ndarray, labels: np.ndarray, epochs: int = 1, seed: int = 0, model: Optional[Any] = None
) -> Any:
    """Train the seed model on raw uint8 MNIST pixels (scaled by 1/255, the `unit` preprocessing)."""
    quiet_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    model = model if model is not None else build_seed_mnist_model()
    model.fit(images.astype(np.float32) / 255.0, labels, epochs=epochs, batch_size=64, verbose=0)
    return model


__all__ = ["build_seed_mnist_model", "quiet_tensorflow", "train_seed_mnist_model"]
