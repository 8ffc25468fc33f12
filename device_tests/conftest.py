"""Hardware-in-the-loop tests: run on a machine with a Coral Edge TPU attached.

    .venv/bin/python -m pytest device_tests

Discovery uses edgepipe's own code (`edgepipe.runtime.edgetpu`): libedgetpu is located
($EDGEPIPE_LIBEDGETPU, else the platform's library name on the library path) and asked, in a probe
child process, for its version and devices; sysfs and /dev/apex_* are read for the report. When no
Edge TPU is listed, every test here is skipped with a reason saying what was looked for and found.
The main test run (`python -m pytest`, testpaths = tests) never collects this folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from edgepipe.runtime import edgetpu, os_devices

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPIPE_SHARED", REPO.parent / "shared"))


def discover() -> Dict[str, Any]:
    """What edgepipe sees: the library, its runtime version and devices, and the OS's view."""
    location = edgetpu.locate_library()
    found: Dict[str, Any] = {"library": location.path, "problem": location.problem, "devices": [], "probe": None}
    if location.path is not None:
        probe = edgetpu.probe_library(location.path, fresh=True)
        found["probe"] = probe
        if probe.ok:
            found["devices"] = probe.devices
        else:
            found["problem"] = probe.error
    found["usb"] = os_devices.usb_devices()
    found["pci"] = os_devices.pci_devices()
    return found


def describe(found: Dict[str, Any]) -> str:
    names = " / ".join(edgetpu.library_names())
    if found["library"] is None:
        if os.environ.get(edgetpu.LIBEDGETPU_ENV):
            looked = "$%s" % edgetpu.LIBEDGETPU_ENV
        else:
            looked = "%s on the library path ($%s unset)" % (names, edgetpu.LIBEDGETPU_ENV)
        library = "libedgetpu: not found (looked for %s: %s)" % (looked, found["problem"])
    elif found["probe"] is not None and not found["probe"].ok:
        library = "libedgetpu at %s does not work: %s" % (found["library"], found["problem"])
    else:
        probe = found["probe"]
        library = "libedgetpu at %s (runtime %s) lists %d device(s)%s" % (
            found["library"],
            probe.runtime_version,
            len(found["devices"]),
            ": " + ", ".join("%s %s" % (d.spec, d.path) for d in found["devices"]) if found["devices"] else "",
        )
    usb = ", ".join("%s:%s at %s" % (u.vendor_id, u.product_id, u.sysfs_path) for u in found["usb"]) or "none"
    pci = ", ".join(p.path for p in found["pci"]) or "none"
    return "%s; USB Accelerators (1a6e:089a or 18d1:9302 in /sys/bus/usb/devices): %s; PCIe (/dev/apex_*): %s" % (
        library,
        usb,
        pci,
    )


_FOUND: Optional[Dict[str, Any]] = None


def found_tpus() -> Dict[str, Any]:
    global _FOUND
    if _FOUND is None:
        _FOUND = discover()
    return _FOUND


def pytest_report_header(config: pytest.Config) -> str:
    return "edge tpu: " + describe(found_tpus())


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    found = found_tpus()
    if found["devices"]:
        return
    skip = pytest.mark.skip(reason="no Edge TPU found: " + describe(found))
    for item in items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def tpus() -> Dict[str, Any]:
    return found_tpus()


@pytest.fixture(scope="session")
def coral_data() -> Path:
    path = SHARED / "models" / "coral-test-data"
    if not path.is_dir():
        pytest.skip("Coral test models missing: %s (expected ../shared beside the repository)" % path)
    return path
