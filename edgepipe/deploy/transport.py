"""Targets: where a bundle goes and how a command runs there (transport only; no model knowledge).

A target is a resource (a folder here, an SSH login) plus three actions: `put` a bundle folder into a
fresh directory on it, `run` an argument list in that directory, `remove` the directory again.
`LocalTarget` is a directory on this machine; `SshTarget` uses the system OpenSSH client with an
argument list (never a shell string on our side), and quotes the one remote command line with shlex.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, List, Optional, Tuple, TypeVar, Union

from ..errors import DeployError, TargetSpecError

RunResult = Tuple[int, str, str]  # (exit code, stdout, stderr)
_T = TypeVar("_T", bound="TargetLifetime")
TARGET_FORMS = "ssh://user@host[:port], local:DIR or labgrid://PLACE"  # every accepted `--to` form
DEFAULT_TIMEOUT_S = 900.0  # one remote command; a board benchmarks a big model for minutes
SSH_FAILED = 255  # ssh's own exit code when it, not the remote command, failed


def _bundle_dir_name() -> str:
    return "edgepipe-deploy-" + secrets.token_hex(4)


def last_error_line(stderr: str) -> str:
    """The remote's own one-line error: the last `error: ...` line, else the last non-empty line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    return lines[-1] if lines else "(no output on stderr)"


class TargetLifetime:
    """`with target:` holds what a run needs for its duration (a labgrid place is acquired, then released).

    Plain targets need nothing; the methods exist so callers treat every target the same way.
    """

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self: _T) -> _T:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LocalTarget(TargetLifetime):
    """A directory on this machine; commands run with `python` (default: this interpreter)."""

    directory: Path
    python: Optional[str] = None

    @property
    def interpreter(self) -> str:
        return self.python or sys.executable

    def describe(self) -> str:
        return "local:%s" % self.directory

    def put(self, bundle: Path) -> str:
        remote = self.directory / _bundle_dir_name()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            shutil.copytree(bundle, remote)
        except OSError as exc:
            shutil.rmtree(remote, ignore_errors=True)
            raise DeployError(
                "upload to %s failed: %s" % (self.describe(), exc), hint="Check that the folder is writable"
            ) from None
        return str(remote)

    def run(self, argv: List[str], cwd: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
        env = dict(os.environ)
        if cwd:
            env["PYTHONPATH"] = cwd  # the bundle's edgepipe package, not an installed one
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            return 127, "", "%s: not found" % argv[0]
        except PermissionError:
            return 126, "", "%s: permission denied" % argv[0]
        except subprocess.TimeoutExpired:
            raise DeployError(
                "%s did not finish within %.0f s on %s" % (" ".join(argv[:4]), timeout, self.describe())
            ) from None
        return proc.returncode, proc.stdout, proc.stderr

    def remove(self, remote: str) -> None:
        shutil.rmtree(remote, ignore_errors=True)

    def exists(self, remote: str) -> bool:
        return os.path.isdir(remote)


_SSH_URL = re.compile(r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[^\]]+\]|[^@/:\s]+)(?::(?P<port>\d+))?/?$")


@dataclass
class SshTarget(TargetLifetime):
    """`ssh://[user@]host[:port]`, reached with the system `ssh` in batch mode (keys only, no prompts)."""

    host: str
    user: Optional[str] = None
    port: Optional[int] = None
    identity: Optional[Path] = None
    python: Optional[str] = None
    remote_base: str = "/tmp"
    known_hosts: Optional[Path] = None
    connect_timeout: int = 10
    ssh_binary: str = "ssh"
    extra_options: List[str] = field(default_factory=list)

    @classmethod
    def from_url(cls, url: str, **options: object) -> SshTarget:
        match = _SSH_URL.match(url)
        if not match:
            raise TargetSpecError(
                "cannot parse target %r" % url, hint="Write ssh://user@host or ssh://user@host:port"
            )
        port = match.group("port")
        if port is not None and not 0 < int(port) < 65536:
            raise TargetSpecError(
                "port %s in %s is out of range" % (port, url), hint="Use a port between 1 and 65535"
            )
        host = match.group("host").strip("[]")
        return cls(host=host, user=match.group("user"), port=int(port) if port else None, **options)  # type: ignore

    @property
    def interpreter(self) -> str:
        return self.python or "python3"

    @property
    def login(self) -> str:
        return "%s@%s" % (self.user, self.host) if self.user else self.host

    def describe(self) -> str:
        return "ssh://%s%s" % (self.login, ":%d" % self.port if self.port else "")

    def ssh_argv(self, remote_command: str) -> List[str]:
        argv = [self.ssh_binary, "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % self.connect_timeout]
        argv += ["-o", "StrictHostKeyChecking=accept-new"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity:
            argv += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", "UserKnownHostsFile=%s" % self.known_hosts]
        argv += list(self.extra_options)
        return argv + ["--", self.login, remote_command]

    def _raise_ssh_failure(self, stderr: str, doing: str) -> None:
        """Turn ssh's own failure (exit 255) into one line naming the target and the fix."""
        text = stderr.lower()
        where = self.describe()
        if "connection refused" in text:
            raise DeployError(
                "%s: connection refused while %s" % (where, doing),
                hint="Is sshd running there and listening on that port? Check the host and :port",
            )
        if "permission denied" in text or "too many authentication failures" in text:
            raise DeployError(
                "%s: authentication failed while %s (%s)" % (where, doing, last_error_line(stderr)),
                hint="Pass a key the board accepts with --identity KEY (batch mode: no password prompts), "
                "or add your public key to its ~/.ssh/authorized_keys",
            )
        if "host key verification failed" in text or "remote host identification has changed" in text:
            raise DeployError(
                "%s: host key verification failed while %s" % (where, doing),
                hint="The board's host key changed; if that is expected remove its old line from known_hosts "
                "(ssh-keygen -R HOST)",
            )
        unreachable = ("could not resolve", "timed out", "no route", "network is unreachable", "name or service")
        if any(word in text for word in unreachable):
            raise DeployError(
                "%s: host unreachable while %s (%s)" % (where, doing, last_error_line(stderr)),
                hint="Check the address, that the board is powered and on the network",
            )
        raise DeployError("%s: ssh failed while %s: %s" % (where, doing, last_error_line(stderr)))

    def _ssh(
        self, remote_command: str, doing: str, stdin_writer: Optional[object] = None, timeout: float = DEFAULT_TIMEOUT_S
    ) -> RunResult:
        argv = self.ssh_argv(remote_command)
        read_end = write_end = None
        if stdin_writer is not None:
            # Our own pipe, written by a thread while communicate() drains stdout/stderr: no deadlock.
            read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=read_end if read_end is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            for fd in (read_end, write_end):
                if fd is not None:
                    os.close(fd)
            raise DeployError(
                "the OpenSSH client %r is not installed here" % self.ssh_binary,
                hint="Install it (Debian/Ubuntu: apt-get install openssh-client)",
            ) from None
        thread = None
        if read_end is not None and write_end is not None:
            os.close(read_end)  # the child holds its copy

            def feed(fd: int) -> None:
                with os.fdopen(fd, "wb") as handle:
                    try:
                        stdin_writer(handle)  # type: ignore[operator]
                    except OSError:
                        pass  # the remote end went away; ssh's stderr and exit code say why

            thread = threading.Thread(target=feed, args=(write_end,), daemon=True)
            thread.start()
        try:
            stdout_b, stderr_b = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise DeployError("%s: no answer within %.0f s while %s" % (self.describe(), timeout, doing)) from None
        finally:
            if thread is not None:
                thread.join(timeout=10)
        stdout, stderr = stdout_b.decode("utf-8", "replace"), stderr_b.decode("utf-8", "replace")
        if proc.returncode == SSH_FAILED:
            self._raise_ssh_failure(stderr, doing)
        return proc.returncode, stdout, stderr

    def put(self, bundle: Path) -> str:
        remote = "%s/%s" % (self.remote_base.rstrip("/") or "", _bundle_dir_name())
        command = "mkdir -p %s && tar -x -C %s -f -" % (shlex.quote(remote), shlex.quote(remote))

        def write_tar(handle: IO[bytes]) -> None:
            with tarfile.open(fileobj=handle, mode="w|") as tar:
                for path in sorted(bundle.rglob("*")):
                    tar.add(str(path), arcname=path.relative_to(bundle).as_posix(), recursive=False)

        rc, _, stderr = self._ssh(command, "uploading the bundle", stdin_writer=write_tar)
        if rc != 0:
            self.remove(remote)
            raise DeployError(
                "upload to %s:%s failed (exit %d): %s" % (self.describe(), remote, rc, last_error_line(stderr)),
                hint="Check free space and that `tar` and a writable --remote-dir exist on the target",
            )
        return remote

    def run(self, argv: List[str], cwd: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
        command = " ".join(shlex.quote(a) for a in argv)
        if cwd:
            command = "cd %s && PYTHONPATH=%s %s" % (shlex.quote(cwd), shlex.quote(cwd), command)
        shown = argv[:2] + ["..."] if argv[1:2] == ["-c"] else argv[:4]  # a -c program is too long for one line
        return self._ssh(command, "running %s" % " ".join(shown), timeout=timeout)

    def remove(self, remote: str) -> None:
        if not remote or remote.rstrip("/") in ("", "/", self.remote_base.rstrip("/")):
            return  # never remove the base itself
        try:
            self._ssh("rm -rf %s" % shlex.quote(remote), "removing %s" % remote, timeout=60)
        except DeployError:
            pass  # best effort: the original error matters more

    def exists(self, remote: str) -> bool:
        rc, _, _ = self._ssh("test -d %s" % shlex.quote(remote), "checking %s" % remote, timeout=60)
        return rc == 0


Target = Union[LocalTarget, SshTarget]  # duck-typed: describe, interpreter, put, run, remove, exists; `with`


def parse_target(
    spec: str,
    *,
    python: Optional[str] = None,
    identity: Optional[Path] = None,
    remote_dir: Optional[str] = None,
    known_hosts: Optional[Path] = None,
    connect_timeout: int = 10,
) -> LocalTarget | SshTarget:
    """`local:DIR`, `ssh://user@host[:port]` or `labgrid://PLACE` → a target (use it as `with target:`).

    A string in none of these forms is a command-line error (TargetSpecError, exit 2): nothing is tried.
    """
    ssh_options = {
        "python": python,
        "identity": identity,
        "remote_base": remote_dir or "/tmp",
        "known_hosts": known_hosts,
        "connect_timeout": connect_timeout,
    }
    if spec.startswith("local:"):
        folder = spec[len("local:"):]
        if not folder:
            raise TargetSpecError("local target needs a folder", hint="Write local:DIR")
        return LocalTarget(Path(remote_dir or folder).expanduser(), python=python)
    if spec.startswith("ssh://"):
        return SshTarget.from_url(spec, **ssh_options)
    if spec.startswith("labgrid://"):
        from .labgrid import LabgridTarget  # labgrid is an optional extra; imported when asked for

        return LabgridTarget.from_url(spec, **ssh_options)  # type: ignore[return-value]
    hint = "Accepted forms: %s" % TARGET_FORMS
    if spec and "://" not in spec and ":" not in spec and "/" not in spec:
        hint = "A bare host name is not enough: write ssh://USER@%s (a Dev Board: ssh://mendel@%s). %s" % (
            spec,
            spec,
            hint,
        )
    raise TargetSpecError("%r is not a target" % spec, hint=hint)
