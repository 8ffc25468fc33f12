"""Which TFLite runtime (the package that provides the interpreter) to use: `ai_edge_litert`, else
`tflite_runtime`, else `tensorflow.lite`.

All three expose the same `Interpreter(model_path=..., experimental_delegates=..., num_threads=...)`
and `load_delegate(library, options)`, so the rest of the runner only sees a `TfliteRuntime`.
`$EDGEPIPE_TFLITE_RUNTIME` (or the `name` argument) forces one, e.g. to compare two side by side.
TensorFlow is tried last because importing it takes seconds and it is never on a board.

`quiet_runtime_log()` keeps the runtimes' C++ chatter ("INFO: Created TensorFlow Lite XNNPACK delegate
for CPU.", printed to file descriptor 2 at a process's first allocate_tensors) out of normal output.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

from .errors import RuntimeNotFoundError
from .options import TFLITE_RUNTIME_ALIASES, TFLITE_RUNTIMES

TFLITE_RUNTIME_ENV = "EDGEPIPE_TFLITE_RUNTIME"

INSTALL_HINT = (
    "Install one: `pip install ai-edge-litert` (Python 3.9+), or `pip install tflite-runtime` "
    "(Coral Dev Board: `sudo apt-get install python3-tflite-runtime`)"
)

# Lines a TFLite runtime prints to file descriptor 2 that tell the user nothing they can act on. LiteRT
# and tf.lite print the first at the first allocate_tensors of every process (their C++ logger ignores
# $TF_CPP_MIN_LOG_LEVEL, so the line can only be filtered out of what reaches the descriptor).
RUNTIME_CHATTER = frozenset(["INFO: Created TensorFlow Lite XNNPACK delegate for CPU."])

# One quiet block at a time per process: two threads swapping descriptor 2 out of order would leave
# one's temporary file as stderr for good. A forked child gets a new lock, as another thread may have
# held the parent's at the fork.
_fd2_lock = threading.RLock()


def _new_fd2_lock() -> None:
    global _fd2_lock
    _fd2_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_fd2_lock)


@contextlib.contextmanager
def quiet_runtime_log() -> Iterator[None]:
    """Inside the block, file descriptor 2 goes to a temporary file; at its end every line written there
    except RUNTIME_CHATTER is written to stderr, in order, so a real warning or error is only delayed.

    The TFLite runtimes write from C++ straight to the descriptor, which sys.stderr cannot intercept.
    Keep the block to interpreter creation and allocate_tensors: if the process dies by a signal inside
    it, what the runtime printed there is lost with it.
    """
    with _fd2_lock, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (a daemon): nothing to keep quiet
            yield
            return
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().splitlines(True)
                if line.rstrip(b"\r\n").decode("utf-8", "replace") not in RUNTIME_CHATTER
            ]
            replay = b"".join(kept)
            while replay:
                replay = replay[os.write(2, replay) :]


@dataclass
class TfliteRuntime:
    name: str  # one of TFLITE_RUNTIMES
    version: str
    interpreter_class: Any
    load_delegate: Any
    op_resolver_type: Any = None  # the runtime's OpResolverType enum, when it has one

    def make_interpreter(
        self,
        model_path: str,
        delegates: Optional[List[Any]] = None,
        num_threads: Optional[int] = None,
        reference_kernels: bool = False,
    ) -> Any:
        """A new interpreter (not yet allocated).

        `reference_kernels` turns off the default CPU delegate (XNNPack), whose int8 kernels may
        round differently from TFLite's reference kernels by a quantization step or two.
        """
        kwargs: Dict[str, Any] = {"model_path": model_path}
        if delegates:
            kwargs["experimental_delegates"] = delegates
        if num_threads is not None:
            kwargs["num_threads"] = num_threads
        if reference_kernels:
            if self.op_resolver_type is None:
                raise RuntimeNotFoundError(
                    "%s %s cannot turn off its default delegates" % (self.name, self.version),
                    hint="Use a newer TFLite runtime, or run without reference kernels",
                )
            kwargs["experimental_op_resolver_type"] = self.op_resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return self.interpreter_class(**kwargs)

    def describe(self) -> Dict[str, str]:
        return {"name": self.name, "version": self.version}


def _import(name: str) -> TfliteRuntime:
    """Import one runtime by name; ImportError (or anything the import raises) propagates."""
    if name == "ai_edge_litert":
        module = importlib.import_module("ai_edge_litert.interpreter")
        version = getattr(importlib.import_module("ai_edge_litert"), "__version__", "unknown")
        return TfliteRuntime(
            name, str(version), module.Interpreter, module.load_delegate, getattr(module, "OpResolverType", None)
        )
    if name == "tflite_runtime":
        if "tensorflow" in sys.modules and "tflite_runtime.interpreter" not in sys.modules:
            # Seen with TF 2.21 + tflite_runtime 2.14: loaded after TensorFlow's native library, its
            # interpreter fails on every model (vector::reserve, std::bad_alloc). Loaded first, both work.
            raise ImportError(
                "tflite_runtime cannot be loaded into a process that has already imported TensorFlow "
                "(their native libraries clash); run it in a process of its own"
            )
        module = importlib.import_module("tflite_runtime.interpreter")
        version = getattr(importlib.import_module("tflite_runtime"), "__version__", "unknown")
        return TfliteRuntime(
            name, str(version), module.Interpreter, module.load_delegate, getattr(module, "OpResolverType", None)
        )
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        lite = tf.lite
        return TfliteRuntime(
            name,
            str(getattr(tf, "__version__", "unknown")),
            lite.Interpreter,
            lite.experimental.load_delegate,
            getattr(lite.experimental, "OpResolverType", None),
        )
    raise RuntimeNotFoundError(
        "unknown TFLite runtime %r" % name, hint="Choose one of: %s" % ", ".join(TFLITE_RUNTIMES)
    )


_loaded: Dict[str, TfliteRuntime] = {}


def requested_tflite_runtime(name: Optional[str] = None) -> Optional[str]:
    """The runtime asked for by argument or `$EDGEPIPE_TFLITE_RUNTIME` (validated), or None."""
    wanted = name or os.environ.get(TFLITE_RUNTIME_ENV) or None
    wanted = TFLITE_RUNTIME_ALIASES.get(wanted, wanted) if wanted else None
    if wanted is not None and wanted not in TFLITE_RUNTIMES:
        source = "$%s" % TFLITE_RUNTIME_ENV if not name else "the requested runtime"
        raise RuntimeNotFoundError(
            "%s is %r, which is not a TFLite runtime edgepipe knows" % (source, wanted),
            hint="Choose one of: litert (= ai_edge_litert), tflite_runtime, tensorflow",
        )
    return wanted


def load_tflite_runtime(name: Optional[str] = None) -> TfliteRuntime:
    """The forced runtime (argument, then `$EDGEPIPE_TFLITE_RUNTIME`), else the first importable one."""
    wanted = requested_tflite_runtime(name)
    candidates = [wanted] if wanted else list(TFLITE_RUNTIMES)
    errors = []
    for candidate in candidates:
        if candidate in _loaded:
            return _loaded[candidate]
        try:
            runtime = _import(candidate)
        except Exception as exc:  # a broken install can raise anything at import time
            errors.append("%s (%s)" % (candidate, _short_error(exc)))
            continue
        _loaded[candidate] = runtime
        return runtime
    if wanted:
        raise RuntimeNotFoundError("the requested TFLite runtime cannot be imported: %s" % errors[0], hint=INSTALL_HINT)
    raise RuntimeNotFoundError("no TFLite runtime can be imported: %s" % "; ".join(errors), hint=INSTALL_HINT)


def _short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def survey_tflite_runtimes(include_tensorflow: bool = True) -> List[Dict[str, Any]]:
    """Every known runtime with its version or import error (for `doctor`).

    `include_tensorflow=False` skips importing TensorFlow (seconds) and only says whether it is installed:
    `found` is then None ("installed, not checked") or False.
    """
    found = []
    for name in TFLITE_RUNTIMES:
        entry: Dict[str, Any] = {"name": name, "found": False, "version": None, "error": None}
        if name == "tensorflow" and not include_tensorflow and name not in _loaded:
            if importlib.util.find_spec("tensorflow") is not None:
                entry["found"] = None
                entry["error"] = "installed; not imported (importing TensorFlow is slow)"
            else:
                entry["error"] = "not installed"
            found.append(entry)
            continue
        try:
            runtime = _loaded.get(name) or _import(name)
        except Exception as exc:
            entry["error"] = _short_error(exc)
        else:
            _loaded[name] = runtime
            entry["found"] = True
            entry["version"] = runtime.version
        found.append(entry)
    return found


__all__ = [
    "TFLITE_RUNTIME_ENV",
    "RUNTIME_CHATTER",
    "TfliteRuntime",
    "load_tflite_runtime",
    "quiet_runtime_log",
    "requested_tflite_runtime",
    "survey_tflite_runtimes",
]
