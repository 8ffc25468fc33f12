"""Finding `edgetpu_compiler` (`--compiler`, $EDGEPIPE_EDGETPU_COMPILER, PATH) and reading its version.

The compiler runs only on x86-64 Debian-family Linux (https://coral.ai/docs/edgetpu/compiler/).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Optional

from ..errors import CompilerNotFound

COMPILER_ENV = "EDGEPIPE_EDGETPU_COMPILER"
COMPILER_NAME = "edgetpu_compiler"

INSTALL_HINT = (
    "edgetpu_compiler runs only on x86-64 Debian-family Linux: add the Coral apt repository "
    "(deb https://packages.cloud.google.com/apt coral-edgetpu-stable main) and run "
    "`sudo apt-get install edgetpu-compiler`, or compile in Google's Colab notebook "
    "(google-coral/tutorials compile_for_edgetpu.ipynb) and read its output with "
    "`edgepipe compile --from-log FILE`. Meanwhile `edgepipe inspect MODEL` gives the offline prediction"
)

# Compiler version prefix -> runtime version its output needs by default: coral.ai's "Compiler and runtime
# versions" table, known here only from restatements of it (the split of the 2.0 builds is unverified).
_DEFAULT_MIN_RUNTIME = (
    ("16.", 14),
    ("15.", 13),
    ("14.", 13),
    ("2.1.", 13),
    ("2.0.291256449", 13),
    ("2.0.267685300", 12),
    ("1.", 10),
)


@dataclass
class CompilerInfo:
    path: str
    version: str
    source: str = ""  # "--compiler", "$EDGEPIPE_EDGETPU_COMPILER" or "PATH"


def compiler_not_found(message: str) -> CompilerNotFound:
    machine = "%s %s" % (platform.system(), platform.machine())
    return CompilerNotFound("%s (this machine: %s)" % (message, machine), hint=INSTALL_HINT)


def _resolve(candidate: str) -> Optional[str]:
    if os.sep in candidate or (os.altsep and os.altsep in candidate):
        return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    return shutil.which(candidate)


def find_compiler(explicit: Optional[str] = None) -> CompilerInfo:
    """Locate edgetpu_compiler (`--compiler`, then $EDGEPIPE_EDGETPU_COMPILER, then PATH) and read its version.

    An explicitly named compiler that is missing is an error, never a silent fall-through to PATH.
    """
    if explicit:
        source, wanted = "--compiler", explicit
    elif os.environ.get(COMPILER_ENV):
        source, wanted = "$" + COMPILER_ENV, os.environ[COMPILER_ENV]
    else:
        source, wanted = "PATH", COMPILER_NAME
    path = _resolve(wanted)
    if path is None:
        if source == "PATH":
            raise compiler_not_found(
                "edgetpu_compiler not found on PATH (nor given by --compiler or $%s)" % COMPILER_ENV
            )
        raise compiler_not_found("edgetpu_compiler not found at %s (from %s), or not executable" % (wanted, source))
    try:
        proc = subprocess.run(
            [path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60
        )
    except subprocess.TimeoutExpired:
        raise compiler_not_found("%s --version did not answer within 60 s" % path) from None
    except OSError as exc:
        raise compiler_not_found("cannot run %s: %s" % (path, exc.strerror or exc)) from None
    text = proc.stdout.decode("utf-8", "replace")
    match = re.search(r"^\s*Edge TPU Compiler version\s+(\S.*)$", text, re.MULTILINE)
    if not match:
        first = text.strip().splitlines()[0] if text.strip() else "nothing"
        raise compiler_not_found("%s does not look like edgetpu_compiler: `--version` printed %r" % (path, first[:200]))
    return CompilerInfo(path=path, version=match.group(1).split()[-1], source=source)


def major_version(version: Optional[str]) -> int:
    match = re.match(r"(\d+)", version or "")
    return int(match.group(1)) if match else 0


def default_min_runtime(compiler_version: Optional[str]) -> Optional[int]:
    """The runtime version the compiler targets without `-m` (coral.ai's version table; None when unknown)."""
    for prefix, runtime in _DEFAULT_MIN_RUNTIME:
        if compiler_version and compiler_version.startswith(prefix):
            return runtime
    return None
