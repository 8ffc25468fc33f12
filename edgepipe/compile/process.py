"""Running the compiler process: one output stream, our own watchdog, the whole process group killed."""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .find import compiler_not_found

# Our watchdog sits on top of the compiler's own `-t`: a wedged compiler (or its child) is killed.
WATCHDOG_MARGIN_S = 30


# The compiler's output is kept as a head and a tail of at most this many bytes each: its useful
# lines (version, summary, table, failure) are at the two ends, and a runaway compiler printing
# without end must not cost gigabytes of memory or a report of that size.
OUTPUT_HEAD_BYTES = 1 << 20
OUTPUT_TAIL_BYTES = 1 << 20
_CHUNK = 1 << 16
# After a kill, how long a descendant that left the process group may keep the pipe open.
_DRAIN_S = 10.0


@dataclass
class CompilerRun:
    exit_code: Optional[int]  # None when edgepipe killed it
    text: str  # stdout+stderr, bounded: head, a one-line note of what was dropped, tail
    killed_after: Optional[float]
    duration_s: float
    output_bytes: int  # everything it printed
    dropped_bytes: int  # of which not kept


class BoundedOutput:
    """The first `head` and last `tail` bytes of a stream, and how many bytes fell in between."""

    def __init__(self, head: int, tail: int) -> None:
        self.head_limit, self.tail_limit = head, tail
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> Tuple[str, int]:
        """(the text kept, with a note where bytes were dropped; how many bytes were dropped)."""
        if self.total == len(self.head) + len(self.tail):
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace"), 0
        # Whole lines only on both sides of the cut, so no half line is parsed as something else.
        head = bytes(self.head)
        head = head[: head.rfind(b"\n") + 1] if b"\n" in head else b""
        tail = bytes(self.tail)
        tail = tail[tail.find(b"\n") + 1 :] if b"\n" in tail else b""
        dropped = self.total - len(head) - len(tail)
        note = "[edgepipe: %d bytes of compiler output dropped here; kept the first %d and the last %d]\n" % (
            dropped,
            len(head),
            len(tail),
        )
        return head.decode("utf-8", "replace") + note + tail.decode("utf-8", "replace"), dropped


def run_compiler(argv: List[str], deadline_s: float) -> CompilerRun:
    """Run the compiler, keeping a bounded head and tail of its output; kill its whole process group
    when it outlives `deadline_s` (or on Ctrl-C). The compiler exists only for x86-64 Linux, so the
    pipe is read with `select` (POSIX)."""
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
    output = BoundedOutput(OUTPUT_HEAD_BYTES, OUTPUT_TAIL_BYTES)
    killed_after: Optional[float] = None
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        while True:
            now = time.monotonic()
            if killed_after is None and now - start >= deadline_s:
                killed_after = now - start
                _kill(proc)
            if killed_after is not None and now - start >= killed_after + _DRAIN_S:
                break  # a descendant that left the process group still holds the pipe; keep what arrived
            limit = deadline_s if killed_after is None else killed_after + _DRAIN_S
            ready, _, _ = select.select([fd], [], [], max(0.0, min(1.0, start + limit - now)))
            if ready:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break  # end of output: the compiler and every child holding the pipe are gone
                output.add(chunk)
        proc.stdout.close()
        if killed_after is None:
            try:
                proc.wait(timeout=max(0.0, start + deadline_s - time.monotonic()))
            except subprocess.TimeoutExpired:  # it closed its output but kept running
                killed_after = time.monotonic() - start
        if killed_after is not None:
            _kill(proc)
            proc.wait()
    except BaseException:  # Ctrl-C: in its own session the compiler never saw the SIGINT
        _kill(proc)
        proc.wait()
        raise
    text, dropped = output.text()
    return CompilerRun(
        exit_code=None if killed_after is not None else proc.returncode,
        text=text,
        killed_after=killed_after,
        duration_s=time.monotonic() - start,
        output_bytes=output.total,
        dropped_bytes=dropped,
    )


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
