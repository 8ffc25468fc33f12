"""CIFAR-10: the JPEG test set, from its tar (decoded once, cached as .npz) or an extracted folder."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import DatasetError, EdgepipeError
from ..runtime.report import write_bytes_atomic
from .checksums import read_bytes, verify_file
from .dataset import Dataset
from .images import decode_all, load_class_folders
from .registry import cache_dir, find_data_dir, registry_entry
from .sampling import balanced_indices, describe_sample


def _cifar_members(tar: tarfile.TarFile, class_names: List[str], path: Path) -> List[Tuple[int, tarfile.TarInfo]]:
    members = []
    for m in tar.getmembers():
        parts = m.name.split("/")
        if not m.isfile() or len(parts) != 3 or parts[0] != "test":
            continue
        if parts[1] not in class_names:
            raise DatasetError("%s has an unknown class folder %r" % (path, parts[1]))
        members.append((class_names.index(parts[1]), m))
    members.sort(key=lambda cm: (cm[0], cm[1].name))
    return members


def _decode_cifar_tar(
    data: bytes, path: Path, class_names: List[str], limit: Optional[int], seed: int = 0
) -> Tuple[np.ndarray, np.ndarray, Optional[str]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = _cifar_members(tar, class_names, path)
            sampling = None
            if limit is not None and limit < len(members):  # a seeded class-balanced sample, before decoding
                every = np.array([c for c, _ in members])
                index = balanced_indices(every, limit, seed)
                members = [members[i] for i in index]
                sampling = describe_sample(every[index], every, seed)
            labels = np.array([c for c, _ in members], dtype=np.int64)
            items = [(tar.extractfile(m).read(), "%s:%s" % (path, m.name)) for _, m in members]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError("%s is not a readable tar file (%s)" % (path, exc), hint="Fetch it again") from None
    if not items:
        raise DatasetError("%s holds no test/<class>/*.jpg images" % path)
    return decode_all(items, "decoding CIFAR-10 JPEGs", None, False, str(path)), labels, sampling


def _read_npz(path: Path) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return npz["images"], npz["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # absent or damaged: decode again


def _write_npz(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, images=images, labels=labels)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(str(path), buf.getvalue())
    except (OSError, EdgepipeError):
        pass  # a cache that cannot be written only makes the next load slower


def _load_cifar_tar(
    path: Path,
    spec: Dict[str, Any],
    class_names: List[str],
    limit: Optional[int],
    image_size: Optional[Tuple[int, int]],
    seed: int,
) -> Tuple[np.ndarray, np.ndarray, Optional[str]]:
    data = read_bytes(path)
    verify_file(path, spec, data)
    if limit is not None and limit < spec["count"]:
        images, labels, sampling = _decode_cifar_tar(data, path, class_names, limit, seed)
    else:
        # Decoding 10,000 JPEGs takes seconds; the decoded array is cached, keyed by the tar's content.
        cached = cache_dir() / "decoded" / ("cifar10-test-%s.npz" % hashlib.sha256(data).hexdigest()[:16])
        hit = _read_npz(cached)
        sampling = None
        if hit is not None and len(hit[0]) == spec["count"]:
            images, labels = hit
        else:
            images, labels, _ = _decode_cifar_tar(data, path, class_names, None)
            _write_npz(cached, images, labels)
    if image_size is not None:
        images = decode_all(
            [(img, "%s[%d]" % (path, i)) for i, img in enumerate(images)],
            "resizing CIFAR-10",
            image_size,
            False,
            str(path),
        )
    return images, labels, sampling


def load_cifar10(
    split: str, data_dir: Optional[Path], limit: Optional[int], image_size: Optional[Tuple[int, int]], seed: int = 0
) -> Dataset:
    """The CIFAR-10 test set; `limit` keeps a seeded class-balanced sample (`Dataset.sampling` says so)."""
    entry = registry_entry("cifar10")
    class_names = list(entry["class_names"])
    if split == "train":
        raise DatasetError(
            "cifar10 in the registry is the test set only", hint="Use split='test' (or 'all', the same 10,000 images)"
        )
    root = find_data_dir(data_dir)
    if root is None:
        raise DatasetError(
            "no data directory for cifar10 (none given, $EDGEPIPE_DATA unset, nothing in %s)" % (cache_dir() / "data"),
            hint="Pass --data-dir DIR with DIR/cifar10/cifar10-test-jpg.tar",
        )
    spec = entry["files"][0]
    tar_path = root / "cifar10" / spec["name"]
    if tar_path.is_file():
        images, labels, sampling = _load_cifar_tar(tar_path, spec, class_names, limit, image_size, seed)
        return Dataset("cifar10", split, images, labels, class_names, str(tar_path), False, True, sampling)
    folder = root / "cifar10" / "test"
    if folder.is_dir():
        ds = load_class_folders(folder, limit, image_size, crop=False, seed=seed)
        if ds.class_names != class_names:
            raise DatasetError("%s has class folders %s, expected %s" % (folder, ds.class_names, class_names))
        return replace(ds, name="cifar10", split=split)
    raise DatasetError(
        "cifar10 not found in %s (neither %s nor %s)" % (root, tar_path.name, "test/<class>/"),
        hint="Put cifar10-test-jpg.tar in %s" % (root / "cifar10"),
    )
