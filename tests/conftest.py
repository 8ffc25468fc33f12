"""Shared test fixtures: where the real data lives, and how its absence is handled.

Real data and artifacts are in `../shared/` beside the repository (never copied into it). Locally a
missing file skips the tests that need it, with the reason; in CI (`CI=true`) it is an error.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPIPE_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips (locally) or fails (CI) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = "shared data missing: %s (expected ../shared beside the repository)" % path
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def coral_data() -> Path:
    return shared_path("models", "coral-test-data")


@pytest.fixture(scope="session")
def compiler_logs() -> Path:
    return shared_path("edgetpu", "compiler_logs")


@pytest.fixture(scope="session")
def resnet8_dir() -> Path:
    return shared_path("models", "mlperf-tiny-resnet8")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    return shared_path("datasets")
