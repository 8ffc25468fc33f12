"""Targets: where a bundle goes and how a command runs there (transport only; no model knowledge).

A target is a resource (a folder here, an SSH login) plus a few actions: `put` a bundle folder into a
fresh directory on it, `run` an argument list in that directory, `remove` the directory again, and two
combined steps that save round trips (`deliver`: check the Python, put, verify; `run_last`: run, then
remove). `LocalTarget` is a directory on this machine; `SshTarget` uses the system OpenSSH client with
an argument list (never a shell string on our side) and quotes the one remote command line with shlex.

SSH: every call of one SshTarget shares one multiplexed connection (ControlMaster=auto, its socket in a
private 0700 folder, ControlPersist short); `disconnect()` (or leaving `with target:`) ends it and removes
the folder. Host keys are accepted on first contact (StrictHostKeyChecking=accept-new) and stored in
--known-hosts, else ~/.ssh/known_hosts; a changed key is refused. Host and user names are checked before
any ssh starts (ssh_names.py): a name ssh's config could hand to a shell (`%h` in a ProxyCommand) cannot
be a host name. (Over 500 lines because both transports implement one protocol: kept side by side.)
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, List, NamedTuple, Optional, Tuple, TypeVar, Union

from ..errors import DeployError, TargetSpecError, TransportError
from .ssh_names import check_host, check_ssh_files, check_user, ssh_file_arg

RunResult = Tuple[int, str, str]  # (exit code, stdout, stderr)
_T = TypeVar("_T", bound="TargetLifetime")
TARGET_FORMS = "ssh://user@host[:port], local:DIR or labgrid://PLACE"  # every accepted `--to` form
DEFAULT_TIMEOUT_S = 900.0  # one remote command; a board benchmarks a big model for minutes
CLEANUP_TIMEOUT_S = 30.0  # removing a bundle, ending the connection
SSH_FAILED = 255  # ssh's own exit code when it, not the remote command, failed
CONTROL_PERSIST_S = 30  # an orphaned master (we were SIGKILLed) ends itself after this long idle
PID_FILE = ".edgepipe-run.pid"  # the remote run's process group, so a cleanup can stop it
# Prints "3.7.3" on any Python (2 or 3), then exits 3 when older than 3.7: a too-old interpreter must still
# answer, not fail to parse.
VERSION_SNIPPET = (
    "import sys; sys.stdout.write('%d.%d.%d\\n' % tuple(sys.version_info[:3])); "
    "sys.exit(0 if sys.version_info >= (3, 7) else 3)"
)
TOO_OLD = 3  # VERSION_SNIPPET's exit code for a Python older than 3.7
FIRST_MARK = "--- edgepipe: verified; first command follows ---"  # a line in `deliver`'s stdout


class Shipment(NamedTuple):
    """What `deliver` is asked to do: run `check` (argv); only when it exits 0 put `bundle` there and run
    `verify` in it; `first` (with `first_last`: as `run_last`) is the command the caller runs next, which a
    transport where a round trip costs (SSH) runs in the same one once `verify` exited 0."""

    bundle: Path
    check: List[str]
    verify: List[str]
    first: Optional[List[str]] = None
    first_last: bool = False


class Delivery(NamedTuple):
    """What `deliver` did: the Python check's result, then (when it passed) the folder and the verify's result,
    then the `first` command's result when the transport ran it in the same round trip (None: not run)."""

    check: RunResult
    remote: Optional[str] = None
    verify: Optional[RunResult] = None
    first: Optional[RunResult] = None


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

    Plain targets need nothing; the methods exist so callers treat every target the same way. The two
    combined steps below are built from put/run/remove; a transport where a round trip costs (SSH)
    overrides them with one remote command each.
    """

    def open(self) -> None:
        pass

    def close(self) -> None:
        self.disconnect()

    def disconnect(self) -> None:
        """End a shared connection, if the transport keeps one (SSH); the next call opens a new one."""

    def __enter__(self: _T) -> _T:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def deliver(self, shipment: Shipment, timeout: float = DEFAULT_TIMEOUT_S) -> Delivery:
        """The Python check, then the bundle put there and verified (see Shipment); `first` is left to the caller."""
        this: Any = self
        checked = this.run(shipment.check, timeout=timeout)
        if checked[0] != 0:
            return Delivery(checked)
        remote = this.put(shipment.bundle)
        try:
            return Delivery(checked, remote, this.run(shipment.verify, cwd=remote, timeout=timeout))
        except BaseException:  # the caller never learns `remote`: remove it here
            with shielded():
                this.remove(remote)
            raise

    def run_last(self, argv: List[str], cwd: str, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
        """`run`, then `remove(cwd)` when it exited 0: a deploy's last command (after a failure the caller
        still needs the folder to diagnose, and removes it itself)."""
        this: Any = self
        result: RunResult = this.run(argv, cwd=cwd, timeout=timeout)
        if result[0] == 0:
            this.remove(cwd)
        return result


@contextmanager
def shielded() -> Iterator[None]:
    """While cleaning up, a second Ctrl-C or SIGTERM waits: the cleanup is bounded (CLEANUP_TIMEOUT_S)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """Stop a child started with start_new_session=True, and everything it started (a runner's own child)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass  # gone already
        try:
            proc.wait(timeout=2)
            return
        except subprocess.TimeoutExpired:
            continue


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
        except BaseException:  # Ctrl-C, SIGTERM: no half copy stays behind
            with shielded():
                shutil.rmtree(remote, ignore_errors=True)
            raise
        return str(remote)

    def run(self, argv: List[str], cwd: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
        env = dict(os.environ)
        if cwd:
            env["PYTHONPATH"] = cwd  # the bundle's edgepipe package, not an installed one
        try:
            # Its own session: a runner's child is stopped with it (killpg), and a terminal's Ctrl-C reaches
            # us only, so the cleanup order is ours.
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)  # fmt: skip
        except FileNotFoundError:
            return 127, "", "%s: not found" % argv[0]
        except PermissionError:
            return 126, "", "%s: permission denied" % argv[0]
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise TransportError(
                "%s did not finish within %.0f s on %s" % (" ".join(argv[:4]), timeout, self.describe())
            ) from None
        except BaseException:
            _stop_group(proc)
            raise
        return proc.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")

    def remove(self, remote: str) -> None:
        shutil.rmtree(remote, ignore_errors=True)

    def exists(self, remote: str) -> bool:
        return os.path.isdir(remote)


_SSH_URL = re.compile(r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[^\]]+\]|[^@/:\s]+)(?::(?P<port>\d+))?/?$")


def _control_root() -> str:
    """A short parent for the socket folder: a unix socket path must fit in ~104 bytes (ssh adds ~17)."""
    tmp = tempfile.gettempdir()
    return tmp if len(tmp) <= 40 else "/tmp"


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
    connections: int = field(default=0, init=False)  # SSH connections opened (masters started) so far
    _control_dir: Optional[str] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_host(self.host)
        if self.user is not None:
            check_user(self.user)
        check_ssh_files(self.identity, self.known_hosts)
        base = self.remote_base
        if base.startswith("~") and not (base == "~" or base.startswith("~/")):
            raise TargetSpecError("--remote-dir %s: only ~ and ~/DIR are understood" % base,
                                  hint="Write an absolute path, or ~/DIR for a folder in the login's home")  # fmt: skip
        if not base.strip() or "\n" in base:
            raise TargetSpecError("--remote-dir %r is not a folder name" % base, hint="Write an absolute path")

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
        host = match.group("host")
        if host.startswith("["):
            host = host[1:-1]
            if ":" not in host:
                raise TargetSpecError("%r: brackets are for IPv6 addresses only" % url, hint="Write ssh://user@HOST")
        elif ":" in host:
            raise TargetSpecError("%r: an IPv6 address goes in brackets" % url, hint="Write ssh://user@[ADDRESS]")
        return cls(host=host, user=match.group("user"), port=int(port) if port else None, **options)  # type: ignore

    @property
    def interpreter(self) -> str:
        return self.python or "python3"

    @property
    def login(self) -> str:
        return "%s@%s" % (self.user, self.host) if self.user else self.host

    def describe(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        login = "%s@%s" % (self.user, host) if self.user else host
        return "ssh://%s%s" % (login, ":%d" % self.port if self.port else "")

    # --- the shared connection ----------------------------------------------------------------------

    @property
    def control_path(self) -> Optional[str]:
        return os.path.join(self._control_dir, "c") if self._control_dir else None

    def _control_options(self) -> List[str]:
        if self._control_dir is None:
            self._control_dir = tempfile.mkdtemp(prefix="edgepipe-ssh-", dir=_control_root())  # mode 0700
        path = ssh_file_arg(Path(self.control_path or ""), "ControlPath")
        return ["-o", "ControlMaster=auto", "-o", 'ControlPath="%s"' % path,
                "-o", "ControlPersist=%d" % CONTROL_PERSIST_S]  # fmt: skip

    def disconnect(self) -> None:
        """End the shared connection (its master exits) and remove the socket folder. Safe to call twice."""
        folder, socket_path = self._control_dir, self.control_path
        if folder is None:
            return
        try:
            if socket_path and os.path.exists(socket_path):
                argv = [self.ssh_binary, "-o", 'ControlPath="%s"' % ssh_file_arg(Path(socket_path), "ControlPath"),
                        "-O", "exit", "--", self.login]  # fmt: skip
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=CLEANUP_TIMEOUT_S, check=False)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            pass  # the master is gone already, or ends itself after ControlPersist
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self._control_dir = None

    def ssh_argv(self, remote_command: str) -> List[str]:
        argv = [self.ssh_binary, "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % self.connect_timeout]
        argv += ["-o", "StrictHostKeyChecking=accept-new"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity:
            argv += ["-i", ssh_file_arg(self.identity, "--identity"), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            # Quoted: ssh splits an unquoted value at spaces (it takes several files there).
            argv += ["-o", 'UserKnownHostsFile="%s"' % ssh_file_arg(self.known_hosts, "--known-hosts")]
        argv += self._control_options()
        argv += list(self.extra_options)
        return argv + ["--", self.login, remote_command]

    def _raise_ssh_failure(self, stderr: str, doing: str) -> None:
        """Turn ssh's own failure (exit 255) into one TransportError line naming the target and the fix."""
        text = stderr.lower()
        where = self.describe()
        if "connection refused" in text:
            raise TransportError(
                "%s: connection refused while %s" % (where, doing),
                hint="Is sshd running there and listening on that port? Check the host and :port",
            )
        if "permission denied" in text or "too many authentication failures" in text:
            raise TransportError(
                "%s: authentication failed while %s (%s)" % (where, doing, last_error_line(stderr)),
                hint="Pass a key the board accepts with --identity KEY (batch mode: no password prompts), "
                "or add your public key to its ~/.ssh/authorized_keys",
                retryable=False,
            )
        if "host key verification failed" in text or "remote host identification has changed" in text:
            raise TransportError(
                "%s: host key verification failed while %s" % (where, doing),
                hint="The board's host key changed; if that is expected remove its old line from known_hosts "
                "(ssh-keygen -R HOST)",
                retryable=False,
            )
        unreachable = ("could not resolve", "timed out", "no route", "network is unreachable", "name or service")
        if any(word in text for word in unreachable):
            raise TransportError(
                "%s: host unreachable while %s (%s)" % (where, doing, last_error_line(stderr)),
                hint="Check the address, that the board is powered and on the network",
            )
        raise TransportError("%s: ssh failed while %s: %s" % (where, doing, last_error_line(stderr)))

    def _ssh(
        self, remote_command: str, doing: str, stdin_writer: Optional[Any] = None, timeout: float = DEFAULT_TIMEOUT_S
    ) -> RunResult:
        argv = self.ssh_argv(remote_command)
        if not os.path.exists(self.control_path or ""):
            self.connections += 1  # no master yet: this ssh connects and becomes it
        read_end = write_end = None
        if stdin_writer is not None:
            # Our own pipe, written by a thread while communicate() drains stdout/stderr: no deadlock.
            read_end, write_end = os.pipe()
        try:
            # Its own session: a terminal's Ctrl-C reaches us only, and we stop ssh after deciding what to clean.
            proc = subprocess.Popen(
                argv,
                stdin=read_end if read_end is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
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
        feed_errors: List[BaseException] = []
        if read_end is not None and write_end is not None:
            os.close(read_end)  # the child holds its copy

            def feed(fd: int) -> None:
                with os.fdopen(fd, "wb") as handle:
                    try:
                        stdin_writer(handle)
                    except OSError:
                        pass  # the remote end went away (or never read): ssh's stderr and exit code say why
                    except Exception as exc:  # reported after ssh ends, in this thread's caller
                        feed_errors.append(exc)

            thread = threading.Thread(target=feed, args=(write_end,), daemon=True)
            thread.start()
        try:
            stdout_b, stderr_b = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise TransportError("%s: no answer within %.0f s while %s" % (self.describe(), timeout, doing)) from None
        except BaseException:
            _stop_group(proc)
            raise
        finally:
            if thread is not None:
                thread.join(timeout=10)
        if feed_errors:
            raise DeployError("%s: sending the bundle failed: %s" % (self.describe(), feed_errors[0]))
        stdout, stderr = stdout_b.decode("utf-8", "replace"), stderr_b.decode("utf-8", "replace")
        if proc.returncode == SSH_FAILED:
            self._raise_ssh_failure(stderr, doing)
        return proc.returncode, stdout, stderr

    # --- remote commands ----------------------------------------------------------------------------

    def _base_expr(self) -> str:
        """--remote-dir as the remote shell should see it: `~` is the login's $HOME there, never a folder `~`."""
        base = self.remote_base.rstrip("/") or "/"
        if base == "~":
            return '"$HOME"'
        if base.startswith("~/"):
            return '"$HOME"/' + shlex.quote(base[2:])
        return shlex.quote(base)

    def _put_command(self, folder: str) -> str:
        """Make the fresh folder `folder` (a shell expression), unpack the tar on stdin there, stay there; print
        its absolute path (also left in $d)."""
        return 'd=%s && mkdir -p "$d" && tar -x -C "$d" -f - && cd "$d" && d=$(pwd) && pwd' % folder

    def _upload(self, command: str, folder: str, bundle: Path, timeout: float) -> RunResult:
        """`command` with the bundle's tar on its stdin; stopped midway (timeout, signal, broken link), the
        folder it was making is removed: the caller never learnt its name."""
        try:
            return self._ssh(command, "uploading the bundle", self._tar_writer(bundle), timeout=timeout)
        except BaseException:
            with shielded():
                self._remove_folder(folder)
            raise

    def _new_folder(self) -> str:
        return "%s/%s" % (self._base_expr(), _bundle_dir_name())

    @staticmethod
    def _tar_writer(bundle: Path) -> Any:
        def write_tar(handle: IO[bytes]) -> None:
            with tarfile.open(fileobj=handle, mode="w|") as tar:
                for path in sorted(bundle.rglob("*")):
                    tar.add(str(path), arcname=path.relative_to(bundle).as_posix(), recursive=False)

        return write_tar

    def _upload_failed(self, rc: int, stderr: str) -> DeployError:
        return DeployError(
            "upload to %s:%s failed (exit %d): %s" % (self.describe(), self.remote_base, rc, last_error_line(stderr)),
            hint="Check free space and that `tar` and a writable --remote-dir exist on the target",
        )

    def put(self, bundle: Path) -> str:
        folder = self._new_folder()
        rc, stdout, stderr = self._upload(self._put_command(folder), folder, bundle, DEFAULT_TIMEOUT_S)
        remote = stdout.strip().splitlines()[-1] if stdout.strip() else ""
        if rc != 0 or not remote.startswith("/"):
            if remote.startswith("/"):
                self.remove(remote)
            raise self._upload_failed(rc, stderr)
        return remote

    def deliver(self, shipment: Shipment, timeout: float = DEFAULT_TIMEOUT_S) -> Delivery:
        """One remote command: the Python check; only if it passes, mkdir + untar + verify in the new folder;
        only if verify exits 0, `first` there (one round trip less: ~0.1 s a session even when multiplexed).

        stdout is the check's line, then the folder's absolute path, then verify's output, then (verify passed)
        FIRST_MARK and first's output. Exit 97: the upload (mkdir/tar) failed.
        """
        quoted = " ".join(shlex.quote(a) for a in shipment.check)
        verify_cmd = " ".join(shlex.quote(a) for a in shipment.verify)
        folder = self._new_folder()
        command = "%s || exit $?\n{ %s; } || exit 97\n%s" % (quoted, self._put_command(folder), verify_cmd)
        if shipment.first is not None:
            then = 'if [ $rc -eq 0 ]; then cd / && rm -rf "$d"; fi;' if shipment.first_last else ""
            first = self._run_command(shipment.first, '"$d"', then)
            command += " || exit $?\necho %s\n%s" % (shlex.quote(FIRST_MARK), first)
        rc, stdout, stderr = self._upload(command, folder, shipment.bundle, timeout)
        lines = stdout.splitlines()
        check_out = lines[0] + "\n" if lines else ""
        remote = lines[1].strip() if len(lines) > 1 and lines[1].startswith("/") else None
        if remote is None:
            if rc in (0, 97):  # the check passed; the folder was not made or not filled
                raise self._upload_failed(rc, stderr)
            return Delivery((rc, check_out, stderr))
        if rc == 97:
            self.remove(remote)
            raise self._upload_failed(rc, stderr)
        rest = lines[2:]
        if FIRST_MARK not in rest:
            return Delivery((0, check_out, ""), remote, (rc, "\n".join(rest) + "\n", stderr))
        mark = rest.index(FIRST_MARK)  # verify exited 0; its stderr (normally empty) goes with first's
        verified = (0, "\n".join(rest[:mark]) + "\n", "")
        return Delivery((0, check_out, ""), remote, verified, (rc, "\n".join(rest[mark + 1:]) + "\n", stderr))

    def _run_command(self, argv: List[str], where: Optional[str], then: str = "") -> str:
        """`argv` in the folder `where` (a quoted shell word) with the bundle on PYTHONPATH; `then` runs after
        it, `$rc` holding its exit code."""
        command = " ".join(shlex.quote(a) for a in argv)
        if not where:
            return command
        # The shell's pid is the session's process group (sshd starts each command in a new session):
        # written down so that a cleanup can stop the runner and its children (`remove`).
        return "cd %s && echo $$ > %s && PYTHONPATH=%s %s; rc=$?; rm -f %s; %s exit $rc" % (
            where, PID_FILE, where, command, PID_FILE, then)

    def run(self, argv: List[str], cwd: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
        shown = argv[:2] + ["..."] if argv[1:2] == ["-c"] else argv[:4]  # a -c program is too long for one line
        where = shlex.quote(cwd) if cwd else None
        return self._ssh(self._run_command(argv, where), "running %s" % " ".join(shown), timeout=timeout)

    def run_last(self, argv: List[str], cwd: str, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
        """One remote command: run, then remove the folder when the run exited 0 (its exit code is kept)."""
        where = shlex.quote(cwd)
        command = self._run_command(argv, where, then="if [ $rc -eq 0 ]; then cd / && rm -rf %s; fi;" % where)
        return self._ssh(command, "running %s" % " ".join(argv[:4]), timeout=timeout)

    def _removable(self, remote: str) -> bool:
        return bool(remote) and remote.rstrip("/") not in ("", "/", self.remote_base.rstrip("/"))

    def remove(self, remote: str) -> None:
        """Stop a run still going in `remote` (its process group), then delete the folder. Best effort."""
        if not self._removable(remote):
            return  # never remove the base itself
        self._remove_folder(shlex.quote(remote.rstrip("/")))

    def _remove_folder(self, folder: str) -> None:
        """`remove` for a folder given as a shell expression (quoted already)."""
        command = ('d=%s; if [ -f "$d/%s" ]; then kill -TERM -- -$(cat "$d/%s") 2>/dev/null; fi; rm -rf "$d"'
                   % (folder, PID_FILE, PID_FILE))  # fmt: skip
        try:
            self._ssh(command, "removing %s" % folder, timeout=CLEANUP_TIMEOUT_S)
        except DeployError:
            pass  # best effort: the original error matters more

    def exists(self, remote: str) -> bool:
        rc, _, _ = self._ssh("test -d %s" % shlex.quote(remote), "checking %s" % remote, timeout=60)
        return rc == 0


Target = Union[LocalTarget, SshTarget]  # duck-typed: describe, interpreter, put, run, remove, deliver, run_last; `with`


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
    A missing --identity file is InputNotFoundError (exit 3), found here, before any connection.
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

        check_ssh_files(identity, known_hosts)  # before the place is acquired
        return LabgridTarget.from_url(spec, **ssh_options)  # type: ignore[return-value]
    hint = "Accepted forms: %s" % TARGET_FORMS
    if spec and "://" not in spec and ":" not in spec and "/" not in spec:
        hint = "A bare host name is not enough: write ssh://USER@%s (a Dev Board: ssh://mendel@%s). %s" % (
            spec,
            spec,
            hint,
        )
    raise TargetSpecError("%r is not a target" % spec, hint=hint)
