"""How much does `--jobs` shorten a fleet validation? 32 simulated boards, --jobs 1 vs --jobs 8, one run.

Half the boards are `local:` folders, half are logins on two real OpenSSH servers on 127.0.0.1
(tests/loopback_sshd.py, as the tests start them; two ports, each board its own remote folder). The
model is Coral's MobileNet 0.25 (uncompiled, CPU), a few runs, no eval. A real board works on its own
CPU, while here all 32 share this machine's cores; so every board's `python` (the inventory key
"python") is a wrapper that first sleeps 1 s, as a slow board's interpreter would, and the ratio
measures edgepipe's orchestration, not the host's cores. Target (issue 12): wall(8) / wall(1) <= 0.3.

    .venv/bin/python scripts/bench_fleet.py [--boards 32] [--jobs 8] [--runs 3] [--delay 1.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, List

from _bench import CORAL_MODELS, model_missing
from loopback_sshd import SshdUnavailable, loopback_sshd

from edgepipe.fleet import validate_fleet

MODEL = CORAL_MODELS / "mobilenet_v1_0.25_128_quant.tflite"
TARGET_RATIO = 0.3


def slow_python(folder: Path, delay: float) -> Path:
    """A `python` that waits `delay` seconds before it starts, like a slow board's interpreter."""
    wrapper = folder / "slow-python"
    wrapper.write_text('#!/bin/sh\nsleep %s\nexec %s "$@"\n' % (delay, sys.executable))
    wrapper.chmod(0o755)
    return wrapper


def write_inventory(root: Path, servers: List[Dict[str, Any]], boards: int, runs: int, python: Path) -> Path:
    entries: List[Dict[str, Any]] = []
    for i in range(boards):
        name = "board-%02d" % i
        if i % 2 == 0:
            entries.append({"name": name, "to": "local:boards/%s" % name, "python": str(python)})
        else:
            server = servers[(i // 2) % len(servers)]
            entries.append({"name": name, "to": server["url"], "identity": str(server["key"]),
                            "known_hosts": str(server["known_hosts"]), "python": str(python),
                            "remote_dir": str(root / "remote" / name)})  # fmt: skip
            (root / "remote" / name).mkdir(parents=True)
    inventory = {"models": [str(MODEL)], "runs": runs, "warmup": 1, "expect": {"backend": "cpu"},
                 "boards": entries}  # fmt: skip
    path = root / "fleet.json"
    path.write_text(json.dumps(inventory, indent=2))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each board's python waits first")
    args = parser.parse_args()
    if model_missing(MODEL):
        return 3
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        try:
            servers = [stack.enter_context(loopback_sshd(root / ("sshd%d" % i))) for i in range(2)]
        except SshdUnavailable as exc:
            print(str(exc), file=sys.stderr)
            return 2
        inventory = write_inventory(root, servers, args.boards, args.runs, slow_python(root, args.delay))
        walls: Dict[int, float] = {}
        for jobs in (1, args.jobs):
            start = time.perf_counter()
            report = validate_fleet(inventory, out_dir=root / ("out-jobs%d" % jobs), jobs=jobs)
            walls[jobs] = time.perf_counter() - start
            per_board = [b.elapsed_s for b in report.boards]
            print("--jobs %d: %.1f s wall for %d boards (%s); per board median %.2f s, max %.2f s"
                  % (jobs, walls[jobs], len(report.boards), report.counts, statistics.median(per_board),
                     max(per_board)), flush=True)  # fmt: skip
            if not report.passed:
                for board in report.boards:
                    if board.verdict != "pass":
                        print("  %s: %s: %s" % (board.name, board.verdict, "; ".join(board.reasons)), file=sys.stderr)
                return 1
    ratio = walls[args.jobs] / walls[1]
    print("wall(--jobs %d) / wall(--jobs 1) = %.3f (target <= %.1f: %s)"
          % (args.jobs, ratio, TARGET_RATIO, "met" if ratio <= TARGET_RATIO else "NOT met"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
