"""Shared test fixtures: where the real data lives, and how its absence is handled.

Real data and artifacts are in `../shared/` beside the repository (never copied into it). Locally a
missing file skips the tests that need it, with the reason; in CI (`CI=true`) it is an error.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

try:
    # tflite_runtime 2.14 fails on every model when TensorFlow's native library was loaded before it
    # (edgepipe.runtime.interpreters refuses that order). Tests import TensorFlow in-process, so load
    # tflite_runtime first, as a board that has only it would.
    import tflite_runtime.interpreter  # noqa: F401
except ImportError:
    pass

from edgepipe import compile as compile_stage
from edgepipe.compile import command as compile_command

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPIPE_SHARED", REPO.parent / "shared"))
# REPLAY of recorded real edgetpu_compiler output (the real compiler cannot run here).
REPLAY = Path(__file__).resolve().parent / "replay" / "edgetpu_compiler"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips (locally) or fails (CI) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = "shared data missing: %s (expected ../shared beside the repository)" % path
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
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

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, object]]:
    """A real OpenSSH server on 127.0.0.1 with a throw-away host key and one authorized user key."""
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        message = "OpenSSH server/client missing (%s, ssh, ssh-keygen); apt-get install openssh-server" % SSHD
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key", "stranger_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    os.chmod(root / "authorized_keys", 0o600)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                "Port %d" % port,
                "HostKey %s" % (root / "host_key"),
                "AuthorizedKeysFile %s" % (root / "authorized_keys"),
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "PidFile %s" % (root / "sshd.pid"),
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    log = (root / "sshd.log").open("w")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("sshd did not start: %s" % (root / "sshd.log").read_text()[-2000:])
            time.sleep(0.1)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield {
            "url": "ssh://%s@127.0.0.1:%d" % (user, port),
            "port": port,
            "user": user,
            "key": root / "user_key",
            "stranger_key": root / "stranger_key",
            "known_hosts": root / "known_hosts",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
