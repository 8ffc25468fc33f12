"""SIGTERM and SIGINT sent to a real `edgepipe deploy` while the board benchmarks (issue 8.6): the remote
bundle, the local temporary bundle, the runner and the ssh processes are all gone afterwards, and the
exit code is 143 / 130. Targets: a local folder and a real OpenSSH server on 127.0.0.1.

The signal goes to the deploy process only (`kill PID`, as a supervisor sends it), not to its group:
whatever it started must be stopped by deploy itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import psutil
import pytest

COMPILED = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
SIGNALS = [(signal.SIGTERM, 143), (signal.SIGINT, 130)]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """The deploy's TMPDIR (short: its ssh socket folder goes there): the local temp bundle lands here too."""
    path = Path(tempfile.mkdtemp(prefix="eps-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def mentioning(*texts: str) -> List[str]:
    """Live processes whose command line or working folder mentions one of `texts`."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            where = " ".join(proc.info["cmdline"] or []) + " " + proc.cwd()
        except psutil.Error:
            continue
        if proc.info["pid"] != os.getpid() and any(t in where for t in texts):
            found.append("%d %s" % (proc.info["pid"], where))
    return found


def wait_for_runner(proc: subprocess.Popen, board: Path, timeout: float = 180) -> None:
    """Until `python -m edgepipe.runtime bench` runs in a bundle under `board` (the deploy is mid-run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("deploy ended early (exit %s): %s" % (proc.returncode, proc.stderr.read()[-2000:]))
        if any("edgepipe.runtime bench" in line for line in mentioning(str(board))):
            time.sleep(1.0)  # well into the run: the runner has its interpreter (and maybe a child) up
            return
        time.sleep(0.2)
    raise AssertionError("no runner started under %s within %.0f s" % (board, timeout))


def stop_leftovers(*folders: Path) -> None:
    for line in mentioning(*(str(f) for f in folders)):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except OSError:
            pass


def assert_nothing_left(board: Path, short_tmp: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10  # an ssh master exits a moment after it is told to
    while mentioning(str(board), str(short_tmp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mentioning(str(board), str(short_tmp)) == []  # no runner, runner child, ssh client or master
    assert not board.exists() or list(board.iterdir()) == []  # no remote bundle
    assert list(short_tmp.iterdir()) == []  # no local temp bundle, no ssh socket folder
    try:
        os.killpg(proc.pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "processes are left in the deploy's process group"


@pytest.mark.parametrize("sig, code", SIGNALS, ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_signal_mid_run_cleans_up_everything(
    request: pytest.FixtureRequest, coral_data: Path, tmp_path: Path, short_tmp: Path, transport: str,
    sig: signal.Signals, code: int,
) -> None:  # fmt: skip
    board = tmp_path / "board"
    if transport == "local":
        to: List[str] = ["--to", "local:%s" % board]
    else:
        sshd: Dict[str, object] = request.getfixturevalue("sshd")
        to = ["--to", str(sshd["url"]), "--identity", str(sshd["key"]), "--known-hosts", str(sshd["known_hosts"]),
              "--python", sys.executable, "--remote-dir", str(board)]  # fmt: skip
    argv = [sys.executable, "-m", "edgepipe.cli", "deploy", str(coral_data / COMPILED), *to, "--runs", "1000000",
            "--warmup", "0", "--out", str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TMPDIR=str(short_tmp)), start_new_session=True)  # fmt: skip
    try:
        wait_for_runner(proc, board)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        assert proc.returncode == code, stderr[-2000:]
        assert "Traceback" not in stderr and stderr.rstrip().splitlines()[-1] in ("terminated (SIGTERM)", "interrupted")
        assert_nothing_left(board, short_tmp, proc)
        assert not (tmp_path / "out").exists()
    finally:
        stop_leftovers(board, short_tmp)  # a regression must not leave runners benchmarking for hours
