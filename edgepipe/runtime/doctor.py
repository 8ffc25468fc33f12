"""`doctor`: what this machine has for running models, what is missing, and how to fix each problem.

Device side (runs on a board as well as on the host): Python, the TFLite runtimes, libedgetpu (loaded
only in a probe child, so a crashing library is a finding, not a crash), the Edge TPUs libedgetpu
lists, the USB Accelerators sysfs shows in either state (1a6e:089a before its firmware is loaded,
18d1:9302 after), PCIe Edge TPUs (/dev/apex_*), Coral's udev rule, plugdev membership and pycoral.
The host's `edgepipe doctor` adds the compiler (`compiler` field) on top of this report.

Every problem has a `fix`. Severity "error" means the Edge TPU cannot be used as things are;
"warning" means something that usually bites later (no udev rule, a USB 2 port, no compiler).

`exit_code` is the one policy for failing a CI step (README, "Exit codes"): 20 when models cannot run
at all (no TFLite runtime, Python too old), 21 when any other error is reported or no Edge TPU is
ready, 0 otherwise; with `cpu_only` only the 20 case fails. The report itself is the same either way.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .edgetpu import (
    FIX_ATTACH,
    FIX_INSTALL,
    FIX_MISMATCH,
    FIX_USB_ACCESS,
    LIBEDGETPU_ENV,
    explain_no_device,
    locate_library,
    probe_library,
)
from .errors import NoEdgeTpuError, RuntimeNotFoundError
from .interpreters import INSTALL_HINT, requested_tflite_runtime, survey_tflite_runtimes
from .os_devices import UDEV_RULE_DIRS, UDEV_RULE_TEXT, pci_devices, plugdev_status, udev_rules, usb_devices
from .report import ResultHeader, header
from .session import pycoral_version

MIN_PYTHON = (3, 7)
LIBRARY_PROBE_TIMEOUT_S = 20.0


@dataclass
class Problem:
    severity: str  # "error" or "warning"
    what: str
    fix: str


@dataclass
class DoctorReport(ResultHeader):
    python: Dict[str, Any]
    platform: Dict[str, Any]
    runtimes: List[Dict[str, Any]]  # every TFLite runtime edgepipe knows, found or not
    runtime: Optional[Dict[str, Any]]  # the one edgepipe would use (None: none importable)
    libedgetpu: Dict[str, Any]  # found, path, source, runtime_version, version_string, error, crashed
    devices: List[Dict[str, Any]]  # Edge TPUs from libedgetpu, sysfs and /dev/apex_*, merged by path
    udev: Optional[Dict[str, Any]]  # Linux only
    plugdev: Optional[Dict[str, Any]]  # Linux only
    pycoral: Dict[str, Any]
    edgetpu_ready: bool  # libedgetpu loads and lists at least one device
    ok: bool = True  # no problem of severity "error"
    problems: List[Problem] = field(default_factory=list)
    compiler: Optional[Dict[str, Any]] = None  # filled in by the host's `edgepipe doctor`

    def add_problem(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.ok = self.ok and problem.severity != "error"


def _python() -> Dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "supported": sys.version_info[:2] >= MIN_PYTHON,
    }


def _platform() -> Dict[str, Any]:
    return {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "hostname": socket.gethostname(),
    }


def _chosen_runtime(runtimes: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The runtime `load_tflite_runtime()` would pick, judged from the survey (no second import)."""
    try:
        wanted = requested_tflite_runtime()
    except Exception:  # an invalid $EDGEPIPE_TFLITE_RUNTIME is reported as a problem by the caller
        return None
    for entry in runtimes:
        if (wanted is None or entry["name"] == wanted) and entry["found"]:
            return {"name": entry["name"], "version": entry["version"], "forced": wanted is not None}
    return None


def _library(probe_timeout: float) -> Tuple[Dict[str, Any], Any]:
    location = locate_library()
    info: Dict[str, Any] = {
        "found": location.path is not None,
        "path": location.path,
        "source": location.source or None,
        "env_var": LIBEDGETPU_ENV,
        "runtime_version": None,
        "version_string": None,
        "loads": None,
        "error": location.problem or None,
        "crashed": False,
    }
    if location.path is None:
        return info, None
    probe = probe_library(location.path, timeout=probe_timeout, fresh=True)
    info.update(
        {
            "runtime_version": probe.runtime_version,
            "version_string": probe.version_string,
            "loads": probe.ok,
            "error": probe.error or None,
            "crashed": probe.crashed,
        }
    )
    return info, probe


def _device_key(kind: str, path: str) -> Tuple[str, str]:
    # libedgetpu names a USB device by its sysfs directory (/sys/bus/usb/devices/2-1); the port part
    # ("2-1") identifies it whatever the sysfs mount point, and a PCIe one by its /dev/apex_N node.
    return (kind, os.path.basename(path.rstrip("/")))


def _devices(probe: Any, sysfs_root: str, dev_root: str) -> List[Dict[str, Any]]:
    """One entry per Edge TPU, whoever saw it: libedgetpu (with its device string), sysfs, /dev."""
    entries: List[Dict[str, Any]] = []
    by_key: Dict[Tuple[str, str], Dict[str, Any]] = {}
    listed = probe.devices if probe is not None and probe.ok else []
    for d in listed:
        entry = {"type": d.type, "path": d.path, "spec": d.spec, "listed_by_libedgetpu": True, "seen_by_os": False}
        entries.append(entry)
        by_key[_device_key(d.type, d.path)] = entry
    for usb in usb_devices(sysfs_root, dev_root):
        entry = by_key.get(_device_key("usb", usb.sysfs_path))
        if entry is None:
            entry = {"type": "usb", "path": usb.sysfs_path, "spec": None, "listed_by_libedgetpu": False}
            entries.append(entry)
        entry.update(
            {
                "seen_by_os": True,
                "usb_id": "%s:%s" % (usb.vendor_id, usb.product_id),
                "state": usb.state,
                "speed_mbps": usb.speed_mbps,
                "usb3": usb.usb3,
                "dev_node": usb.dev_node,
                "accessible": usb.accessible,
            }
        )
    for pci in pci_devices(dev_root):
        entry = by_key.get(_device_key("pci", pci.path))
        if entry is None:
            entry = {"type": "pci", "path": pci.path, "spec": None, "listed_by_libedgetpu": False}
            entries.append(entry)
        entry.update({"seen_by_os": True, "accessible": pci.accessible})
    return entries


def diagnose(
    include_tensorflow: bool = False,
    probe_timeout: float = LIBRARY_PROBE_TIMEOUT_S,
    sysfs_root: str = "/sys",
    dev_root: str = "/dev",
    udev_dirs: Tuple[str, ...] = UDEV_RULE_DIRS,
) -> DoctorReport:
    """Look at everything (nothing here raises for a missing piece: it becomes a `Problem`).

    `include_tensorflow=False` does not import TensorFlow (seconds); it is then listed as installed or not.
    The roots exist so that tests can point the checks at a fake sysfs, /dev and udev rules directory.
    """
    problems: List[Problem] = []
    python = _python()
    if not python["supported"]:
        problems.append(
            Problem(
                "error", "Python %s is too old for edgepipe's runtime" % python["version"], "Use Python 3.7 or newer"
            )
        )
    runtimes = survey_tflite_runtimes(include_tensorflow=include_tensorflow)
    chosen = _chosen_runtime(runtimes)
    if chosen is None:
        try:
            wanted = requested_tflite_runtime()
        except Exception as exc:
            problems.append(Problem("error", str(exc), getattr(exc, "hint", "") or INSTALL_HINT))
        else:
            tried = "; ".join("%s: %s" % (r["name"], r["error"]) for r in runtimes if not r["found"])
            what = (
                "the TFLite runtime %s cannot be imported" % wanted if wanted else "no TFLite runtime can be imported"
            )
            problems.append(Problem("error", "%s (%s)" % (what, tried), INSTALL_HINT))

    library, probe = _library(probe_timeout)
    if not library["found"]:
        problems.append(Problem("error", "no Edge TPU runtime: %s" % library["error"], FIX_INSTALL))
    elif not library["loads"]:
        problems.append(
            Problem(
                "error",
                "libedgetpu at %s is not usable: %s" % (library["path"], (library["error"] or "unknown").rstrip(".")),
                FIX_MISMATCH,
            )
        )

    devices = _devices(probe, sysfs_root, dev_root)
    listed = [d for d in devices if d["listed_by_libedgetpu"]]
    if library["loads"] and not listed:
        what, fix = explain_no_device(probe, sysfs_root, dev_root)
        problems.append(Problem("error", what, fix))
    elif not library["loads"] and not devices:
        problems.append(Problem("error", "no Edge TPU is attached (none in sysfs or /dev/apex_*)", FIX_ATTACH))
    for d in devices:
        if d["type"] == "usb" and d.get("usb3") is False:
            problems.append(
                Problem(
                    "warning",
                    "the USB Accelerator at %s runs at %s Mb/s (USB 2): inference is several times slower"
                    % (d["path"], d["speed_mbps"]),
                    "Plug it into a USB 3 port (blue, or marked SS) with a USB 3 cable",
                )
            )
        if d.get("accessible") is False:
            node = d.get("dev_node") or d["path"]
            fix = (
                FIX_USB_ACCESS
                if d["type"] == "usb"
                else "Give this user read-write access to %s (apex group udev rule)" % node
            )
            problems.append(Problem("error", "this user cannot open %s (%s)" % (node, d["type"]), fix))

    udev = plugdev = None
    if platform.system() == "Linux":
        udev = udev_rules(udev_dirs)
        plugdev = plugdev_status()
        has_usb = any(d["type"] == "usb" for d in devices)
        severity = "error" if has_usb and not udev["ok"] and not plugdev.get("root") else "warning"
        if not udev["ok"]:
            missing = [
                state
                for state, covered in (("1a6e:089a", udev["covers_bootloader"]), ("18d1:9302", udev["covers_ready"]))
                if not covered
            ]
            problems.append(
                Problem(
                    severity,
                    "no udev rule for the USB Accelerator as %s in %s" % (" or ".join(missing), ", ".join(udev_dirs)),
                    "Put these lines in /etc/udev/rules.d/99-edgetpu-accelerator.rules: %s; then "
                    "`sudo udevadm control --reload-rules && sudo udevadm trigger` and replug"
                    % UDEV_RULE_TEXT.replace("\n", " and "),
                )
            )
        if not plugdev.get("member") and not plugdev.get("root"):
            what = (
                "this user is not in the plugdev group" if plugdev.get("group_exists") else "there is no plugdev group"
            )
            problems.append(
                Problem(
                    severity,
                    "%s, which Coral's udev rule gives access to the USB Accelerator" % what,
                    "`sudo groupadd -f plugdev && sudo usermod -aG plugdev $USER`, then log out and in again",
                )
            )

    version = pycoral_version()
    return DoctorReport(
        **header("doctor"),
        python=python,
        platform=_platform(),
        runtimes=runtimes,
        runtime=chosen,
        libedgetpu=library,
        devices=devices,
        udev=udev,
        plugdev=plugdev,
        pycoral={"found": version is not None, "version": version, "required": False},
        edgetpu_ready=bool(library["loads"] and listed),
        ok=not any(p.severity == "error" for p in problems),
        problems=problems,
    )


def exit_code(report: DoctorReport, cpu_only: bool = False) -> int:
    """How a doctor run ends for a CI step: 20 no way to run models, 21 no Edge TPU ready (unless `cpu_only`), 0."""
    if report.runtime is None or not report.python["supported"]:
        return RuntimeNotFoundError.exit_code
    if not cpu_only and (not report.ok or not report.edgetpu_ready):
        return NoEdgeTpuError.exit_code
    return 0


__all__ = ["DoctorReport", "Problem", "diagnose", "exit_code"]
