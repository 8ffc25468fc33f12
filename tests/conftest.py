"""Shared test fixtures: where the real data lives, and how its absence is handled.

Real data and artifacts are in `../shared/` beside the repository (never copied into it). Locally a
missing file skips the tests that need it, with the reason; in CI (`CI=true`) it is an error.

Every test that can go without something (data, a package, a tool) says so through `missing()` or
`need_module()` here, so CI (which installs the extras convert, onnx, data, dev, report and labgrid,
tflite_runtime, chromium, openssh, gcc and, when python3.7 exists, its venv) fails instead of skipping.
Only what CI does not provide may skip there: an Edge TPU, PyTorch, python3.7 on a machine without it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator, NoReturn, Optional

import pytest

try:
    # tflite_runtime 2.14 fails on every model when TensorFlow's native library was loaded before it
    # (edgepipe.runtime.interpreters refuses that order). Tests import TensorFlow in-process, so load
    # tflite_runtime first, as a board that has only it would.
    import tflite_runtime.interpreter  # noqa: F401
except ImportError:
    pass

from loopback_sshd import SshdUnavailable, free_port, loopback_sshd  # noqa: F401 (free_port: used by tests)

from edgepipe import compile as compile_stage
from edgepipe.compile import command as compile_command

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPIPE_SHARED", REPO.parent / "shared"))
# REPLAY of recorded real edgetpu_compiler output (the real compiler cannot run here).
REPLAY = Path(__file__).resolve().parent / "replay" / "edgetpu_compiler"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Tests never download: `suite mnist` and `eval --dataset mnist` would fetch the official MNIST files.
# A test of that path removes this and points EDGEPIPE_DATA_BASE_URL at a server on 127.0.0.1.
os.environ["EDGEPIPE_OFFLINE"] = "1"


def missing(message: str, ci_provides: bool = True, module_level: bool = False) -> NoReturn:
    """Something a test needs is absent: a skip locally; a failure in CI unless CI does not provide it
    (`ci_provides=False`: PyTorch, an Edge TPU, python3.7 where the machine has none)."""
    if IN_CI and ci_provides:
        pytest.fail(message + " (CI provides it, so this is an error there)", pytrace=False)
    pytest.skip(message, allow_module_level=module_level)


def need_module(name: str, install: str, ci_provides: bool = True) -> ModuleType:
    """`import name`, or `missing()` naming what to install (e.g. "pip install 'edgepipe[convert]'")."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing("%s cannot be imported (%s): %s" % (name, install, exc), ci_provides)


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips (locally) or fails (CI) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        missing("shared data missing: %s (expected ../shared beside the repository)" % path)
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def coral_data() -> Path:
    return shared_path("models", "coral-test-data")


@pytest.fixture(scope="session")
def compiler_logs() -> Path:
    return shared_path("edgetpu", "compiler_logs")


@pytest.fixture(scope="session")
def resnet8_dir() -> Path:
    return shared_path("models", "mlperf-tiny-resnet8")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    return shared_path("datasets")


@pytest.fixture
def replay_env(monkeypatch: pytest.MonkeyPatch, compiler_logs: Path, tmp_path: Path) -> Dict[str, Path]:
    """REPLAY stand-in on the command line; recordings from ../shared; argv dumped to a file."""
    assert os.access(REPLAY, os.X_OK), "tests/replay/edgetpu_compiler must be executable"
    for var in [v for v in os.environ if v.startswith("EDGEPIPE_REPLAY")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv(compile_stage.COMPILER_ENV, str(REPLAY))
    monkeypatch.setenv("EDGEPIPE_REPLAY_DIR", str(compiler_logs))
    monkeypatch.setenv("EDGEPIPE_REPLAY_ARGV", str(tmp_path / "argv.json"))
    monkeypatch.setattr(compile_command, "_detected_runtime_version", lambda: None)  # no libedgetpu here
    return {"argv": tmp_path / "argv.json", "out": tmp_path / "out"}


def replay(monkeypatch: pytest.MonkeyPatch, recording: str, log: Optional[str] = None, **env: str) -> None:
    monkeypatch.setenv("EDGEPIPE_REPLAY", recording)
    if log:
        monkeypatch.setenv("EDGEPIPE_REPLAY_LOG", log)
    for key, value in env.items():
        monkeypatch.setenv("EDGEPIPE_REPLAY_" + key, value)


# --- a real OpenSSH server on 127.0.0.1 (deploy and fleet tests) ---------------------------------


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, object]]:
    """A real OpenSSH server on 127.0.0.1 with a throw-away host key and one authorized user key
    (tests/loopback_sshd.py; its "log" counts logins)."""
    try:
        with loopback_sshd(tmp_path_factory.mktemp("sshd")) as server:
            yield server
    except SshdUnavailable as exc:
        missing(str(exc))


# --- the MNIST suite's int8 model (device_tests' `mnist` lane model; built once, cached in /tmp) ---------


@pytest.fixture(scope="session")
def mnist_int8() -> Path:
    """`edgepipe suite mnist --epochs 1`'s int8 model, built by device_tests/hil.py once per edgepipe version."""
    import sys

    sys.path.insert(0, str(REPO / "device_tests"))
    import hil

    try:
        return hil.build_mnist_model()
    except hil.SuiteError as exc:
        missing(str(exc))
