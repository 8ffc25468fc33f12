"""Convert's float and int8 checks run on samples spread over the whole calibration subset.

The seeded subset keeps the dataset's order, and CIFAR-10 (like many image folders) is stored class by
class: its first 32 of 200 calibration images were 23 airplanes and 9 cars, so the collapse warning
("all calibration samples get one class") judged a model on two classes (issue 14, first-hour walk).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import REPO, need_module

from edgepipe.convert.worker import INT8_CHECK_SAMPLES, spread


def test_spread_covers_every_class_of_a_class_sorted_subset() -> None:
    labels = np.repeat(np.arange(10), 20)  # 200 samples, class by class
    picked = spread(labels, INT8_CHECK_SAMPLES)
    assert len(picked) == INT8_CHECK_SAMPLES and picked[0] == 0 and picked[-1] == 9
    assert sorted(set(picked.tolist())) == list(range(10))
    assert spread(labels[:5], INT8_CHECK_SAMPLES).tolist() == [0] * 5  # fewer than asked: all of them


def test_resnet8_int8_check_sees_all_cifar10_classes(resnet8_dir: Path, datasets_dir: Path, tmp_path: Path) -> None:
    """MLPerf's ResNet-8 calibrated on CIFAR-10: the float model's answers on the checked samples span
    all 10 classes (7 when the first 32 samples were checked), and int8 agrees with it."""
    need_module("tensorflow", "pip install -e '.[convert]'")
    out = tmp_path / "resnet8.tflite"
    argv = [sys.executable, "-m", "edgepipe.cli", "convert", str(resnet8_dir / "pretrainedResnet.h5"), "-o", str(out),
            "--calib", "cifar10", "--preprocess", "raw", "--data-dir", str(datasets_dir)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO), timeout=600)
    assert proc.returncode == 0, proc.stderr
    check = json.loads(out.with_suffix(".json").read_text())["int8_check"]
    assert check["samples"] == INT8_CHECK_SAMPLES
    assert check["float_top1_classes"] == 10
    assert check["top1_agreement"] >= 0.9
