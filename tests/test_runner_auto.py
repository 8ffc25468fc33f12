"""`--backend auto` chooses an Edge TPU that loads the model (issue 13: nothing else would notice if it
never did, since the hardware suite skips here).

No Edge TPU exists here, so the delegate is a stand-in: tests/fakes/fake_libedgetpu.c built with
FAKE_DELEGATE lists one USB Edge TPU and is a real TFLite external delegate that claims the
`edgetpu-custom-op` node (its outputs are meaningless, so only the backend choice is checked). The
model is Google's real compiled MobileNet (../shared/models/coral-test-data), run by the real
TFLite runtimes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _edgetpu_fakes import build_fake_libedgetpu

from edgepipe.runtime.edgetpu import LIBEDGETPU_ENV
from edgepipe.runtime.session import open_session

REPO = Path(__file__).resolve().parents[1]
MOBILENET = "mobilenet_v1_0.25_128_quant"
RUNTIMES = ["ai_edge_litert", "tflite_runtime"]  # both installed by CI (.ci/run, extras and tflite_runtime)


@pytest.fixture(scope="module")
def delegate_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_libedgetpu(tmp_path_factory.mktemp("fake_delegate"), "delegate")


@pytest.fixture
def compiled(coral_data: Path) -> Path:
    return coral_data / ("%s_edgetpu.tflite" % MOBILENET)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_standin_auto_runs_on_the_edgetpu_that_loads_the_model(monkeypatch, delegate_library, compiled, runtime):
    monkeypatch.setenv(LIBEDGETPU_ENV, str(delegate_library))
    session = open_session(str(compiled), backend="auto", tflite_runtime=runtime)
    assert session.backend == "edgetpu", session.backend_reason
    assert session.device.spec == "usb:0"
    assert session.fallback_reason is None
    assert session.run_model_path == str(compiled)  # the compiled model itself, not its CPU twin
    assert "loaded it" in session.backend_reason
    session.interpreter.invoke()  # the stand-in delegate's kernel ran in place of edgetpu-custom-op


def test_standin_auto_on_the_device_entry_point_reports_the_edgetpu(delegate_library, compiled, tmp_path) -> None:
    """The device side's `bench --backend auto`, in its own process as on a board."""
    out = tmp_path / "bench.json"
    env = dict(os.environ, **{LIBEDGETPU_ENV: str(delegate_library), "PYTHONPATH": str(REPO)})
    done = subprocess.run(
        [sys.executable, "-m", "edgepipe.runtime", "bench", str(compiled), "--backend", "auto", "--runs", "3",
         "--warmup", "1", "--output", str(out)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    text = json.dumps(result)
    assert '"backend": "edgetpu"' in text, text[:2000]
    assert "uncompiled twin" not in text


def test_standin_auto_without_the_delegate_still_falls_back(monkeypatch, tmp_path, compiled) -> None:
    """The same stand-in without FAKE_DELEGATE: the device is listed but the delegate cannot load."""
    monkeypatch.setenv(LIBEDGETPU_ENV, str(build_fake_libedgetpu(tmp_path, "one_usb")))
    session = open_session(str(compiled), backend="auto")
    assert session.backend == "cpu"
    assert "tflite_plugin_create_delegate" in session.fallback_reason
