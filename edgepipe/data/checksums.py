"""Checking files against the registry's checksums (sha256, md5, or the md5 of a .gz's content)."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import DatasetError, InputNotFoundError

# Keyed by (path, mtime_ns, size): a file is hashed once per process. Hashing is cheap (sha256 of the
# 9.6 MB train-images .gz takes ~7 ms here; gunzip of it ~215 ms), so no on-disk memo is kept.
# 9.6 MB train-images .gz takes ~7 ms here; gunzip of it ~215 ms), so no on-disk memo is kept.
_verified: Dict[Tuple[str, int, int], str] = {}


def _digests(data: bytes) -> Dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}


def check_bytes(data: bytes, spec: Dict[str, Any], what: str, payload: Optional[bytes] = None) -> str:
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
                payload = gunzip(data, what)
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


def verify_file(path: Path, spec: Dict[str, Any], data: Optional[bytes] = None, payload: Optional[bytes] = None) -> str:
    """`check_bytes` of the file (its bytes `data` if already read, its gunzipped `payload` if known), once."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _verified:
        _verified[key] = check_bytes(data if data is not None else read_bytes(path), spec, str(path), payload=payload)
    return _verified[key]


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputNotFoundError("file not found: %s" % path) from None
    except OSError as exc:
        raise InputNotFoundError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def gunzip(data: bytes, what: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            "%s is not a valid gzip file (%s)" % (what, exc),
            hint="Delete it and fetch it again (edgepipe data download)",
        ) from None
