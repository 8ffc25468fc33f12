"""libedgetpu itself: where it is, and what it says when loaded here (version, devices) through ctypes.

Loading it can crash the process (see `edgetpu.py`), so only the probe child calls `query_library`;
finding the file never loads it. libedgetpu's C API (`edgetpu_c.h`, in google-coral/libedgetpu on
GitHub) is small and stable:
    struct edgetpu_device { enum edgetpu_device_type type; const char* path; };  // 0 = PCI, 1 = USB
    struct edgetpu_device* edgetpu_list_devices(size_t* num_devices);
    void edgetpu_free_devices(struct edgetpu_device* dev);
    const char* edgetpu_version();  // "BuildLabel(...), RuntimeVersion(14)"
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

LIBEDGETPU_ENV = "EDGEPIPE_LIBEDGETPU"
DEVICE_TYPES = {0: "pci", 1: "usb"}


@dataclass
class EdgeTpuDevice:
    type: str  # "usb" or "pci"
    path: str  # what libedgetpu reports: a sysfs USB path or /dev/apex_N
    index: int  # position in libedgetpu's list (the N of ":N")
    spec: str  # this device as a device string, e.g. "usb:0"


def _devices_from_raw(raw: List[Tuple[int, str]]) -> List[EdgeTpuDevice]:
    devices = []
    per_type: Dict[str, int] = {}
    for index, (type_code, path) in enumerate(raw):
        kind = DEVICE_TYPES.get(type_code, "type%d" % type_code)
        n = per_type.get(kind, 0)
        per_type[kind] = n + 1
        devices.append(EdgeTpuDevice(type=kind, path=path, index=index, spec="%s:%d" % (kind, n)))
    return devices


# --- where the library is -------------------------------------------------------------------------


def library_names(system: Optional[str] = None) -> List[str]:
    system = system or platform.system()
    if system == "Darwin":
        return ["libedgetpu.1.dylib"]
    if system == "Windows":
        return ["edgetpu.dll"]
    return ["libedgetpu.so.1"]


def _search_dirs(system: str) -> List[str]:
    dirs: List[str] = []
    if system == "Windows":
        dirs += os.environ.get("PATH", "").split(os.pathsep)
        dirs.append(os.path.join(os.environ.get("SYSTEMROOT", r"C:\Windows"), "System32"))
        return [d for d in dirs if d]
    var = "DYLD_LIBRARY_PATH" if system == "Darwin" else "LD_LIBRARY_PATH"
    dirs += [d for d in os.environ.get(var, "").split(os.pathsep) if d]
    if system == "Darwin":
        return dirs + ["/opt/homebrew/lib", "/usr/local/lib", "/usr/lib"]
    dirs += sorted(glob.glob("/usr/lib/*-linux-gnu*")) + sorted(glob.glob("/lib/*-linux-gnu*"))
    return dirs + ["/usr/local/lib", "/usr/lib64", "/usr/lib", "/lib64", "/lib"]


def _from_ldconfig(name: str) -> Optional[str]:
    for ldconfig in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if not os.path.exists(ldconfig):
            continue
        try:
            text = subprocess.run(
                [ldconfig, "-p"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10
            ).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.TimeoutExpired):
            return None
        for line in text.splitlines():
            parts = line.strip().split(" => ")
            if len(parts) == 2 and parts[0].split(" ")[0] == name and os.path.exists(parts[1]):
                return parts[1]
        return None
    return None


@dataclass
class LibraryLocation:
    path: Optional[str]
    source: str  # "$EDGEPIPE_LIBEDGETPU", "search", or "" when not found
    problem: str = ""  # why it was not found, in words


def locate_library() -> LibraryLocation:
    """Where libedgetpu is, without loading it: `$EDGEPIPE_LIBEDGETPU`, else the usual directories."""
    explicit = os.environ.get(LIBEDGETPU_ENV)
    if explicit:
        if os.path.isfile(explicit):
            return LibraryLocation(os.path.abspath(explicit), "$" + LIBEDGETPU_ENV)
        return LibraryLocation(None, "", "$%s is %s, which does not exist" % (LIBEDGETPU_ENV, explicit))
    system = platform.system()
    names = library_names(system)
    for directory in _search_dirs(system):
        for name in names:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                return LibraryLocation(os.path.abspath(candidate), "search")
    if system == "Linux":
        found = _from_ldconfig(names[0])
        if found:
            return LibraryLocation(found, "search")
    return LibraryLocation(None, "", "%s not found in the library search path" % " / ".join(names))


def find_library() -> Optional[str]:
    """Path of the Edge TPU runtime library, or None. Never loads it."""
    return locate_library().path


_RUNTIME_VERSION_RE = re.compile(r"RuntimeVersion\((\d+)\)")


def parse_runtime_version(version_string: Optional[str]) -> Optional[int]:
    """`"BuildLabel(COMPILER=...), RuntimeVersion(14)"` → 14; None when there is no such part."""
    if not version_string:
        return None
    match = _RUNTIME_VERSION_RE.search(version_string)
    return int(match.group(1)) if match else None


# --- asking it (the probe child only) -------------------------------------------------------------


class _CDevice(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("path", ctypes.c_char_p)]


def _no_stage(name: str) -> None:
    pass


def query_library(path: str, stage: Callable[[str], None] = _no_stage) -> Dict[str, Any]:
    """Load libedgetpu in *this* process and ask it for its version and devices.

    Only the probe child calls this (see the module docstring): a bad library can crash the caller.
    `stage(name)` is called before each step, so that the parent can say where a crash happened.
    """
    stage("load_library")
    lib = ctypes.CDLL(path)
    result: Dict[str, Any] = {"library": path, "version_string": None, "runtime_version": None}
    stage("version")
    if hasattr(lib, "edgetpu_version"):
        lib.edgetpu_version.restype = ctypes.c_char_p
        lib.edgetpu_version.argtypes = []
        raw_version = lib.edgetpu_version()
        if raw_version is not None:
            result["version_string"] = raw_version.decode("utf-8", "replace")
            result["runtime_version"] = parse_runtime_version(result["version_string"])
    stage("list_devices")
    lib.edgetpu_list_devices.restype = ctypes.POINTER(_CDevice)
    lib.edgetpu_list_devices.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
    lib.edgetpu_free_devices.restype = None
    lib.edgetpu_free_devices.argtypes = [ctypes.POINTER(_CDevice)]
    count = ctypes.c_size_t(0)
    array = lib.edgetpu_list_devices(ctypes.byref(count))
    raw: List[Tuple[int, str]] = []
    if array:
        try:
            for i in range(count.value):
                entry = array[i]
                raw.append((int(entry.type), (entry.path or b"").decode("utf-8", "replace")))
        finally:
            lib.edgetpu_free_devices(array)
    result["devices"] = _devices_from_raw(raw)
    return result
