"""Host side of `edgepipe deploy`: bundle models with the device-side runner, ship, run, collect.

Transport only: `bundle` builds the folder, `transport` moves it (local folder or OpenSSH) and runs
commands there, `deploy` drives `python -m edgepipe.runtime` on the target and keeps its JSON.
"""

from .bundle import Bundle, build_bundle
from .deploy import DeployReport, ModelResult, check_python, deploy
from .transport import LocalTarget, SshTarget, parse_target

__all__ = [
    "Bundle",
    "DeployReport",
    "LocalTarget",
    "ModelResult",
    "SshTarget",
    "build_bundle",
    "check_python",
    "deploy",
    "parse_target",
]
