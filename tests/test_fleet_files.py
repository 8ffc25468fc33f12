"""Fleet files are checked whole before any board is touched (issue 8.4), and fleet JSON is strict.

Each bad file goes through the real script as an engineer would run it and must give one `error:`
line, exit 2 (README: bad inventory or baseline file), an empty stdout, no output folder and an
untouched board folder. The shard arithmetic and `fleet merge`'s refusals are checked here too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List

import pytest
from test_fleet import only_error_line, run_script, write_inventory

from edgepipe.fleet import BoardResult, ModelVerdict, parse_shard, shard_of
from edgepipe.fleet.judge import judge_board, strict_dumps, write_strict_json

BOARD = {"name": "b", "to": "local:boards/b"}


def assert_refused(proc: Any, tmp_path: Path, words: List[str]) -> None:
    assert proc.returncode == 2, proc.stderr
    line = only_error_line(proc.stderr)
    for word in words:
        assert word in line, line
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists() and not (tmp_path / "boards").exists()  # no board touched


@pytest.mark.parametrize(
    "baseline, words",
    [
        ({"kind": "fleet", "boards": [5]}, ["baseline", "boards[0]", "object", "int"]),
        ({"kind": "fleet", "boards": [{"name": "b", "models": [{"model": "m.tflite", "summary": {"p50_ms": "x"}}]}]},
         ["baseline", "boards[0].models[0].summary.p50_ms", "'x'"]),
        ({"kind": "fleet", "boards": [{"name": "b", "models": [{"model": "m.tflite", "summary": {"top1": 45}}]}]},
         ["summary.top1", "45"]),
        ({"kind": "fleet", "boards": [{"name": "b", "models": "m.tflite"}]}, ["boards[0].models", "list"]),
        ({"kind": "fleet", "boards": [{"models": []}]}, ["boards[0].name"]),
    ],
    ids=["board-not-object", "p50-not-number", "top1-not-fraction", "models-not-list", "no-name"],
)
def test_malformed_baseline_is_refused_before_any_board(
    coral_data: Path, datasets_dir: Path, tmp_path: Path, baseline: Dict[str, Any], words: List[str]
) -> None:
    inventory = write_inventory(tmp_path, coral_data, datasets_dir, [BOARD])
    (tmp_path / "prev.json").write_text(json.dumps(baseline))
    proc = run_script(str(inventory), "--baseline", str(tmp_path / "prev.json"), "--out", str(tmp_path / "out"))
    assert_refused(proc, tmp_path, words)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_in_inventory_and_baseline(
    coral_data: Path, datasets_dir: Path, tmp_path: Path, constant: str
) -> None:
    inventory = write_inventory(tmp_path, coral_data, datasets_dir, [BOARD])
    raw = inventory.read_text()
    # Python's json module reads these words as floats; a threshold of NaN would silently pass everything.
    inventory.write_text(raw.replace('"runs": 5', '"runs": 5, "expect": {"max_p50_ms": %s}' % constant))
    proc = run_script(str(inventory), "--out", str(tmp_path / "out"))
    assert_refused(proc, tmp_path, ["inventory", constant, "not valid JSON"])

    inventory.write_text(raw)
    baseline = '{"kind": "fleet", "boards": [{"name": "b", "models": [{"model": "m", "summary": {"p50_ms": %s}}]}]}'
    (tmp_path / "prev.json").write_text(baseline % constant)
    proc = run_script(str(inventory), "--baseline", str(tmp_path / "prev.json"), "--out", str(tmp_path / "out"))
    assert_refused(proc, tmp_path, ["baseline", constant])


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"runs": 10**22}, ["runs", "from 1 to 1000000", "10000000000000000000000"]),
        ({"eval": {"spec": "mnist", "limit": 10**400}}, ["eval.limit"]),
        ({"warmup": -1}, ["warmup"]),
        ({"expect": {"min_top1": 40}}, ["min_top1", "fraction", "40"]),
        ({"expect": {"max_p50_ms": -1.0}}, ["max_p50_ms", "-1.0"]),
        ({"expect": {"max_p50_ratio": "1.5"}}, ["max_p50_ratio", "'1.5'"]),
        ({"expect": {"max_top1_drop_pp": True}}, ["max_top1_drop_pp", "True"]),
        ({"timeout_s": 0}, ["timeout_s"]),
    ],
    ids=["runs-huge", "limit-huger-than-a-float", "warmup-negative", "min-top1-percent", "p50-negative",
         "ratio-string", "drop-bool", "timeout-0"],
)
def test_out_of_range_numbers_are_refused(
    coral_data: Path, datasets_dir: Path, tmp_path: Path, extra: Dict[str, Any], words: List[str]
) -> None:
    inventory = write_inventory(tmp_path, coral_data, datasets_dir, [BOARD], **extra)
    proc = run_script(str(inventory), "--out", str(tmp_path / "out"))
    assert_refused(proc, tmp_path, words)


@pytest.mark.parametrize(
    "args, words",
    [(["--jobs", "0"], ["--jobs", "from 1 to 64"]), (["--jobs", "1000"], ["--jobs"]),
     (["--shard", "0/2"], ["--shard", "K/N"]), (["--shard", "3/2"], ["'3/2'"]), (["--shard", "half"], ["'half'"])],
)  # fmt: skip
def test_bad_jobs_and_shard_options_exit_2(
    coral_data: Path, datasets_dir: Path, tmp_path: Path, args: List[str], words: List[str]
) -> None:
    inventory = write_inventory(tmp_path, coral_data, datasets_dir, [BOARD])
    proc = run_script(str(inventory), "--out", str(tmp_path / "out"), *args, cli=True)
    assert_refused(proc, tmp_path, words)


def test_infinity_from_a_board_is_never_written(tmp_path: Path) -> None:
    """A board's runtime may print Infinity as a latency (Python's json accepts it): judged as not measured."""
    board = BoardResult(name="b", target="local:x", verdict="pass", reasons=[], notes=[], expect={}, remote={},
                        models=[ModelVerdict(model="m.tflite", source="m.tflite", reasons=[],
                                             summary={"backend": "cpu", "p50_ms": math.inf, "top1": math.nan})],
                        results_path=None, error=None, elapsed_s=1.0)  # fmt: skip
    judge_board(board, {"max_p50_ms": 5.0}, {("b", "m.tflite"): {"p50_ms": 1.0, "top1": 0.5, "backend": "cpu"}})
    assert board.verdict == "fail" and board.reasons == ["m.tflite: no p50 latency measured"]
    write_strict_json(str(tmp_path / "r.json"), board)
    text = (tmp_path / "r.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["models"][0]["summary"]["p50_ms"] is None
    with pytest.raises(ValueError):  # the writer itself refuses, should a non-finite number ever get through
        strict_dumps({"p50_ms": math.inf})


def test_shards_are_a_stable_partition_by_name() -> None:
    names = ["line%d-cam%d" % (i, j) for i in range(20) for j in range(5)]
    for count in (1, 2, 3, 7):
        shards = {name: shard_of(name, count) for name in names}
        assert set(shards.values()) <= set(range(1, count + 1))
        assert {name: shard_of(name, count) for name in reversed(names)} == shards  # order plays no part
        if count > 1:  # roughly even (100 names): no shard empty or holding nearly all
            sizes = [list(shards.values()).count(k) for k in range(1, count + 1)]
            assert min(sizes) > 0 and max(sizes) < 100 * 2 / count, sizes
    assert shard_of("line3-cam1", 4) == shard_of("line3-cam1", 4)  # same everywhere: sha256, not hash()
    assert parse_shard(" 2/4 ") == (2, 4)


# --- fleet merge: only every shard of one inventory, judged once ----------------------------------------


def shard_report(shard: str, boards: List[Dict[str, Any]], inventory_sha256: str = "0" * 64) -> Dict[str, Any]:
    return {"schema_version": 1, "kind": "fleet", "created": "2026-12-01T00:00:00+00:00", "inventory": "fleet.json",
            "baseline": None, "boards": boards, "counts": {}, "passed": True, "inventory_sha256": inventory_sha256,
            "shard": shard}  # fmt: skip


def saved_board(name: str, top1: float, p50: float) -> Dict[str, Any]:
    """A board as a shard run writes it: passed, measured, no baseline."""
    summary = {"backend": "cpu", "p50_ms": p50, "top1": top1, "n": 20}
    return {"name": name, "target": "local:/x/" + name, "verdict": "pass", "reasons": [], "notes": [],
            "expect": {"backend": "cpu"}, "models": [{"model": "m.tflite", "source": "/m.tflite", "summary": summary,
                                                      "reasons": [], "baseline": None}],
            "remote": {}, "results_path": None, "error": None, "elapsed_s": 3.0}  # fmt: skip


def run_merge(tmp_path: Path, reports: List[Dict[str, Any]], *extra: str) -> Any:
    paths = []
    for i, report in enumerate(reports):
        paths.append(tmp_path / ("shard%d.json" % i))
        paths[-1].write_text(json.dumps(report))
    import subprocess
    import sys

    from test_fleet import REPO

    argv = [sys.executable, "-m", "edgepipe.cli", "fleet", "merge", *map(str, paths), "-o", str(tmp_path / "out"),
            *extra]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=str(REPO))


@pytest.mark.parametrize(
    "case, words",
    [("missing", ["shard 2 of 2 missing"]), ("twice", ["shard 1/2 given twice"]),
     ("other-inventory", ["not a shard of the same inventory"]), ("unsharded", ["no \"shard\""]),
     ("same-board", ["'a'", "more than one shard"]), ("broken-board", ["boards[0]", "not a fleet board result"])],
)  # fmt: skip
def test_merge_refuses_what_is_not_every_shard_of_one_inventory(tmp_path: Path, case: str, words: List[str]) -> None:
    one, two = shard_report("1/2", [saved_board("a", 0.5, 2.0)]), shard_report("2/2", [saved_board("b", 0.5, 2.0)])
    reports = {"missing": [one], "twice": [one, one], "other-inventory": [one, shard_report("2/2", [], "1" * 64)],
               "unsharded": [one, dict(two, shard=None)], "same-board": [one, shard_report("2/2", one["boards"])],
               "broken-board": [one, shard_report("2/2", [{"name": "b"}])]}[case]  # fmt: skip
    proc = run_merge(tmp_path, reports)
    assert proc.returncode == 2, proc.stderr
    line = only_error_line(proc.stderr)
    for word in words:
        assert word in line, line
    assert proc.stdout == "" and not (tmp_path / "out").exists()


def test_merge_judges_every_board_once_against_its_baseline(tmp_path: Path) -> None:
    shards = [shard_report("2/2", [saved_board("b", 0.50, 2.0)]), shard_report("1/2", [saved_board("a", 0.50, 2.0)])]
    baseline = shard_report("1/1", [saved_board("a", 0.60, 2.0), saved_board("b", 0.50, 1.0)])
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    proc = run_merge(tmp_path, shards, "--baseline", str(tmp_path / "baseline.json"), "--json")
    assert proc.returncode == 1, proc.stderr  # both shards passed on their own; the fleet against its baseline not
    report = json.loads(proc.stdout)
    assert json.loads((tmp_path / "out" / "fleet_report.json").read_text()) == report
    assert report["shards_merged"] == ["1/2", "2/2"] and report["counts"] == {"pass": 0, "fail": 2, "unreachable": 0}
    a, b = report["boards"]
    assert a["name"] == "a" and a["reasons"] == [
        "m.tflite: top-1 dropped 10.0 pp vs baseline (60.0 % → 50.0 %), max 1.0 pp"]
    assert b["name"] == "b" and b["reasons"] == ["m.tflite: p50 2.00x the baseline (1.000 → 2.000 ms), max 1.50x"]
