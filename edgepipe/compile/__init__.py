"""The compile stage: run `edgetpu_compiler`, read what it says, and turn that into a verdict.

One file per step: `find` (locate the compiler, its version), `command` (its argv and the files it
writes), `process` (run it under a watchdog), `parse` (its text -> `CompilerOutput`, no I/O),
`verdict` (accepted / rejected / failed, the report and its typed error), `preflight_compare`
(its operator table vs edgepipe's offline prediction), `run` (`compile_models`: all of the above)
and `from_log` (judge output saved elsewhere). Facts and exact strings: the compiler's documentation,
https://coral.ai/docs/edgetpu/compiler/, and real outputs quoted in google-coral/edgetpu issues.
"""

from .command import build_command, expected_outputs
from .find import COMPILER_ENV, COMPILER_NAME, INSTALL_HINT, CompilerInfo, default_min_runtime, find_compiler
from .from_log import report_from_log
from .parse import (
    MAPPED,
    CompilerFailure,
    CompilerOutput,
    ModelBlock,
    OperatorRow,
    attach_log,
    merge_rows,
    parse_compiler_output,
)
from .preflight_compare import compare_with_preflight
from .run import compile_models
from .verdict import REPORT_NAME, CompileReport, ModelResult, verdict_error

__all__ = [
    "COMPILER_ENV",
    "COMPILER_NAME",
    "INSTALL_HINT",
    "MAPPED",
    "REPORT_NAME",
    "CompileReport",
    "CompilerFailure",
    "CompilerInfo",
    "CompilerOutput",
    "ModelBlock",
    "ModelResult",
    "OperatorRow",
    "attach_log",
    "build_command",
    "compare_with_preflight",
    "compile_models",
    "default_min_runtime",
    "expected_outputs",
    "find_compiler",
    "merge_rows",
    "parse_compiler_output",
    "report_from_log",
    "verdict_error",
]
