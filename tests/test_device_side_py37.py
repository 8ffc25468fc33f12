"""The device-side package on the Coral Dev Board's Python: 3.7 (Mendel), numpy 1.21 and tflite_runtime.

`.ci/run` builds `.venv-py37` with exactly that when the machine has a python3.7. The package runs
from the source tree (PYTHONPATH), as a deploy bundle ships it: no host dependency is installed there.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import IN_CI, REPO

from edgepipe.data import load_dataset
from edgepipe.runtime.accuracy import evaluate
from edgepipe.runtime.session import open_session

PY37 = REPO / ".venv-py37" / "bin" / "python"


@pytest.fixture(scope="module")
def py37() -> Path:
    if not PY37.exists():
        pytest.skip("no Python 3.7 device venv at %s (.ci/run builds it when python3.7 exists)" % PY37)
    return PY37


def run_device(py37: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("EDGEPIPE_TFLITE_RUNTIME", None)
    return subprocess.run(
        [str(py37), "-m", "edgepipe.runtime", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_py37_venv_is_the_board_setup(py37: Path) -> None:
    proc = subprocess.run(
        [str(py37), "-c", "import sys, numpy, tflite_runtime; print(sys.version_info[:2], numpy.__version__)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("(3, 7)")
    assert subprocess.run([str(py37), "-c", "import typer"], capture_output=True).returncode != 0  # no host deps


def test_py37_bench_compiled_model_falls_back_to_twin_on_tflite_runtime(py37: Path, coral_data: Path) -> None:
    proc = run_device(py37, "bench", str(coral_data / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"), "--runs", "5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert (result["requested_backend"], result["backend"]) == ("auto", "cpu")
    assert result["run_model"]["path"].endswith("mobilenet_v1_0.25_128_quant.tflite")
    assert "libedgetpu" in result["fallback_reason"]
    assert result["environment"]["python"].startswith("3.7.")
    assert result["environment"]["runtime"]["name"] == "tflite_runtime"
    assert result["latency_ms"]["p50"] > 0


def test_py37_edgetpu_backend_without_a_device_exits_21(py37: Path, coral_data: Path) -> None:
    proc = run_device(
        py37, "bench", str(coral_data / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"), "--backend", "edgetpu"
    )
    assert proc.returncode == 21
    assert "Traceback" not in proc.stderr and "libedgetpu" in proc.stderr


def test_py37_eval_imagenet_samples_matches_the_host_runtime(py37: Path, datasets_dir: Path, coral_data: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    """The same 250 real ImageNet images, same int8 model: Python 3.7 + tflite_runtime vs the host's LiteRT."""
    model = coral_data / "mobilenet_v1_0.25_128_quant.tflite"
    ds = load_dataset("images:%s" % (datasets_dir / "imagenet-samples"), image_size=(128, 128))
    data = tmp_path / "samples.npz"
    np.savez(data, images=ds.images, labels=ds.labels)
    proc = run_device(py37, "eval", str(model), "--data", str(data), "--label-offset", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    device = json.loads(proc.stdout)
    host = evaluate(open_session(str(model), backend="cpu"), ds.images, ds.labels, label_offset=1)
    assert device["n"] == host.n == 250
    assert 0.40 < device["top1"] < 0.55  # MANIFEST: 45.2 % for this model on these 250
    assert abs(device["top1"] - host.top1) <= 2 / 250  # int8 kernels of two runtime releases: near-identical


def test_ci_builds_the_py37_venv_when_it_can() -> None:
    """In CI the device check must not silently vanish: python3.7 present means the venv exists."""
    if not IN_CI:
        pytest.skip("checked in CI only")
    candidates = ["python3.7", *glob.glob(os.path.expanduser("~/.pyenv/versions/3.7*/bin/python"))]
    probe = "import sys; assert sys.version_info[:2] == (3, 7)"
    has_py37 = any(
        subprocess.run([c, "-c", probe], capture_output=True).returncode == 0
        for c in candidates
        if shutil.which(c) or os.path.isfile(c)
    )
    assert PY37.exists() or not has_py37


def test_deploy_to_a_python_3_7_board_runs_bench_and_eval_there(py37: Path, coral_data: Path, datasets_dir: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    """`edgepipe deploy` to a local "board" whose only Python is 3.7 + numpy 1.21 + tflite_runtime 2.11."""
    from edgepipe.deploy.deploy import deploy
    from edgepipe.deploy.transport import LocalTarget
    from edgepipe.runtime.options import RunOptions

    model = coral_data / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    target = LocalTarget(tmp_path / "board", python=str(py37))
    samples = "images:%s" % (datasets_dir / "imagenet-samples")
    report = deploy([model], target, RunOptions(runs=5, warmup=1), eval_spec=samples, limit=20,
                    out_dir=tmp_path / "out")  # fmt: skip
    assert report.remote["python"].startswith("3.7.")
    assert report.remote["runtime"]["name"] == "tflite_runtime"
    (result,) = report.results
    assert result.summary["backend"] == "cpu" and result.eval["n"] == 20
    assert result.bench["environment"]["python"].startswith("3.7.")
