"""Judging boards: a board's measurements + its expectations (+ a baseline) -> verdict and reasons.

A verdict is always recomputed from what was measured (never trusted from a file), so a resumed run
and `fleet merge` judge saved boards exactly as a fresh run would, with one baseline comparison.
Reports are written as strict JSON: a NaN or Infinity can never reach fleet_report.json.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .. import __version__
from ..errors import InventoryError
from ..runtime.report import ResultHeader, to_jsonable, write_bytes_atomic
from .inventory import Baseline

REPORT_NAME = "fleet_report.json"
DEFAULT_MAX_TOP1_DROP_PP = 1.0
DEFAULT_MAX_P50_RATIO = 1.5
VERDICTS = ("pass", "fail", "unreachable")


@dataclass
class ModelVerdict:
    model: str
    source: str
    summary: Dict[str, Any]  # backend, fallback_reason, p50_ms, top1, n, error (from deploy)
    reasons: List[str]  # each missed expectation, one line
    baseline: Optional[Dict[str, Any]] = None  # baseline top1 / p50_ms and the drop / ratio against them


@dataclass
class BoardResult:
    name: str
    target: str
    verdict: str  # pass | fail | unreachable
    reasons: List[str]
    notes: List[str]
    expect: Dict[str, Any]
    models: List[ModelVerdict]
    remote: Dict[str, Any]  # python, runtime, libedgetpu, devices, edgetpu_ready (from the board's doctor)
    results_path: Optional[str]
    error: Optional[str]  # the DeployError line when deploy did not finish
    elapsed_s: float
    attempts: List[Dict[str, Any]] = field(default_factory=list)  # failed tries before the last: error, transport
    error_kind: Optional[str] = None  # transport | remote_command | timeout | deploy, when deploy did not finish
    fingerprint: Optional[str] = None  # what the measurements depend on (inventory.Inventory.fingerprint)
    bundle_sha256: Optional[str] = None  # the bundle deployed (one per fleet run and run options)
    ssh_connections: Optional[int] = None  # as deploy counted them (1 over SSH; None for local:)


@dataclass
class FleetReport(ResultHeader):
    inventory: str
    baseline: Optional[str]
    boards: List[BoardResult]
    counts: Dict[str, int]
    passed: bool
    inventory_sha256: Optional[str] = None
    shard: Optional[str] = None  # "K/N" when this run validated one shard of the inventory
    shards_merged: Optional[List[str]] = None  # set by `fleet merge`
    resumed: List[str] = field(default_factory=list)  # boards taken from a previous run's OUT/boards/
    jobs: Optional[int] = None
    report_path: Optional[str] = None
    edgepipe_version: str = __version__

    @property
    def exit_code(self) -> int:
        """0 when every board passed, else 1."""
        return 0 if self.passed else 1


def _pct(fraction: float) -> str:
    return "%.1f %%" % (100.0 * fraction)


def _finite(value: Any) -> Optional[float]:
    """A measured number, or None when it is missing or not a finite number (a board may print anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def clean_summary(summary: Dict[str, Any]) -> Dict[str, Any]:
    """A board's summary with its numbers made finite or None, so judging and writing cannot meet NaN/Infinity."""
    cleaned = dict(summary)
    for key in ("p50_ms", "top1"):
        if key in cleaned:
            cleaned[key] = _finite(cleaned[key])
    return cleaned


def judge_model(
    model: str, summary: Dict[str, Any], expect: Dict[str, Any], base: Optional[Dict[str, Any]]
) -> Tuple[List[str], Optional[Dict[str, Any]]]:
    """The reasons `summary` misses `expect` (empty: it passes), and the comparison with `base` if any.

    A model that failed on the board (deploy's summary `error`: the TFLite runtime crashed on it) fails with
    that reason alone: it has no measurement to compare.
    """
    if summary.get("error"):
        return ["%s: %s" % (model, summary["error"])], None
    reasons: List[str] = []
    backend, p50, top1 = summary.get("backend"), _finite(summary.get("p50_ms")), _finite(summary.get("top1"))
    wanted = expect.get("backend")
    if wanted and backend != wanted:
        why = summary.get("fallback_reason") or summary.get("backend_reason") or "no reason given"
        reasons.append("%s: ran on %s, expected %s: %s" % (model, backend, wanted, why))
    if "max_p50_ms" in expect:
        if p50 is None:
            reasons.append("%s: no p50 latency measured" % model)
        elif p50 > expect["max_p50_ms"]:
            reasons.append("%s: p50 %.3f ms > max %.3f ms" % (model, p50, expect["max_p50_ms"]))
    if "min_top1" in expect:
        if top1 is None:
            reasons.append("%s: no top-1 measured" % model)
        elif top1 < expect["min_top1"]:
            reasons.append("%s: top-1 %s < min %s" % (model, _pct(top1), _pct(expect["min_top1"])))
    if base is None:
        return reasons, None
    comparison: Dict[str, Any] = {key: base.get(key) for key in ("top1", "p50_ms", "backend")}
    if top1 is not None and base.get("top1") is not None:
        drop = round(100.0 * (base["top1"] - top1), 3)
        comparison["top1_drop_pp"] = drop
        limit = expect.get("max_top1_drop_pp", DEFAULT_MAX_TOP1_DROP_PP)
        if drop > limit:
            reasons.append(
                "%s: top-1 dropped %.1f pp vs baseline (%s → %s), max %.1f pp"
                % (model, drop, _pct(base["top1"]), _pct(top1), limit)
            )
    if p50 is not None and base.get("p50_ms"):  # a 0 ms baseline has no meaningful ratio
        ratio = round(p50 / base["p50_ms"], 3)
        comparison["p50_ratio"] = ratio
        limit = expect.get("max_p50_ratio", DEFAULT_MAX_P50_RATIO)
        if ratio > limit:
            reasons.append(
                "%s: p50 %.2fx the baseline (%.3f → %.3f ms), max %.2fx" % (model, ratio, base["p50_ms"], p50, limit)
            )
    return reasons, comparison


def judge_board(board: BoardResult, expect: Dict[str, Any], baseline: Optional[Baseline]) -> BoardResult:
    """Set `board`'s verdict, reasons and notes from its measurements (in place; returned for chaining).

    A board whose deploy did not finish keeps its verdict (unreachable, or fail when a remote command
    failed there) and its one error line.
    """
    board.expect = dict(expect)
    if board.error is not None:
        board.reasons, board.notes = [board.error], []
        for model in board.models:
            model.baseline = None
        return board
    reasons: List[str] = []
    notes: List[str] = []
    for model in board.models:
        model.summary = clean_summary(model.summary)
        base = None
        if baseline is not None:
            base = baseline.get((board.name, model.model))
            if base is None:
                notes.append("%s: not in the baseline, not compared" % model.model)
        model.reasons, model.baseline = judge_model(model.model, model.summary, expect, base)
        reasons.extend(model.reasons)
    board.reasons, board.notes = reasons, notes
    board.verdict = "fail" if reasons else "pass"
    return board


def counts_of(boards: List[BoardResult]) -> Dict[str, int]:
    return {verdict: sum(1 for b in boards if b.verdict == verdict) for verdict in VERDICTS}


# --- strict JSON in and out ------------------------------------------------------------------------------


def strict_dumps(value: Any) -> str:
    """JSON that any parser accepts: NaN and Infinity are refused (ValueError), never written."""
    return json.dumps(to_jsonable(value), indent=2, allow_nan=False)


def write_strict_json(path: str, value: Any) -> None:
    write_bytes_atomic(path, (strict_dumps(value) + "\n").encode("utf-8"))


def board_from_json(raw: Any, where: str) -> BoardResult:
    """A BoardResult read back from OUT/boards/NAME.json or a shard's report; InventoryError when malformed."""
    try:
        models = [ModelVerdict(model=str(m["model"]), source=str(m.get("source") or ""),
                               summary=clean_summary(dict(m["summary"])), reasons=list(m.get("reasons") or []),
                               baseline=m.get("baseline")) for m in raw.get("models") or []]  # fmt: skip
        verdict = raw["verdict"]
        if verdict not in VERDICTS or not isinstance(raw["name"], str):
            raise ValueError("verdict %r" % (verdict,))
        return BoardResult(
            name=raw["name"], target=str(raw.get("target")), verdict=verdict, reasons=list(raw.get("reasons") or []),
            notes=list(raw.get("notes") or []), expect=dict(raw.get("expect") or {}), models=models,
            remote=dict(raw.get("remote") or {}), results_path=raw.get("results_path"), error=raw.get("error"),
            elapsed_s=float(raw.get("elapsed_s") or 0.0), attempts=list(raw.get("attempts") or []),
            error_kind=raw.get("error_kind"), fingerprint=raw.get("fingerprint"),
            bundle_sha256=raw.get("bundle_sha256"), ssh_connections=raw.get("ssh_connections"),
        )  # fmt: skip
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InventoryError("%s is not a fleet board result (%s: %s)" % (where, type(exc).__name__, exc)) from None


__all__ = [
    "BoardResult",
    "FleetReport",
    "ModelVerdict",
    "board_from_json",
    "clean_summary",
    "counts_of",
    "judge_board",
    "judge_model",
    "strict_dumps",
    "write_strict_json",
]
