"""The hardware-in-the-loop suite (device_tests/) without hardware: collected only on request, and
then every test is skipped with a reason that says what was looked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_main_run_does_not_collect_device_tests() -> None:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert config["testpaths"] == ["tests"]
    assert not (REPO / "tests" / "device_tests").exists()


def test_device_tests_all_skip_without_an_edge_tpu(tmp_path: Path) -> None:
    env = dict(os.environ, EDGEPIPE_LIBEDGETPU=str(tmp_path / "no-libedgetpu.so.1"))
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "device_tests", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=300,
    )
    text = proc.stdout.decode()
    assert proc.returncode == 0, text
    assert " skipped" in text and "passed" not in text and "failed" not in text and "error" not in text.lower()
    assert "no Edge TPU found" in text
    assert "no-libedgetpu.so.1, which does not exist" in text  # what was looked for, and why it failed
    assert "1a6e:089a or 18d1:9302" in text and "/dev/apex_*" in text
