"""The two hostile models of ../shared/models/hostile (MANIFEST.md): well-formed flatbuffers on which the
TFLite runtime dies with SIGSEGV in invoke(). Run for real, on both runtimes, through every front door that
runs a model: `edgepipe bench`/`eval`, the device side `python -m edgepipe.runtime bench`/`eval`,
`edgepipe deploy --to local:DIR` (beside a good model) and `fleet validate`. Each must end in one line,
exit 23 "the TFLite runtime crashed (SIGSEGV) on MODEL", and lose no other model's result.

One exception, measured here and not in the MANIFEST: tflite_runtime 2.14 runs segv_2.tflite to the end
on this machine (ai_edge_litert crashes on it). For that pair a result is accepted as well as exit 23
with the signal named; what is never accepted is a raw signal, a traceback or a second line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
from conftest import need_module, shared_path

from edgepipe.fleet import validate_fleet
from edgepipe.runtime.interpreters import TFLITE_RUNTIME_ENV

HOSTILE = ["segv_lstm.tflite", "segv_2.tflite"]
RUNTIMES = ["ai_edge_litert", "tflite_runtime"]
GOOD = "keras_lstm_mnist_ptq.tflite"  # the model both hostile ones were made from (same 28x28 input)
# (model, runtime) that does not crash here: tflite_runtime 2.14 survives segv_2's changed bytes.
MAY_SURVIVE = {("segv_2.tflite", "tflite_runtime")}
CRASHED = "the TFLite runtime crashed (SIGSEGV) on "


@pytest.fixture(scope="module")
def hostile_dir() -> Path:
    return shared_path("models", "hostile")


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    need_module(request.param, "pip install 'edgepipe[dev]' (ai-edge-litert, tflite-runtime 2.14 on Python < 3.12)")
    return str(request.param)


def run(args: List[str], runtime: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="250", **{TFLITE_RUNTIME_ENV: runtime})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)


def error_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def check_outcome(proc: subprocess.CompletedProcess, model: Path, runtime: str, kind: str,
                  envelope: bool = False) -> Optional[Dict[str, Any]]:  # fmt: skip
    """Exit 23 with one error line naming the signal and the model (and, on the device side, the JSON error
    on stdout); or, for a MAY_SURVIVE pair, a result of `kind`, returned."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode >= 0, "killed by signal %d" % -proc.returncode
    if proc.returncode == 0 and (model.name, runtime) in MAY_SURVIVE:
        result = json.loads(proc.stdout)
        assert result["kind"] == kind and result["environment"]["runtime"]["name"] == runtime
        return dict(result)
    assert proc.returncode == 23, proc.stderr[-3000:]
    (line,) = error_lines(proc.stderr)
    assert CRASHED + str(model) in line, line
    if envelope:
        error = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
        assert error["exit_code"] == 23 and error["type"] == "InferenceError"
        assert error["message"] == CRASHED + str(model) and error["signal"] == "SIGSEGV"  # deploy reads this field
    return None


@pytest.mark.parametrize("name", HOSTILE)
def test_bench_on_the_host(hostile_dir: Path, runtime: str, name: str) -> None:
    model = hostile_dir / name
    proc = run(["-m", "edgepipe.cli", "bench", str(model), "--runtime", runtime, "--runs", "3", "--warmup", "0",
                "--json"], runtime)  # fmt: skip
    result = check_outcome(proc, model, runtime, "bench")
    assert result is None or result["runs"] == 3


@pytest.mark.parametrize("name", HOSTILE)
def test_eval_on_the_host(hostile_dir: Path, datasets_dir: Path, runtime: str, name: str) -> None:
    model = hostile_dir / name
    proc = run(["-m", "edgepipe.cli", "eval", str(model), "--runtime", runtime, "--dataset", "mnist", "--limit", "20",
                "--data-dir", str(datasets_dir), "--json"], runtime)  # fmt: skip
    result = check_outcome(proc, model, runtime, "eval")
    assert result is None or result["n"] == 20


@pytest.mark.parametrize("name", HOSTILE)
def test_bench_on_the_device_side(hostile_dir: Path, runtime: str, name: str) -> None:
    model = hostile_dir / name
    proc = run(["-m", "edgepipe.runtime", "bench", str(model), "--runtime", runtime, "--runs", "3", "--warmup", "0"],
               runtime)  # fmt: skip
    result = check_outcome(proc, model, runtime, "bench", envelope=True)
    assert result is None or result["runs"] == 3


@pytest.mark.parametrize("name", HOSTILE)
def test_eval_on_the_device_side(hostile_dir: Path, runtime: str, name: str, tmp_path: Path) -> None:
    """An all-zero shard, as the MANIFEST's crash input (the shard format deploy ships: images, labels)."""
    model, data = hostile_dir / name, tmp_path / "data.npz"
    np.savez(data, images=np.zeros((8, 28, 28), np.uint8), labels=np.arange(8) % 10)
    proc = run(["-m", "edgepipe.runtime", "eval", str(model), "--runtime", runtime, "--data", str(data)], runtime)
    result = check_outcome(proc, model, runtime, "eval", envelope=True)
    assert result is None or result["n"] == 8


@pytest.mark.parametrize("name", HOSTILE)
def test_deploy_local_names_the_crashed_model_keeps_the_good_one_and_exits_23(
    hostile_dir: Path, coral_data: Path, datasets_dir: Path, runtime: str, name: str, tmp_path: Path
) -> None:
    """segv_lstm goes first, segv_2 last: a crash in the deploy's last command must still remove the folder.
    With --eval each model has two commands; the crashed model's eval is skipped, the good one's runs."""
    hostile, good = hostile_dir / name, coral_data / GOOD
    models = [hostile, good] if name == HOSTILE[0] else [good, hostile]
    board, out = tmp_path / "board", tmp_path / "out"
    proc = run(["-m", "edgepipe.cli", "deploy", *map(str, models), "--to", "local:%s" % board, "--runs", "3",
                "--warmup", "0", "--eval", "mnist", "--limit", "20", "--data-dir", str(datasets_dir), "--out", str(out),
                "--json"], runtime)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert list(board.iterdir()) == []  # the remote folder is removed whichever command crashed
    report = json.loads((out / "results.json").read_text())
    assert json.loads(proc.stdout) == report  # shown, and written before the exit
    by_name = {r["model"]: r for r in report["results"]}
    assert list(by_name) == [m.name for m in models]
    kept = by_name[GOOD]
    assert kept["error"] is None and kept["summary"]["p50_ms"] > 0 and kept["eval"]["n"] == 20
    crashed = by_name[name]
    if proc.returncode == 0 and (name, runtime) in MAY_SURVIVE:
        assert crashed["error"] is None and crashed["summary"]["p50_ms"] > 0
        return
    assert proc.returncode == 23, proc.stderr[-3000:]
    assert crashed["error"]["signal"] == "SIGSEGV" and crashed["error"]["step"] == "bench"
    assert crashed["error"]["message"] == CRASHED + "models/" + name == crashed["summary"]["error"]
    assert crashed["bench"] is None and crashed["eval"] is None  # its eval was not run after the crash
    (line,) = error_lines(proc.stderr)
    assert "bench of %s failed on local:%s: %s" % (name, board, CRASHED) in line and str(out) in line


def test_fleet_board_with_a_crashing_model_fails_with_the_reason(
    hostile_dir: Path, coral_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Judged "fail" (it ran), not "unreachable", not tried again; the good model is still measured."""
    need_module("ai_edge_litert", "pip install 'edgepipe[dev]'")
    monkeypatch.setenv(TFLITE_RUNTIME_ENV, "ai_edge_litert")
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({
        "models": [str(hostile_dir / HOSTILE[0]), str(coral_data / GOOD)], "runs": 3, "warmup": 0,
        "boards": [{"name": "b1", "to": "local:%s" % (tmp_path / "b1")}],
    }))  # fmt: skip
    report = validate_fleet(inventory, out_dir=tmp_path / "out")
    (board,) = report.boards
    assert board.verdict == "fail" and board.error is None and board.attempts == [] and not report.passed
    assert board.reasons == ["%s: %smodels/%s" % (HOSTILE[0], CRASHED, HOSTILE[0])]
    crashed, good = board.models
    assert crashed.summary["error"] == CRASHED + "models/" + HOSTILE[0] and crashed.summary["p50_ms"] is None
    assert good.model == GOOD and good.summary["p50_ms"] > 0 and good.reasons == []
    written = json.loads((tmp_path / "out" / "fleet_report.json").read_text())
    assert written["boards"][0]["verdict"] == "fail" and written["boards"][0]["reasons"] == board.reasons
    assert list((tmp_path / "b1").iterdir()) == []


@pytest.mark.parametrize("crash_first", [True, False], ids=["crash-first", "crash-last"])
def test_deploy_over_ssh_with_a_crashing_model(
    sshd: Dict[str, object], hostile_dir: Path, coral_data: Path, tmp_path: Path, crash_first: bool
) -> None:
    """Over a real sshd on 127.0.0.1 the first command rides with the upload and the last one removes the
    folder: a crash in either is still that model's failure, and the folder still goes. segv_lstm crashes
    both runtimes, so whichever the remote Python picks."""
    hostile, good = hostile_dir / HOSTILE[0], coral_data / GOOD
    models = [hostile, good] if crash_first else [good, hostile]
    remote, out = tmp_path / "remote", tmp_path / "out"
    remote.mkdir()
    proc = run(["-m", "edgepipe.cli", "deploy", *map(str, models), "--to", str(sshd["url"]), "--identity",
                str(sshd["key"]), "--known-hosts", str(sshd["known_hosts"]), "--python", sys.executable,
                "--remote-dir", str(remote), "--runs", "3", "--warmup", "0", "--out", str(out), "--json"],
               "ai_edge_litert")  # fmt: skip
    assert proc.returncode == 23 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = error_lines(proc.stderr)
    assert "bench of %s failed on %s: %s" % (HOSTILE[0], sshd["url"], CRASHED) in line
    report = json.loads((out / "results.json").read_text())
    by_name = {r["model"]: r for r in report["results"]}
    assert by_name[HOSTILE[0]]["error"]["signal"] == "SIGSEGV" and by_name[GOOD]["summary"]["p50_ms"] > 0
    assert report["ssh_connections"] == 1 and list(remote.iterdir()) == []


def test_deploy_with_both_hostile_models_says_how_many_failed(
    hostile_dir: Path, coral_data: Path, tmp_path: Path
) -> None:
    need_module("ai_edge_litert", "pip install 'edgepipe[dev]'")  # it crashes on both
    models = [hostile_dir / HOSTILE[0], hostile_dir / HOSTILE[1], coral_data / GOOD]
    proc = run(["-m", "edgepipe.cli", "deploy", *map(str, models), "--to", "local:%s" % (tmp_path / "board"),
                "--runs", "3", "--warmup", "0", "--out", str(tmp_path / "out")], "ai_edge_litert")  # fmt: skip
    assert proc.returncode == 23, proc.stderr[-3000:]
    (line,) = error_lines(proc.stderr)
    assert "bench of %s failed" % HOSTILE[0] in line and "(2 of 3 models failed)" in line
    assert "check it with `edgepipe inspect`" in line  # the board's own hint, what to do
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [bool(r["error"]) for r in report["results"]] == [True, True, False]
