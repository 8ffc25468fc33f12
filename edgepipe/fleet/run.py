"""`validate_fleet`: every board of an inventory (or of one shard of it) deployed to, judged, reported.

Boards run `jobs` at a time, each in its own worker process (`edgepipe.fleet.worker`) with its own
timeout: a slow or dead board holds one slot for at most its timeout and never delays the others'
results. A transport failure (refused, unreachable, link lost) is tried once more and the first try is
recorded. Each board's result is written to OUT/boards/NAME.json the moment it is known, so Ctrl-C
loses no finished board, and `resume` takes the judged ones (pass or fail, same fingerprint) from
there instead of deploying again. Unreachable boards are always tried again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..deploy import build_bundle
from ..errors import InventoryError
from ..runtime.report import header, make_dirs
from .inventory import Board, Inventory, load_baseline, load_inventory, parse_shard, read_json, shard_of
from .judge import (
    REPORT_NAME,
    BoardResult,
    FleetReport,
    ModelVerdict,
    board_from_json,
    counts_of,
    judge_board,
    write_strict_json,
)
from .progress import FleetProgress, NoProgress

DEFAULT_MAX_JOBS = 4  # a laptop: each board costs a few processes and an ssh connection here
MAX_JOBS = 64
RETRY_DELAY_S = 1.0
DEPLOY_MARGIN_S = 5.0  # of a board's timeout, left for deploy's own cleanup after its timeout
STOP_GRACE_S = 15.0  # after SIGTERM a worker removes its bundle from the board; then it is killed
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # so the worker imports this very edgepipe


def default_jobs(boards: int) -> int:
    return max(1, min(DEFAULT_MAX_JOBS, boards))


def check_jobs(jobs: int) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise InventoryError("--jobs %r must be from 1 to %d" % (jobs, MAX_JOBS),
                             hint="How many boards are validated at once; default min(%d, boards)" % DEFAULT_MAX_JOBS)
    return jobs


def bundle_key(board: Board) -> str:
    """Boards with the same run options share one bundle (its commands hold them)."""
    return " ".join(board.options.to_argv("bench"))


def board_file(out_dir: Path, name: str) -> Path:
    return out_dir / "boards" / (name + ".json")


def _saved(out_dir: Path, board: Board, fingerprint: str) -> Optional[BoardResult]:
    """A judged (pass / fail) result of this board with the same fingerprint, or None."""
    path = board_file(out_dir, board.name)
    if not path.is_file():
        return None
    try:
        saved = board_from_json(read_json(path, "saved board result"), str(path))
    except InventoryError:
        return None  # unreadable: validated again, and the file replaced
    if saved.name != board.name or saved.fingerprint != fingerprint or saved.verdict == "unreachable":
        return None
    return saved


class _Runner:
    """Runs worker processes for boards, `jobs` at a time; stops them all on Ctrl-C."""

    def __init__(self, inventory: Inventory, out_dir: Path, progress: FleetProgress, jobs: int,
                 bundles: Dict[str, Path]) -> None:  # fmt: skip
        self.inventory, self.out_dir, self.progress, self.jobs = inventory, out_dir, progress, jobs
        self.bundles = bundles  # bundle_key(board) -> the folder built once
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.live: Dict[str, subprocess.Popen] = {}

    # --- one worker process ---------------------------------------------------------------------------

    def _stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM the worker (deploy cleans up), then SIGKILL its whole session after the grace period."""
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=STOP_GRACE_S)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self._kill_group(proc)

    @staticmethod
    def _kill_group(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker is its session's leader: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()

    def _attempt(self, board: Board, deadline: float) -> Dict[str, Any]:
        # deploy's own timeout ends first and cleans up; the runner's kill at `deadline` is the backstop.
        own_timeout = max(1.0, deadline - time.monotonic() - DEPLOY_MARGIN_S)
        argv = [sys.executable, "-m", "edgepipe.fleet.worker", str(self.inventory.path), board.name,
                str(self.out_dir / "boards" / board.name), str(self.bundles[bundle_key(board)]),
                repr(own_timeout)]  # fmt: skip
        path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONPATH=path)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, start_new_session=True)  # fmt: skip
        with self.lock:
            self.live[board.name] = proc
        if self.stopping.is_set():  # Ctrl-C came while this one was starting
            threading.Thread(target=self._stop, args=(proc,), daemon=True).start()
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            self._stop(proc)

        timer = threading.Timer(max(0.0, deadline - time.monotonic()), on_timeout)
        timer.daemon = True
        timer.start()
        last_line = ""

        def read_progress() -> None:
            nonlocal last_line
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.strip():
                    last_line = line.strip()
                    self.progress.update(board.name, last_line)

        reader = threading.Thread(target=read_progress, daemon=True)
        reader.start()
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.wait()
        reader.join(timeout=5)
        timer.cancel()
        self._kill_group(proc)  # anything the worker left behind (an ssh still waiting) goes with it
        with self.lock:
            self.live.pop(board.name, None)
        if timed_out.is_set():
            return {"ok": False, "error_kind": "timeout",
                    "error": "%s: no result within its timeout of %g s; stopped" % (board.target.describe(),
                                                                                  board.timeout_s)}  # fmt: skip
        try:
            result = json.loads(stdout.strip().splitlines()[-1])
            if isinstance(result, dict) and "ok" in result:
                return result
        except (ValueError, IndexError):
            pass
        why = "the worker for board %s exited %s without a result" % (board.name, proc.returncode)
        return {"ok": False, "error_kind": "deploy", "error": "%s: %s" % (why, last_line or "(no output)")}

    # --- one board: attempts, result, file ------------------------------------------------------------

    def board(self, board: Board) -> Optional[BoardResult]:
        started = time.monotonic()
        deadline = started + board.timeout_s
        attempts: List[Dict[str, Any]] = []
        self.progress.update(board.name, "validating on %s" % board.target.describe())
        while True:
            if self.stopping.is_set():
                return None
            result = self._attempt(board, deadline)
            if self.stopping.is_set() and not result.get("ok"):
                return None  # interrupted: nothing recorded for an unfinished board (a finished one is kept)
            retry = result.get("error_kind") == "transport" and result.get("retryable") and not attempts
            retry = retry and time.monotonic() + RETRY_DELAY_S + DEPLOY_MARGIN_S < deadline
            if not retry:
                break
            attempts.append({"error": result["error"], "error_kind": "transport",
                             "elapsed_s": round(time.monotonic() - started, 3)})  # fmt: skip
            self.progress.update(board.name, "transport failure, trying once more: %s" % result["error"])
            time.sleep(RETRY_DELAY_S)
        elapsed = round(time.monotonic() - started, 3)
        if result.get("ok"):
            models = [ModelVerdict(model=m["model"], source=m["source"], summary=m["summary"], reasons=[])
                      for m in result["models"]]  # fmt: skip
            outcome = BoardResult(name=board.name, target=result["target"], verdict="pass", reasons=[], notes=[],
                                  expect=board.expect, models=models, remote=result["remote"],
                                  results_path=result["results_path"], error=None, elapsed_s=elapsed,
                                  bundle_sha256=result.get("bundle_sha256"),
                                  ssh_connections=result.get("ssh_connections"))  # fmt: skip
        else:
            if result["error_kind"] != "timeout" and time.monotonic() >= deadline - DEPLOY_MARGIN_S - 1:
                # deploy's own timeout (the board's, less the margin) ended it: say which setting that was.
                result["error"] = "no result within the board's timeout_s of %g s: %s" % (board.timeout_s,
                                                                                         result["error"])  # fmt: skip
            # Reached and verified, but bench/eval failed there: a failed validation, not an unreachable board.
            verdict = "fail" if result["error_kind"] == "remote_command" else "unreachable"
            outcome = BoardResult(name=board.name, target=board.target.describe(), verdict=verdict,
                                  reasons=[result["error"]], notes=[], expect=board.expect, models=[], remote={},
                                  results_path=None, error=result["error"], elapsed_s=elapsed,
                                  error_kind=result["error_kind"])  # fmt: skip
        outcome.attempts = attempts
        outcome.fingerprint = self.inventory.fingerprint(board)
        return outcome

    # --- all boards -------------------------------------------------------------------------------------

    def run(self, boards: List[Board], judged: Any) -> Dict[str, BoardResult]:
        """Validate `boards`; `judged(board, result)` is called for each as it finishes (it writes the file)."""
        results: Dict[str, BoardResult] = {}
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="fleet-board")
        futures: Dict[Future, Board] = {pool.submit(self.board, b): b for b in boards}
        try:
            pending = set(futures)
            while pending:
                # A short timeout keeps the main thread able to take Ctrl-C.
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    board = futures[future]
                    outcome = future.result()
                    if outcome is not None:
                        results[board.name] = judged(board, outcome)
        except BaseException:
            self.stopping.set()
            for future in futures:
                future.cancel()
            with self.lock:
                live = list(self.live.values())
            stoppers = [threading.Thread(target=self._stop, args=(p,)) for p in live]
            for thread in stoppers:
                thread.start()
            for thread in stoppers:
                thread.join()
            pool.shutdown(wait=True)
            for future, board in futures.items():  # boards that finished while we were stopping are kept too
                finished = future.done() and not future.cancelled() and future.exception() is None
                if finished and future.result() is not None and board.name not in results:
                    results[board.name] = judged(board, future.result())
            raise
        pool.shutdown(wait=True)
        return results


def validate_fleet(
    inventory_path: Path,
    baseline: Optional[Path] = None,
    out_dir: Path = Path("runs/fleet"),
    progress: Optional[FleetProgress] = None,
    jobs: Optional[int] = None,
    resume: bool = False,
    shard: Optional[str] = None,
) -> FleetReport:
    """Deploy to and judge every board (of `shard` "K/N"); write OUT/boards/NAME.json each, then OUT/fleet_report.json.

    Everything is checked before the first board is touched: the inventory, the baseline, --jobs,
    --shard and that OUT can be written.
    """
    show = progress or NoProgress()
    inventory = load_inventory(Path(inventory_path))
    base = load_baseline(Path(baseline)) if baseline is not None else None
    part: Optional[Tuple[int, int]] = parse_shard(shard) if shard is not None else None
    boards = [b for b in inventory.boards if part is None or shard_of(b.name, part[1]) == part[0]]
    jobs = check_jobs(jobs) if jobs is not None else default_jobs(len(boards))
    out_dir = Path(out_dir)
    # Before any board: an unwritable --out must not be mistaken for unreachable boards.
    make_dirs(out_dir / "boards", hint="Pick a writable --out")

    done: Dict[str, BoardResult] = {}
    if resume:
        for board in boards:
            saved = _saved(out_dir, board, inventory.fingerprint(board))
            if saved is not None:
                done[board.name] = judge_board(saved, board.expect, base)

    def judged(board: Board, outcome: BoardResult) -> BoardResult:
        judge_board(outcome, board.expect, base)
        write_strict_json(str(board_file(out_dir, board.name)), outcome)
        show.done(board.name, outcome.verdict, outcome.reasons)
        return outcome

    todo = [b for b in boards if b.name not in done]
    try:
        with tempfile.TemporaryDirectory(prefix="edgepipe-fleet-") as tmp:
            # Built once here (models, data shard, device package), before any board is touched: a missing
            # dataset or a bad model fails the run, not every board one by one.
            bundles: Dict[str, Path] = {}
            for board in todo:
                key = bundle_key(board)
                if key not in bundles:
                    bundles[key] = Path(tmp) / ("bundle%d" % len(bundles))
                    build_bundle(inventory.models, bundles[key], eval_spec=inventory.eval_spec, limit=inventory.limit,
                                 data_dir=inventory.data_dir, options=board.options)  # fmt: skip
            show.start([b.name for b in boards], {name: r.verdict for name, r in done.items()})
            fresh = _Runner(inventory, out_dir, show, jobs, bundles).run(todo, judged)
    finally:
        show.stop()
    results = [done.get(b.name) or fresh[b.name] for b in boards]  # inventory order
    report = FleetReport(
        **header("fleet"),
        inventory=str(inventory.path),
        baseline=str(baseline) if baseline is not None else None,
        boards=results,
        counts=counts_of(results),
        passed=all(r.verdict == "pass" for r in results),
        inventory_sha256=inventory.sha256,
        shard="%d/%d" % part if part else None,
        resumed=sorted(done),
        jobs=jobs,
    )
    path = out_dir / REPORT_NAME
    report.report_path = str(path)
    write_strict_json(str(path), report)
    return report


__all__ = ["DEFAULT_MAX_JOBS", "MAX_JOBS", "board_file", "default_jobs", "validate_fleet"]
