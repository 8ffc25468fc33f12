"""`load_dataset` by spec (mnist, cifar10, images:DIR, npy:FILE), sized for a model, and seeded subsets.

`limit` keeps a seeded class-balanced sample of N (`sampling.balanced_indices`; cifar10 is stored class
by class, so the first N would be one class), and `Dataset.sampling` says how it was drawn; only npy
data, which has no labels, keeps its first N. `select_samples` is a seeded random subset.
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
from .sampling import balanced_indices, describe_sample, first_n_note


def load_npy(path: Path, limit: Optional[int]) -> Dataset:
    if not path.is_file():
        raise InputNotFoundError("npy data file not found: %s" % path, hint="npy:FILE needs an existing .npy file")
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
    sampling = None
    if limit is not None and limit < array.shape[0]:
        kept, sampling = first_n_note(limit, array.shape[0])
        array = array[:kept]
    images = np.asarray(array, dtype=np.float32)
    return Dataset("npy:%s" % path, "all", images, None, [], str(path), True, False, sampling)


def load_dataset(
    spec: str,
    *,
    split: str = "test",
    data_dir: Optional[Path] = None,
    limit: Optional[int] = None,
    image_size: Optional[Tuple[int, int]] = None,
    seed: int = 0,
) -> Dataset:
    """Load a dataset by spec (see the module docstring). `limit` keeps a class-balanced sample drawn
    with `seed` (npy: the first N); `Dataset.sampling` says how."""
    if split not in ("train", "test", "all"):
        raise DatasetError("unknown split %r" % split, hint="Use train, test or all")
    if limit is not None and limit < 1:
        raise DatasetError("limit must be at least 1, got %d" % limit)
    if image_size is not None:
        image_size = (int(image_size[0]), int(image_size[1]))
    kind, _, arg = spec.partition(":")
    if kind == "images" and arg:
        return load_images(Path(arg).expanduser(), limit, image_size, seed)
    if kind == "npy" and arg:
        return load_npy(Path(arg).expanduser(), limit)
    if spec == "mnist":
        ds = load_mnist(split, data_dir)
        if image_size is not None and tuple(ds.images.shape[1:3]) != image_size:
            raise DatasetError("mnist images are 28x28; resizing them to %s is not supported" % (image_size,))
        if limit is None or limit >= len(ds):
            return ds
        index = balanced_indices(ds.labels, limit, seed)
        sampling = describe_sample(ds.labels[index], ds.labels, seed)
        return replace(ds, images=ds.images[index], labels=ds.labels[index], sampling=sampling)
    if spec == "cifar10":
        return load_cifar10(split, data_dir, limit, image_size, seed)
    registry_entry(spec)  # raises the "unknown dataset" error with the list of names
    raise DatasetError("dataset %r has no loader" % spec)


def load_dataset_for_input(
    spec: str,
    size: Tuple[int, int],
    *,
    split: str = "test",
    data_dir: Optional[Path] = None,
    limit: Optional[int] = None,
    seed: int = 0,
) -> Dataset:
    """`load_dataset` for a model whose input is `size` (height, width): decoded images (`images:DIR`,
    cifar10) are resized to it; MNIST and npy arrays come as they are (the runner reshapes them)."""
    resizable = spec.partition(":")[0] in ("images", "cifar10")
    image_size = size if resizable else None
    return load_dataset(spec, split=split, data_dir=data_dir, limit=limit, image_size=image_size, seed=seed)


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
