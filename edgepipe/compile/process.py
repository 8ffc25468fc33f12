"""Running the compiler process: one output stream, our own watchdog, the whole process group killed."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from typing import List, Optional, Tuple

from .find import compiler_not_found

# Our watchdog sits on top of the compiler's own `-t`: a wedged compiler (or its child) is killed.
WATCHDOG_MARGIN_S = 30


def run_compiler(argv: List[str], deadline_s: float) -> Tuple[Optional[int], str, Optional[float], float]:
    """(exit code, stdout+stderr, killed_after_s, duration_s). Kills the whole process group on timeout."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream keeps the compiler's line order
            stdin=subprocess.DEVNULL,
            start_new_session=(os.name == "posix"),  # the compiler forks a child: kill them together
        )
    except OSError as exc:
        raise compiler_not_found("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from None
    killed_after = None
    try:
        data, _ = proc.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        killed_after = time.monotonic() - start
        _kill(proc)
        try:
            data, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired as exc:
            # A descendant that left the process group still holds the pipe; keep what arrived.
            data = exc.stdout or b""
            if proc.stdout is not None:
                proc.stdout.close()
            proc.wait()
    except BaseException:  # Ctrl-C: in its own session the compiler never saw the SIGINT
        _kill(proc)
        proc.wait()
        raise
    duration = time.monotonic() - start
    text = (data or b"").decode("utf-8", "replace")
    return (None if killed_after is not None else proc.returncode), text, killed_after, duration


def _kill(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def watchdog_s(
    timeout_s: int, segments: Optional[int], search_delegate: bool, search_step: Optional[int], ops: int
) -> float:
    """Our own limit: the compiler's `-t` applies per segment and per `-d` attempt, plus a margin."""
    attempts = max(segments or 1, 1)
    if search_delegate:
        attempts *= math.ceil(max(ops, 1) / max(search_step or 1, 1)) + 1
    return float(timeout_s * attempts + WATCHDOG_MARGIN_S)
