"""`load_dataset` by spec (mnist, cifar10, images:DIR, npy:FILE), sized for a model, and seeded subsets.

`limit` keeps the first N samples in file order (MNIST: IDX order; cifar10: class by class, so a
limit of 100 gives only airplanes); `select_samples` is the seeded random subset.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import DatasetError, InputNotFoundError
from .cifar10 import load_cifar10
from .dataset import Dataset
from .images import load_images
from .mnist import load_mnist
from .registry import registry_entry


def load_npy(path: Path, limit: Optional[int]) -> Dataset:
    if not path.is_file():
        raise InputNotFoundError("calibration array not found: %s" % path, hint="npy:FILE needs an existing .npy file")
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DatasetError(
            "%s is not a readable .npy file (%s)" % (path, exc), hint="Save it with numpy.save"
        ) from None
    if array.dtype.kind != "f":
        raise DatasetError(
            "%s holds %s values; npy: data must be float, already preprocessed" % (path, array.dtype),
            hint="Preprocess it to float32 first, or use images:DIR / a registry dataset with --preprocess",
        )
    if array.ndim < 2 or array.shape[0] == 0:
        raise DatasetError("%s has shape %s; expected (samples, ...) with at least one sample" % (path, array.shape))
    if limit is not None:
        array = array[:limit]
    return Dataset("npy:%s" % path, "all", np.asarray(array, dtype=np.float32), None, [], str(path), True, False)


def load_dataset(
    spec: str,
    *,
    split: str = "test",
    data_dir: Optional[Path] = None,
    limit: Optional[int] = None,
    image_size: Optional[Tuple[int, int]] = None,
    seed: int = 0,
) -> Dataset:
    """Load a dataset by spec (see the module docstring). `limit` keeps the first N in file order.

    `seed` is accepted for API stability; no loader samples today (use `select_samples`).
    """
    if split not in ("train", "test", "all"):
        raise DatasetError("unknown split %r" % split, hint="Use train, test or all")
    if limit is not None and limit < 1:
        raise DatasetError("limit must be at least 1, got %d" % limit)
    if image_size is not None:
        image_size = (int(image_size[0]), int(image_size[1]))
    kind, _, arg = spec.partition(":")
    if kind == "images" and arg:
        return load_images(Path(arg).expanduser(), limit, image_size)
    if kind == "npy" and arg:
        return load_npy(Path(arg).expanduser(), limit)
    if spec == "mnist":
        ds = load_mnist(split, data_dir)
        if image_size is not None and tuple(ds.images.shape[1:3]) != image_size:
            raise DatasetError("mnist images are 28x28; resizing them to %s is not supported" % (image_size,))
        return replace(ds, images=ds.images[:limit], labels=ds.labels[:limit]) if limit is not None else ds
    if spec == "cifar10":
        return load_cifar10(split, data_dir, limit, image_size)
    registry_entry(spec)  # raises the "unknown dataset" error with the list of names
    raise DatasetError("dataset %r has no loader" % spec)


def load_dataset_for_input(
    spec: str,
    size: Tuple[int, int],
    *,
    split: str = "test",
    data_dir: Optional[Path] = None,
    limit: Optional[int] = None,
) -> Dataset:
    """`load_dataset` for a model whose input is `size` (height, width): decoded images (`images:DIR`,
    cifar10) are resized to it; MNIST and npy arrays come as they are (the runner reshapes them)."""
    resizable = spec.partition(":")[0] in ("images", "cifar10")
    return load_dataset(spec, split=split, data_dir=data_dir, limit=limit, image_size=size if resizable else None)


def select_samples(ds: Dataset, n: int, seed: int) -> Dataset:
    """A deterministic, seeded random subset of `n` samples (all of them, in order, if n >= len)."""
    if n < 1:
        raise DatasetError("need at least 1 sample, got %d" % n)
    total = len(ds)
    if total == 0:
        raise DatasetError("dataset %s is empty" % ds.name)
    if n >= total:
        return ds
    index = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    labels = ds.labels[index] if ds.labels is not None else None
    return replace(ds, images=ds.images[index], labels=labels)
