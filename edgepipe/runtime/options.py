"""How to run a model, declared once: `RunOptions` and the choices its fields accept.

Every front door builds one `RunOptions` and passes it whole: the host CLI (its typer choices are made
from the constants below), the device-side argparse (`add_arguments` / `from_args`), the suites, deploy
(which writes it into the remote command with `to_argv`) and fleet (per board). The session opener
(`session.open_session`) is the only reader of the session fields; `runs`/`warmup` go to `benchmark`.

Words used here: a *backend* is where the model runs (the Edge TPU or the CPU); a *TFLite runtime* is
the Python package that provides the interpreter (ai_edge_litert, tflite_runtime, tensorflow.lite).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import List, Optional

from .edgetpu import PROBE_TIMEOUT_S, parse_device
from .errors import BackendError, UsageError

BACKENDS = ("auto", "edgetpu", "cpu")
# The TFLite runtimes edgepipe can load, in the order it tries them (TensorFlow last: slow to import).
TFLITE_RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
TFLITE_RUNTIME_ALIASES = {"litert": "ai_edge_litert", "tflite": "tflite_runtime", "tf": "tensorflow"}
# What `--runtime` accepts on both command lines ($EDGEPIPE_TFLITE_RUNTIME also takes the other aliases).
TFLITE_RUNTIME_CHOICES = ("litert",) + TFLITE_RUNTIMES
DEFAULT_RUNS = 100
DEFAULT_WARMUP = 10
# Bounds of what may be asked: more timed runs than this is a typo (10**22 would not even fit a list),
# and a thread count or probe timeout past these is no real machine's.
MAX_RUNS = 1_000_000
MAX_THREADS = 1024
MAX_PROBE_TIMEOUT_S = 24 * 3600.0

BACKEND_HELP = "auto (Edge TPU if usable, else CPU, said so), edgetpu (fail without one) or cpu"
DEVICE_HELP = "Edge TPU: usb, usb:N, pci, pci:N or :N (default: the first one)"
CPU_MODEL_HELP = "uncompiled int8 twin to run on the CPU for a compiled model (default: NAME without _edgetpu)"
TFLITE_RUNTIME_HELP = (
    "TFLite runtime: litert (ai_edge_litert), tflite_runtime or tensorflow (default: first importable)"
)
THREADS_HELP = "CPU interpreter threads (default: the TFLite runtime's)"


@dataclass
class RunOptions:
    """Where and how a model runs. Checked on creation: a bad backend or device string fails here."""

    backend: str = "auto"  # one of BACKENDS
    device: Optional[str] = None  # Edge TPU device string (edgetpu.parse_device); None = the first
    cpu_model: Optional[str] = None  # uncompiled twin for a compiled model on the CPU
    tflite_runtime: Optional[str] = None  # name or alias (--runtime); None: $EDGEPIPE_TFLITE_RUNTIME or the first found
    threads: Optional[int] = None  # CPU interpreter threads; None = the TFLite runtime's default
    reference_kernels: bool = False  # CPU: TFLite's reference kernels instead of XNNPack (see interpreters.py)
    probe_timeout: float = PROBE_TIMEOUT_S  # seconds for the first Edge TPU load, done in a child process
    runs: int = DEFAULT_RUNS  # bench: timed runs
    warmup: int = DEFAULT_WARMUP  # bench: untimed runs after the first

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BackendError("unknown backend %r" % self.backend, hint="Use one of: %s" % ", ".join(BACKENDS))
        parse_device(self.device)  # a malformed device string is an error on every backend
        _bounded("--runs", self.runs, 1, MAX_RUNS)
        _bounded("--warmup", self.warmup, 0, MAX_RUNS)
        if self.threads is not None:
            _bounded("--threads", self.threads, 1, MAX_THREADS)
        timeout = self.probe_timeout
        if not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_PROBE_TIMEOUT_S:  # NaN fails too
            raise UsageError(
                "--probe-timeout must be a number of seconds in (0, %d], got %r" % (MAX_PROBE_TIMEOUT_S, timeout)
            )
        if self.cpu_model is not None:
            self.cpu_model = str(self.cpu_model)  # a Path from the host CLI

    def to_argv(self, command: str) -> List[str]:
        """The options as `python -m edgepipe.runtime COMMAND` arguments (defaults left out, but --backend)."""
        argv = ["--backend", self.backend]
        for flag, value in (
            ("--device", self.device),
            ("--cpu-model", self.cpu_model),
            ("--runtime", self.tflite_runtime),
            ("--threads", self.threads),
        ):
            if value is not None:
                argv += [flag, str(value)]
        if self.probe_timeout != PROBE_TIMEOUT_S:
            argv += ["--probe-timeout", repr(float(self.probe_timeout))]
        if command == "bench":
            argv += ["--runs", str(int(self.runs)), "--warmup", str(int(self.warmup))]
        return argv

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunOptions":
        """From a namespace parsed with `add_arguments` (runs/warmup only where the command has them)."""
        return cls(
            backend=args.backend,
            device=args.device,
            cpu_model=args.cpu_model,
            tflite_runtime=args.runtime,
            threads=args.threads,
            probe_timeout=args.probe_timeout,
            runs=getattr(args, "runs", DEFAULT_RUNS),
            warmup=getattr(args, "warmup", DEFAULT_WARMUP),
        )


def _bounded(flag: str, value: object, low: int, high: int) -> None:
    """UsageError (exit 2) unless `value` is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if not isinstance(value, int) or abs(value) < 10**12 else "%.3g" % value
        raise UsageError("%s must be an integer from %d to %d, got %s" % (flag, low, high, shown))


def add_arguments(parser: argparse.ArgumentParser, bench: bool = False) -> None:
    """The device-side command line's options for `RunOptions` (bench adds --runs/--warmup)."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="where to run: %s" % BACKEND_HELP)
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--cpu-model", help=CPU_MODEL_HELP)
    parser.add_argument("--runtime", choices=TFLITE_RUNTIME_CHOICES, help=TFLITE_RUNTIME_HELP)
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    parser.add_argument(
        "--probe-timeout", type=float, default=PROBE_TIMEOUT_S, help="seconds for the first Edge TPU load (child)"
    )
    if bench:
        parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="timed runs (default %d)" % DEFAULT_RUNS)
        warmup_help = "untimed runs after the first (default %d)" % DEFAULT_WARMUP
        parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help=warmup_help)


__all__ = [
    "BACKENDS",
    "DEFAULT_RUNS",
    "DEFAULT_WARMUP",
    "MAX_RUNS",
    "TFLITE_RUNTIMES",
    "TFLITE_RUNTIME_ALIASES",
    "TFLITE_RUNTIME_CHOICES",
    "RunOptions",
    "add_arguments",
]
