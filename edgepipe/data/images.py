"""Images: PIL decode, resize and centre-crop; `images:DIR` (class folders, or labels.csv)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import DatasetError, InputNotFoundError
from .dataset import Dataset
from .progress import progress
from .sampling import balanced_indices, describe_sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
IMAGENET_CROP_FRACTION = 0.875  # resize the shorter side to size/0.875, then centre-crop (ImageNet eval)


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


def decode_all(
    items: List[Tuple[Any, str]], description: str, image_size: Optional[Tuple[int, int]], crop: bool, where: str
) -> np.ndarray:
    decoded = []
    with progress(len(items), description) as advance:
        for item, what in items:
            decoded.append(_decode_image(item, what, image_size, crop))
            advance(1)
    return _stack(decoded, where)


def _image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_class_folders(
    folder: Path, limit: Optional[int], image_size: Optional[Tuple[int, int]], crop: bool = True, seed: int = 0
) -> Dataset:
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: List[Tuple[Path, int]] = [(f, i) for i, d in enumerate(class_dirs) for f in _image_files(d)]
    if not files:
        raise DatasetError(
            "no images in %s" % folder,
            hint="Use one sub-folder per class holding %s files, or a folder with labels.csv"
            % "/".join(IMAGE_SUFFIXES[:3]),
        )
    files, sampling = _sample(files, limit, seed)
    images = decode_all([(f, str(f)) for f, _ in files], "decoding images", image_size, crop, str(folder))
    labels = np.array([c for _, c in files], dtype=np.int64)
    names = [d.name for d in class_dirs]
    return Dataset("images:%s" % folder, "all", images, labels, names, str(folder), False, False, sampling)


def _sample(items: List[Tuple[Any, int]], limit: Optional[int], seed: int) -> Tuple[List[Any], Optional[str]]:
    """(item, class) pairs cut to a seeded class-balanced `limit`, and how, in words (None: all kept)."""
    if limit is None or limit >= len(items):
        return items, None
    labels = np.array([c for _, c in items], dtype=np.int64)
    index = balanced_indices(labels, limit, seed)
    return [items[i] for i in index], describe_sample(labels[index], labels, seed)


def _load_labels_csv(folder: Path, limit: Optional[int], image_size: Optional[Tuple[int, int]], seed: int) -> Dataset:
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
    rows, sampling = _sample(rows, limit, seed)
    paths = []
    for name, _ in rows:
        candidates = [folder / name, folder / "images" / name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DatasetError("%s lists %s, which is in neither %s nor %s/images" % (csv_path, name, folder, folder))
        paths.append(found)
    images = decode_all([(p, str(p)) for p in paths], "decoding images", image_size, True, str(folder))
    labels = np.array([c for _, c in rows], dtype=np.int64)
    names = _class_names_for(folder, labels)
    return Dataset("images:%s" % folder, "all", images, labels, names, str(folder), False, False, sampling)


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


def load_images(folder: Path, limit: Optional[int], image_size: Optional[Tuple[int, int]], seed: int = 0) -> Dataset:
    if not folder.is_dir():
        raise InputNotFoundError("image folder not found: %s" % folder, hint="images:DIR needs an existing folder")
    if (folder / "labels.csv").is_file():
        return _load_labels_csv(folder, limit, image_size, seed)
    return load_class_folders(folder, limit, image_size, seed=seed)
