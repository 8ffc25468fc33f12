"""Opening a model for inference: choosing where it runs (the Edge TPU or the CPU) and which file runs there.

`open_session(model, RunOptions(...))` is the one way in; the options' `backend` decides:

- `edgetpu`: the model must be compiled (`edgetpu-custom-op` inside) and an Edge TPU must load it;
  otherwise `NoEdgeTpuError` says what is missing and how to fix it.
- `cpu`: an uncompiled model runs as it is. A compiled one cannot run on the CPU at all (only the
  Edge TPU delegate can execute its custom op), so its uncompiled int8 twin runs instead: the same
  name without `_edgetpu`, or the file given as `cpu_model`; without one it is a `BackendError`.
- `auto`: the Edge TPU when usable, else the CPU as above, with `fallback_reason` saying why.

The first delegate load happens in a child process (`edgetpu.require_edgetpu`), so a crashing or
mismatched libedgetpu turns into a reason instead of killing this process.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from .edgetpu import EdgeTpuDevice, EdgeTpuTarget, require_edgetpu
from .errors import BackendError, InferenceError, NoEdgeTpuError
from .interpreters import TfliteRuntime, load_tflite_runtime, quiet_runtime_log
from .options import RunOptions
from .tflite_reader import EDGETPU_CUSTOM_OP, Model, read_model

COMPILED_SUFFIX = "_edgetpu"


@dataclass
class Session:
    """An allocated interpreter plus everything a result must say about how it was made."""

    model_path: str  # the model the user asked for
    run_model_path: str  # the file actually loaded (the CPU twin of a compiled model, or the model itself)
    model: Model  # the reader's view of run_model_path
    requested_backend: str
    backend: str  # "edgetpu" or "cpu"
    tflite: TfliteRuntime  # the TFLite runtime package that made the interpreter
    interpreter: Any
    load_ms: float  # interpreter creation (+ delegate) + allocate_tensors
    device: Optional[EdgeTpuDevice] = None
    edgetpu: Optional[EdgeTpuTarget] = None
    backend_reason: str = ""  # why this backend ran, in words (always set)
    fallback_reason: Optional[str] = None  # set only when `auto` wanted the Edge TPU and fell back to the CPU
    model_compiled: bool = False  # whether model_path (not necessarily run_model_path) is an _edgetpu model
    fallback_fix: Optional[str] = None  # how to make the Edge TPU usable, when that is why it fell back
    notes: List[str] = field(default_factory=list)
    num_threads: Optional[int] = None
    reference_kernels: bool = False
    via_pycoral: bool = False
    _delegate: Any = None

    def new_interpreter(self) -> Any:
        """A fresh interpreter like this session's (not allocated), e.g. after a failed resize."""
        delegates = [self._delegate] if self._delegate is not None else None
        return self.tflite.make_interpreter(
            self.run_model_path,
            delegates=delegates,
            num_threads=self.num_threads,
            reference_kernels=self.reference_kernels,
        )


def pycoral_version() -> Optional[str]:
    """pycoral's version when it is importable (it is optional: no wheels past Python 3.9)."""
    if importlib.util.find_spec("pycoral") is None:
        return None
    try:
        import pycoral
    except Exception:
        return None
    return str(getattr(pycoral, "__version__", "unknown"))


def twin_path(model_path: str) -> Optional[str]:
    """`x_edgetpu.tflite` → `x.tflite` (the file the compiler was given), or None for other names."""
    stem, ext = os.path.splitext(model_path)
    if not stem.endswith(COMPILED_SUFFIX):
        return None
    return stem[: -len(COMPILED_SUFFIX)] + ext


def _io_signature(model: Model) -> List[Tuple[str, Tuple[int, ...]]]:
    return [(t.dtype, tuple(t.shape)) for t in model.input_tensors() + model.output_tensors()]


def cpu_model_for(model_path: str, model: Model, cpu_model: Optional[str] = None, why: str = "") -> Tuple[str, Model]:
    """The file to run on the CPU for `model_path`: itself if uncompiled, else its uncompiled twin.

    `why` (e.g. the reason the Edge TPU is unusable) is added to the error when there is no twin.
    """
    if not model.compiled_for_edgetpu:
        return model_path, model
    twin = cpu_model or twin_path(model_path)
    compiled_note = (
        "%s is compiled for the Edge TPU (its ops are inside an %s that only the Edge TPU delegate can run), "
        "so it cannot run on the CPU" % (model_path, EDGETPU_CUSTOM_OP)
    )
    if why:
        compiled_note = "%s; %s" % (why.rstrip("."), compiled_note)
    if twin is None or not os.path.isfile(twin):
        missing = (
            "its uncompiled int8 twin %s does not exist" % twin
            if twin
            else "it has no `_edgetpu` name to derive an uncompiled twin from"
        )
        if cpu_model:
            missing = "the --cpu-model %s does not exist" % cpu_model
        raise BackendError(
            "%s, and %s" % (compiled_note, missing),
            hint="Put the int8 .tflite it was compiled from beside it (same name without _edgetpu) or pass it "
            "with --cpu-model PATH, or run it with --backend edgetpu where an Edge TPU is attached",
        )
    twin_model = read_model(twin)
    if twin_model.compiled_for_edgetpu:
        raise BackendError(
            "%s; the CPU model %s is compiled for the Edge TPU too" % (compiled_note, twin),
            hint="Give the uncompiled int8 .tflite (the compiler's input) with --cpu-model",
        )
    if _io_signature(twin_model) != _io_signature(model):
        raise BackendError(
            "%s cannot stand in for %s: inputs/outputs differ (%s vs %s)"
            % (twin, model_path, _io_signature(twin_model), _io_signature(model)),
            hint="Give the int8 .tflite this model was compiled from with --cpu-model",
        )
    return twin, twin_model


def _load_error(path: str, runtime: TfliteRuntime, exc: BaseException) -> InferenceError:
    return InferenceError(
        "%s cannot be loaded by %s %s: %s" % (path, runtime.name, runtime.version, " ".join(str(exc).split())),
        hint="Check that the model was made for this runtime version (a newer converter can emit ops an older "
        "runtime lacks); try another runtime with $EDGEPIPE_TFLITE_RUNTIME",
    )


def _loaded(model_path: str, options: RunOptions, tflite: TfliteRuntime, start: float, **fields: Any) -> Session:
    """The Session of `model_path` as `options` asked, its interpreter made since `start` (perf_counter)."""
    return Session(
        model_path=model_path,
        requested_backend=options.backend,
        tflite=tflite,
        num_threads=options.threads,
        load_ms=(time.perf_counter() - start) * 1e3,
        **fields,
    )


def _cpu_session(
    model_path: str, run_path: str, run_model: Model, tflite: TfliteRuntime, options: RunOptions
) -> Session:
    start = time.perf_counter()
    try:
        with quiet_runtime_log():
            interpreter = tflite.make_interpreter(
                run_path, num_threads=options.threads, reference_kernels=options.reference_kernels
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise _load_error(run_path, tflite, exc) from None
    return _loaded(model_path, options, tflite, start, run_model_path=run_path, model=run_model, backend="cpu",
                   interpreter=interpreter, reference_kernels=options.reference_kernels)  # fmt: skip


def _edgetpu_session(
    model_path: str, model: Model, tflite: TfliteRuntime, target: EdgeTpuTarget, options: RunOptions
) -> Session:
    start = time.perf_counter()
    delegate = None
    # pycoral is built against tflite_runtime; with another runtime its interpreter would be a stranger.
    via_pycoral = tflite.name == "tflite_runtime" and pycoral_version() is not None
    device = options.device
    try:
        with quiet_runtime_log():
            if via_pycoral:
                from pycoral.utils.edgetpu import make_interpreter

                interpreter = make_interpreter(model_path, device=device)
            else:
                delegate = tflite.load_delegate(target.library, {"device": device} if device else {})
                interpreter = tflite.make_interpreter(model_path, delegates=[delegate], num_threads=options.threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError, OSError) as exc:
        raise NoEdgeTpuError(
            "the Edge TPU %s passed the probe but failed to load %s in this process: %s"
            % (target.device.spec, model_path, " ".join(str(exc).split())),
            hint="Replug the accelerator and run `edgepipe doctor`",
        ) from None
    return _loaded(model_path, options, tflite, start, run_model_path=model_path, model=model, backend="edgetpu",
                   interpreter=interpreter, device=target.device, edgetpu=target, via_pycoral=via_pycoral,
                   _delegate=delegate)  # fmt: skip


def open_session(model_path: str, options: Optional[RunOptions] = None, **fields: Any) -> Session:
    """Load `model_path` as `options` say (see the module docstring) and allocate it.

    `fields` are a shorthand for `RunOptions(**fields)`: `open_session(path, backend="cpu")`.
    """
    if options is None:
        options = RunOptions(**fields)
    elif fields:
        raise TypeError("give either RunOptions or its fields, not both")
    session = _open(os.fspath(model_path), options)
    session.model_compiled = session.backend == "edgetpu" or session.run_model_path != session.model_path
    return session


def _open(model_path: str, options: RunOptions) -> Session:
    backend, device, cpu_model = options.backend, options.device, options.cpu_model
    probe_timeout = options.probe_timeout
    model = read_model(model_path)
    tflite = load_tflite_runtime(options.tflite_runtime)

    if backend == "cpu":
        run_path, run_model = cpu_model_for(model_path, model, cpu_model)
        session = _cpu_session(model_path, run_path, run_model, tflite, options)
        session.backend_reason = "--backend cpu was requested"
        if run_path != model_path:
            session.backend_reason += "; %s is compiled for the Edge TPU, so its uncompiled twin %s ran instead" % (
                model_path,
                run_path,
            )
            session.notes.append(
                "%s is compiled for the Edge TPU; ran its uncompiled twin %s on the CPU" % (model_path, run_path)
            )
        return session

    if backend == "edgetpu":
        if not model.compiled_for_edgetpu:
            raise BackendError(
                "%s is not compiled for the Edge TPU (no %s), so every op would run on the CPU"
                % (model_path, EDGETPU_CUSTOM_OP),
                hint="Compile it first (`edgepipe compile %s -o DIR`) and run the _edgetpu.tflite, or use --backend cpu"
                % model_path,
            )
        target = require_edgetpu(model_path, device, runtime=tflite.name, timeout=probe_timeout)
        session = _edgetpu_session(model_path, model, tflite, target, options)
        session.backend_reason = "--backend edgetpu was requested and Edge TPU %s loaded the model" % target.device.spec
        return session

    # auto
    if not model.compiled_for_edgetpu:
        session = _cpu_session(model_path, model_path, model, tflite, options)
        session.backend_reason = "%s is not compiled for the Edge TPU (no %s), so it runs on the CPU" % (
            model_path,
            EDGETPU_CUSTOM_OP,
        )
        return session
    try:
        target = require_edgetpu(model_path, device, runtime=tflite.name, timeout=probe_timeout)
        session = _edgetpu_session(model_path, model, tflite, target, options)
        session.backend_reason = "the model is compiled and Edge TPU %s loaded it" % target.device.spec
        return session
    except NoEdgeTpuError as exc:
        no_tpu, fix = "no usable Edge TPU (%s)" % str(exc).rstrip("."), exc.hint or None
    run_path, run_model = cpu_model_for(model_path, model, cpu_model, why=no_tpu)
    session = _cpu_session(model_path, run_path, run_model, tflite, options)
    session.fallback_reason = "%s; ran the uncompiled twin %s on the CPU instead" % (no_tpu, run_path)
    session.backend_reason = session.fallback_reason
    session.fallback_fix = fix
    return session


__all__ = ["Session", "cpu_model_for", "open_session", "pycoral_version", "twin_path"]
