"""The hardware-in-the-loop suite's machinery: models, lanes, measurements, thresholds, the summary.

Kept out of conftest.py so that tests/ can import it (tests/test_device_tests.py) and so that the
pytest glue stays short. Everything here goes through edgepipe's public entry points: the device-side
runner (`edgepipe.runtime.runner`: open_session, benchmark, predict), the data loaders, `inspect`, and
for the remote lane the deploy bundle and transports (`local:`, `ssh://`, `labgrid://`).

This module runs on the host that drives the suite (a CI runner: Python 3.9+ with edgepipe installed),
never on a board; a Dev Board is reached over SSH and needs only the device-side runtime, which the
bundle ships. Hence TOML is read with the standard library's `tomllib` (3.11+) or, on 3.9/3.10, the
`tomli` package it was taken from.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

try:
    import tomllib
except ImportError:  # Python 3.9 / 3.10
    import tomli as tomllib  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("EDGEPIPE_SHARED", REPO.parent / "shared"))
THRESHOLDS = HERE / "thresholds.toml"
THRESHOLDS_VERSION = 1
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CACHE_ENV = "EDGEPIPE_DEVICE_TESTS_CACHE"

# figure -> (threshold key, "min" or "max"): one declaration, used by the checks and the proposal.
FIGURES: Dict[str, Tuple[str, str]] = {
    "top1": ("min_top1", "min"),
    "agreement": ("min_agreement", "min"),
    "p50_ms": ("max_p50_ms", "max"),
    "p99_ms": ("max_p99_ms", "max"),
    "first_ms": ("max_first_ms", "max"),
    "cpu_ops": ("max_cpu_ops", "max"),
}


class SuiteError(Exception):
    """Something the suite needs is missing or broken (a model, data, a thresholds file)."""


# --- thresholds -----------------------------------------------------------------------------------


def load_thresholds(path: Path) -> Dict[str, Any]:
    """The parsed thresholds file, checked for its version and its `[suite]` and `[models]` tables."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SuiteError("cannot read thresholds file %s: %s" % (path, exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError("thresholds file %s is not valid TOML: %s" % (path, exc)) from None
    if data.get("version") != THRESHOLDS_VERSION:
        raise SuiteError("thresholds file %s has version %r; this suite reads version %d"
                         % (path, data.get("version"), THRESHOLDS_VERSION))  # fmt: skip
    for table in ("suite", "models"):
        if not isinstance(data.get(table), dict):
            raise SuiteError("thresholds file %s has no [%s] table" % (path, table))
    if not isinstance(data.setdefault("thresholds", {}), dict):
        raise SuiteError("thresholds file %s: `thresholds` must be a table" % path)
    return data


def threshold_for(data: Dict[str, Any], kind: str, model: str, figure: str) -> Optional[float]:
    key = FIGURES[figure][0]
    value = data["thresholds"].get(kind, {}).get(model, {}).get(key)
    return None if value is None else float(value)


def check_figure(data: Dict[str, Any], m: Measurement, figure: str, source: str) -> Optional[str]:
    """None when `figure` of `m` meets its threshold, else one line naming the figure, value and limit."""
    key, sense = FIGURES[figure]
    value = m.figures.get(figure)
    where = "[thresholds.%s.%s] %s in %s" % (m.kind, m.model, key, source)
    if value is None:
        return "%s/%s %s was not measured" % (m.device, m.model, figure)
    limit = threshold_for(data, m.kind, m.model, figure)
    if limit is None:
        return "%s/%s %s = %s has no threshold (%s is missing; --update-thresholds proposes one)" % (
            m.device, m.model, figure, _fmt(value), where)  # fmt: skip
    ok = value >= limit if sense == "min" else value <= limit
    if ok:
        return None
    return "%s/%s %s = %s, %s %s allowed (%s)" % (
        m.device, m.model, figure, _fmt(value), "below the minimum" if sense == "min" else "above the maximum",
        _fmt(limit), where)  # fmt: skip


def _fmt(value: float) -> str:
    return ("%.4f" % value).rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def propose_thresholds(current: Dict[str, Any], measurements: List[Measurement]) -> Dict[str, Any]:
    """Thresholds derived from a good run: accuracy a margin below, latency a margin above what was measured.

    Margins (from `[suite]`, defaults here): top-1 and agreement 0.02 below; p50 x1.5, p99 and first x2.
    Sections that were not measured are kept as they are.
    """
    suite = current.get("suite", {})
    acc_margin = float(suite.get("propose_accuracy_margin", 0.02))
    p50_factor = float(suite.get("propose_p50_factor", 1.5))
    tail_factor = float(suite.get("propose_tail_factor", 2.0))
    proposed = json.loads(json.dumps(current))  # a deep copy of plain TOML values
    for m in measurements:
        section = proposed["thresholds"].setdefault(m.kind, {}).setdefault(m.model, {})
        f = m.figures
        if "top1" in f:
            section["min_top1"] = max(0.0, math.floor((f["top1"] - acc_margin) * 1000) / 1000)
        if "agreement" in f:
            section["min_agreement"] = max(0.0, math.floor((f["agreement"] - acc_margin) * 1000) / 1000)
        for figure, factor in (("p50_ms", p50_factor), ("p99_ms", tail_factor), ("first_ms", tail_factor)):
            if figure in f:
                section[FIGURES[figure][0]] = math.ceil(f[figure] * factor * 1000) / 1000
        section["max_cpu_ops"] = 0
    return proposed


def dump_toml(data: Dict[str, Any], header: str = "") -> str:
    """TOML text for the thresholds file's shape (scalars, then tables of tables); read back with tomllib."""

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return json.dumps(value)  # a JSON string is a valid TOML basic string
        if isinstance(value, list):
            return "[%s]" % ", ".join(scalar(v) for v in value)
        raise TypeError("cannot write %r as a TOML value" % (value,))

    def key(name: str) -> str:
        return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)

    lines = [header.rstrip("\n")] if header else []

    def table(prefix: List[str], values: Dict[str, Any]) -> None:
        plain = [(k, v) for k, v in values.items() if not isinstance(v, dict)]
        nested = [(k, v) for k, v in values.items() if isinstance(v, dict)]
        if prefix and (plain or not nested):
            lines.append("")
            lines.append("[%s]" % ".".join(key(p) for p in prefix))
        for k, v in plain:
            lines.append("%s = %s" % (key(k), scalar(v)))
        for k, v in nested:
            table(prefix + [k], v)

    table([], data)
    return "\n".join(lines) + "\n"


# --- models and data ------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    name: str
    twin: Path  # the uncompiled full-int8 model: what the CPU runs
    compiled: Optional[Path]  # its *_edgetpu.tflite, when one exists: what an Edge TPU runs
    dataset: str  # a dataset spec for edgepipe.data
    data_dir: Optional[Path]
    images: int
    seed: int = 0


def compiled_beside(twin: Path, extra_dirs: List[Path]) -> Optional[Path]:
    name = twin.stem + "_edgetpu.tflite"
    for folder in [*extra_dirs, twin.parent]:
        if (folder / name).is_file():
            return folder / name
    return None


def build_mnist_model(cache_root: Optional[Path] = None) -> Path:
    """The MNIST suite's int8 model, made once by `edgepipe suite mnist --epochs 1` and cached.

    The cache folder is keyed by edgepipe's version; `$EDGEPIPE_DEVICE_TESTS_CACHE` moves it. Training
    needs TensorFlow (the `convert` extra); a runner without it passes --mnist-model instead.
    """
    from edgepipe import __version__

    root = Path(cache_root or os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / (
        "edgepipe-device-tests-%d" % os.getuid()))  # fmt: skip
    folder = root / ("mnist-%s" % __version__)
    model = folder / "seed_mnist_edgetpu_int8.tflite"
    if model.is_file():
        return model
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mnist-build-", dir=str(root)))
    argv = [sys.executable, "-m", "edgepipe.cli", "suite", "mnist", "--epochs", "1", "--out", str(work),
            "--data-dir", str(SHARED / "datasets"), "--runs", "1", "--warmup", "0", "--limit", "100", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    built = work / model.name
    if proc.returncode != 0 or not built.is_file():
        tail = " ".join(proc.stderr.strip().splitlines()[-1:]) or "(no stderr)"
        raise SuiteError("building the MNIST int8 model failed (exit %d): %s; pass --mnist-model FILE to use one"
                         % (proc.returncode, tail))  # fmt: skip
    try:
        work.rename(folder)
    except OSError:  # another run finished first: use its copy
        pass
    return model if model.is_file() else built


@dataclass
class Images:
    images: np.ndarray
    labels: np.ndarray
    description: str


_IMAGES: Dict[Tuple[str, int, int], Images] = {}


def load_images(spec: ModelSpec, size: Tuple[int, int]) -> Images:
    """N images: a seeded random, all-class sample of the dataset (never the first N of a sorted set)."""
    key = (spec.dataset, size[0], size[1])
    if key not in _IMAGES:
        from edgepipe.data import load_dataset_for_input, select_samples

        ds = load_dataset_for_input(spec.dataset, size, data_dir=spec.data_dir)
        ds = select_samples(ds, spec.images, spec.seed)
        description = "%s: %d images, seeded sample (seed %d) of %s" % (spec.dataset, len(ds.labels), spec.seed,
                                                                         ds.name)  # fmt: skip
        _IMAGES[key] = Images(np.asarray(ds.images), np.asarray(ds.labels, dtype=np.int64), description)
    return _IMAGES[key]


def _interpreter(model: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    return interpreter


def input_size(model: Path) -> Tuple[int, int]:
    """(height, width) of the uncompiled model's first input."""
    shape = [int(d) for d in _interpreter(model).get_input_details()[0]["shape"]]
    return shape[1], shape[2]


def reference_predictions(twin: Path, images: np.ndarray) -> np.ndarray:
    """Top-1 class of each image from the uncompiled twin, run by the plain TFLite interpreter, one image
    at a time, independently of edgepipe's runner: the oracle every lane's agreement is measured against.

    Inputs as the runner feeds a quantized model (raw pixels for uint8, pixels - 128 for int8); a
    1001-output ImageNet model's background class is dropped, as `eval --label-offset auto` does.
    """
    interpreter = _interpreter(twin)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    offset = 1 if int(out["shape"][-1]) == 1001 else 0
    top = np.zeros(len(images), dtype=np.int64)
    for i, image in enumerate(images):
        x = np.asarray(image).reshape(inp["shape"])
        x = (x.astype(np.int16) - 128).astype(np.int8) if inp["dtype"] == np.int8 else x.astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        top[i] = int(np.argmax(interpreter.get_tensor(out["index"])[0][offset:]))
    return top


# --- measurements (one path for every lane: the device-side runner's command line) ---------------


@dataclass
class Lane:
    name: str  # cpu / edgetpu / remote
    kind: Optional[str]  # the thresholds section: cpu / usb / pci (remote: where it ran, or --remote-kind)
    device: Optional[str]  # usb:0, pci:0; remote: the target string


@dataclass
class Measurement:
    lane: str
    device: str  # "cpu", "usb:0", or the remote target as described
    kind: str
    model: str
    figures: Dict[str, float]
    details: Dict[str, Any] = field(default_factory=dict)
    retries: List[Dict[str, str]] = field(default_factory=list)
    environment: Dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)


def host_fingerprint() -> Dict[str, Any]:
    from edgepipe import __version__

    return {"edgepipe": __version__, "host": socket.gethostname(), "os": platform.platform(),
            "machine": platform.machine(), "python": platform.python_version()}  # fmt: skip


def write_shards(spec: ModelSpec, folder: Path) -> Dict[str, str]:
    """Two .npz for `eval --data`: the N images with their labels, and with the twin's top-1 as labels
    (so that the eval's top-1 on the second is the agreement with the twin, image by image)."""
    images = load_images(spec, input_size(spec.twin))
    reference = reference_predictions(spec.twin, images.images)
    names = {"labels": "%s_labels.npz" % spec.name, "twin": "%s_twin.npz" % spec.name}
    np.savez(folder / names["labels"], images=images.images, labels=images.labels)
    np.savez(folder / names["twin"], images=images.images, labels=reference)
    return names


def _runtime_json(target: Any, argv: List[str], cwd: Optional[str]) -> Dict[str, Any]:
    """`python -m edgepipe.runtime ARGV` on the target; its JSON, or SuiteError with its own error line."""
    rc, stdout, stderr = target.run([target.interpreter, "-m", "edgepipe.runtime", *argv], cwd=cwd)
    lines = stdout.strip().splitlines()
    try:
        value = json.loads("\n".join(lines)) if lines else None
    except ValueError:
        try:
            value = json.loads(lines[-1])
        except ValueError:
            value = None
    if rc != 0 or not isinstance(value, dict) or value.get("kind") == "error":
        error = (value or {}).get("error") if isinstance(value, dict) else None
        tail = error.get("message") if isinstance(error, dict) else (stderr.strip().splitlines() or ["?"])[-1]
        raise RunnerError("`edgepipe.runtime %s` on %s failed (exit %d): %s"
                          % (" ".join(argv[:2]), target.describe(), rc, tail), rc)  # fmt: skip
    return value


class RunnerError(SuiteError):
    """The device-side runner failed; `exit_code` is its code (21: no Edge TPU, 23: inference failed...)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def measure(
    target: Any, cwd: Optional[str], spec: ModelSpec, model: str, shards: Dict[str, str], lane: Lane,
    runs: int, warmup: int,
) -> Measurement:  # fmt: skip
    """bench, eval (labels), eval (twin's top-1) and inspect of `model` (a path as the target sees it)."""
    backend = {"cpu": "cpu", "edgetpu": "edgetpu"}.get(lane.name, "auto")
    common = ["--backend", backend] + (["--device", lane.device] if lane.name == "edgetpu" and lane.device else [])
    bench = _runtime_json(target, ["bench", model, *common, "--runs", str(runs), "--warmup", str(warmup)], cwd)
    top1 = _runtime_json(target, ["eval", model, "--data", shards["labels"], *common], cwd)
    agree = _runtime_json(target, ["eval", model, "--data", shards["twin"], *common], cwd)
    inspected = _runtime_json(target, ["inspect", model, "--json"], cwd)
    latency = bench.get("latency_ms") or {}
    env = bench.get("environment") or {}
    ran_on = bench.get("device")
    kind = lane.kind or (str(ran_on).split(":")[0] if bench.get("backend") == "edgetpu" and ran_on else "cpu")
    return Measurement(
        lane=lane.name,
        device=lane.device if lane.name == "edgetpu" else ("cpu" if lane.name == "cpu" else target.describe()),
        kind=kind,
        model=spec.name,
        figures={
            "top1": float(top1["top1"]),
            "agreement": float(agree["top1"]),
            "p50_ms": float(latency["p50"]),
            "p99_ms": float(latency["p99"]),
            "first_ms": float(latency.get("first") or 0.0),
            "cpu_ops": int(inspected["cpu_ops"]),
        },
        details={
            "model": model, "ran": (bench.get("run_model") or {}).get("path"), "backend": bench.get("backend"),
            "device": ran_on, "backend_reason": bench.get("backend_reason"),
            "fallback_reason": bench.get("fallback_reason"), "runs": runs, "warmup": warmup, "n": top1.get("n"),
            "images": load_images(spec, input_size(spec.twin)).description,
            "cpu_ops": "counted in the compiled model" if inspected.get("compiled_for_edgetpu")
            else "predicted by the pre-flight",
            "agreement_with": "%s by the plain TFLite interpreter on the host, image by image" % spec.twin.name,
        },  # fmt: skip
        environment={"runtime": env.get("runtime"), "libedgetpu": env.get("libedgetpu"), "device": env.get("device"),
                     "board": {k: env.get(k) for k in ("hostname", "machine", "os", "python")}},  # fmt: skip
    )


def with_one_retry(
    run: Callable[[], Measurement], reenumerate: Callable[[], str], retryable: Tuple[type, ...]
) -> Measurement:
    """A flaky USB Accelerator gets one re-enumeration and one more try, recorded; a second failure stands."""
    try:
        return run()
    except retryable as exc:
        first = " ".join(str(exc).split())
    found = reenumerate()
    try:
        result = run()
    except retryable as exc:
        raise SuiteError("%s (again after one re-enumeration, which found %s; first attempt: %s)"
                         % (" ".join(str(exc).split()), found, first)) from None  # fmt: skip
    result.retries.append({"error": first, "reenumerated": found})
    return result


def reenumerate_usb() -> str:
    """Ask libedgetpu afresh (a new probe child) which devices exist; say what it found."""
    from edgepipe.runtime import edgetpu

    time.sleep(2.0)  # a USB Accelerator re-enumerates (1a6e:089a -> 18d1:9302) in about a second
    location = edgetpu.locate_library()
    if location.path is None:
        return "libedgetpu not found: %s" % location.problem
    probe = edgetpu.probe_library(location.path, fresh=True)
    if not probe.ok:
        return "probe failed: %s" % probe.error
    return "devices: %s" % (", ".join(d.spec for d in probe.devices) or "none")


def measure_local(spec: ModelSpec, lane: Lane, runs: int, warmup: int, workdir: Path) -> Measurement:
    """This machine's CPU (the compiled model with --backend cpu: the runner's own twin lookup is part of
    what the lane proves) or one of its Edge TPUs, through `python -m edgepipe.runtime` in a child."""
    from edgepipe.deploy import LocalTarget

    folder = workdir / spec.name
    if not folder.is_dir():
        folder.mkdir(parents=True)
        write_shards(spec, folder)
    shards = {k: str(folder / v) for k, v in (("labels", "%s_labels.npz" % spec.name),
                                              ("twin", "%s_twin.npz" % spec.name))}  # fmt: skip
    model = spec.compiled if lane.name == "edgetpu" else (spec.compiled or spec.twin)
    return measure(LocalTarget(workdir), None, spec, str(model), shards, lane, runs, warmup)


def measure_remote(
    specs: List[ModelSpec], target: Any, runs: int, warmup: int, kind: Optional[str] = None,
) -> List[Measurement]:  # fmt: skip
    """The same figures on a board reached through a deploy target (`with target:` is the caller's).

    edgepipe's deploy bundle (device-side runtime, models and their twins; sha256s checked there) and a
    folder with the data shards go up through the target's own transport; then the same commands as on
    the local lanes run there with `--backend auto`.
    """
    from edgepipe.deploy import build_bundle
    from edgepipe.deploy.bundle import VERIFY_SNIPPET
    from edgepipe.deploy.deploy import check_python

    results: List[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="edgepipe-hil-") as tmp:
        models = [s.compiled or s.twin for s in specs]
        bundle = build_bundle(models, Path(tmp) / "bundle")
        data = Path(tmp) / "data"
        data.mkdir()
        shards = {s.name: write_shards(s, data) for s in specs}
        python_version = check_python(target)
        remote = target.put(bundle.path)
        remote_data = target.put(data)
        try:
            rc, stdout, stderr = target.run([target.interpreter, "-c", VERIFY_SNIPPET], cwd=remote)
            verified = json.loads(stdout) if rc == 0 else {}
            if verified.get("bad") or verified.get("manifest_sha256") != bundle.sha256:
                raise SuiteError("the bundle on %s does not match what was sent: %s" % (target.describe(),
                                 verified.get("bad") or stderr.strip()[-300:]))  # fmt: skip
            doctor = _runtime_json(target, ["doctor"], remote)
            for spec, model in zip(specs, models):
                names = {k: "%s/%s" % (remote_data, v) for k, v in shards[spec.name].items()}
                lane = Lane("remote", kind, target.describe())
                m = measure(target, remote, spec, "models/" + model.name, names, lane, runs, warmup)
                m.environment["board"] = {"platform": doctor.get("platform"), "python": python_version,
                                          "target": target.describe(), "bundle_sha256": bundle.sha256}  # fmt: skip
                m.environment["libedgetpu"] = m.environment.get("libedgetpu") or doctor.get("libedgetpu")
                results.append(m)
        finally:
            target.remove(remote)
            target.remove(remote_data)
    return results


# --- the summary ----------------------------------------------------------------------------------


def write_summary(path: Path, payload: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
