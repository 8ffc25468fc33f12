"""The official MNIST files for the suite and `eval`: found, else fetched into the cache (verified).

The seed notebook's `mnist.load_data()` downloads MNIST once into a cache and checks its hash; this
does the same with the registry's four IDX files: each is checked against the registry's sha256 (or
md5) before anything is kept, and all four are staged in a private folder and moved into
`<cache>/data/mnist/` only when every one verified, so a failed or corrupt download leaves nothing.

`--offline` or `EDGEPIPE_OFFLINE=1` forbids the download; so does having no network, which is not an
error (the caller falls back to the embedded data and says its figures are not comparable). A
checksum mismatch is an error (exit 6).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import DatasetUnreachableError, OutputWriteError
from .download import BASE_URL_ENV, fetch_dataset
from .registry import cache_dir, find_data_dir, registry_entry

OFFLINE_ENV = "EDGEPIPE_OFFLINE"


def offline_requested(flag: bool = False) -> bool:
    """True with --offline, or EDGEPIPE_OFFLINE set to anything but "", 0, false or no."""
    value = os.environ.get(OFFLINE_ENV, "").strip().lower()
    return flag or value not in ("", "0", "false", "no")


@dataclass
class OfficialData:
    data_dir: Optional[Path]  # a data directory holding mnist/*.gz, or None: not available
    action: str  # "found", "downloaded", "offline" or "unreachable"
    detail: str  # in words, for the report


def _has_all(folder: Path) -> bool:
    return all((folder / f["name"]).is_file() for f in registry_entry("mnist")["files"])


def official_mnist(
    data_dir: Optional[Path], *, offline: bool = False, say: Optional[Callable[[str], None]] = None
) -> OfficialData:
    """Where the official MNIST files are: the data directory (`data_dir`, $EDGEPIPE_DATA, the cache),
    else the cache after downloading them there, unless offline or unreachable (then `data_dir` None).
    `say` gets one line before a download starts (the caller prints it on stderr)."""
    located = find_data_dir(data_dir)
    if located is not None and _has_all(located / "mnist"):
        return OfficialData(located, "found", "official MNIST files in %s" % (located / "mnist"))
    cache_data = cache_dir() / "data"
    if _has_all(cache_data / "mnist"):
        return OfficialData(cache_data, "found", "official MNIST files in the download cache %s" % cache_data)
    where = str(located / "mnist") if located is not None else "no --data-dir or $EDGEPIPE_DATA, none in the cache"
    if offline_requested(offline):
        return OfficialData(None, "offline", "official MNIST files not found (%s) and downloading is off" % where)
    source = os.environ.get(BASE_URL_ENV) or registry_entry("mnist")["files"][0]["urls"][0]["url"].rsplit("/", 1)[0]
    if say is not None:
        say(
            "the official MNIST files were not found (%s): downloading them (11.6 MB) from %s into %s, each checked "
            "against its sha256 (--offline or %s=1 forbids this)" % (where, source, cache_data / "mnist", OFFLINE_ENV)
        )
    try:
        cache_data.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".mnist-download-", dir=str(cache_data)))
    except OSError as exc:
        raise OutputWriteError("cannot create the download cache %s: %s" % (cache_data, exc.strerror or exc)) from None
    try:
        report = fetch_dataset("mnist", staging)
        final = cache_data / "mnist"
        final.mkdir(exist_ok=True)
        for f in report.files:  # every file verified: only now does anything land in the cache
            os.replace(f.path, final / f.name)
    except DatasetUnreachableError as exc:
        return OfficialData(None, "unreachable", "could not download the official MNIST files: %s" % exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return OfficialData(cache_data, "downloaded", "official MNIST files downloaded into %s" % (cache_data / "mnist"))


__all__ = ["OFFLINE_ENV", "OfficialData", "offline_requested", "official_mnist"]
