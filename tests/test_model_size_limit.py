"""The model reader bounds what it reads (issue 8.3): a huge file is a one-line ModelFormatError
naming the file and the limit, never a MemoryError traceback.

Big files here are sparse (`truncate`): they claim gigabytes but occupy no disk and are never
written byte by byte. The memory-limit case runs in a child process under RLIMIT_AS, so the test
process itself is never short of memory.
"""

from __future__ import annotations

import resource  # POSIX (RLIMIT_AS), as the host side is: Linux and macOS
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from edgepipe.runtime import tflite_reader
from edgepipe.runtime.errors import ModelFormatError
from edgepipe.runtime.preflight import inspect_file, main_inspect
from edgepipe.runtime.tflite_reader import MAX_MODEL_BYTES, read_model


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def test_two_gigabyte_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "huge.tflite", 2 * 1024**3)
    with pytest.raises(ModelFormatError) as info:
        read_model(str(path))
    line = info.value.one_line()
    assert "\n" not in line and str(path) in line and str(MAX_MODEL_BYTES) in line
    assert str(2 * 1024**3) in line  # the file's own size, so the user sees by how much
    with pytest.raises(ModelFormatError):
        inspect_file(path)


def test_file_at_the_limit_is_read_and_one_byte_over_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The boundary, with the limit lowered to 4 KiB so nothing big is read: at the limit the reader
    reads (and finds zeros are not a model); one byte more, it refuses without reading."""
    monkeypatch.setattr(tflite_reader, "MAX_MODEL_BYTES", 4096)
    at = _sparse(tmp_path / "at.tflite", 4096)
    with pytest.raises(ModelFormatError, match="not a valid TFLite model"):
        read_model(str(at))
    over = _sparse(tmp_path / "over.tflite", 4097)
    with pytest.raises(ModelFormatError, match="4096-byte"):
        read_model(str(over))


def test_device_side_cli_gives_one_line_and_exit_4(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _sparse(tmp_path / "huge.tflite", 2 * 1024**3)
    assert main_inspect([str(path)]) == ModelFormatError.exit_code == 4
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "huge.tflite" in captured.err


def test_under_a_memory_limit_a_big_model_is_a_one_line_error(tmp_path: Path) -> None:
    """900 MB (under the size limit) in a process allowed 400 MB of address space: reading it cannot
    succeed, and the answer must be the typed error, not a MemoryError traceback."""
    path = _sparse(tmp_path / "big.tflite", 900 * 1024**2)
    limit = 400 * 1024**2

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    code = "import sys\nfrom edgepipe.runtime.preflight import main_inspect\nsys.exit(main_inspect(sys.argv[1:]))\n"
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap_memory,
    )
    assert done.returncode == ModelFormatError.exit_code, done.stderr
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not enough memory" in lines[0] and "big.tflite" in lines[0]
