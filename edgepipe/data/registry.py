"""The dataset registry (`datasets/registry.json`) and where data is looked for.

The data directory is the `data_dir` argument, else `$EDGEPIPE_DATA`, else the download cache
`$EDGEPIPE_CACHE/data` (cache root default `~/.cache/edgepipe`). Nothing looks anywhere else.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import DatasetError, InputNotFoundError


def registry_path() -> Path:
    """The registry: packaged beside this module in a wheel, `datasets/` in a source checkout."""
    packaged = Path(__file__).parent / "registry.json"
    return packaged if packaged.is_file() else Path(__file__).parents[2] / "datasets" / "registry.json"


_registry_cache: Dict[str, Any] = {}


def registry() -> Dict[str, Any]:
    if not _registry_cache:
        path = registry_path()
        try:
            _registry_cache.update(json.loads(path.read_text(encoding="utf-8"))["datasets"])
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError("cannot read the dataset registry %s: %s" % (path, exc)) from None
    return _registry_cache


def registry_entry(name: str, purpose: str = "load") -> Dict[str, Any]:
    """A registry dataset; an unknown name says which exist (for a download, only the registry's own:
    `images:DIR` and `npy:FILE` are local data, never downloaded)."""
    reg = registry()
    if name not in reg:
        close = difflib.get_close_matches(name, sorted(reg), n=1)
        known = ", ".join(sorted(reg))
        hint = "Did you mean %s? " % close[0] if close else ""
        if purpose == "download":
            fetchable = sorted(n for n, e in reg.items() if any(f.get("urls") for f in e.get("files", [])))
            hint += "Downloadable: %s" % ", ".join(fetchable)
            others = [n for n in sorted(reg) if n not in fetchable]
            if others:
                hint += "; %s: no download, `edgepipe data download %s` says how to get it" % (
                    ", ".join(others),
                    others[0],
                )
        else:
            hint += "Use one of: %s, images:DIR or npy:FILE.npy" % known
        raise DatasetError("unknown dataset %r" % name, hint=hint)
    return reg[name]


def cache_dir() -> Path:
    """Root of edgepipe's cache: $EDGEPIPE_CACHE, else $XDG_CACHE_HOME/edgepipe, else ~/.cache/edgepipe."""
    if os.environ.get("EDGEPIPE_CACHE"):
        return Path(os.environ["EDGEPIPE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgepipe"


def located_data_dir(data_dir: Optional[Path]) -> Tuple[Optional[Path], str]:
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
    return located_data_dir(data_dir)[0]


def calibration_split(spec: str) -> str:
    """The split a spec is calibrated on: a registry dataset's own choice, else "all"."""
    return registry()[spec].get("calibration_split", "test") if spec in registry() else "all"
