"""Stand-ins for what cannot exist here: libedgetpu and the sysfs/dev trees of a machine with a Coral.

- `build_fake_libedgetpu` compiles tests/fakes/fake_libedgetpu.c with `cc` into a real shared library
  that implements libedgetpu's C API (edgetpu_list_devices, edgetpu_free_devices, edgetpu_version),
  so edgepipe's ctypes code and probe child run for real against it; its "delegate" variant is also a
  TFLite external delegate that claims `edgetpu-custom-op` (outputs meaningless), so a compiled model
  loads. Tests using it are named `test_standin_*`.
- `fake_sysfs` writes the files the kernel exposes for a USB device (idVendor, idProduct, speed,
  busnum, devnum) under a temporary root, in the layout of /sys/bus/usb/devices.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

from conftest import missing

FAKES = Path(__file__).resolve().parent / "fakes"
FAKE_SOURCE = FAKES / "fake_libedgetpu.c"
FAKE_VERSION = "BuildLabel(COMPILER=6.3.0 20170516,DATE=redacted,TIME=redacted), RuntimeVersion(14)"

# name -> preprocessor definitions
VARIANTS: Dict[str, Dict[str, Optional[str]]] = {
    "zero": {},  # loads, version 14, lists no device
    "one_usb": {"FAKE_USB": "1"},
    "mixed": {"FAKE_PCI": "1", "FAKE_USB": "2"},
    "crash": {"FAKE_CRASH": None},  # SIGSEGV in edgetpu_list_devices
    "hang": {"FAKE_HANG": None},  # edgetpu_list_devices never returns
    "delegate": {"FAKE_USB": "1", "FAKE_DELEGATE": None},  # one USB device, and a delegate that loads
    "old_runtime": {
        "FAKE_VERSION": '"BuildLabel(COMPILER=6.3.0 20170516,DATE=redacted,TIME=redacted), RuntimeVersion(13)"'
    },
}


def c_compiler() -> Optional[str]:
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def build_fake_libedgetpu(out_dir: Path, variant: str) -> Path:
    """Compile one variant of the stand-in library; skips the test when there is no C compiler."""
    compiler = c_compiler()
    if compiler is None:
        missing("no C compiler (cc/gcc/clang) to build the libedgetpu stand-in (.ci/run installs gcc)")
    out = out_dir / ("libedgetpu_fake_%s.so" % variant)
    if out.exists():
        return out
    defines = ["-D%s" % k if v is None else "-D%s=%s" % (k, v) for k, v in VARIANTS[variant].items()]
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(out), str(FAKE_SOURCE)] + defines,
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return out


def fake_sysfs(root: Path, devices: Iterable[Tuple[str, str, str, str]], dev_root: Optional[Path] = None) -> Path:
    """Write /sys/bus/usb/devices/<port>/{idVendor,idProduct,speed,busnum,devnum} for each
    (port, vendor, product, speed_mbps), plus a root hub that must be ignored. Returns the sysfs root.

    With `dev_root`, also create the /dev/bus/usb/BBB/DDD node files (mode 0600, owned by this user).
    """
    base = root / "bus" / "usb" / "devices"
    hub = base / "usb2"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "idVendor").write_text("1d6b\n")
    (hub / "idProduct").write_text("0003\n")
    for number, (port, vendor, product, speed) in enumerate(devices, start=2):
        folder = base / port
        folder.mkdir(parents=True, exist_ok=True)
        for name, value in (("idVendor", vendor), ("idProduct", product), ("speed", speed), ("busnum", "2")):
            (folder / name).write_text(value + "\n")
        (folder / "devnum").write_text("%d\n" % number)
        if dev_root is not None:
            node = dev_root / "bus" / "usb" / "002" / ("%03d" % number)
            node.parent.mkdir(parents=True, exist_ok=True)
            node.write_bytes(b"")
            node.chmod(0o600)
    return root
