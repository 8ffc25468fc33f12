"""Writes that stop midway leave nothing behind (issue 8.7): the atomic writers, `replacing` (the suites'
model saves), a bundle being built and a local upload. Each test injects the failure mid-write — an
OSError and, as a Ctrl-C would, a KeyboardInterrupt — and asserts no leftover and the previous file intact.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import List

import pytest

from edgepipe.deploy import LocalTarget, build_bundle
from edgepipe.deploy import bundle as bundle_module
from edgepipe.errors import OutputWriteError
from edgepipe.runtime import report as report_module
from edgepipe.runtime.report import replacing, write_bytes_atomic, write_json_atomic

COMPILED = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
FAILURES = [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")]
IDS = ["ctrl-c", "disk-full"]


def expect_failure(failure: BaseException) -> pytest.RaisesContext:
    return pytest.raises(KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else OutputWriteError)


@pytest.mark.parametrize("failure", FAILURES, ids=IDS)
def test_write_json_atomic_interrupted_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    path = tmp_path / "results.json"
    write_json_atomic(str(path), {"old": True})
    old = path.read_bytes()

    def fail(fd: int) -> None:  # the data is written, not yet on disk: the moment a Ctrl-C is most likely
        raise failure

    monkeypatch.setattr(report_module.os, "fsync", fail)
    with expect_failure(failure):
        write_json_atomic(str(path), {"new": True})
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["results.json"]


@pytest.mark.parametrize("failure", FAILURES, ids=IDS)
def test_replacing_removes_a_half_written_file_or_folder(tmp_path: Path, failure: BaseException) -> None:
    """What the suites use for `model.save` (a .keras file) and calibration.npy: never a `.partial` left."""
    path = tmp_path / "seed.keras"
    path.write_bytes(b"the good model")
    for make_folder in (False, True):
        with expect_failure(failure), replacing(path, suffix=".keras") as tmp:
            assert tmp.endswith(".keras") and Path(tmp).parent == tmp_path
            if make_folder:  # a writer that replaces the file by a folder (SavedModel) before failing
                os.unlink(tmp)
                os.mkdir(tmp)
                Path(tmp, "variables").write_bytes(b"half")
            else:
                Path(tmp).write_bytes(b"half a model")
            raise failure
        assert path.read_bytes() == b"the good model"
        assert os.listdir(tmp_path) == ["seed.keras"]


def test_replacing_publishes_in_one_rename_with_the_usual_mode(tmp_path: Path) -> None:
    path = tmp_path / "calibration.npy"
    with replacing(path, suffix=".npy") as tmp:
        Path(tmp).write_bytes(b"new")
        assert not path.exists()
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["calibration.npy"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    with pytest.raises(OutputWriteError) as info:
        write_bytes_atomic(str(tmp_path / "missing" / "x.json"), b"{}")
    assert "x.json" in str(info.value)


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "empty-folder"])
def test_bundle_interrupted_midway_leaves_its_folder_as_it_was(
    coral_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    dest = tmp_path / "bundle"
    if existing:
        dest.mkdir()
    calls: List[Path] = []
    real = bundle_module.sha256_file

    def interrupted(path: Path) -> str:  # hashing the files: the runtime and models are copied already
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(bundle_module, "sha256_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_bundle([coral_data / COMPILED], dest)
    assert len(calls) == 5
    assert (dest.exists() and list(dest.iterdir()) == []) if existing else not dest.exists()


@pytest.mark.parametrize("failure", FAILURES, ids=IDS)
def test_local_upload_interrupted_midway_leaves_no_half_copy(
    coral_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    bundle = build_bundle([coral_data / COMPILED], tmp_path / "bundle")
    board = tmp_path / "board"
    copied: List[str] = []
    real = shutil.copyfile

    def copy(src: str, dst: str, **kwargs: object) -> object:  # copytree's copy2 looks copyfile up on each call
        if len(copied) == 3:
            raise failure
        copied.append(dst)
        return real(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copy)
    with pytest.raises(KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else Exception):
        LocalTarget(board).put(bundle.path)
    assert len(copied) == 3 and list(board.iterdir()) == []
