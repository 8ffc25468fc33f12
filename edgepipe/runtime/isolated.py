"""Running a user's model in a child process, so that a crash of the TFLite runtime becomes an error.

A malformed model can make the interpreter die with SIGSEGV inside `invoke()` (a few bytes changed in a
valid model are enough for LiteRT 2.3 and tflite_runtime 2.14):
in-process that kills edgepipe without a word and loses every other result. `run_isolated(model, work, ...)`
forks; the child calls `work(..., progress)` (which opens the session and measures: the timing loop runs
there, unchanged) and sends back its return value, or its EdgepipeError, through a pipe. A child killed
by a signal becomes InferenceError "the TFLite runtime crashed (SIGSEGV) on MODEL" (exit 23).

Fork, not a fresh interpreter: no Python start-up and numpy import per run (seconds on a Coral Dev
Board), and the child sees the parent's arguments (a loaded dataset) without a copy. The child opens
the TFLite runtime itself, so the parent never has an interpreter's thread pool when it forks.
Where there is no fork (Windows) or `$EDGEPIPE_ISOLATE=0` (e.g. to use a debugger), work runs in-process.

The parent stops the child on any exception (Ctrl-C, SIGTERM turned into `Terminated`); on Linux the
child also dies with its parent (PR_SET_PDEATHSIG) if the parent is killed outright.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional, Tuple

from .errors import EdgepipeError, InferenceError, Terminated

ISOLATE_ENV = "EDGEPIPE_ISOLATE"
CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT")
_HEADER = struct.Struct("!Q")
_PR_SET_PDEATHSIG = 1
STOP_WAIT_S = 2.0  # after SIGTERM, before SIGKILL


class IsolatedBug(RuntimeError):
    """Not an EdgepipeError raised in the child: a bug; its traceback is the message (exit 1)."""


def isolation_enabled() -> bool:
    return hasattr(os, "fork") and os.environ.get(ISOLATE_ENV, "1") != "0"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def _send(fd: int, message: Tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def _portable_error(exc: EdgepipeError) -> EdgepipeError:
    """The error itself when it survives pickling, else a plain EdgepipeError with its text, hint and exit code."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        plain = EdgepipeError(str(exc), hint=exc.hint)
        plain.exit_code = exc.exit_code
        return plain


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except Exception:
            pass  # best effort: the parent still stops the child on every exception it sees
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _child(write_fd: int, parent: int, work: Callable[..., Any], args: Tuple[Any, ...]) -> None:
    """Runs in the forked child; never returns."""
    code = 0
    try:
        # Die at once on Ctrl-C/SIGTERM, even inside a long invoke() (a Python handler would wait for it).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent(parent)
        # Another thread of the parent (a progress bar) may have held the stream locks at fork time.
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (lives until os._exit)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115

        def progress(done: int, total: int) -> None:
            _send(write_fd, ("progress", done, total))

        result = work(*args, progress)
        _send(write_fd, ("result", result))
    except EdgepipeError as exc:
        _send(write_fd, ("error", _portable_error(exc)))
    except BaseException:  # a bug: its traceback goes to the parent
        code = 1
        try:
            _send(write_fd, ("bug", traceback.format_exc()))
        except BaseException:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _read_exact(fd: int, size: int) -> Optional[bytes]:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _stop(pid: int) -> None:
    """SIGTERM the child, then SIGKILL if it has not gone within STOP_WAIT_S; reap it."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def crash_error(model: str, status: int) -> EdgepipeError:
    """The error for a child that ended without an answer (waitpid `status`)."""
    if os.WIFSIGNALED(status):
        name = signal_name(os.WTERMSIG(status))
        if name in CRASH_SIGNALS:
            return InferenceError(
                "the TFLite runtime crashed (%s) on %s" % (name, model),
                hint="The model is malformed or hits a bug of this runtime; check it with `edgepipe inspect`, "
                "try another TFLite runtime (--runtime), or re-export it",
                signal=name,
            )
        if name == "SIGKILL":
            return InferenceError(
                "the process running %s was killed (SIGKILL)" % model,
                hint="Often the system ran out of memory: try a smaller batch or --limit",
            )
        return InferenceError("the process running %s was stopped by %s" % (model, name))
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return InferenceError("the process running %s exited with code %d without a result" % (model, code))


def run_isolated(
    model: str,
    work: Callable[..., Any],
    *args: Any,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Any:
    """`work(*args, progress)` in a forked child; its result, or its error raised here (see the module doc).

    `model` names the model in a crash error. `progress(done, total)` calls made in the child reach the
    parent's `progress`. Without fork (or with $EDGEPIPE_ISOLATE=0) `work` runs in this process.
    """
    report = progress or (lambda done, total: None)
    if not isolation_enabled():
        return work(*args, report)
    # Without a handler of ours, SIGTERM would kill this process and leave the child (outside Linux) running.
    main = threading.current_thread() is threading.main_thread()
    saved = signal.getsignal(signal.SIGTERM) if main else None
    if main and saved == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _run_child(model, work, args, report)
    finally:
        if main and saved == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_child(model: str, work: Callable[..., Any], args: Tuple[Any, ...], report: Callable[[int, int], None]) -> Any:
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(write_fd, parent, work, args)
    os.close(write_fd)
    answer: Optional[Tuple[Any, ...]] = None
    try:
        while True:
            head = _read_exact(read_fd, _HEADER.size)
            if head is None:
                break
            body = _read_exact(read_fd, _HEADER.unpack(head)[0])
            if body is None:
                break
            message = pickle.loads(body)
            if message[0] == "progress":
                report(message[1], message[2])
            else:
                answer = message
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        os.close(read_fd)
        if pid:
            _stop(pid)
    if answer is None:
        raise crash_error(model, status)
    kind, value = answer
    if kind == "result":
        return value
    if kind == "error":
        raise value
    raise IsolatedBug("the child running %s failed:\n%s" % (model, value))


__all__ = [
    "ISOLATE_ENV",
    "IsolatedBug",
    "crash_error",
    "isolation_enabled",
    "run_isolated",
    "signal_name",
]
