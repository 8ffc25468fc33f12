"""`merge_reports`: shard reports of one inventory (`fleet validate --shard K/N`) -> one fleet report.

Every shard of the inventory must be there exactly once (a merged report that silently lacks boards
would pass a fleet it never saw). Boards are judged again from their measurements and expectations,
with the baseline given here: the baseline comparison is done once, for the whole fleet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from ..errors import InventoryError
from ..runtime.report import header, make_dirs
from .inventory import load_baseline, parse_shard, read_json
from .judge import REPORT_NAME, BoardResult, FleetReport, board_from_json, counts_of, judge_board, write_strict_json


def _read_shard(path: Path) -> Dict[str, Any]:
    raw = read_json(path, "shard report")
    if not isinstance(raw, dict) or raw.get("kind") != "fleet" or not isinstance(raw.get("boards"), list):
        raise InventoryError("%s is not a fleet report" % path, hint="Pass the fleet_report.json of each shard")
    if not isinstance(raw.get("shard"), str):
        raise InventoryError("%s is not a shard's report (it has no \"shard\")" % path,
                             hint="Merge the reports of `fleet validate --shard K/N` runs")  # fmt: skip
    return raw


def merge_reports(reports: List[Path], out_dir: Path, baseline: Optional[Path] = None) -> FleetReport:
    """Check that `reports` are all N shards of one inventory, judge every board once, write OUT/fleet_report.json."""
    if not reports:
        raise InventoryError("no shard report to merge", hint="Name the fleet_report.json of every shard")
    raws = [(Path(p), _read_shard(Path(p))) for p in reports]
    base = load_baseline(Path(baseline)) if baseline is not None else None
    first_path, first = raws[0]
    seen: Dict[int, Path] = {}
    count = parse_shard(first["shard"])[1]
    boards: Dict[str, BoardResult] = {}
    for path, raw in raws:
        index, total = parse_shard(raw["shard"])
        if total != count or raw.get("inventory_sha256") != first.get("inventory_sha256"):
            raise InventoryError("%s (shard %s) is not a shard of the same inventory as %s (shard %s)"
                                 % (path, raw["shard"], first_path, first["shard"]),
                                 hint="Merge only the shards of one run over one inventory")  # fmt: skip
        if index in seen:
            raise InventoryError("shard %d/%d given twice: %s and %s" % (index, count, seen[index], path))
        seen[index] = path
        for i, entry in enumerate(raw["boards"]):
            board = board_from_json(entry, "%s boards[%d]" % (path, i))
            if board.name in boards:
                raise InventoryError("board %r is in more than one shard report (%s)" % (board.name, path))
            boards[board.name] = board
    missing: Set[int] = set(range(1, count + 1)) - set(seen)
    if missing:
        raise InventoryError(
            "shard%s %s of %d missing" % ("s" if len(missing) > 1 else "", ", ".join(map(str, sorted(missing))), count),
            hint="Pass the fleet_report.json of every shard, 1/%d to %d/%d" % (count, count, count),
        )
    out_dir = Path(out_dir)
    make_dirs(out_dir, hint="Pick a writable -o folder")
    results = [judge_board(boards[name], boards[name].expect, base) for name in sorted(boards)]
    report = FleetReport(
        **header("fleet"),
        inventory=str(first.get("inventory")),
        baseline=str(baseline) if baseline is not None else None,
        boards=results,
        counts=counts_of(results),
        passed=all(r.verdict == "pass" for r in results),
        inventory_sha256=first.get("inventory_sha256"),
        shards_merged=["%d/%d" % (i, count) for i in sorted(seen)],
    )
    path = out_dir / REPORT_NAME
    report.report_path = str(path)
    write_strict_json(str(path), report)
    return report


__all__ = ["merge_reports"]
