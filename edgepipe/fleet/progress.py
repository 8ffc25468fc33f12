"""Per-board progress of a fleet run, on stderr: a live table on a terminal, one line per event otherwise.

Every text shown here can hold a board's or a remote host's words, so it is printed literally (no markup).
Called from several threads at once; rich's Console and Live take their own locks.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, List, Optional

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

COLOURS = {"pass": "green", "fail": "red", "unreachable": "magenta", "running": "cyan", "queued": "dim"}


class FleetProgress:
    """What a fleet run reports as it goes; this base class shows nothing."""

    def start(self, boards: List[str], resumed: Dict[str, str]) -> None:
        pass

    def update(self, board: str, message: str) -> None:
        pass

    def done(self, board: str, verdict: str, reasons: List[str]) -> None:
        pass

    def stop(self) -> None:
        pass


NoProgress = FleetProgress


class LineProgress(FleetProgress):
    """`NAME: message` lines (logs, CI, pipes)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _say(self, board: str, message: str, style: str = "dim") -> None:
        self.console.print(Text("%s: %s" % (board, message), style=style), highlight=False, soft_wrap=True)

    def start(self, boards: List[str], resumed: Dict[str, str]) -> None:
        for board, verdict in resumed.items():
            self._say(board, "already judged (%s) in the output folder: not validated again" % verdict)

    def update(self, board: str, message: str) -> None:
        self._say(board, message)

    def done(self, board: str, verdict: str, reasons: List[str]) -> None:
        self._say(board, verdict + (": " + reasons[0] if reasons else ""), COLOURS.get(verdict, "dim"))


class LiveProgress(FleetProgress):
    """A table with one row per board (state, last step, seconds), redrawn in place on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: Dict[str, List[str]] = {}  # board -> [state, message]
        self.started: Dict[str, float] = {}
        self.ended: Dict[str, float] = {}
        self.lock = threading.Lock()
        self.live: Optional[Live] = None

    def _table(self) -> Table:
        table = Table(title="Fleet validation", title_justify="left", expand=False)
        for column in ("Board", "State", "s", "Step"):
            table.add_column(column, overflow="ellipsis", no_wrap=True, max_width=80 if column == "Step" else None)
        now = time.monotonic()
        with self.lock:
            for board, (state, message) in self.rows.items():
                start = self.started.get(board)
                seconds = "" if start is None else "%.0f" % (self.ended.get(board, now) - start)
                table.add_row(Text(board), Text(state, style=COLOURS.get(state, "")), seconds, Text(message))
        return table

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def start(self, boards: List[str], resumed: Dict[str, str]) -> None:
        with self.lock:
            for board in boards:
                self.rows[board] = [resumed[board], "resumed: already judged"] if board in resumed else ["queued", ""]
        self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def update(self, board: str, message: str) -> None:
        with self.lock:
            self.started.setdefault(board, time.monotonic())
            self.rows[board] = ["running", message]
        self._refresh()

    def done(self, board: str, verdict: str, reasons: List[str]) -> None:
        with self.lock:
            self.ended[board] = time.monotonic()
            self.rows[board] = [verdict, reasons[0] if reasons else ""]
        self._refresh()

    def stop(self) -> None:
        if self.live is not None:
            self._refresh()
            self.live.stop()
            self.live = None


def progress_for(console: Console) -> FleetProgress:
    """The live table on a terminal, lines otherwise."""
    return LiveProgress(console) if console.is_terminal else LineProgress(console)


__all__ = ["FleetProgress", "LineProgress", "LiveProgress", "NoProgress", "progress_for"]
