"""Finding a usable Edge TPU without pycoral: device strings, the probe child, and the verdict.

A libedgetpu that does not match the system (or the TFLite runtime) can crash the process that
loads it. So everything that calls into the library (`libedgetpu.py`) runs in a child process with
a timeout (`python -m edgepipe.runtime probe`), and this process only reads the child's JSON: a crash
or a hang becomes a reported failure, and `--backend auto` can still fall back to the CPU.

What the operating system sees without libedgetpu (sysfs, /dev/apex_*, udev, plugdev) is `os_devices.py`.

Device strings follow pycoral: `usb`, `usb:N`, `pci`, `pci:N` (N-th device of that type), `:N`
(N-th device of any type), or nothing (the first device).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .errors import InvalidDeviceError, NoEdgeTpuError
from .libedgetpu import (
    LIBEDGETPU_ENV,
    EdgeTpuDevice,
    find_library,
    library_names,
    locate_library,
    parse_runtime_version,
)
from .os_devices import UDEV_RULE_TEXT, pci_devices, usb_devices

PROBE_TIMEOUT_S = 60.0  # the first open of a USB Accelerator uploads its firmware

FIX_INSTALL = (
    "Install the Edge TPU runtime: on Debian/Ubuntu/Mendel add Coral's apt repository and "
    "`sudo apt-get install libedgetpu1-std` (macOS/Windows: Coral's edgetpu_runtime package), "
    "or point $%s at the library" % LIBEDGETPU_ENV
)
FIX_USB_ACCESS = (
    "Install Coral's udev rule (`sudo apt-get install libedgetpu1-std` does, or put these lines in "
    "/etc/udev/rules.d/99-edgetpu-accelerator.rules: %s), run `sudo udevadm control --reload-rules && "
    "sudo udevadm trigger`, add yourself to plugdev (`sudo usermod -aG plugdev $USER`, then log in again), "
    "and replug the accelerator" % UDEV_RULE_TEXT.replace("\n", " and ")
)
FIX_ATTACH = (
    "Plug the USB Accelerator into a USB 3 port (`lsusb` should then show 1a6e:089a, or 18d1:9302 once "
    "its firmware is loaded; replug it if it stays at 1a6e:089a after a run); for a PCIe/M.2 module install "
    "the gasket-dkms driver so /dev/apex_0 appears"
)
FIX_MISMATCH = (
    "This libedgetpu does not match the system or the TFLite runtime: reinstall libedgetpu1-std built for "
    "your tflite_runtime/ai_edge_litert version, or force another runtime with $EDGEPIPE_TFLITE_RUNTIME"
)


# --- device strings -------------------------------------------------------------------------------

_DEVICE_RE = re.compile(r"^(usb|pci)?(?::(\d+))?$")


@dataclass(frozen=True)
class DeviceSpec:
    kind: Optional[str]  # "usb", "pci" or None (any)
    index: Optional[int]  # among devices of `kind` (or of all devices); None = the first

    def __str__(self) -> str:
        if self.index is None:
            return self.kind or "any"
        return "%s:%d" % (self.kind or "", self.index)


def parse_device(text: Optional[str]) -> DeviceSpec:
    """`usb`, `usb:N`, `pci`, `pci:N`, `:N`, or None/"" for the first device."""
    if text is None or text.strip() == "":
        return DeviceSpec(None, None)
    match = _DEVICE_RE.match(text.strip().lower())
    if not match or (match.group(1) is None and match.group(2) is None):
        raise InvalidDeviceError(
            "invalid Edge TPU device %r" % text,
            hint="Use usb, usb:N, pci, pci:N or :N (N counts from 0), as pycoral does",
        )
    index = int(match.group(2)) if match.group(2) is not None else None
    return DeviceSpec(match.group(1), index)


def select_device(devices: List[EdgeTpuDevice], spec: DeviceSpec) -> Optional[EdgeTpuDevice]:
    """The device a device string names, or None when it names none of `devices`."""
    pool = [d for d in devices if spec.kind is None or d.type == spec.kind]
    position = spec.index or 0
    return pool[position] if position < len(pool) else None


# --- the probe child ------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    """What a probe child reported. `ok` False means `stage` failed with `error` (or the child crashed)."""

    ok: bool
    stage: str  # the last stage the child started
    error: str = ""
    library: Optional[str] = None
    version_string: Optional[str] = None
    runtime_version: Optional[int] = None
    devices: List[EdgeTpuDevice] = field(default_factory=list)
    device: Optional[EdgeTpuDevice] = None  # the one the delegate was created for
    crashed: bool = False  # killed by a signal, timed out, or died without an answer
    returncode: Optional[int] = None


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return "signal %d" % -returncode


STAGE_WORDS = {
    "start": "starting",
    "load_runtime": "importing the TFLite runtime",
    "load_library": "loading the library",
    "version": "asking the runtime version",
    "list_devices": "listing devices",
    "select_device": "selecting the device",
    "load_delegate": "creating the Edge TPU delegate",
    "create_interpreter": "creating the interpreter",
    "allocate_tensors": "allocating the model on the Edge TPU",
    "done": "finishing",
}


def run_probe(args: List[str], timeout: float) -> ProbeResult:
    """Run `python -m edgepipe.runtime probe ARGS` and read its stage lines and final result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _package_root() + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [sys.executable, "-m", "edgepipe.runtime", "probe"] + args
    try:
        proc = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=timeout, env=env
        )
        out, said, returncode, timed_out = proc.stdout, proc.stderr, proc.returncode, False
    except subprocess.TimeoutExpired as exc:
        out, said, returncode, timed_out = exc.stdout or b"", exc.stderr or b"", None, True
    stage, final = "start", None
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and "stage" in message:
            stage = message["stage"]
        if isinstance(message, dict) and "result" in message:
            final = message["result"]
    if final is not None and not timed_out:
        return _result_from_json(final, returncode)
    doing = STAGE_WORDS.get(stage, stage)
    if timed_out:
        error = "the probe did not finish within %.0f s (hung while %s)" % (timeout, doing)
    elif returncode is not None and returncode < 0:
        error = "the probe process crashed with %s while %s" % (_signal_name(returncode), doing)
    else:
        error = "the probe process exited with code %s without an answer while %s" % (returncode, doing)
    last_words = [line.strip() for line in said.decode("utf-8", "replace").splitlines() if line.strip()]
    if last_words:  # the library's or Python's own reason (a fatal check, a traceback's last line): never hidden
        error += "; its last line on stderr: %s" % last_words[-1][:300]
    return ProbeResult(ok=False, stage=stage, error=error, crashed=True, returncode=returncode)


def _result_from_json(data: Dict[str, Any], returncode: Optional[int]) -> ProbeResult:
    devices = [EdgeTpuDevice(**d) for d in data.get("devices") or []]
    device = EdgeTpuDevice(**data["device"]) if data.get("device") else None
    return ProbeResult(
        ok=bool(data.get("ok")),
        stage=str(data.get("stage", "")),
        error=str(data.get("error") or ""),
        library=data.get("library"),
        version_string=data.get("version_string"),
        runtime_version=data.get("runtime_version"),
        devices=devices,
        device=device,
        returncode=returncode,
    )


_library_probes: Dict[str, ProbeResult] = {}


def probe_library(path: Optional[str] = None, timeout: float = 20.0, fresh: bool = False) -> ProbeResult:
    """Version and device list of libedgetpu at `path` (default: `find_library()`), asked in a child.

    The result for a path is cached for the life of the process unless `fresh`.
    """
    path = path or find_library()
    if path is None:
        return ProbeResult(ok=False, stage="load_library", error=locate_library().problem)
    if fresh or path not in _library_probes:
        _library_probes[path] = run_probe(["--library", path], timeout)
    return _library_probes[path]


def runtime_version(path: Optional[str] = None) -> Optional[int]:
    """The Edge TPU runtime version (e.g. 14) of the installed libedgetpu, or None if unknown."""
    probe = probe_library(path)
    return probe.runtime_version if probe.ok else None


# --- deciding whether the Edge TPU backend is usable --------------------------------------------


def explain_no_device(probe: ProbeResult, sysfs_root: str = "/sys", dev_root: str = "/dev") -> Tuple[str, str]:
    """(what, fix) when libedgetpu loads but lists no device, using what the OS sees."""
    where = "libedgetpu at %s (runtime %s) loads" % (probe.library, probe.runtime_version or "version unknown")
    usb = usb_devices(sysfs_root, dev_root)
    pci = pci_devices(dev_root)
    if usb:
        dev = usb[0]
        what = "%s, but lists no Edge TPU although a USB Accelerator is attached (%s:%s, %s)" % (
            where,
            dev.vendor_id,
            dev.product_id,
            dev.state,
        )
        if dev.accessible is False:
            what += "; this user cannot open %s" % dev.dev_node
        fix = FIX_USB_ACCESS
        if dev.usb3 is False:
            fix += "; it is on a USB 2 port (%d Mb/s): use a USB 3 port" % dev.speed_mbps
        return what, fix
    if pci:
        unreadable = [p.path for p in pci if not p.accessible]
        what = "%s, but lists no Edge TPU although %s exists" % (where, ", ".join(p.path for p in pci))
        fix = (
            "Give this user access to %s (udev rule for the apex group, or run as a member of it) and check "
            "`dmesg | grep apex` for driver errors" % ", ".join(unreadable or [pci[0].path])
        )
        return what, fix
    return "%s, but no Edge TPU is attached (none in libedgetpu's list, sysfs or /dev/apex_*)" % where, FIX_ATTACH


def probe_delegate(
    model_path: str,
    device: Optional[str] = None,
    library: Optional[str] = None,
    runtime: Optional[str] = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> ProbeResult:
    """Do the first delegate load in a child: load library, list devices, create delegate, allocate."""
    library = library or find_library()
    if library is None:
        return ProbeResult(ok=False, stage="load_library", error=locate_library().problem)
    args = ["--library", library, "--model", model_path]
    if device:
        args += ["--device", device]
    if runtime:
        args += ["--runtime", runtime]
    return run_probe(args, timeout)


@dataclass
class EdgeTpuTarget:
    """A usable Edge TPU: the library, its runtime version, and the device to open."""

    library: str
    version_string: Optional[str]
    runtime_version: Optional[int]
    device: EdgeTpuDevice
    devices: List[EdgeTpuDevice]


def require_edgetpu(
    model_path: str,
    device: Optional[str] = None,
    runtime: Optional[str] = None,
    timeout: float = PROBE_TIMEOUT_S,
    sysfs_root: str = "/sys",
    dev_root: str = "/dev",
) -> EdgeTpuTarget:
    """Check, in a child process, that the model loads on an Edge TPU; NoEdgeTpuError says why not."""
    spec = parse_device(device)
    location = locate_library()
    if location.path is None:
        raise NoEdgeTpuError("no Edge TPU runtime: %s" % location.problem, hint=FIX_INSTALL)
    probe = probe_delegate(model_path, device=device, library=location.path, runtime=runtime, timeout=timeout)
    if probe.ok and probe.device is not None:
        return EdgeTpuTarget(location.path, probe.version_string, probe.runtime_version, probe.device, probe.devices)
    raise probe_failure(probe, location.path, spec, sysfs_root, dev_root)


_NEEDS_RUNTIME_RE = re.compile(
    r"requires runtime version \((\d+)\), which is newer than this runtime version \((\d+)\)"
)


def probe_failure(
    probe: ProbeResult, library: str, spec: DeviceSpec, sysfs_root: str = "/sys", dev_root: str = "/dev"
) -> NoEdgeTpuError:
    """The error (what failed, and the fix) for a probe that did not end with a loaded model."""
    if probe.crashed or probe.stage in ("load_library", "version", "list_devices"):
        return NoEdgeTpuError(
            "libedgetpu at %s is not usable: %s" % (library, probe.error.rstrip(".")), hint=FIX_MISMATCH
        )
    if probe.stage == "load_runtime":
        return NoEdgeTpuError("cannot check the Edge TPU: %s" % probe.error)
    if probe.stage == "select_device":
        if not probe.devices:
            what, fix = explain_no_device(probe, sysfs_root, dev_root)
            return NoEdgeTpuError(what, hint=fix)
        listed = ", ".join("%s (%s)" % (d.spec, d.path) for d in probe.devices)
        return NoEdgeTpuError(
            "Edge TPU %s requested, but libedgetpu at %s lists only: %s" % (spec, library, listed),
            hint="Choose one of the listed devices with --device",
        )
    doing = STAGE_WORDS.get(probe.stage, probe.stage)
    what = "Edge TPU %s found, but %s failed: %s" % (probe.device.spec if probe.device else spec, doing, probe.error)
    needs = _NEEDS_RUNTIME_RE.search(probe.error)
    if needs:
        return NoEdgeTpuError(
            what,
            hint="The model needs Edge TPU runtime %s but this libedgetpu is runtime %s: update libedgetpu "
            "(`sudo apt-get install libedgetpu1-std`) or recompile with `edgepipe compile --min-runtime %s`"
            % (needs.group(1), needs.group(2), needs.group(2)),
        )
    if probe.stage == "load_delegate" and "tflite_plugin_create_delegate" in probe.error:
        return NoEdgeTpuError(
            "%s is not an Edge TPU delegate library (no tflite_plugin_create_delegate): %s" % (library, probe.error),
            hint=FIX_MISMATCH,
        )
    fix = (
        "Replug the accelerator (it re-enumerates after the firmware upload) and check the udev rule and "
        "plugdev membership (`edgepipe doctor`); if the model was compiled for a newer runtime than %s, "
        "recompile with `edgepipe compile --min-runtime %s` or update libedgetpu"
        % (probe.runtime_version or "this one", probe.runtime_version or "N")
    )
    return NoEdgeTpuError(what, hint=fix)


__all__ = [
    "DeviceSpec",
    "EdgeTpuDevice",
    "EdgeTpuTarget",
    "LIBEDGETPU_ENV",
    "ProbeResult",
    "find_library",
    "library_names",
    "locate_library",
    "parse_device",
    "parse_runtime_version",
    "probe_delegate",
    "probe_failure",
    "probe_library",
    "require_edgetpu",
    "runtime_version",
    "select_device",
]
