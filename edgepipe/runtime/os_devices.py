"""Edge TPUs as the operating system sees them, without loading libedgetpu: USB Accelerators in sysfs
(in either state), PCIe/M.2 ones as /dev/apex_N, Coral's udev rule and plugdev membership.

`doctor` reports these; `edgetpu.explain_no_device` uses them to say why libedgetpu lists no device.
Linux only: elsewhere the lists are empty.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

# The USB Accelerator enumerates as 1a6e:089a until libedgetpu uploads its firmware, then as 18d1:9302.
USB_BOOTLOADER = ("1a6e", "089a")
USB_READY = ("18d1", "9302")
USB_STATES = {USB_BOOTLOADER: "bootloader (firmware not loaded yet)", USB_READY: "ready (firmware loaded)"}

UDEV_RULE_DIRS = ("/etc/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d")
UDEV_RULE_TEXT = (
    'SUBSYSTEM=="usb",ATTRS{idVendor}=="1a6e",ATTRS{idProduct}=="089a",GROUP="plugdev"\n'
    'SUBSYSTEM=="usb",ATTRS{idVendor}=="18d1",ATTRS{idProduct}=="9302",GROUP="plugdev"'
)


@dataclass
class UsbEdgeTpu:
    sysfs_path: str
    vendor_id: str
    product_id: str
    state: str  # see USB_STATES
    speed_mbps: Optional[int]  # 480 = USB 2, 5000 and up = USB 3
    dev_node: Optional[str]  # /dev/bus/usb/BBB/DDD
    accessible: Optional[bool]  # whether this user can open dev_node read-write

    @property
    def usb3(self) -> Optional[bool]:
        return None if self.speed_mbps is None else self.speed_mbps >= 5000


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def usb_devices(sysfs_root: str = "/sys", dev_root: str = "/dev") -> List[UsbEdgeTpu]:
    """Coral USB Accelerators attached, in either state, from sysfs (Linux only; [] elsewhere)."""
    found = []
    for entry in sorted(glob.glob(os.path.join(sysfs_root, "bus", "usb", "devices", "*"))):
        vendor = (_read_text(os.path.join(entry, "idVendor")) or "").lower()
        product = (_read_text(os.path.join(entry, "idProduct")) or "").lower()
        if (vendor, product) not in USB_STATES:
            continue
        speed = _read_text(os.path.join(entry, "speed"))
        busnum = _read_text(os.path.join(entry, "busnum"))
        devnum = _read_text(os.path.join(entry, "devnum"))
        node = None
        accessible = None
        if busnum and devnum and busnum.isdigit() and devnum.isdigit():
            node = os.path.join(dev_root, "bus", "usb", "%03d" % int(busnum), "%03d" % int(devnum))
            accessible = os.access(node, os.R_OK | os.W_OK) if os.path.exists(node) else None
        found.append(
            UsbEdgeTpu(
                sysfs_path=entry,
                vendor_id=vendor,
                product_id=product,
                state=USB_STATES[(vendor, product)],
                speed_mbps=int(float(speed)) if speed and speed.replace(".", "", 1).isdigit() else None,
                dev_node=node,
                accessible=accessible,
            )
        )
    return found


@dataclass
class PciEdgeTpu:
    path: str  # /dev/apex_N
    accessible: bool


def pci_devices(dev_root: str = "/dev") -> List[PciEdgeTpu]:
    """PCIe/M.2 Edge TPUs (and the Dev Board's) as the apex driver exposes them."""
    return [
        PciEdgeTpu(path=p, accessible=os.access(p, os.R_OK | os.W_OK))
        for p in sorted(glob.glob(os.path.join(dev_root, "apex_*")))
    ]


def udev_rules(dirs: Tuple[str, ...] = UDEV_RULE_DIRS) -> Dict[str, Any]:
    """Rule files that mention the accelerator's vendor IDs (both states need one)."""
    files = []
    bootloader = ready = False
    for directory in dirs:
        for path in sorted(glob.glob(os.path.join(directory, "*.rules"))):
            text = (_read_text(path) or "").lower()
            has_boot, has_ready = USB_BOOTLOADER[0] in text, USB_READY[0] in text
            if has_boot or has_ready:
                files.append(path)
                bootloader = bootloader or has_boot
                ready = ready or has_ready
    return {"files": files, "covers_bootloader": bootloader, "covers_ready": ready, "ok": bootloader and ready}


def plugdev_status() -> Dict[str, Any]:
    """Whether this user is in the plugdev group (what Coral's udev rule grants access to)."""
    status: Dict[str, Any] = {"group_exists": None, "member": None, "root": None}
    try:
        import grp
    except ImportError:  # Windows
        return status
    status["root"] = os.geteuid() == 0
    try:
        group = grp.getgrnam("plugdev")
    except KeyError:
        status["group_exists"] = False
        status["member"] = False
        return status
    status["group_exists"] = True
    status["member"] = group.gr_gid in os.getgroups() or group.gr_gid == os.getgid()
    return status


__all__ = [
    "UDEV_RULE_DIRS",
    "UDEV_RULE_TEXT",
    "USB_STATES",
    "PciEdgeTpu",
    "UsbEdgeTpu",
    "pci_devices",
    "plugdev_status",
    "udev_rules",
    "usb_devices",
]
