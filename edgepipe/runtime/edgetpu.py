"""Finding a usable Edge TPU without pycoral: libedgetpu's C API through ctypes, asked in a child process.

libedgetpu's C API (`edgetpu_c.h`) is small and stable:
    struct edgetpu_device { enum edgetpu_device_type type; const char* path; };  // 0 = PCI, 1 = USB
    struct edgetpu_device* edgetpu_list_devices(size_t* num_devices);
    void edgetpu_free_devices(struct edgetpu_device* dev);
    const char* edgetpu_version();  // "BuildLabel(...), RuntimeVersion(14)"

A libedgetpu that does not match the system (or the TFLite runtime) can crash the process that
loads it. So everything that calls into the library runs in a child process with a timeout
(`python -m edgepipe.runtime probe`), and the parent only reads the child's JSON: a crash or a hang
becomes a reported failure, and `--backend auto` can still fall back to the CPU.

What the operating system sees without libedgetpu (sysfs, /dev/apex_*, udev, plugdev) is `os_devices.py`.

Device strings follow pycoral: `usb`, `usb:N`, `pci`, `pci:N` (N-th device of that type), `:N`
(N-th device of any type), or nothing (the first device).
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import platform
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import InvalidDeviceError, NoEdgeTpuError
from .os_devices import UDEV_RULE_TEXT, pci_devices, usb_devices

LIBEDGETPU_ENV = "EDGEPIPE_LIBEDGETPU"
DEVICE_TYPES = {0: "pci", 1: "usb"}

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


def select_device(devices: List[EdgeTpuDevice], spec: DeviceSpec) -> Optional[EdgeTpuDevice]:
    """The device a device string names, or None when it names none of `devices`."""
    pool = [d for d in devices if spec.kind is None or d.type == spec.kind]
    position = spec.index or 0
    return pool[position] if position < len(pool) else None


# --- the library ----------------------------------------------------------------------------------


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
        out, returncode, timed_out = proc.stdout, proc.returncode, False
    except subprocess.TimeoutExpired as exc:
        out, returncode, timed_out = exc.stdout or b"", None, True
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
