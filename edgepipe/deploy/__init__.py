"""Host side of `edgepipe deploy`: bundle models with the device-side runner, ship, run, collect.

Transport only: `bundle` builds the folder, `transport` moves it (local folder or OpenSSH) and runs
commands there, `deploy` drives `python -m edgepipe.runtime` on the target and keeps its JSON.
One bundle for many targets: `build_bundle` (or `load_bundle`) once, then `deploy_bundle` per target.
"""

from .bundle import Bundle, build_bundle, load_bundle
from .deploy import DeployReport, ModelResult, check_out_dir, check_python, deploy, deploy_bundle
from .transport import LocalTarget, SshTarget, parse_target

__all__ = [
    "Bundle",
    "DeployReport",
    "LocalTarget",
    "ModelResult",
    "SshTarget",
    "build_bundle",
    "check_out_dir",
    "check_python",
    "deploy",
    "deploy_bundle",
    "load_bundle",
    "parse_target",
]
