"""`edgepipe deploy` over a real OpenSSH server on 127.0.0.1 (tests/loopback_sshd.py): one connection per
deploy, names checked before any ssh starts, --known-hosts with a space, --remote-dir ~/x, everything
checkable checked before the upload, transport errors told apart from failed measurements.

Where a test must prove that no ssh was started, `ssh` on PATH is a stand-in that leaves a mark.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Dict, Iterator, List

import psutil
import pytest
from conftest import free_port
from loopback_sshd import accepted_logins

from edgepipe.deploy import SshTarget, build_bundle, deploy, deploy_bundle, load_bundle, parse_target
from edgepipe.deploy.bundle import VERIFY_FAILED, VERIFY_SNIPPET
from edgepipe.deploy.transport import Shipment
from edgepipe.errors import DeployError, InputNotFoundError, TargetSpecError, TransportError
from edgepipe.runtime.options import RunOptions

COMPILED = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"


@pytest.fixture(scope="module")
def compiled(coral_data: Path) -> Path:
    return coral_data / COMPILED


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short private TMPDIR for a deploy: its ssh socket folder lands there, so the test can look for it."""
    path = Path(tempfile.mkdtemp(prefix="ept-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_cli(*args: str, env: Dict[str, str] = {}) -> subprocess.CompletedProcess:  # noqa: B006 (read only)
    full_env = dict(os.environ, COLUMNS="200", **env)
    return subprocess.run([sys.executable, "-m", "edgepipe.cli", "deploy", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)  # fmt: skip


def ssh_args(sshd: Dict[str, object], known_hosts: object = None) -> List[str]:
    return ["--identity", str(sshd["key"]), "--known-hosts", str(known_hosts or sshd["known_hosts"]),
            "--python", sys.executable]  # fmt: skip


def error_lines(proc: subprocess.CompletedProcess) -> List[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def fake_ssh(tmp_path: Path) -> Dict[str, object]:
    """`ssh` on PATH that records that it ran (and fails as ssh does): proof that no ssh was started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mark = tmp_path / "ssh-was-run"
    script = bin_dir / "ssh"
    script.write_text("#!/bin/sh\necho \"$@\" >> '%s'\nexit 255\n" % mark)
    script.chmod(0o755)
    return {"env": {"PATH": "%s:%s" % (bin_dir, os.environ["PATH"])}, "mark": mark}


def processes_mentioning(text: str) -> List[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if text in " ".join(proc.info["cmdline"] or []):
                found.append("%d %s" % (proc.info["pid"], " ".join(proc.info["cmdline"])))
        except psutil.Error:
            continue
    return found


# --- host and user names: only what they can be, before any ssh (CVE-2023-51385 class) --------------

GOOD_URLS = [
    ("ssh://mendel@coral.local", "coral.local", "mendel"),
    ("ssh://root@192.168.100.2:22", "192.168.100.2", "root"),
    ("ssh://pi@[::1]:2222", "::1", "pi"),
    ("ssh://me@[fe80::1]", "fe80::1", "me"),
    ("ssh://build.bot-2@board-07.lab.example.com.", "board-07.lab.example.com.", "build.bot-2"),
    ("ssh://_svc@localhost", "localhost", "_svc"),
    ("ssh://127.0.0.1", "127.0.0.1", None),
    ("ssh://Board7", "Board7", None),
]
BAD_URLS = [
    "ssh://u@-oProxyCommand=touch%20x",  # an option, not a host
    "ssh://u@host;id",
    "ssh://u@$(id)",
    "ssh://u@`id`",
    "ssh://u@h|cat",
    "ssh://u@h&",
    "ssh://u@h%h",  # an ssh %-token
    "ssh://u@h'x'",
    'ssh://u@h"x"',
    "ssh://u@h*",
    "ssh://u@h\\x",
    "ssh://u@a..b",
    "ssh://u@-h",
    "ssh://u@h-",
    "ssh://u@h_x",  # no underscore in a host name (RFC 1123)
    "ssh://u@300.1.1.1",
    "ssh://u@1.2.3",
    "ssh://u@[fe80::1%eth0]",  # a zone is a '%' token to ssh
    "ssh://u@[1.2.3.4]",  # brackets are for IPv6
    "ssh://u@[::1;id]",
    "ssh://u@::1",  # IPv6 without brackets
    "ssh://-oProxyCommand=x@h",
    "ssh://-u@h",
    "ssh://u;id@h",
    "ssh://u%h@h",
    "ssh://u$(id)@h",
    "ssh://u`id`@h",
    "ssh://u|x@h",
    "ssh://u'x@h",
    "ssh://u$@h",
    "ssh://%s@h" % ("u" * 33),
    "ssh://u@%s" % ".".join(["a" * 63] * 4),  # 255 characters
    "ssh://u@%s" % ("a" * 64),  # a label over 63
]


@pytest.mark.parametrize("url, host, user", GOOD_URLS, ids=[u for u, _, _ in GOOD_URLS])
def test_good_host_and_user_names_are_accepted(url: str, host: str, user: str) -> None:
    target = SshTarget.from_url(url)
    assert (target.host, target.user) == (host, user)
    argv = target.ssh_argv("true")
    assert argv[-3:] == ["--", target.login, "true"]


@pytest.mark.parametrize("url", BAD_URLS, ids=range(len(BAD_URLS)))
def test_bad_host_and_user_names_are_command_line_errors(url: str) -> None:
    with pytest.raises(TargetSpecError) as info:
        parse_target(url)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("url", ["ssh://u@-oProxyCommand=sh", "ssh://u@h;touch${IFS}x", "ssh://-x@h", "ssh://u@h%n"])
def test_cli_bad_names_exit_2_before_any_ssh(compiled: Path, tmp_path: Path, fake_ssh: Dict, url: str) -> None:
    proc = run_cli(str(compiled), "--to", url, "--out", str(tmp_path / "out"), env=fake_ssh["env"])
    assert proc.returncode == 2, proc.stderr
    assert len(error_lines(proc)) == 1
    assert not Path(fake_ssh["mark"]).exists()  # no ssh was started
    assert not (tmp_path / "out").exists()


# --- local files and options: checked before any connection -----------------------------------------


def test_missing_identity_is_exit_3_naming_the_path_before_any_connection(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path, fake_ssh: Dict
) -> None:
    """Issue 14, bug 4: it said "authentication failed"."""
    missing = tmp_path / "no such dir" / "id_ed25519"
    before = accepted_logins(Path(str(sshd["log"])))
    proc = run_cli(str(compiled), "--to", str(sshd["url"]), "--identity", str(missing), "--out", str(tmp_path / "o"),
                   env=fake_ssh["env"])  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc)
    assert str(missing) in line and "authentication" not in line
    assert not Path(fake_ssh["mark"]).exists()
    assert accepted_logins(Path(str(sshd["log"]))) == before
    with pytest.raises(InputNotFoundError):
        parse_target(str(sshd["url"]), identity=missing)


@pytest.mark.parametrize(
    "case, code, words",
    [
        ("out-not-writable", 5, ["--out", "not a folder"]),
        ("bad-device", 24, ["invalid Edge TPU device", "usb:N"]),
        ("not-tflite", 4, ["notes.tflite"]),
        ("model-missing", 3, ["missing.tflite"]),
    ],
)
def test_checkable_errors_come_before_the_upload(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path, case: str, code: int, words: List[str]
) -> None:
    """Issue 8.6: --out and --device were checked after the board had run (measurements lost, exit 50)."""
    remote = tmp_path / "remote"
    model, out, extra = str(compiled), tmp_path / "out", []
    if case == "out-not-writable":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    elif case == "bad-device":
        extra = ["--device", "usb:x"]
    elif case == "not-tflite":
        model = str(tmp_path / "notes.tflite")
        Path(model).write_text("not a model\n" * 10)
    else:
        model = str(tmp_path / "missing.tflite")
    before = accepted_logins(Path(str(sshd["log"])))
    proc = run_cli(model, "--to", str(sshd["url"]), *ssh_args(sshd), "--remote-dir", str(remote), "--out", str(out),
                   *extra)  # fmt: skip
    assert proc.returncode == code, proc.stderr
    (line,) = error_lines(proc)
    for word in words:
        assert word in line
    assert accepted_logins(Path(str(sshd["log"]))) == before  # the board was never contacted
    assert not remote.exists()


# --- the connection ----------------------------------------------------------------------------------


def test_one_ssh_connection_per_deploy_closed_at_the_end(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path, short_tmp: Path
) -> None:
    log = Path(str(sshd["log"]))
    before = accepted_logins(log)
    proc = run_cli(str(compiled), "--to", str(sshd["url"]), *ssh_args(sshd), "--remote-dir", str(tmp_path / "r"),
                   "--runs", "2", "--warmup", "0", "--out", str(tmp_path / "out"), "--json",
                   env={"TMPDIR": str(short_tmp)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ssh_connections"] == 1
    assert accepted_logins(log) - before == 1  # the server saw one login for the whole deploy
    assert list(short_tmp.iterdir()) == []  # the socket folder is gone ...
    assert processes_mentioning(str(short_tmp)) == []  # ... and its master ("ssh: DIR/c [mux]") with it
    assert list((tmp_path / "r").iterdir()) == []
    assert set(report["timings_s"]) == {"bundle", "upload", "run", "total"}
    assert report["remote"]["runtime"]["name"] and report["remote"]["platform"]["system"] == "Linux"


def test_known_hosts_path_with_a_space_gets_the_host_key(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path
) -> None:
    """Issue 8.6: ssh split the value at the space, and the key went to another file."""
    folder = tmp_path / "my keys"
    folder.mkdir()
    known = folder / "known hosts"
    proc = run_cli(str(compiled), "--to", str(sshd["url"]), *ssh_args(sshd, known_hosts=known), "--remote-dir",
                   str(tmp_path / "r"), "--runs", "1", "--warmup", "0", "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lookup = subprocess.run(["ssh-keygen", "-F", "[127.0.0.1]:%d" % sshd["port"], "-f", str(known)],
                            capture_output=True, text=True)  # fmt: skip
    assert lookup.returncode == 0 and "ED25519" in lookup.stdout.upper()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my keys", "out", "r"]  # no file "my" beside it
    assert os.listdir(folder) == ["known hosts"]


def test_remote_dir_tilde_is_the_remote_home_not_a_folder_named_tilde(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path
) -> None:
    """Issue 8.6: `--remote-dir '~/x'` made a literal `~` folder."""
    name = "edgepipe-test-%s" % uuid.uuid4().hex[:8]
    home = Path(os.path.expanduser("~%s" % sshd["user"]))  # the login's home on this "board" (same machine)
    try:
        proc = run_cli(str(compiled), "--to", str(sshd["url"]), *ssh_args(sshd), "--remote-dir", "~/%s" % name,
                       "--runs", "1", "--warmup", "0", "--keep", "--out", str(tmp_path / "out"), "--json")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        kept = Path(json.loads(proc.stdout)["remote_dir"])
        assert kept.parent == home / name and (kept / "manifest.json").is_file()
        assert not (home / "~").exists() and not Path("~").exists()
    finally:
        shutil.rmtree(home / name, ignore_errors=True)
        shutil.rmtree(home / "~" / name, ignore_errors=True)  # what the bug made
        if (home / "~").is_dir() and not any((home / "~").iterdir()):
            (home / "~").rmdir()
    with pytest.raises(TargetSpecError):
        parse_target(str(sshd["url"]), remote_dir="~other/x")  # another user's home: refused, not guessed


# --- transport errors, timeouts, one bundle for many targets ----------------------------------------


def test_transport_errors_are_typed_and_say_whether_a_retry_can_help(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path
) -> None:
    options = RunOptions(runs=1, warmup=0)
    refused = parse_target("ssh://%s@127.0.0.1:%d" % (sshd["user"], free_port()), identity=Path(str(sshd["key"])),
                           known_hosts=Path(str(sshd["known_hosts"])), python=sys.executable)  # fmt: skip
    with pytest.raises(TransportError) as info:
        deploy([compiled], refused, options)
    assert info.value.retryable and info.value.exit_code == 50 and "refused" in str(info.value)
    stranger = parse_target(str(sshd["url"]), identity=Path(str(sshd["stranger_key"])),
                            known_hosts=Path(str(sshd["known_hosts"])), python=sys.executable)  # fmt: skip
    with pytest.raises(TransportError) as info:
        deploy([compiled], stranger, options)
    assert not info.value.retryable and "authentication failed" in str(info.value)


def test_deploy_timeout_is_a_transport_error_and_cleans_up(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    target = parse_target(str(sshd["url"]), identity=Path(str(sshd["key"])), known_hosts=Path(str(sshd["known_hosts"])),
                          python=sys.executable, remote_dir=str(remote))  # fmt: skip
    with pytest.raises(TransportError) as info:
        deploy([compiled], target, RunOptions(runs=10**6, warmup=0), timeout_s=8)
    assert info.value.retryable and "within" in str(info.value)
    assert list(remote.iterdir()) == []  # the runner was stopped and its folder removed
    assert processes_mentioning(str(remote)) == []


def test_one_bundle_built_once_goes_to_many_targets_unchanged(
    sshd: Dict[str, object], compiled: Path, datasets_dir: Path, tmp_path: Path
) -> None:
    spec = "images:%s" % (datasets_dir / "imagenet-samples")
    options = RunOptions(runs=2, warmup=0)
    first = build_bundle([compiled], tmp_path / "b1", eval_spec=spec, limit=4, options=options)
    second = build_bundle([compiled], tmp_path / "b2", eval_spec=spec, limit=4, options=options)
    assert first.sha256 == second.sha256  # content-addressed: same inputs, same name
    assert load_bundle(first.path) == first
    before = {p: p.read_bytes() for p in first.path.rglob("*") if p.is_file()}
    ssh = parse_target(str(sshd["url"]), identity=Path(str(sshd["key"])), known_hosts=Path(str(sshd["known_hosts"])),
                       python=sys.executable, remote_dir=str(tmp_path / "remote"))  # fmt: skip
    targets = [parse_target("local:%s" % (tmp_path / "board1")), ssh, parse_target("local:%s" % (tmp_path / "board2"))]
    reports = [deploy_bundle(load_bundle(first.path), t, out_dir=tmp_path / ("o%d" % i)) for i, t in enumerate(targets)]
    for report in reports:
        assert report.bundle["sha256"] == first.sha256
        (result,) = report.results
        assert result.eval is not None and result.eval["n"] == 4 and result.bench is not None
    assert [r.ssh_connections for r in reports] == [None, 1, None]
    assert {p: p.read_bytes() for p in first.path.rglob("*") if p.is_file()} == before


def test_a_bundle_that_fails_its_sha256_check_is_never_run_over_ssh(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path
) -> None:
    """The first command rides in the upload's round trip: it must run only after the sha256 check passed."""
    bundle = build_bundle([compiled], tmp_path / "bundle", options=RunOptions(runs=2, warmup=0))
    victim = bundle.path / "models" / COMPILED
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # after the manifest was written: the target's check must catch it
    victim.write_bytes(bytes(data))
    remote = tmp_path / "remote"
    target = parse_target(str(sshd["url"]), identity=Path(str(sshd["key"])), known_hosts=Path(str(sshd["known_hosts"])),
                          python=sys.executable, remote_dir=str(remote))  # fmt: skip
    with target:
        model = bundle.models[0]
        argv = [sys.executable if a == "{python}" else a for a in model.commands["bench"]]
        verify = [sys.executable, "-c", VERIFY_SNIPPET, bundle.sha256]
        delivery = target.deliver(Shipment(bundle.path, [sys.executable, "-c", "print(1)"], verify, first=argv))
        assert delivery.verify is not None and delivery.verify[0] == VERIFY_FAILED
        assert "models/%s" % COMPILED in delivery.verify[1] and delivery.first is None  # bench never ran
        target.remove(str(delivery.remote))
        with pytest.raises(DeployError) as info:
            deploy_bundle(bundle, target, out_dir=tmp_path / "out")
    assert "sha256 mismatch" in info.value.one_line() and "models/%s" % COMPILED in info.value.one_line()
    assert list(remote.iterdir()) == [] and not (tmp_path / "out").exists()
