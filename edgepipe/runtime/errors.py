"""The error hierarchy shared by the host CLI and the device-side runner, and error -> exit code.

Every error class carries its exit code, so every front door (the host's `edgepipe`, the board's
`python -m edgepipe.runtime`, `scripts/`) maps a failure with `exit_code_for` and words it with
`error_line` instead of a table of its own. Codes are part of the public contract (README, "Exit
codes"): never renumber one. The JSON form of an error (the envelope) is `report.error_envelope`.

This module lives in the device-side package because the runner raises these on a board that has
only numpy and a TFLite runtime; `edgepipe.errors` re-exports them and adds the host-only ones.
"""

from typing import Any, Optional

EXIT_INTERNAL = 1  # not an EdgepipeError: a bug
EXIT_USAGE = 2  # bad command line (argparse, typer)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as a shell reports it
EXIT_TERMINATED = 143  # SIGTERM (128 + 15)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by a front door's signal handler so that cleanups run as for Ctrl-C; exit 143."""


class EdgepipeError(Exception):
    """Base class: a failure edgepipe understands and can explain in one line.

    A subclass states its exit code on its class line, `class NoEdgeTpuError(EdgepipeError, exit_code=21)`,
    so the classes read as the README's table; one without inherits its parent's.
    """

    exit_code = 1
    hint = ""

    def __init_subclass__(cls, exit_code: Optional[int] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint

    def one_line(self) -> str:
        text = str(self)
        if self.hint:
            text = "%s. %s" % (text.rstrip("."), self.hint)
        return " ".join(text.split())


class UsageError(EdgepipeError, exit_code=EXIT_USAGE):
    """A command-line value out of its bounds (`--runs 0`, `--runs 10**22`): a bad command line, exit 2."""


class InputNotFoundError(EdgepipeError, exit_code=3):
    """A file or directory the user named does not exist or cannot be read."""


class ModelFormatError(EdgepipeError, exit_code=4):
    """A model file is not what it claims to be (truncated, corrupt, not a TFLite flatbuffer)."""


class OutputWriteError(EdgepipeError, exit_code=5):
    """The result could not be written (unwritable directory, disk full)."""


class DatasetError(EdgepipeError, exit_code=6):
    """A dataset is missing, empty, corrupt, or does not fit the model."""


class RuntimeNotFoundError(EdgepipeError, exit_code=20):
    """No TFLite runtime (ai_edge_litert, tflite_runtime or tensorflow.lite) can be imported."""


class NoEdgeTpuError(EdgepipeError, exit_code=21):
    """The Edge TPU backend was required but no usable runtime or device exists."""


class BackendError(EdgepipeError, exit_code=22):
    """A model cannot run on the chosen backend (e.g. a compiled model on the CPU)."""


class InferenceError(EdgepipeError, exit_code=23):
    """The interpreter failed to allocate or invoke (e.g. runtime too old for the model). `signal` names the
    signal when the TFLite runtime crashed on the model ("SIGSEGV"); it travels in the JSON error envelope."""

    signal: Optional[str] = None

    def __init__(self, message: str, hint: str = "", signal: Optional[str] = None) -> None:
        super().__init__(message, hint)
        if signal:
            self.signal = signal


class InvalidDeviceError(EdgepipeError, exit_code=24):
    """An Edge TPU device string is not one of `usb`, `usb:N`, `pci`, `pci:N`, `:N`."""


def raise_terminated(signum: int, frame: Any) -> None:
    """A SIGTERM handler for a front door: the process unwinds as for Ctrl-C (cleanups run), then exits 143."""
    raise Terminated()


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for a failure: the error's own, 130 for Ctrl-C, 1 for anything else (a bug)."""
    if isinstance(exc, EdgepipeError):
        return exc.exit_code
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_INTERNAL


def error_line(exc: BaseException) -> Optional[str]:
    """The one line a front door prints for a failure it understands (None: not ours, show the traceback).

    The text is literal: it may hold a user's file name, a compiler's or a remote host's words, so a
    caller printing it through rich must switch markup off.
    """
    if isinstance(exc, EdgepipeError):
        return "error: " + exc.one_line()
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return None
