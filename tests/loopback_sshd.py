"""A real OpenSSH server on 127.0.0.1 for tests and benchmarks (`tests/conftest.py`'s `sshd` fixture,
`scripts/bench_deploy.py`): a throw-away host key, one authorized user key, a log to count logins in.

Plain module (no pytest) so a script can use it too: `with loopback_sshd(folder) as server: ...`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator

SSHD = Path("/usr/sbin/sshd")
MISSING = "OpenSSH server/client missing (%s, ssh, ssh-keygen); apt-get install openssh-server" % SSHD


class SshdUnavailable(RuntimeError):
    """sshd, ssh or ssh-keygen is not installed, or the server did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepted_logins(log: Path) -> int:
    """How many SSH connections the server has authenticated so far (one line per login at LogLevel INFO)."""
    try:
        return log.read_text(errors="replace").count("Accepted publickey for ")
    except OSError:
        return 0


@contextmanager
def loopback_sshd(root: Path) -> Iterator[Dict[str, object]]:
    """Start sshd on a free 127.0.0.1 port with its files in `root`; yields url, port, user, key paths, log."""
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        raise SshdUnavailable(MISSING)
    root.mkdir(parents=True, exist_ok=True)
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
                "LogLevel INFO",  # one "Accepted publickey" line per connection: what tests count
                "MaxStartups 100:30:200",  # fleet tests connect to many "boards" on this one server at once
                "PidFile %s" % (root / "sshd.pid"),
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    log_path = root / "sshd.log"
    log = log_path.open("w")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SshdUnavailable("sshd did not start: %s" % log_path.read_text()[-2000:]) from None
                time.sleep(0.1)
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        yield {
            "url": "ssh://%s@127.0.0.1:%d" % (user, port),
            "port": port,
            "user": user,
            "key": root / "user_key",
            "stranger_key": root / "stranger_key",
            "known_hosts": root / "known_hosts",
            "log": log_path,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
