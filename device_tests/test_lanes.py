"""The checks, per lane (cpu / every Edge TPU / remote) and per model (thresholds.toml [models]).

Each measured figure is recorded as a JUnit property next to its threshold; a failure names the
figure, its value, the limit and where the limit is written.
"""

from __future__ import annotations

from typing import Any

import hil


def test_top1(measurement: hil.Measurement, check: Any) -> None:
    """Top-1 on N images of the model's dataset (a seeded sample over all classes)."""
    check(measurement, "top1")


def test_agreement_with_cpu_twin(measurement: hil.Measurement, check: Any) -> None:
    """Top-1 agreement with the uncompiled twin on this host's CPU, image by image."""
    check(measurement, "agreement")


def test_latency(measurement: hil.Measurement, check: Any) -> None:
    """p50 and p99 invoke latency (steady state, after warm-up) per device kind."""
    check(measurement, "p50_ms", "p99_ms")


def test_first_inference(measurement: hil.Measurement, check: Any) -> None:
    """The first inference after loading (on an Edge TPU: the parameter cache is filled here)."""
    check(measurement, "first_ms")


def test_no_cpu_ops(measurement: hil.Measurement, check: Any) -> None:
    """Ops left on the CPU: counted in the compiled model, or predicted by the pre-flight when uncompiled."""
    check(measurement, "cpu_ops")
