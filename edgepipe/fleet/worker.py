"""One board's deploy, in its own process: `python -m edgepipe.fleet.worker INVENTORY BOARD OUT BUNDLE TIMEOUT_S`.

Why a process and not a thread: a board that hangs must be stoppable at its timeout, and Ctrl-C must
leave no `ssh` or runner behind. The fleet runner starts each worker in its own session, so SIGTERM
to the worker makes deploy clean up (Terminated unwinds it: the bundle is removed from the board, the
ssh connection closed) and a SIGKILL to the session afterwards ends whatever is left. BUNDLE is the
folder the runner built once for every board with these run options (`deploy.load_bundle`).

Protocol: progress lines on stderr (one message each); on stdout one JSON object, either
{"ok": true, "target", "models": [{"model", "source", "summary"}], "remote", "results_path", "bundle_sha256",
"ssh_connections"} or {"ok": false, "error": LINE, "error_kind": transport | remote_command | deploy,
"retryable": bool, "exit_code": N}.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Dict, List, Optional

from ..deploy import DeployReport, deploy_bundle, load_bundle
from ..errors import EdgepipeError, RemoteCommandError, TransportError
from ..runtime.errors import EXIT_TERMINATED, Terminated
from ..runtime.report import to_jsonable
from .inventory import load_inventory
from .judge import clean_summary


def error_kind(exc: EdgepipeError) -> str:
    if isinstance(exc, RemoteCommandError):
        return "remote_command"
    return "transport" if isinstance(exc, TransportError) else "deploy"


def remote_summary(report: DeployReport) -> Dict[str, Any]:
    remote = report.remote
    runtime, libedgetpu = remote.get("runtime"), remote.get("libedgetpu")
    if isinstance(runtime, dict):
        runtime = ("%s %s" % (runtime.get("name"), runtime.get("version") or "")).strip()
    return {
        "python": remote.get("python"),
        "interpreter": remote.get("interpreter"),
        "runtime": runtime or None,
        "libedgetpu": libedgetpu.get("path") if isinstance(libedgetpu, dict) else libedgetpu,
        "devices": remote.get("devices") or [],
        "edgetpu_ready": remote.get("edgetpu_ready"),
    }


def run_board(inventory_path: Path, name: str, out_dir: Path, bundle_dir: Path, timeout_s: float) -> Dict[str, Any]:
    inventory = load_inventory(inventory_path)
    board = next(b for b in inventory.boards if b.name == name)

    def say(message: str) -> None:
        sys.stderr.write(" ".join(message.split()) + "\n")
        sys.stderr.flush()

    try:
        bundle = load_bundle(bundle_dir)
        with board.target:
            report = deploy_bundle(bundle, board.target, out_dir=out_dir, progress=say, timeout_s=timeout_s)
    except EdgepipeError as exc:
        return {"ok": False, "error": exc.one_line(), "error_kind": error_kind(exc),
                "retryable": bool(getattr(exc, "retryable", False)), "exit_code": exc.exit_code}  # fmt: skip
    models: List[Dict[str, Any]] = [
        {"model": r.model, "source": r.source, "summary": clean_summary(r.summary)} for r in report.results
    ]
    return {"ok": True, "target": report.target, "models": models, "remote": remote_summary(report),
            "results_path": report.results_path, "bundle_sha256": bundle.sha256,
            "ssh_connections": getattr(report, "ssh_connections", None)}  # fmt: skip


def _terminate(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated()


def main(argv: List[str]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        result = run_board(Path(argv[0]), argv[1], Path(argv[2]), Path(argv[3]), float(argv[4]))
    except KeyboardInterrupt:  # Terminated: deploy has cleaned up
        return EXIT_TERMINATED
    sys.stdout.write(json.dumps(to_jsonable(result), allow_nan=False) + "\n")  # summaries were made finite
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
