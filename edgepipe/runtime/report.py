"""Report plumbing shared by every stage: the header every result starts with, the JSON error
envelope, dataclass → JSON, and atomic file writes.

Results are JSON first. Each begins with `ResultHeader` (schema_version, kind, created), filled by
`header(kind)`. A failure a front door reports as JSON is `error_envelope(exc)`; `read_error_envelope`
is its reader (deploy quotes a remote failure from it). A report is written to a temporary file in the
target directory and then renamed, so a reader (or a crashed run) never sees half a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from typing import IO, Any, Dict, Iterator, Optional, Union

from .errors import EdgepipeError, OutputWriteError, error_line, exit_code_for

RESULT_SCHEMA_VERSION = 1


@dataclasses.dataclass
class ResultHeader:
    """The first fields of every result: subclass it and build with `**header(kind)`."""

    schema_version: int
    kind: str  # "bench", "eval", "doctor", "suite", "deploy", "fleet", ...
    created: str  # utc_now()


def header(kind: str) -> Dict[str, Any]:
    """`ResultHeader`'s values for a result made now."""
    return {"schema_version": RESULT_SCHEMA_VERSION, "kind": kind, "created": utc_now()}


def error_envelope(exc: EdgepipeError) -> Dict[str, Any]:
    """The JSON form of an error, printed on stdout so that a program reading it learns the error type too."""
    error = {"type": type(exc).__name__, "message": str(exc), "hint": exc.hint or None, "exit_code": exc.exit_code}
    signal = getattr(exc, "signal", None)  # InferenceError: the TFLite runtime crashed with it
    if signal:
        error["signal"] = signal
    return {"schema_version": RESULT_SCHEMA_VERSION, "kind": "error", "error": error}


def read_error_envelope(stdout: str) -> Optional[Dict[str, Any]]:
    """The `error` part of an envelope on the last line of `stdout`, or None when there is none."""
    lines = stdout.strip().splitlines()
    try:
        record = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    if isinstance(record, dict) and record.get("kind") == "error" and isinstance(record.get("error"), dict):
        return record["error"]
    return None


def report_failure(exc: BaseException, stderr: IO[str], stdout: Optional[IO[str]] = None) -> int:
    """A plain-text front door's failure: one line on `stderr`, the envelope on `stdout` when given
    (EdgepipeErrors only); returns the exit code. Anything that is not ours is re-raised (a bug)."""
    line = error_line(exc)
    if line is None:
        raise exc
    stderr.write(line + "\n")
    if stdout is not None and isinstance(exc, EdgepipeError):
        stdout.write(json.dumps(error_envelope(exc)) + "\n")
    return exit_code_for(exc)


def to_jsonable(value: Any) -> Any:
    """Turn dataclasses, paths, numpy scalars and arrays into plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f.name for f in dataclasses.fields(value) if not f.name.startswith("_")]
        return {name: to_jsonable(getattr(value, name)) for name in fields}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy here
        return value.tolist()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, sort_keys=False)


def utc_now() -> str:
    """When a result was made: UTC, ISO 8601, whole seconds (the same in every edgepipe result)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def sha256_file(path: "Union[str, os.PathLike[str]]") -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (models can be large)."""
    digest = hashlib.sha256()
    with open(os.fspath(path), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_dirs(path: "Union[str, os.PathLike[str]]", hint: str = "") -> None:
    """Create a directory (and its parents) or say, as an OutputWriteError, why it cannot be made."""
    try:
        os.makedirs(os.fspath(path), exist_ok=True)
    except OSError as exc:
        raise OutputWriteError("cannot create %s: %s" % (os.fspath(path), exc.strerror or exc), hint=hint) from None


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory and a rename.

    Whatever stops the write (a full disk, Ctrl-C, SIGTERM), the temporary file is removed and a file
    already at `path` stays as it was.
    """
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def replacing(path: "Union[str, os.PathLike[str]]", suffix: str = "") -> Iterator[str]:
    """`with replacing(OUT) as tmp:` write `tmp` (a new empty file beside OUT, named ....tmp`suffix`); when the
    block ends normally it becomes OUT in one rename. On any exception (KeyboardInterrupt included) `tmp`
    is removed and OUT is untouched. `suffix` keeps an extension a writer insists on (".keras").
    An OSError becomes OutputWriteError naming OUT."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp" + suffix, dir=directory)
        os.close(fd)
    except OSError as exc:
        raise OutputWriteError(
            "cannot write %s: %s" % (path, exc.strerror or exc), hint="Choose a writable output location"
        ) from None
    try:
        yield tmp
        if os.path.isfile(tmp):
            # mkstemp creates the file 0600; a model or report should get the usual umask-derived mode.
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise OutputWriteError("cannot write %s: %s" % (path, exc.strerror or exc)) from None
        raise


def _remove(path: str) -> None:
    """Delete a file or a folder (a writer such as Keras may have made either); nothing if it is gone."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str, value: Any) -> None:
    write_bytes_atomic(path, (dumps(value) + "\n").encode("utf-8"))
