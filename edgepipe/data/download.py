"""Downloading a registry dataset: mirrors in order, every file verified, each written atomically."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import DatasetError, DatasetUnreachableError, OutputWriteError
from ..runtime.report import write_bytes_atomic
from .checksums import check_bytes, verify_file
from .progress import progress
from .registry import cache_dir, registry_entry

# Replaces every registry mirror with <base>/<file> (as --base-url does): a local mirror, or a test's
# server on 127.0.0.1. The files are checked against the registry's checksums all the same.
BASE_URL_ENV = "EDGEPIPE_DATA_BASE_URL"


def _fetch(url: str, what: str, timeout: float = 60.0) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "edgepipe"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks = []
        with progress(total, "downloading %s" % what, unit_bytes=True) as advance:
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
    `base_url` (else $EDGEPIPE_DATA_BASE_URL) replaces them (`<base_url>/<file>`). A file that fails
    verification is never written, and a folder this call created is removed again if nothing landed
    in it. When no mirror could be reached for a file (and none served a corrupt one) the error is a
    `DatasetUnreachableError`.
    """
    started = time.monotonic()
    base_url = base_url or os.environ.get(BASE_URL_ENV) or None
    entry = registry_entry(name, purpose="download")
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
                method = verify_file(target, spec)
                size = target.stat().st_size
                done.append(DownloadedFile(spec["name"], str(target), "already present", None, size, method))
                continue
            except DatasetError:
                pass  # a bad copy is replaced below (atomically, only by a verified one)
        urls = [base_url.rstrip("/") + "/" + spec["name"]] if base_url else [u["url"] for u in spec["urls"]]
        failures = []
        corrupt = False
        for url in urls:
            try:
                data = _fetch(url, spec["name"])
                method = check_bytes(data, spec, "%s from %s" % (spec["name"], url))
            except urllib.error.HTTPError as exc:
                failures.append("%s: HTTP %d %s" % (url, exc.code, exc.reason))
                continue
            except (urllib.error.URLError, OSError, ValueError) as exc:
                failures.append("%s: %s" % (url, getattr(exc, "reason", None) or exc))
                continue
            except DatasetError as exc:
                failures.append("%s: %s" % (url, exc))
                corrupt = True
                continue
            write_bytes_atomic(str(target), data)
            done.append(DownloadedFile(spec["name"], str(target), "downloaded", url, len(data), method, failures))
            break
        else:
            error = DatasetError if corrupt else DatasetUnreachableError
            raise error(
                "could not download %s: %s" % (spec["name"], "; ".join(failures)),
                hint="Check the network, or copy the file into %s by hand" % folder,
            )
    return done
