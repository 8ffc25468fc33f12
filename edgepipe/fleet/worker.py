"""One board's deploy, in its own process: `python -m edgepipe.fleet.worker INVENTORY BOARD OUT [BUNDLE]`.

Why a process and not a thread: a board that hangs must be stoppable at its timeout, and Ctrl-C must
leave no `ssh` or runner behind. The fleet runner starts each worker in its own session, so SIGTERM
to the worker makes deploy clean up (its `finally` removes the bundle from the board) and a SIGKILL
to the session afterwards ends whatever is left.

Protocol: progress lines on stderr (one message each); on stdout one JSON object, either
{"ok": true, "target", "models": [{"model", "source", "summary"}], "remote", "results_path"} or
{"ok": false, "error": LINE, "error_kind": transport | remote_command | deploy, "exit_code": N}.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Dict, List, Optional

from ..deploy import DeployReport, deploy
from ..errors import DeployError, EdgepipeError, RemoteCommandError
from ..runtime.report import to_jsonable
from .inventory import load_inventory
from .judge import clean_summary

EXIT_TERMINATED = 143  # 128 + SIGTERM
# ssh's and the transport's own words for "the board could not be reached or the link broke": worth
# one retry. Everything else (no Python there, a runtime missing, a sha256 mismatch) would fail again.
_TRANSPORT_WORDS = ("connection refused", "host unreachable", "ssh failed", "no answer within", "connection reset",
                    "connection closed", "broken pipe", "timed out")  # fmt: skip


class Terminated(BaseException):
    """SIGTERM from the fleet runner (its timeout or Ctrl-C): unwinds deploy so it removes its bundle."""


def error_kind(exc: EdgepipeError) -> str:
    if isinstance(exc, RemoteCommandError):
        return "remote_command"
    transport = getattr(sys.modules["edgepipe.errors"], "TransportError", None)
    if transport is not None:
        return "transport" if isinstance(exc, transport) else "deploy"
    line = exc.one_line().lower()
    return "transport" if isinstance(exc, DeployError) and any(w in line for w in _TRANSPORT_WORDS) else "deploy"


def remote_summary(report: DeployReport) -> Dict[str, Any]:
    remote = report.remote
    runtime = remote.get("runtime") or {}
    return {
        "python": remote.get("python"),
        "interpreter": remote.get("interpreter"),
        "runtime": ("%s %s" % (runtime.get("name"), runtime.get("version") or "")).strip() if runtime else None,
        "libedgetpu": (remote.get("libedgetpu") or {}).get("path"),
        "devices": remote.get("devices") or [],
        "edgetpu_ready": remote.get("edgetpu_ready"),
    }


def run_board(inventory_path: Path, name: str, out_dir: Path, bundle: Optional[Path] = None) -> Dict[str, Any]:
    inventory = load_inventory(inventory_path)
    board = next(b for b in inventory.boards if b.name == name)

    def say(message: str) -> None:
        sys.stderr.write(" ".join(message.split()) + "\n")
        sys.stderr.flush()

    try:
        with board.target:
            report = deploy(
                inventory.models, board.target, board.options, eval_spec=inventory.eval_spec, limit=inventory.limit,
                data_dir=inventory.data_dir, out_dir=out_dir, progress=say,
            )  # fmt: skip
    except EdgepipeError as exc:
        return {"ok": False, "error": exc.one_line(), "error_kind": error_kind(exc), "exit_code": exc.exit_code}
    models: List[Dict[str, Any]] = [
        {"model": r.model, "source": r.source, "summary": clean_summary(r.summary)} for r in report.results
    ]
    return {"ok": True, "target": report.target, "models": models, "remote": remote_summary(report),
            "results_path": report.results_path}  # fmt: skip


def _terminate(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated()


def main(argv: List[str]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        result = run_board(Path(argv[0]), argv[1], Path(argv[2]), Path(argv[3]) if len(argv) > 3 else None)
    except Terminated:
        return EXIT_TERMINATED
    sys.stdout.write(json.dumps(to_jsonable(result), allow_nan=False) + "\n")  # summaries were made finite
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
