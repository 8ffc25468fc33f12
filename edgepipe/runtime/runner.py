"""Latency measurement on an open `session.Session`, and what every measured result says about its run.

Accuracy is `accuracy.py`; both return results as versioned JSON (`SessionResult`, below).

Latency (`benchmark`): the first inference is timed on its own (on the Edge TPU it includes loading
the parameter cache), then `warmup` untimed runs, then `runs` timed runs twice over:
- invoke-only: `perf_counter()` around `interpreter.invoke()` and nothing else; the loop stores each
  time in a preallocated list, so it adds nothing measurable (`scripts/bench_runner_overhead.py`);
- end to end: raw pixels → model input (quantized with the model's own scale and zero point) →
  `set_tensor` → `invoke` → `get_tensor` → dequantize → top-1.

"""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .edgetpu import find_library
from .errors import DatasetError, InferenceError
from .preprocess import check_preset, dequantize, to_model_input
from .report import ResultHeader, header, sha256_file
from .session import Session, pycoral_version

Progress = Callable[[int, int], None]


# --- result pieces --------------------------------------------------------------------------------


def describe_file(path: str) -> Dict[str, Any]:
    return {"path": os.path.abspath(path), "sha256": sha256_file(path), "size_bytes": os.path.getsize(path)}


def environment(session: Optional[Session] = None) -> Dict[str, Any]:
    """Where a result was measured: host, OS, Python, runtime, libedgetpu, device."""
    env: Dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "pycoral": pycoral_version(),
    }
    if session is None:
        return env
    env["runtime"] = session.tflite.describe()
    target = session.edgetpu
    if target is not None:
        env["libedgetpu"] = {
            "path": target.library,
            "runtime_version": target.runtime_version,
            "version_string": target.version_string,
        }
        env["device"] = {"type": target.device.type, "path": target.device.path, "spec": target.device.spec}
    else:
        env["libedgetpu"] = {"path": find_library(), "runtime_version": None, "version_string": None}
        env["device"] = {"type": "cpu", "path": None, "spec": None}
    env["num_threads"] = session.num_threads
    env["reference_kernels"] = session.reference_kernels
    env["via_pycoral"] = session.via_pycoral
    return env


def session_fields(session: Session) -> Dict[str, Any]:
    model = describe_file(session.model_path)
    model["compiled_for_edgetpu"] = session.model_compiled
    ran = dict(model) if session.run_model_path == session.model_path else describe_file(session.run_model_path)
    ran["compiled_for_edgetpu"] = session.model.compiled_for_edgetpu
    return {
        "model": model,
        "run_model": ran,
        "requested_backend": session.requested_backend,
        "backend": session.backend,
        "backend_reason": session.backend_reason,
        "device": session.device.spec if session.device else None,
        "fallback_reason": session.fallback_reason,
        "fallback_fix": session.fallback_fix,
        "notes": list(session.notes),
        "load_ms": round(session.load_ms, 3),
    }


# --- latency --------------------------------------------------------------------------------------


@dataclass
class LatencyStats:
    """Milliseconds. `first` is the first inference after loading, kept out of the other figures."""

    first: Optional[float]
    min: float
    mean: float
    std: float
    p50: float
    p90: float
    p99: float
    max: float
    n: int


def latency_stats(seconds: Sequence[float], first_s: Optional[float] = None) -> LatencyStats:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise InferenceError("no timed runs to summarise", hint="Use --runs 1 or more")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        first=None if first_s is None else round(first_s * 1e3, 4),
        min=round(float(ms.min()), 4),
        mean=round(float(ms.mean()), 4),
        std=round(float(ms.std(ddof=1)) if ms.size > 1 else 0.0, 4),
        p50=round(float(p50), 4),
        p90=round(float(p90), 4),
        p99=round(float(p99), 4),
        max=round(float(ms.max()), 4),
        n=int(ms.size),
    )


def top_outputs(scores: np.ndarray, k: int = 5) -> List[Dict[str, Any]]:
    """The k largest entries of the first row of `scores`, best first (ties: lowest index first)."""
    row = np.asarray(scores, dtype=np.float64).reshape(scores.shape[0] if scores.ndim > 1 else 1, -1)[0]
    best = np.argsort(-row, kind="stable")[:k]
    return [{"index": int(i), "score": round(float(row[i]), 6)} for i in best]


def time_invokes(interpreter: Any, runs: int) -> List[float]:
    """Seconds per `invoke()`: the timer wraps the call and nothing else, results go to a preallocated list."""
    times = [0.0] * runs
    invoke = interpreter.invoke
    clock = time.perf_counter
    for i in range(runs):
        start = clock()
        invoke()
        times[i] = clock() - start
    return times


@dataclass
class Port:
    index: int
    dtype: Any
    shape: Tuple[int, ...]
    scale: float
    zero_point: int


def ports(details: List[Dict[str, Any]]) -> List[Port]:
    ports = []
    for d in details:
        scale, zero_point = d.get("quantization", (0.0, 0))
        ports.append(
            Port(
                int(d["index"]), np.dtype(d["dtype"]), tuple(int(x) for x in d["shape"]), float(scale), int(zero_point)
            )
        )
    return ports


def _raw_input(port: Port, rng: np.random.RandomState) -> np.ndarray:
    """Synthetic raw data for one input: random pixels for image-like inputs, zeros otherwise."""
    if port.dtype.kind in "uif" and port.dtype.itemsize <= 4 and port.dtype != np.int32:
        return rng.randint(0, 256, size=port.shape).astype(np.uint8)
    return np.zeros(port.shape, dtype=port.dtype)


@dataclass
class SessionResult(ResultHeader):
    """What every result says about the run: the header, the model, and where and why it ran."""

    model: Dict[str, Any]
    run_model: Dict[str, Any]
    requested_backend: str
    backend: str  # where it ran: "edgetpu" or "cpu"
    backend_reason: str  # why it ran there (for `auto` on the CPU: why the Edge TPU was not used)
    device: Optional[str]
    fallback_reason: Optional[str]
    fallback_fix: Optional[str]
    notes: List[str]
    load_ms: float


@dataclass
class BenchResult(SessionResult):
    runs: int
    warmup: int
    preprocess: Optional[str]
    inputs: List[Dict[str, Any]]
    latency_ms: LatencyStats  # invoke only
    end_to_end_ms: LatencyStats  # preprocess + set_tensor + invoke + get_tensor + postprocess
    # The first output's top 5 after the first inference (raw output indices, dequantized scores):
    # with `pixels` given, what the model says about that image.
    prediction: List[Dict[str, Any]] = field(default_factory=list)
    environment: Dict[str, Any] = field(default_factory=dict)


def benchmark(
    session: Session,
    runs: int = 100,
    warmup: int = 10,
    preset: Optional[str] = None,
    pixels: Optional[np.ndarray] = None,
    seed: int = 0,
) -> BenchResult:
    """Time the session's model: first inference, then invoke-only and end-to-end runs (see module doc).

    `pixels` (raw uint8, one image of the input's shape) replaces the random input of the first input.
    """
    if runs < 1 or warmup < 0:
        raise InferenceError("runs must be at least 1 and warmup at least 0 (got %d, %d)" % (runs, warmup))
    if preset is not None:
        check_preset(preset)
    interpreter = session.interpreter
    inputs = ports(interpreter.get_input_details())
    outputs = ports(interpreter.get_output_details())
    rng = np.random.RandomState(seed)
    raws = [_raw_input(p, rng) for p in inputs]
    if pixels is not None:
        if int(np.prod(pixels.shape)) != int(np.prod(inputs[0].shape)):
            raise DatasetError("the bench input has shape %s, the model wants %s" % (pixels.shape, inputs[0].shape))
        raws[0] = np.asarray(pixels, dtype=np.uint8).reshape(inputs[0].shape)
    out = outputs[0]
    set_tensor, get_tensor, invoke = interpreter.set_tensor, interpreter.get_tensor, interpreter.invoke
    clock = time.perf_counter

    def prepare(port: Port, raw: np.ndarray) -> np.ndarray:
        if raw.dtype != np.uint8:
            return raw
        return to_model_input(raw, port.dtype, port.scale, port.zero_point, preset)

    def end_to_end() -> Tuple[float, float]:
        start = clock()
        for port, raw in zip(inputs, raws):
            set_tensor(port.index, prepare(port, raw))
        invoke_start = clock()
        invoke()
        invoke_s = clock() - invoke_start
        scores = dequantize(get_tensor(out.index), out.scale, out.zero_point)
        scores.argmax(axis=-1)
        return clock() - start, invoke_s

    try:
        first_e2e, first_invoke = end_to_end()
        prediction = top_outputs(dequantize(get_tensor(out.index), out.scale, out.zero_point), 5)
        for _ in range(warmup):
            invoke()
        invoke_times = time_invokes(interpreter, runs)
        e2e_times = [0.0] * runs
        for i in range(runs):
            e2e_times[i] = end_to_end()[0]
    except (ValueError, RuntimeError) as exc:
        raise InferenceError(
            "invoking %s failed on the %s backend: %s"
            % (session.run_model_path, session.backend, " ".join(str(exc).split()))
        ) from None
    return BenchResult(
        **header("bench"),
        runs=runs,
        warmup=warmup,
        preprocess=preset,
        inputs=[
            {"shape": list(p.shape), "dtype": p.dtype.name, "scale": p.scale, "zero_point": p.zero_point}
            for p in inputs
        ],
        latency_ms=latency_stats(invoke_times, first_invoke),
        end_to_end_ms=latency_stats(e2e_times, first_e2e),
        prediction=prediction,
        environment=environment(session),
        **session_fields(session),
    )


__all__ = [
    "BenchResult",
    "LatencyStats",
    "Port",
    "Progress",
    "SessionResult",
    "benchmark",
    "describe_file",
    "environment",
    "latency_stats",
    "ports",
    "session_fields",
    "time_invokes",
    "top_outputs",
]
