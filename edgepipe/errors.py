"""The host's error hierarchy: the device-side errors plus those only the host can raise.

The CLI maps each class to its `exit_code` (see README, "Exit codes"). Codes 1-24 are shared with
the device-side runner (`edgepipe.runtime.errors`); 30 and up are host stages.
"""

from .runtime.errors import (
    BackendError,
    DatasetError,
    EdgepipeError,
    InferenceError,
    InputNotFoundError,
    InvalidDeviceError,
    ModelFormatError,
    NoEdgeTpuError,
    OutputWriteError,
    RuntimeNotFoundError,
)


class DatasetUnreachableError(DatasetError):
    """No mirror of a dataset's file could be reached (no network, refused, not served). Exit 6 like any
    dataset problem; the MNIST suite falls back to its embedded data on this one, never on a checksum
    mismatch (a corrupt download stays an error)."""


__all__ = [
    "BackendError",
    "CompileError",
    "CompileRejected",
    "CompilerNotFound",
    "ConversionError",
    "DatasetError",
    "DatasetUnreachableError",
    "DeployError",
    "RemoteCommandError",
    "EdgepipeError",
    "InferenceError",
    "InputNotFoundError",
    "InvalidDeviceError",
    "InventoryError",
    "ModelFormatError",
    "NoEdgeTpuError",
    "OutputWriteError",
    "PlaceBusyError",
    "RuntimeNotFoundError",
    "TargetSpecError",
    "TensorFlowMissingError",
    "TransportError",
    "UnquantizableOpsError",
    "EdgeTpuIncompatibleError",
]


class TensorFlowMissingError(EdgepipeError, exit_code=30):
    """Conversion needs TensorFlow, which is an optional extra on the host."""


class ConversionError(EdgepipeError, exit_code=31):
    """The TensorFlow converter failed or crashed."""


class UnquantizableOpsError(EdgepipeError, exit_code=32):
    """The converted model still holds float (or other non-int8) ops; nothing was written."""

    def __init__(self, message: str, offenders: list, hint: str = "") -> None:
        super().__init__(message, hint)
        self.offenders = offenders


class EdgeTpuIncompatibleError(EdgepipeError, exit_code=33):
    """The model is int8, but the pre-flight predicts ops that would fall back to the CPU."""


class CompilerNotFound(EdgepipeError, exit_code=40):
    """edgetpu_compiler is not installed (it exists only for x86-64 Debian-family Linux)."""


class CompileError(EdgepipeError, exit_code=41):
    """edgetpu_compiler failed; `kind` says how, `compiler_output` holds its own words."""

    report = None  # the CompileReport, when the compiler ran (edgepipe.compile sets it)

    def __init__(self, message: str, kind: str = "unknown", compiler_output: str = "", hint: str = "") -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.compiler_output = compiler_output


class CompileRejected(EdgepipeError, exit_code=42):
    """The compiler succeeded, but the result fails edgepipe's gate (ops left on the CPU)."""

    report = None  # the CompileReport; the compiled files stay in its out_dir for diagnosis


class InventoryError(EdgepipeError, exit_code=2):
    """A fleet inventory (or baseline) file is missing, not JSON, or does not follow the format (fleet/inventory.py)."""


class DeployError(EdgepipeError, exit_code=50):
    """A model or bundle could not be put on, or run on, the target."""


class RemoteCommandError(DeployError):
    """The target was reached and the bundle verified there, but a device-side command (bench, eval) failed."""


class TransportError(DeployError):
    """The link failed, not the board's work: ssh could not connect or authenticate, the connection broke, or
    a remote call outlived its timeout. `retryable` is False where trying again cannot help (authentication,
    a changed host key); a caller may retry the others once (edgepipe.fleet does)."""

    def __init__(self, message: str, hint: str = "", retryable: bool = True) -> None:
        super().__init__(message, hint)
        self.retryable = retryable


class TargetSpecError(DeployError, exit_code=2):
    """A `--to` target string that is not one of the accepted forms: a command-line error, nothing was tried."""


class PlaceBusyError(DeployError, exit_code=51):
    """The labgrid place is acquired by someone else; nothing was deployed (we never wait silently)."""
