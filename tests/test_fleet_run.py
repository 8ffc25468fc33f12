"""Fleet runs at scale, against real components: real deploys of Coral's MobileNet 0.25 to `local:` boards
and a real sshd on 127.0.0.1. Covers the latency limits that must fail (issue 13), a dead and a hung
board among live ones, Ctrl-C then --resume, and shards merged into the unsharded report (issue 12).

Boards are slowed or hung with a `python` wrapper (the inventory's "python" key), as a slow board's
interpreter would be; nothing here asserts a duration except that a hung board is cut at its timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from conftest import free_port
from test_fleet import REPO, SCRIPT

from edgepipe.fleet import judge_model, shard_of, validate_fleet

MODEL = "mobilenet_v1_0.25_128_quant.tflite"  # uncompiled: runs on the CPU here without a fallback probe


def inventory_file(folder: Path, coral_data: Path, boards: List[Dict[str, Any]], name: str = "fleet.json",
                   **extra: Any) -> Path:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    inventory = {"models": [str(coral_data / MODEL)], "runs": 3, "warmup": 1, "boards": boards, **extra}
    path = folder / name
    path.write_text(json.dumps(inventory, indent=2))
    return path


def wrapper(folder: Path, name: str, body: str) -> str:
    """An executable `python` for one board: `body` (shell) first, then the real interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n%s\nexec %s \"$@\"\n" % (body, sys.executable))
    path.chmod(0o755)
    return str(path)


def processes_mentioning(marker: str) -> List[str]:
    """Command lines of live processes that mention `marker` (a test's own temporary folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(cmdline)
    return found


# --- issue 13: limits that must fail ------------------------------------------------------------------------


def test_judge_model_limits_at_their_edges() -> None:
    """Exactly at a limit passes, just past it fails: the comparisons are > and <, not >= or off by one."""
    summary = {"backend": "cpu", "p50_ms": 2.0, "top1": 0.5}
    assert judge_model("m", summary, {"max_p50_ms": 2.0, "min_top1": 0.5}, None) == ([], None)
    reasons, _ = judge_model("m", summary, {"max_p50_ms": 1.999, "min_top1": 0.501}, None)
    assert reasons == ["m: p50 2.000 ms > max 1.999 ms", "m: top-1 50.0 % < min 50.1 %"]
    reasons, comparison = judge_model("m", summary, {"max_p50_ratio": 2.0}, {"p50_ms": 1.0, "top1": 0.5})
    assert reasons == [] and comparison is not None and comparison["p50_ratio"] == 2.0
    reasons, _ = judge_model("m", summary, {}, {"p50_ms": 1.0, "top1": 0.5})  # the default ratio limit: 1.5
    assert reasons == ["m: p50 2.00x the baseline (1.000 → 2.000 ms), max 1.50x"]


def test_measured_latency_over_a_limit_fails_the_board(coral_data: Path, tmp_path: Path) -> None:
    """Real measurements: a 0.001 ms limit and a 0.001 ms baseline cannot be met; generous ones are."""
    boards = [
        {"name": "over-max-p50", "to": "local:boards/a", "expect": {"max_p50_ms": 0.001}},
        {"name": "over-baseline", "to": "local:boards/b"},
        {"name": "within-both", "to": "local:boards/c", "expect": {"max_p50_ms": 60000.0}},
    ]
    inventory = inventory_file(tmp_path, coral_data, boards, expect={"backend": "cpu"})
    baseline = {"kind": "fleet", "boards": [
        {"name": "over-baseline", "models": [{"model": MODEL, "summary": {"backend": "cpu", "p50_ms": 0.001}}]},
        {"name": "within-both", "models": [{"model": MODEL, "summary": {"backend": "cpu", "p50_ms": 60000.0}}]},
    ]}  # fmt: skip
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    report = validate_fleet(inventory, baseline=tmp_path / "baseline.json", out_dir=tmp_path / "out", jobs=3)
    by_name = {b.name: b for b in report.boards}
    measured = {name: b.models[0].summary["p50_ms"] for name, b in by_name.items()}
    assert all(p50 is not None and 0.001 < p50 < 60000.0 for p50 in measured.values()), measured

    (reason,) = by_name["over-max-p50"].reasons
    assert by_name["over-max-p50"].verdict == "fail"
    assert reason == "%s: p50 %.3f ms > max 0.001 ms" % (MODEL, measured["over-max-p50"])
    assert by_name["over-max-p50"].notes == ["%s: not in the baseline, not compared" % MODEL]

    (reason,) = by_name["over-baseline"].reasons
    assert by_name["over-baseline"].verdict == "fail"
    assert "x the baseline (0.001 → " in reason and reason.endswith("max 1.50x"), reason
    assert by_name["over-baseline"].models[0].baseline["p50_ratio"] > 1.5  # type: ignore[index]

    assert by_name["within-both"].verdict == "pass", by_name["within-both"].reasons
    assert by_name["within-both"].models[0].baseline["p50_ratio"] < 1.0  # type: ignore[index]
    assert report.counts == {"pass": 1, "fail": 2, "unreachable": 0} and report.exit_code == 1


# --- issue 12: parallel, dead and hung boards, Ctrl-C and --resume, shards ---------------------------------


def test_dead_and_hung_boards_among_live_ones(sshd: Dict[str, Any], coral_data: Path, tmp_path: Path) -> None:
    """A refused port is unreachable after one retry; a board that never answers is cut at its timeout;
    the live boards (one local, one over real SSH) pass, and their results are written before the hung one's."""
    never = 'exec %s -c "import time; time.sleep(300)" %s' % (sys.executable, tmp_path)  # marked: found below
    hung_python = wrapper(tmp_path / "bin", "hung-python", never)
    ssh = {"identity": str(sshd["key"]), "known_hosts": str(sshd["known_hosts"]), "python": sys.executable}
    boards = [
        {"name": "live-local", "to": "local:boards/live"},
        {"name": "live-ssh", "to": sshd["url"], "remote_dir": str(tmp_path / "remote"), **ssh},
        {"name": "dead", "to": "ssh://%s@127.0.0.1:%d" % (sshd["user"], free_port()), **ssh},
        {"name": "hung", "to": "local:boards/hung", "python": hung_python, "timeout_s": 8},
    ]
    (tmp_path / "remote").mkdir()
    inventory = inventory_file(tmp_path, coral_data, boards, expect={"backend": "cpu"})
    started = time.monotonic()
    report = validate_fleet(inventory, out_dir=tmp_path / "out", jobs=4)
    wall = time.monotonic() - started
    by_name = {b.name: b for b in report.boards}
    assert {n: b.verdict for n, b in by_name.items()} == {
        "live-local": "pass", "live-ssh": "pass", "dead": "unreachable", "hung": "unreachable"}  # fmt: skip

    dead = by_name["dead"]
    assert dead.error_kind == "transport" and "refused" in dead.reasons[0]
    (first_try,) = dead.attempts  # tried once more, the first failure kept
    assert first_try["error_kind"] == "transport" and "refused" in first_try["error"]

    hung = by_name["hung"]
    assert "within the board's timeout_s of 8 s" in hung.reasons[0] and hung.models == [], hung.reasons
    assert hung.elapsed_s < 8 + 20  # its timeout, plus the grace a stopped worker has to clean up
    assert wall < 300  # nobody waited for the wrapper's `sleep 300`
    boards_dir = tmp_path / "out" / "boards"
    for live in ("live-local", "live-ssh"):
        assert os.stat(boards_dir / (live + ".json")).st_mtime <= os.stat(boards_dir / "hung.json").st_mtime
    assert by_name["live-ssh"].ssh_connections in (1, None)  # one multiplexed connection, when deploy counts
    assert len({b.bundle_sha256 for b in report.boards if b.verdict == "pass"}) == 1  # one bundle for all
    assert processes_mentioning(str(tmp_path)) == []  # the hung board's `sleep` is gone with its worker
    assert list((tmp_path / "boards" / "hung").glob("edgepipe-deploy-*")) == []  # its bundle removed
    assert list((tmp_path / "remote").iterdir()) == []


def test_ctrl_c_keeps_finished_boards_and_resume_redoes_none_of_them(coral_data: Path, tmp_path: Path) -> None:
    names = ["board-%d" % i for i in range(6)]
    log = tmp_path / "calls.log"
    boards = [{"name": n, "to": "local:boards/%s" % n,
               "python": wrapper(tmp_path / "bin", n, "echo %s >> %s\nsleep 1" % (n, log))} for n in names]  # fmt: skip
    inventory = inventory_file(tmp_path, coral_data, boards, expect={"backend": "cpu"})
    out = tmp_path / "out"
    argv = [sys.executable, str(SCRIPT), str(inventory), "--out", str(out), "--jobs", "2"]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, cwd=str(REPO))
        deadline = time.monotonic() + 240
        while len(list((out / "boards").glob("*.json"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    stderr_text = (tmp_path / "stderr.txt").read_text()
    assert rc == 130 and stderr_text.strip().endswith("interrupted") and "Traceback" not in stderr_text, stderr_text
    finished = sorted(p.stem for p in (out / "boards").glob("*.json"))
    assert 2 <= len(finished) < len(names), finished  # interrupted in the middle
    saved = {n: (out / "boards" / (n + ".json")).read_bytes() for n in finished}
    assert all(json.loads(data)["verdict"] == "pass" for data in saved.values())
    assert not (out / "fleet_report.json").exists()  # no report pretending to cover the fleet
    assert not [p for p in (out / "boards").iterdir() if p.name.startswith(".")]  # no temporary file
    time.sleep(0.5)
    assert processes_mentioning(str(tmp_path)) == []  # no worker, runner or wrapper left
    assert list((tmp_path / "boards").glob("*/edgepipe-deploy-*")) == []  # stopped boards' bundles removed

    calls_before = log.read_text().split()
    proc2 = subprocess.run(argv + ["--resume", "--json"], capture_output=True, text=True, cwd=str(REPO), timeout=600)
    assert proc2.returncode == 0, proc2.stderr[-2000:]
    report = json.loads(proc2.stdout)
    assert report["resumed"] == finished and report["counts"]["pass"] == len(names)
    calls_after = log.read_text().split()[len(calls_before):]
    assert set(calls_after) == set(names) - set(finished)  # the unfinished ones, and none of the finished
    assert {n: (out / "boards" / (n + ".json")).read_bytes() for n in finished} == saved
    for name in finished:
        assert "%s: already judged (pass)" % name in proc2.stderr


def _comparable(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A report's boards without what differs between two runs (timings, latency, paths), by name."""
    boards = []
    for board in sorted(report["boards"], key=lambda b: b["name"]):
        models = [{"model": m["model"], "reasons": m["reasons"], "baseline": m["baseline"],
                   **{k: m["summary"][k] for k in ("backend", "top1", "n", "fallback_reason")}}
                  for m in board["models"]]  # fmt: skip
        boards.append({k: board[k] for k in ("name", "target", "verdict", "reasons", "notes", "expect", "error",
                                             "fingerprint")} | {"models": models})  # fmt: skip
    return boards


def test_two_shards_merged_equal_the_unsharded_report(coral_data: Path, datasets_dir: Path, tmp_path: Path) -> None:
    candidates = ["cam-%d" % i for i in range(20)]
    names = [n for n in candidates if shard_of(n, 2) == 1][:2] + [n for n in candidates if shard_of(n, 2) == 2][:2]
    boards: List[Dict[str, Any]] = [{"name": n, "to": "local:boards/%s" % n} for n in names]
    boards[1]["expect"] = {"backend": "edgetpu"}  # fails (no Edge TPU here), in one shard
    boards[2]["expect"] = {"min_top1": 0.99}  # fails on top-1, in the other
    samples = "images:%s" % (datasets_dir / "imagenet-samples")
    inventory = inventory_file(tmp_path, coral_data, boards, expect={"backend": "cpu"},
                               eval={"spec": samples, "limit": 10})  # fmt: skip
    # The baseline says boards[3] used to score better: only a comparison done over the merged fleet sees it.
    baseline_boards = [{"name": n, "models": [{"model": MODEL, "summary": {"top1": 1.0 if i == 3 else 0.0}}]}
                       for i, n in enumerate(names)]  # fmt: skip
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"kind": "fleet", "boards": baseline_boards}))

    def run(*args: str) -> Optional[Dict[str, Any]]:
        proc = subprocess.run([sys.executable, "-m", "edgepipe.cli", "fleet", *args, "--json"], capture_output=True,
                              text=True, cwd=str(REPO), timeout=600)  # fmt: skip
        assert proc.returncode == 1, proc.stderr[-2000:]  # some boards fail, on purpose
        return json.loads(proc.stdout)

    whole = run("validate", str(inventory), "--out", str(tmp_path / "whole"), "--baseline", str(baseline))
    one = run("validate", str(inventory), "--out", str(tmp_path / "s1"), "--shard", "1/2")
    two = run("validate", str(inventory), "--out", str(tmp_path / "s2"), "--shard", "2/2")
    assert one and two and [b["name"] for b in one["boards"]] == names[:2] and [
        b["name"] for b in two["boards"]] == names[2:]  # fmt: skip
    assert one["boards"][0]["verdict"] == "pass" and two["boards"][1]["verdict"] == "pass"  # no baseline there
    merged = run("merge", str(tmp_path / "s1" / "fleet_report.json"), str(tmp_path / "s2" / "fleet_report.json"),
                 "-o", str(tmp_path / "merged"), "--baseline", str(baseline))  # fmt: skip
    assert whole and merged
    assert _comparable(merged) == _comparable(whole)
    assert merged["counts"] == whole["counts"] == {"pass": 1, "fail": 3, "unreachable": 0}
    verdicts = {b["name"]: b["verdict"] for b in merged["boards"]}
    assert verdicts == {names[0]: "pass", names[1]: "fail", names[2]: "fail", names[3]: "fail"}
    assert "top-1 dropped" in next(b for b in merged["boards"] if b["name"] == names[3])["reasons"][0]


def test_progress_is_a_live_table_on_a_terminal_and_lines_otherwise() -> None:
    import io

    from rich.console import Console

    from edgepipe.fleet.progress import LineProgress, LiveProgress, progress_for

    terminal = io.StringIO()
    live = progress_for(Console(file=terminal, force_terminal=True, width=120))
    assert isinstance(live, LiveProgress)
    live.start(["cam[1]", "cam-2"], {"cam-2": "pass"})  # brackets: a name is shown literally, never as markup
    live.update("cam[1]", "bench m.tflite")
    live.done("cam[1]", "fail", ["m.tflite: p50 3.000 ms > max 1.000 ms"])
    live.stop()
    shown = terminal.getvalue()
    assert "cam[1]" in shown and "fail" in shown and "p50 3.000 ms > max 1.000 ms" in shown
    assert "resumed: already judged" in shown

    piped = io.StringIO()
    lines = progress_for(Console(file=piped, width=120))
    assert isinstance(lines, LineProgress)
    lines.start(["cam[1]"], {})
    lines.update("cam[1]", "bench m.tflite")
    lines.done("cam[1]", "pass", [])
    assert piped.getvalue().splitlines() == ["cam[1]: bench m.tflite", "cam[1]: pass"]
