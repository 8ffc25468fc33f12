"""What the bench scripts share: the repository and its tests/ (the loopback sshd) importable, where the
shared data is ($EDGEPIPE_SHARED, else ../shared beside the repository), and the missing-model check.

Imported first by each `scripts/bench_*.py`; they run as `python scripts/NAME.py`, so this folder is on
sys.path already.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPIPE_SHARED", REPO.parent / "shared"))
CORAL_MODELS = SHARED / "models" / "coral-test-data"

for _folder in (REPO, REPO / "tests"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def model_missing(path: os.PathLike | str) -> bool:
    """True, after a line on stderr, when `path` is not a file (the script then exits 3)."""
    if os.path.isfile(path):
        return False
    print("model not found: %s (set EDGEPIPE_SHARED)" % path, file=sys.stderr)
    return True
