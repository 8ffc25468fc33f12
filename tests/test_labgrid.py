"""`--to` targets: the accepted forms (bug: a bare host name was a deploy failure), and labgrid places
for real — a labgrid coordinator and exporter started on 127.0.0.1 for this module, exporting the
loopback OpenSSH "board" of the deploy tests (tests/conftest.py `sshd`) as a NetworkService.

A place is created, acquired, deployed to and released; a place held by someone else is refused at
once (exit 51); the HIL suite's remote lane runs through the place with labgrid's pytest plugin
(`--lg-env`), on the CPU fallback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from conftest import free_port, need_module

from edgepipe.deploy import parse_target
from edgepipe.errors import TargetSpecError

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPILED = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
EXPORTER = "edgepipe-test-exporter"


def run_cli(*args: str, env: Dict[str, str] = None) -> subprocess.CompletedProcess:  # type: ignore[assignment]
    return subprocess.run([sys.executable, "-m", "edgepipe.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="200", **(env or {})), timeout=300)  # fmt: skip


def error_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --- target strings (issue 14, bug 7) ---------------------------------------------------------------


@pytest.mark.parametrize("spec", ["coral.local", "mendel@coral.local", "ssh:/coral.local", "ftp://x", "local:",
                                  "ssh://host:99999", "labgrid://", "ssh://user@host/extra"])  # fmt: skip
def test_a_malformed_target_is_a_command_line_error(spec: str) -> None:
    with pytest.raises(TargetSpecError) as caught:
        parse_target(spec)
    assert caught.value.exit_code == 2


def test_deploy_to_a_bare_host_name_exits_2_with_the_accepted_forms(coral_data: Path, tmp_path: Path) -> None:
    proc = run_cli("deploy", str(coral_data / COMPILED), "--to", "coral.local", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert "'coral.local' is not a target" in line and "ssh://mendel@coral.local" in line
    for form in ("ssh://user@host[:port]", "local:DIR", "labgrid://PLACE"):
        assert form in line, line
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_every_accepted_form_parses() -> None:
    assert parse_target("ssh://mendel@coral.local:2222").describe() == "ssh://mendel@coral.local:2222"
    assert parse_target("local:/tmp/board").describe() == "local:/tmp/board"
    _need_labgrid()
    target = parse_target("labgrid://127.0.0.1:20408/coral-1")
    assert target.describe() == "labgrid://coral-1" and target.address == "127.0.0.1:20408"  # type: ignore
    assert parse_target("labgrid://coral-2").place == "coral-2"  # type: ignore[union-attr]


# --- a labgrid coordinator and exporter on 127.0.0.1 -------------------------------------------------


def _need_labgrid() -> None:
    need_module("labgrid", "pip install 'edgepipe[labgrid]'; .ci/run installs it")


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("%s did not start: %s" % (what, log.read_text()[-2000:]))
            time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def client(coordinator: str, *args: str, user: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if user:
        env["LG_USERNAME"] = user  # labgrid's own way to act as another user
    return subprocess.run([str(BIN / "labgrid-client"), "-x", coordinator, *args], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _need_labgrid()
    root = tmp_path_factory.mktemp("labgrid-coordinator")  # it keeps places.yaml in its working directory
    port = free_port()
    log = root / "coordinator.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "labgrid-coordinator"), "-l", "127.0.0.1:%d" % port], cwd=str(root),
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for_port(port, proc, log, "labgrid-coordinator")
        yield "127.0.0.1:%d" % port
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def place(coordinator: str, sshd: Dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An exporter publishing the loopback sshd as a NetworkService, and a place matching it."""
    root = tmp_path_factory.mktemp("labgrid-exporter")
    config = root / "exporter.yaml"
    config.write_text("board:\n  NetworkService:\n    address: 127.0.0.1\n    username: %s\n    port: %d\n"
                      % (sshd["user"], sshd["port"]))  # fmt: skip
    log = root / "exporter.log"
    with log.open("w") as out:
        argv = [str(BIN / "labgrid-exporter"), "-c", coordinator, "-n", EXPORTER, "--hostname", "127.0.0.1"]
        argv.append(str(config))
        proc = subprocess.Popen(argv, cwd=str(root), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while EXPORTER not in client(coordinator, "resources").stdout:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("labgrid-exporter did not register: %s" % log.read_text()[-2000:])
            time.sleep(0.5)
        name = "coral-loopback"
        for args in (["-p", name, "create"], ["-p", name, "add-match", "%s/board/NetworkService" % EXPORTER]):
            proc_client = client(coordinator, *args)
            assert proc_client.returncode == 0, proc_client.stderr
        yield name
    finally:
        _stop(proc)


def holder(coordinator: str, name: str) -> str:
    """Who holds the place, as the coordinator tells labgrid-client (empty: nobody)."""
    shown = client(coordinator, "-p", name, "show")
    assert shown.returncode == 0, shown.stderr
    for line in shown.stdout.splitlines():
        if line.strip().startswith("acquired:"):
            return line.split(":", 1)[1].strip().replace("None", "")
    return ""


def ssh_args(sshd: Dict[str, object]) -> List[str]:
    return ["--identity", str(sshd["key"]), "--known-hosts", str(sshd["known_hosts"]), "--python", sys.executable]


def test_deploy_to_a_labgrid_place_acquires_deploys_and_releases(
    coordinator: str, place: str, sshd: Dict[str, object], coral_data: Path, tmp_path: Path
) -> None:
    remote_base = tmp_path / "remote"
    remote_base.mkdir()
    proc = run_cli("deploy", str(coral_data / COMPILED), "--to", "labgrid://%s/%s" % (coordinator, place),
                   *ssh_args(sshd), "--remote-dir", str(remote_base), "--runs", "3", "--warmup", "0",
                   "--out", str(tmp_path / "out"), "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)  # labgrid's own chatter went to stderr: stdout is the JSON only
    assert report["target"] == "labgrid://%s (ssh://%s@127.0.0.1:%d)" % (place, sshd["user"], sshd["port"])
    assert report["results"][0]["summary"]["backend"] == "cpu" and report["results"][0]["bench"]["runs"] == 3
    assert "acquired place %s" % place in proc.stderr and "released place %s" % place in proc.stderr
    assert holder(coordinator, place) == ""  # released
    assert list(remote_base.iterdir()) == []


def test_a_place_held_by_someone_else_is_exit_51_at_once(
    coordinator: str, place: str, sshd: Dict[str, object], coral_data: Path, tmp_path: Path
) -> None:
    taken = client(coordinator, "-p", place, "acquire", user="alice")
    assert taken.returncode == 0, taken.stderr
    try:
        started = time.monotonic()
        proc = run_cli("deploy", str(coral_data / COMPILED), "--to", "labgrid://%s/%s" % (coordinator, place),
                       *ssh_args(sshd), "--remote-dir", str(tmp_path / "remote"),
                       "--out", str(tmp_path / "out"))  # fmt: skip
        elapsed = time.monotonic() - started
        assert proc.returncode == 51, proc.stderr[-2000:]
        (line,) = error_lines(proc.stderr)
        assert "labgrid place %s is acquired by" % place in line and "/alice" in line, line
        assert "Nothing was deployed" in line
        assert elapsed < 60  # refused, not waited for (a CLI start with TensorFlow-free imports takes seconds)
        assert holder(coordinator, place).endswith("/alice")  # untouched
        assert not (tmp_path / "remote").exists() and not (tmp_path / "out").exists()
    finally:
        client(coordinator, "-p", place, "release", user="alice")


def test_unknown_place_and_unreachable_coordinator_are_one_line_exit_50(
    coordinator: str, place: str, coral_data: Path, tmp_path: Path
) -> None:
    unknown = run_cli("deploy", str(coral_data / COMPILED), "--to", "labgrid://%s/nope" % coordinator)
    assert unknown.returncode == 50, unknown.stderr
    (line,) = error_lines(unknown.stderr)
    assert "no place 'nope'" in line and place in line  # names the places that exist
    dead = run_cli("deploy", str(coral_data / COMPILED), "--to", "labgrid://127.0.0.1:%d/%s" % (free_port(), place))
    assert dead.returncode == 50, dead.stderr
    (line,) = error_lines(dead.stderr)
    assert "did not answer" in line and "Traceback" not in dead.stderr, dead.stderr


def test_remote_lane_runs_through_the_place_with_the_labgrid_pytest_plugin(
    coordinator: str, place: str, sshd: Dict[str, object], mnist_int8: Path, tmp_path: Path
) -> None:
    env_file = tmp_path / "env.yaml"
    env_file.write_text("targets:\n  main:\n    resources:\n      RemotePlace:\n        name: %s\n"
                        "options:\n  coordinator_address: '%s'\n" % (place, coordinator))  # fmt: skip
    summary, junit = tmp_path / "summary.json", tmp_path / "junit.xml"
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "device_tests", "-m", "remote", "--lg-env", str(env_file),
         "--identity", str(sshd["key"]), "--known-hosts", str(sshd["known_hosts"]), "--target-python", sys.executable,
         "--mnist-model", str(mnist_int8), "--summary", str(summary), "--junitxml", str(junit),
         "-p", "no:cacheprovider", "-q"],
        cwd=str(REPO), capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "15 passed" in proc.stdout, proc.stdout[-2000:]
    measurements = json.loads(summary.read_text())["measurements"]
    assert sorted(m["model"] for m in measurements) == ["mnist", "mobilenet", "resnet8"]
    for m in measurements:
        assert m["lane"] == "remote" and m["kind"] == "cpu"  # the board's CPU fallback
        assert m["device"].startswith("labgrid://%s (ssh://" % place)
        assert m["figures"]["agreement"] == 1.0
        assert m["environment"]["board"]["target"] == m["device"]
    assert holder(coordinator, place) == ""  # the suite acquired the place and released it


def test_remote_lane_fails_at_once_when_the_place_is_held_by_someone_else(
    coordinator: str, place: str, sshd: Dict[str, object], mnist_int8: Path, tmp_path: Path
) -> None:
    taken = client(coordinator, "-p", place, "acquire", user="bob")
    assert taken.returncode == 0, taken.stderr
    try:
        env = dict(os.environ)
        env.pop("PYTEST_ADDOPTS", None)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "device_tests", "-m", "remote", "-k", "mobilenet",
             "-p", "no:cacheprovider", "--target", "labgrid://%s/%s" % (coordinator, place),
             "--identity", str(sshd["key"]),
             "--mnist-model", str(mnist_int8), "--summary", str(tmp_path / "summary.json"), "-q"],
            cwd=str(REPO), capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        text = proc.stdout + proc.stderr
        assert proc.returncode == 1, text[-2000:]
        assert "5 errors" in text and "remote lane: labgrid place %s is acquired by" % place in text, text[-2000:]
        assert "/bob" in text and "Traceback" not in text
        assert holder(coordinator, place).endswith("/bob")  # not taken from bob, not released for him
    finally:
        client(coordinator, "-p", place, "release", user="bob")
