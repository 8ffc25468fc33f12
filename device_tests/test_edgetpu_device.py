"""On a real Edge TPU: the delegate loads, the compiled MobileNet runs on it and agrees with its CPU twin.

Skipped as a whole (see conftest.py) when no Edge TPU is attached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from edgepipe.runtime.interpreters import load_tflite_runtime
from edgepipe.runtime.runner import benchmark
from edgepipe.runtime.session import open_session

MOBILENET = "mobilenet_v1_0.25_128_quant"
CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese", "Egyptian cat"}
IMAGES = ("cat.bmp", "bird.bmp", "grace_hopper.bmp")


def pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((128, 128), Image.BILINEAR), dtype=np.uint8)


def test_delegate_loads(tpus: Dict[str, Any]) -> None:
    delegate = load_tflite_runtime().load_delegate(tpus["library"], {})
    assert delegate is not None


def test_compiled_mobilenet_runs_on_the_tpu_and_classifies_the_cat(coral_data: Path) -> None:
    labels = (coral_data / "imagenet_labels.txt").read_text().splitlines()
    session = open_session(str(coral_data / ("%s_edgetpu.tflite" % MOBILENET)), backend="edgetpu")
    assert session.backend == "edgetpu" and session.device is not None
    result = benchmark(session, runs=5, warmup=1, pixels=pixels(coral_data / "cat.bmp"))
    assert result.backend == "edgetpu" and result.environment["libedgetpu"]["runtime_version"]
    assert labels[result.prediction[0]["index"]] in CAT_CLASSES


def test_auto_picks_the_tpu(coral_data: Path) -> None:
    session = open_session(str(coral_data / ("%s_edgetpu.tflite" % MOBILENET)), backend="auto")
    assert session.backend == "edgetpu" and session.fallback_reason is None


@pytest.mark.parametrize("image", IMAGES)
def test_tpu_top1_agrees_with_the_cpu_twin(coral_data: Path, image: str) -> None:
    px = pixels(coral_data / image)
    tpu = benchmark(
        open_session(str(coral_data / ("%s_edgetpu.tflite" % MOBILENET)), backend="edgetpu"), 1, 0, pixels=px
    )
    cpu = benchmark(open_session(str(coral_data / ("%s.tflite" % MOBILENET)), backend="cpu"), 1, 0, pixels=px)
    assert tpu.prediction[0]["index"] == cpu.prediction[0]["index"], (tpu.prediction, cpu.prediction)


def test_latency_first_vs_steady(coral_data: Path, record_property: Any) -> None:
    """Report only: the first inference loads the parameter cache; no timing is asserted."""
    session = open_session(str(coral_data / ("%s_edgetpu.tflite" % MOBILENET)), backend="edgetpu")
    result = benchmark(session, runs=100, warmup=10)
    stats = result.latency_ms
    print(
        "\nEdge TPU %s: first %.3f ms, p50 %.3f ms, p99 %.3f ms (invoke only); end to end p50 %.3f ms"
        % (result.device, stats.first, stats.p50, stats.p99, result.end_to_end_ms.p50)
    )
    record_property("first_ms", stats.first)
    record_property("p50_ms", stats.p50)
    assert stats.n == 100 and stats.min <= stats.p50 <= stats.max


def test_device_string_usb0(tpus: Dict[str, Any], coral_data: Path) -> None:
    if not any(d.type == "usb" for d in tpus["devices"]):
        pytest.skip("no USB Edge TPU among: %s" % ", ".join(d.spec for d in tpus["devices"]))
    session = open_session(str(coral_data / ("%s_edgetpu.tflite" % MOBILENET)), backend="edgetpu", device="usb:0")
    assert session.device.spec == "usb:0" and session.device.type == "usb"
