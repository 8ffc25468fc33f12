"""Edge TPU discovery and backend choice without an Edge TPU.

No libedgetpu and no Coral exist here, so:
- `test_standin_*` run edgepipe's real ctypes code and probe child against a stand-in libedgetpu
  compiled from tests/fakes/fake_libedgetpu.c (the C API only: it is not a delegate), and against
  fake sysfs trees;
- `test_replay_*` feed real error text (quoted in shared/edgetpu/REFERENCE.md §3.1) to the code that
  explains it;
- the rest use the real Coral models with the real LiteRT / tflite_runtime interpreters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _edgetpu_fakes import FAKE_VERSION, build_fake_libedgetpu, fake_sysfs
from conftest import missing, replay

from edgepipe.compile import command as compile_command
from edgepipe.compile import compile_models
from edgepipe.runtime import edgetpu
from edgepipe.runtime.edgetpu import (
    FIX_ATTACH,
    LIBEDGETPU_ENV,
    DeviceSpec,
    EdgeTpuDevice,
    ProbeResult,
    library_names,
    parse_device,
    parse_runtime_version,
    probe_failure,
    probe_library,
    require_edgetpu,
    select_device,
)
from edgepipe.runtime.errors import BackendError, InvalidDeviceError, NoEdgeTpuError
from edgepipe.runtime.os_devices import UDEV_RULE_TEXT, pci_devices, udev_rules, usb_devices
from edgepipe.runtime.session import open_session, twin_path

REPO = Path(__file__).resolve().parents[1]
MOBILENET = "mobilenet_v1_0.25_128_quant"
DETECT_RUNTIME = compile_command._detected_runtime_version  # before conftest's replay_env replaces it


@pytest.fixture(scope="session")
def fakes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fake_libedgetpu")


@pytest.fixture
def compiled(coral_data: Path) -> str:
    return str(coral_data / ("%s_edgetpu.tflite" % MOBILENET))


def use_library(monkeypatch: pytest.MonkeyPatch, path: object) -> None:
    monkeypatch.setenv(LIBEDGETPU_ENV, str(path))


# --- device strings and names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, index",
    [
        (None, None, None),
        ("", None, None),
        ("usb", "usb", None),
        ("usb:0", "usb", 0),
        ("USB:2", "usb", 2),
        ("pci", "pci", None),
        ("pci:1", "pci", 1),
        (":0", None, 0),
        (":3", None, 3),
    ],
)
def test_parse_device_accepts_pycoral_strings(text, kind, index) -> None:
    assert parse_device(text) == DeviceSpec(kind, index)


@pytest.mark.parametrize("text", ["tpu:0", "usb:", "usb:x", "usb:-1", ":", "pci:0:1", "usb0", "cpu"])
def test_parse_device_rejects_others(text: str) -> None:
    with pytest.raises(InvalidDeviceError) as info:
        parse_device(text)
    assert info.value.exit_code == 24
    assert "usb:N" in info.value.one_line()


def test_select_device_counts_per_type_and_overall() -> None:
    devices = [
        EdgeTpuDevice("pci", "/dev/apex_0", 0, "pci:0"),
        EdgeTpuDevice("usb", "/sys/bus/usb/devices/2-1", 1, "usb:0"),
        EdgeTpuDevice("usb", "/sys/bus/usb/devices/2-2", 2, "usb:1"),
    ]
    assert select_device(devices, parse_device(None)).spec == "pci:0"
    assert select_device(devices, parse_device("usb")).spec == "usb:0"
    assert select_device(devices, parse_device("usb:1")).path.endswith("2-2")
    assert select_device(devices, parse_device(":1")).spec == "usb:0"
    assert select_device(devices, parse_device("pci:1")) is None
    assert select_device([], parse_device(None)) is None


def test_library_names_per_platform() -> None:
    assert library_names("Linux") == ["libedgetpu.so.1"]
    assert library_names("Darwin") == ["libedgetpu.1.dylib"]
    assert library_names("Windows") == ["edgetpu.dll"]


def test_parse_runtime_version() -> None:
    assert parse_runtime_version(FAKE_VERSION) == 14
    assert parse_runtime_version("BuildLabel(x), RuntimeVersion(10)") == 10
    assert parse_runtime_version("something else") is None
    assert parse_runtime_version(None) is None


def test_twin_path() -> None:
    assert twin_path("/m/a_edgetpu.tflite") == "/m/a.tflite"
    assert twin_path("/m/a.tflite") is None


# --- sysfs, /dev, udev ----------------------------------------------------------------------------


def test_usb_devices_in_both_states_from_sysfs(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    sysfs = fake_sysfs(
        tmp_path / "sys",
        [("2-1", "1a6e", "089a", "480"), ("4-2", "18d1", "9302", "5000"), ("1-3", "046d", "c52b", "12")],
        dev_root=dev,
    )
    found = usb_devices(str(sysfs), str(dev))
    assert [(d.vendor_id, d.product_id) for d in found] == [("1a6e", "089a"), ("18d1", "9302")]
    boot, ready = found
    assert "bootloader" in boot.state and "ready" in ready.state
    assert boot.usb3 is False and ready.usb3 is True
    assert boot.dev_node == str(dev / "bus" / "usb" / "002" / "002")
    assert boot.accessible is True  # this user owns the stand-in node


def test_pci_devices_from_dev(tmp_path: Path) -> None:
    (tmp_path / "apex_0").write_bytes(b"")
    (tmp_path / "apex_1").write_bytes(b"")
    (tmp_path / "null").write_bytes(b"")
    assert [p.path for p in pci_devices(str(tmp_path))] == [str(tmp_path / "apex_0"), str(tmp_path / "apex_1")]


def test_udev_rules_need_both_usb_states(tmp_path: Path) -> None:
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / "50-other.rules").write_text('SUBSYSTEM=="usb",ATTRS{idVendor}=="046d",GROUP="plugdev"\n')
    assert udev_rules((str(rules),))["ok"] is False
    (rules / "99-edgetpu-accelerator.rules").write_text(
        'SUBSYSTEM=="usb",ATTRS{idVendor}=="1a6e",ATTRS{idProduct}=="089a",GROUP="plugdev"\n'
    )
    partial = udev_rules((str(rules),))
    assert partial["covers_bootloader"] and not partial["covers_ready"] and not partial["ok"]
    (rules / "99-edgetpu-accelerator.rules").write_text(UDEV_RULE_TEXT + "\n")
    assert udev_rules((str(rules),))["ok"] is True


# --- no libedgetpu at all (the real situation here) -----------------------------------------------


def test_edgetpu_backend_without_libedgetpu_fails_with_install_fix(monkeypatch, tmp_path, compiled) -> None:
    use_library(monkeypatch, tmp_path / "missing" / "libedgetpu.so.1")
    with pytest.raises(NoEdgeTpuError) as info:
        open_session(compiled, backend="edgetpu")
    assert info.value.exit_code == 21
    line = info.value.one_line()
    assert "no Edge TPU runtime" in line and "does not exist" in line
    assert "libedgetpu1-std" in line  # the fix


def test_auto_without_libedgetpu_runs_the_uncompiled_twin_on_cpu(monkeypatch, tmp_path, compiled) -> None:
    use_library(monkeypatch, tmp_path / "missing" / "libedgetpu.so.1")
    session = open_session(compiled, backend="auto")
    assert session.backend == "cpu"
    assert session.run_model_path == twin_path(compiled)
    assert session.model_compiled and not session.model.compiled_for_edgetpu
    assert "no Edge TPU runtime" in session.fallback_reason and "uncompiled twin" in session.fallback_reason
    assert session.backend_reason == session.fallback_reason
    assert "libedgetpu1-std" in session.fallback_fix


def test_edgetpu_backend_refuses_an_uncompiled_model(coral_data: Path) -> None:
    with pytest.raises(BackendError) as info:
        open_session(str(coral_data / ("%s.tflite" % MOBILENET)), backend="edgetpu")
    assert info.value.exit_code == 22
    assert "not compiled for the Edge TPU" in str(info.value) and "edgepipe compile" in info.value.hint


def test_invalid_device_string_is_an_error_on_every_backend(coral_data: Path) -> None:
    with pytest.raises(InvalidDeviceError):
        open_session(str(coral_data / ("%s.tflite" % MOBILENET)), backend="cpu", device="tpu:0")


# --- stand-in libedgetpu ----------------------------------------------------------------------------


def test_standin_runtime_version_and_no_devices(fakes_dir: Path) -> None:
    probe = probe_library(str(build_fake_libedgetpu(fakes_dir, "zero")), fresh=True)
    assert probe.ok and not probe.crashed
    assert probe.version_string == FAKE_VERSION
    assert probe.runtime_version == 14
    assert probe.devices == []


def test_standin_lists_devices_with_device_strings(fakes_dir: Path) -> None:
    probe = probe_library(str(build_fake_libedgetpu(fakes_dir, "mixed")), fresh=True)
    assert probe.ok
    assert [(d.type, d.spec, d.path) for d in probe.devices] == [
        ("pci", "pci:0", "/dev/apex_0"),
        ("usb", "usb:0", "/sys/bus/usb/devices/2-1"),
        ("usb", "usb:1", "/sys/bus/usb/devices/2-2"),
    ]
    assert [d.index for d in probe.devices] == [0, 1, 2]


def test_standin_runtime_version_reaches_the_compile_stage(monkeypatch, fakes_dir, replay_env, coral_data) -> None:
    """The stand-in says runtime 13; compiling (REPLAY stand-in of the compiler) then passes `-m 13`."""
    use_library(monkeypatch, build_fake_libedgetpu(fakes_dir, "old_runtime"))
    assert edgetpu.runtime_version() == 13
    monkeypatch.setattr(compile_command, "_detected_runtime_version", DETECT_RUNTIME)  # replay_env turned it off
    replay(monkeypatch, "11_efficientdet_coral_v2_stdout_v16.txt", "12_efficientdet_coral_v2_edgetpu_v16.log")
    report = compile_models([coral_data / ("%s.tflite" % MOBILENET)], replay_env["out"], allow_cpu_ops=3)
    argv = json.loads(replay_env["argv"].read_text())
    assert argv[argv.index("-m") + 1] == "13"
    assert (report.min_runtime, report.min_runtime_source) == (13, "detected Edge TPU runtime")


def test_standin_zero_devices_edgetpu_fails_clearly(monkeypatch, tmp_path, fakes_dir, compiled) -> None:
    library = build_fake_libedgetpu(fakes_dir, "zero")
    use_library(monkeypatch, library)
    empty_sysfs = tmp_path / "sys"
    empty_sysfs.mkdir()
    with pytest.raises(NoEdgeTpuError) as info:
        require_edgetpu(compiled, sysfs_root=str(empty_sysfs), dev_root=str(tmp_path))
    assert info.value.exit_code == 21
    assert "libedgetpu at %s (runtime 14) loads" % library in str(info.value)
    assert "no Edge TPU is attached" in str(info.value)
    assert info.value.hint == FIX_ATTACH


def test_standin_zero_devices_but_usb_accelerator_in_sysfs(monkeypatch, tmp_path, fakes_dir, compiled) -> None:
    """The accelerator is plugged in (bootloader state, on a USB 2 port) but libedgetpu cannot open it."""
    use_library(monkeypatch, build_fake_libedgetpu(fakes_dir, "zero"))
    sysfs = fake_sysfs(tmp_path / "sys", [("2-1", "1a6e", "089a", "480")])
    with pytest.raises(NoEdgeTpuError) as info:
        require_edgetpu(compiled, sysfs_root=str(sysfs), dev_root=str(tmp_path / "dev"))
    message, fix = str(info.value), info.value.hint
    assert "1a6e:089a" in message and "bootloader" in message
    assert "udev" in fix and "plugdev" in fix and "USB 3" in fix and "480 Mb/s" in fix


def test_standin_zero_devices_auto_falls_back_to_cpu(monkeypatch, fakes_dir, compiled) -> None:
    use_library(monkeypatch, build_fake_libedgetpu(fakes_dir, "zero"))
    session = open_session(compiled, backend="auto")
    assert session.backend == "cpu" and session.device is None
    assert "runtime 14" in session.fallback_reason and "uncompiled twin" in session.fallback_reason


def test_standin_device_not_among_listed(monkeypatch, fakes_dir, compiled) -> None:
    use_library(monkeypatch, build_fake_libedgetpu(fakes_dir, "mixed"))
    with pytest.raises(NoEdgeTpuError) as info:
        open_session(compiled, backend="edgetpu", device="pci:1")
    text = info.value.one_line()
    assert "pci:1 requested" in text and "usb:1 (/sys/bus/usb/devices/2-2)" in text and "--device" in text


def test_standin_listed_device_but_no_delegate(monkeypatch, fakes_dir, compiled) -> None:
    """usb:1 exists, so selection passes; the stand-in is no TFLite delegate, so loading it fails."""
    library = build_fake_libedgetpu(fakes_dir, "mixed")
    use_library(monkeypatch, library)
    with pytest.raises(NoEdgeTpuError) as info:
        open_session(compiled, backend="edgetpu", device="usb:1")
    assert "%s is not an Edge TPU delegate library" % library in str(info.value)
    assert "tflite_plugin_create_delegate" in str(info.value)


def test_standin_crashing_library_is_reported_not_fatal(monkeypatch, fakes_dir, compiled) -> None:
    library = build_fake_libedgetpu(fakes_dir, "crash")
    probe = probe_library(str(library), fresh=True)
    assert not probe.ok and probe.crashed
    assert probe.returncode is not None and probe.returncode < 0
    assert "crashed with SIGSEGV while listing devices" in probe.error
    # what the library said before it died reaches the user (the probe's stderr was thrown away)
    assert probe.error.endswith("its last line on stderr: F fake_libedgetpu.c:45] Check failed: usb context != nullptr")

    use_library(monkeypatch, library)
    with pytest.raises(NoEdgeTpuError) as info:
        open_session(compiled, backend="edgetpu")
    assert "is not usable" in str(info.value) and "SIGSEGV" in str(info.value)
    assert "reinstall libedgetpu1-std" in info.value.hint

    session = open_session(compiled, backend="auto")  # this process survived and falls back
    assert session.backend == "cpu" and "SIGSEGV" in session.fallback_reason


def test_standin_hanging_library_times_out(fakes_dir: Path) -> None:
    probe = probe_library(str(build_fake_libedgetpu(fakes_dir, "hang")), timeout=3, fresh=True)
    assert not probe.ok and probe.crashed
    assert "did not finish within 3 s (hung while listing devices)" in probe.error


def test_standin_not_a_libedgetpu_at_all(monkeypatch, compiled) -> None:
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc):
        missing("needs glibc at %s (CI's Debian x86-64 has it)" % libc)
    probe = probe_library(libc, fresh=True)
    assert not probe.ok and not probe.crashed
    assert probe.stage == "list_devices" and "edgetpu_list_devices" in probe.error


def test_replay_runtime_version_mismatch_message() -> None:
    """The real libedgetpu error when a model needs a newer runtime (REFERENCE.md §3.1)."""
    probe = ProbeResult(
        ok=False,
        stage="allocate_tensors",
        error="Failed precondition: Package requires runtime version (14), which is newer than this runtime "
        "version (13). Node number 0 (EdgeTpuDelegateForCustomOp) failed to prepare.",
        runtime_version=13,
        device=EdgeTpuDevice("usb", "/sys/bus/usb/devices/2-1", 0, "usb:0"),
    )
    error = probe_failure(probe, "/usr/lib/libedgetpu.so.1", parse_device("usb:0"))
    assert error.exit_code == 21
    assert "usb:0 found, but allocating the model on the Edge TPU failed" in str(error)
    assert "needs Edge TPU runtime 14" in error.hint and "--min-runtime 13" in error.hint


# --- the command line --------------------------------------------------------------------------------


def _run(argv, env_extra=None, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(argv, capture_output=True, env=env, cwd=cwd, timeout=300)


def test_device_cli_edgetpu_without_libedgetpu_exit_21(tmp_path, compiled) -> None:
    proc = _run(
        [sys.executable, "-m", "edgepipe.runtime", "bench", compiled, "--backend", "edgetpu", "--runs", "1"],
        {LIBEDGETPU_ENV: str(tmp_path / "nope.so")},
    )
    assert proc.returncode == 21
    assert b"error: no Edge TPU runtime" in proc.stderr
    assert b'"type": "NoEdgeTpuError"' in proc.stdout


def test_standin_host_cli_zero_devices_exit_21(fakes_dir: Path, compiled) -> None:
    edgepipe = shutil.which("edgepipe", path=os.path.dirname(sys.executable))
    argv = [edgepipe] if edgepipe else [sys.executable, "-m", "edgepipe.cli"]
    proc = _run(
        argv + ["bench", compiled, "--backend", "edgetpu", "--runs", "1"],
        {LIBEDGETPU_ENV: str(build_fake_libedgetpu(fakes_dir, "zero"))},
    )
    assert proc.returncode == 21, proc.stderr
    err = proc.stderr.decode()
    assert "error:" in err and "runtime 14" in err and "USB 3 port" in err
    assert proc.stdout == b""


def test_device_cli_runtime_not_found_exit_20(tmp_path: Path, compiled) -> None:
    """tflite_runtime forced but not importable (shadowed here by a package whose import fails)."""
    shadow = tmp_path / "shadow" / "tflite_runtime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('tflite_runtime is not installed on this board')\n")
    proc = _run(
        [sys.executable, "-m", "edgepipe.runtime", "bench", compiled, "--runtime", "tflite_runtime", "--runs", "1"],
        {"PYTHONPATH": os.pathsep.join([str(shadow.parent), str(REPO)])},
    )
    assert proc.returncode == 20, proc.stderr
    assert b"tflite_runtime (tflite_runtime is not installed on this board)" in proc.stderr
    assert b"pip install" in proc.stderr
