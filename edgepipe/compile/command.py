"""The compiler's command line: which `-m` runtime version to target, the argv, the files it writes."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import EdgepipeError
from .find import default_min_runtime


def _detected_runtime_version() -> Optional[int]:
    """The local Edge TPU runtime version (libedgetpu, asked in a child process), or None without one."""
    from ..runtime.edgetpu import runtime_version  # imported late: only compiling needs it

    try:
        return runtime_version()
    except (EdgepipeError, OSError):
        return None


def resolve_min_runtime(requested: Optional[int], compiler_version: str) -> Tuple[Optional[int], str, bool]:
    """(min_runtime, where it came from, whether to pass `-m`)."""
    default = default_min_runtime(compiler_version)
    if requested is not None:
        return requested, "--min-runtime", True
    detected = _detected_runtime_version()
    if detected is not None:
        if default is not None and detected >= default:
            # Newer runtimes load older packages, and `-m` above the compiler's own target may fail.
            return default, "compiler default (detected Edge TPU runtime %d is as new)" % detected, False
        return detected, "detected Edge TPU runtime", True
    return default, "compiler default", False


def build_command(
    compiler_path: str,
    models: List[Path],
    out_dir: Path,
    *,
    timeout_s: Optional[int],
    min_runtime: Optional[int] = None,
    segments: Optional[int] = None,
    search_delegate: bool = False,
    search_step: Optional[int] = None,
    intermediate_tensors: Optional[List[str]] = None,
    multiple_subgraphs: bool = False,
) -> List[str]:
    """The compiler's argument list (never a shell string)."""
    argv = [compiler_path, "-s", "-o", str(out_dir)]
    if timeout_s is not None:
        argv += ["-t", str(int(timeout_s))]
    if min_runtime is not None:
        argv += ["-m", str(int(min_runtime))]
    if segments is not None:
        argv += ["-n", str(int(segments))]
    if search_delegate:
        argv += ["-d"]
        if search_step is not None:
            argv += ["-k", str(int(search_step))]
    if intermediate_tensors:
        argv += ["-i", ",".join(intermediate_tensors)]
    if multiple_subgraphs:
        argv += ["-a"]
    return argv + [str(m) for m in models]


def expected_outputs(model: Path, segments: Optional[int]) -> List[str]:
    """File names the compiler writes for one input (coral.ai/docs/edgetpu/compiler; segments: edgetpu#671)."""
    if segments and segments > 1:
        return ["%s_segment_%d_of_%d_edgetpu.tflite" % (model.stem, i, segments) for i in range(segments)]
    return ["%s_edgetpu.tflite" % model.stem]
