"""`doctor` on the device side (`edgepipe.runtime.doctor.diagnose`) and the host (`edgepipe doctor`).

`test_standin_*` use a stand-in libedgetpu built from tests/fakes/fake_libedgetpu.c and fake sysfs
trees (see tests/_edgetpu_fakes.py): no Edge TPU or libedgetpu exists here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _edgetpu_fakes import build_fake_libedgetpu, fake_sysfs
from typer.testing import CliRunner

from edgepipe.cli import app
from edgepipe.runtime.doctor import diagnose, exit_code
from edgepipe.runtime.edgetpu import FIX_MISMATCH, LIBEDGETPU_ENV
from edgepipe.runtime.os_devices import UDEV_RULE_TEXT
from edgepipe.runtime.report import dumps

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fakes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fake_libedgetpu_doctor")


@pytest.fixture
def empty_system(tmp_path: Path) -> dict:
    """sysfs, /dev and udev roots with nothing Coral-related in them."""
    for name in ("sys", "dev", "rules"):
        (tmp_path / name).mkdir()
    return {
        "sysfs_root": str(tmp_path / "sys"),
        "dev_root": str(tmp_path / "dev"),
        "udev_dirs": (str(tmp_path / "rules"),),
    }


def _whats(report, severity=None):
    return [p.what for p in report.problems if severity is None or p.severity == severity]


def test_doctor_without_libedgetpu(monkeypatch, tmp_path, empty_system) -> None:
    monkeypatch.setenv(LIBEDGETPU_ENV, str(tmp_path / "missing.so"))
    monkeypatch.delenv("EDGEPIPE_TFLITE_RUNTIME", raising=False)
    report = diagnose(**empty_system)
    by_name = {r["name"]: r for r in report.runtimes}
    assert by_name["ai_edge_litert"]["found"] and by_name["ai_edge_litert"]["version"]
    assert by_name["tflite_runtime"]["found"] and by_name["tflite_runtime"]["version"] == "2.14.0"
    assert by_name["tensorflow"]["found"] is None  # installed here, deliberately not imported
    assert report.runtime["name"] == "ai_edge_litert"
    assert report.libedgetpu["found"] is False and report.libedgetpu["runtime_version"] is None
    assert report.devices == [] and report.edgetpu_ready is False and report.ok is False
    problems = {p.what: p for p in report.problems}
    missing = next(p for w, p in problems.items() if w.startswith("no Edge TPU runtime"))
    assert missing.severity == "error" and "libedgetpu1-std" in missing.fix
    assert any("no Edge TPU is attached" in w for w in problems)
    udev = next(p for w, p in problems.items() if w.startswith("no udev rule"))
    assert udev.severity == "warning" and "18d1" in udev.fix and "udevadm" in udev.fix
    assert report.pycoral == {"found": False, "version": None, "required": False}
    assert json.loads(dumps(report))["kind"] == "doctor"


def test_doctor_reports_a_forced_runtime_that_is_unknown(monkeypatch, tmp_path, empty_system) -> None:
    monkeypatch.setenv(LIBEDGETPU_ENV, str(tmp_path / "missing.so"))
    monkeypatch.setenv("EDGEPIPE_TFLITE_RUNTIME", "tflite_micro")
    report = diagnose(**empty_system)
    assert report.runtime is None
    assert any("tflite_micro" in w for w in _whats(report, "error"))


def test_standin_doctor_library_without_devices_and_bootloader_usb(monkeypatch, tmp_path, fakes_dir) -> None:
    library = build_fake_libedgetpu(fakes_dir, "zero")
    monkeypatch.setenv(LIBEDGETPU_ENV, str(library))
    sysfs = fake_sysfs(tmp_path / "sys", [("2-1", "1a6e", "089a", "480")])
    rules = tmp_path / "rules"
    rules.mkdir()
    report = diagnose(sysfs_root=str(sysfs), dev_root=str(tmp_path / "dev"), udev_dirs=(str(rules),))
    lib = report.libedgetpu
    assert lib["found"] and lib["loads"] and lib["path"] == str(library) and lib["source"] == "$" + LIBEDGETPU_ENV
    assert lib["runtime_version"] == 14 and "RuntimeVersion(14)" in lib["version_string"]
    assert len(report.devices) == 1
    usb = report.devices[0]
    assert usb["usb_id"] == "1a6e:089a" and "bootloader" in usb["state"]
    assert usb["listed_by_libedgetpu"] is False and usb["usb3"] is False
    assert report.edgetpu_ready is False
    errors = [p for p in report.problems if p.severity == "error"]
    unopened = next(p for p in errors if "lists no Edge TPU although a USB Accelerator is attached" in p.what)
    assert "plugdev" in unopened.fix and "udev" in unopened.fix and "USB 3" in unopened.fix
    assert any("USB 2" in p.what and "USB 3 port" in p.fix for p in report.problems)
    # With a USB Accelerator attached, a missing udev rule is an error, not a warning (unless root).
    if not report.plugdev.get("root"):
        assert any(w.startswith("no udev rule") for w in _whats(report, "error"))


def test_standin_doctor_merges_libedgetpu_and_sysfs(monkeypatch, tmp_path, fakes_dir) -> None:
    monkeypatch.setenv(LIBEDGETPU_ENV, str(build_fake_libedgetpu(fakes_dir, "one_usb")))
    dev = tmp_path / "dev"
    sysfs = fake_sysfs(tmp_path / "sys", [("2-1", "18d1", "9302", "5000")], dev_root=dev)
    (dev / "apex_0").write_bytes(b"")  # a PCIe Edge TPU node libedgetpu did not list
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "99-edgetpu-accelerator.rules").write_text(UDEV_RULE_TEXT + "\n")
    report = diagnose(sysfs_root=str(sysfs), dev_root=str(dev), udev_dirs=(str(rules),))
    assert report.edgetpu_ready is True
    usb, pci = report.devices
    assert usb["spec"] == "usb:0" and usb["listed_by_libedgetpu"] and usb["seen_by_os"]
    assert usb["usb_id"] == "18d1:9302" and "ready" in usb["state"] and usb["usb3"] is True
    assert usb["accessible"] is True
    assert pci["type"] == "pci" and pci["path"] == str(dev / "apex_0") and not pci["listed_by_libedgetpu"]
    assert report.udev["ok"] is True
    assert not any("udev" in w for w in _whats(report))
    assert not any("USB 2" in w for w in _whats(report))
    assert report.ok and exit_code(report) == 0  # a ready Edge TPU passes a CI step


def test_standin_doctor_crashing_library(monkeypatch, fakes_dir, empty_system) -> None:
    library = build_fake_libedgetpu(fakes_dir, "crash")
    monkeypatch.setenv(LIBEDGETPU_ENV, str(library))
    report = diagnose(**empty_system)  # survives the SIGSEGV, which happens in the probe child
    assert report.libedgetpu["loads"] is False and report.libedgetpu["crashed"] is True
    assert "SIGSEGV" in report.libedgetpu["error"]
    broken = next(p for p in report.problems if "is not usable" in p.what)
    assert broken.severity == "error" and broken.fix == FIX_MISMATCH and str(library) in broken.what


def test_device_side_doctor_cli_has_no_host_imports(tmp_path: Path) -> None:
    """`python -m edgepipe.runtime doctor` prints JSON and never imports typer, rich or TensorFlow."""
    script = (
        "import sys, runpy\n"
        "sys.argv = ['edgepipe.runtime', 'doctor']\n"
        "try:\n"
        "    runpy.run_module('edgepipe.runtime', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "host = sorted(m for m in ('typer', 'rich', 'tensorflow', 'keras', 'PIL', 'edgepipe.cli', 'edgepipe.data')"
        " if m in sys.modules)\n"
        "sys.stderr.write('HOST-IMPORTS=%s\\n' % ','.join(host))\n"
    )
    env = dict(os.environ, **{LIBEDGETPU_ENV: str(tmp_path / "missing.so")})
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["kind"] == "doctor" and report["compiler"] is None
    assert report["libedgetpu"]["found"] is False
    assert "HOST-IMPORTS=\n" in proc.stderr.decode()


def test_standin_host_doctor_adds_the_compiler(monkeypatch, tmp_path) -> None:
    """A stand-in edgetpu_compiler that prints the real v16 version line (REFERENCE.md §1.5)."""
    compiler = tmp_path / "edgetpu_compiler"
    compiler.write_text("#!/bin/sh\necho 'Edge TPU Compiler version 16.0.384591198'\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("EDGEPIPE_EDGETPU_COMPILER", str(compiler))
    monkeypatch.setenv(LIBEDGETPU_ENV, str(tmp_path / "missing.so"))
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 21, result.output  # no Edge TPU here
    report = json.loads(result.stdout)
    assert report["compiler"] == {
        "found": True,
        "path": str(compiler),
        "version": "16.0.384591198",
        "source": "$EDGEPIPE_EDGETPU_COMPILER",
        "error": None,
    }
    assert not any("compiler" in p["what"] for p in report["problems"])


def test_host_doctor_without_compiler_says_how_to_get_one(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EDGEPIPE_EDGETPU_COMPILER", str(tmp_path / "no_compiler"))
    monkeypatch.setenv(LIBEDGETPU_ENV, str(tmp_path / "missing.so"))
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 21, result.output
    report = json.loads(result.stdout)
    assert report["compiler"]["found"] is False
    problem = next(p for p in report["problems"] if p["what"].startswith("no Edge TPU compiler"))
    assert problem["severity"] == "warning" and "apt-get install edgetpu-compiler" in problem["fix"]


def test_host_doctor_table(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(LIBEDGETPU_ENV, str(tmp_path / "missing.so"))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 21, result.output
    assert "libedgetpu" in result.stdout and "fix:" in result.stdout and "TFLite runtimes" in result.stdout


# --- exit codes: a CI step running `edgepipe doctor` fails when no Edge TPU is ready (issue 14, bug 6) ---


def test_host_doctor_fails_a_ci_step_without_an_edge_tpu(monkeypatch, tmp_path) -> None:
    """On this machine (no Edge TPU, no libedgetpu): exit 21, the JSON report unchanged; --cpu-only passes."""
    monkeypatch.setenv(LIBEDGETPU_ENV, str(tmp_path / "missing.so"))
    monkeypatch.delenv("EDGEPIPE_TFLITE_RUNTIME", raising=False)
    runner = CliRunner()
    failed = runner.invoke(app, ["doctor", "--json"])
    assert failed.exit_code == 21, failed.output
    report = json.loads(failed.stdout)  # stdout is the report only, as before
    assert report["kind"] == "doctor" and report["edgetpu_ready"] is False and report["ok"] is False
    assert "exit 21" in failed.stderr and "--cpu-only" in failed.stderr
    table = runner.invoke(app, ["doctor"])
    assert table.exit_code == 21 and "error:" in table.stdout
    cpu = runner.invoke(app, ["doctor", "--cpu-only", "--json"])
    assert cpu.exit_code == 0, cpu.output
    assert json.loads(cpu.stdout).keys() == report.keys()


def test_host_doctor_exit_20_when_no_runtime_can_run_models(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(LIBEDGETPU_ENV, str(tmp_path / "missing.so"))
    monkeypatch.setenv("EDGEPIPE_TFLITE_RUNTIME", "tflite_micro")
    result = CliRunner().invoke(app, ["doctor", "--cpu-only", "--json"])
    assert result.exit_code == 20, result.output
    assert json.loads(result.stdout)["runtime"] is None


def test_device_side_doctor_exits_0_unless_strict(tmp_path: Path) -> None:
    """Deploy and the HIL suite read the board's report whatever it says; --strict is the CI verdict."""
    env = dict(os.environ, **{LIBEDGETPU_ENV: str(tmp_path / "missing.so")})
    env.pop("EDGEPIPE_TFLITE_RUNTIME", None)

    def run(*flags: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "edgepipe.runtime", "doctor", *flags]
        return subprocess.run(command, capture_output=True, env=env, cwd=str(REPO))

    assert run().returncode == 0
    strict = run("--strict")
    assert strict.returncode == 21, strict.stderr
    assert json.loads(strict.stdout)["kind"] == "doctor"
    assert run("--strict", "--cpu-only").returncode == 0
