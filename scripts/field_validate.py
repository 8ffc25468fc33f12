"""Field validation of a fleet of deployed boards (the inventory format: `edgepipe/fleet/__init__.py`).

    python scripts/field_validate.py INVENTORY.json [--baseline PREV.json] [--out DIR] [--jobs N]
                                     [--resume] [--shard K/N] [--json]

Prints one row per board (verdict, backend, p50, top-1, reasons); per-board progress goes to stderr.
Exit codes: 0 every board passed, 1 any board failed or was unreachable, 2 bad inventory, baseline or
option (one line on stderr), 130 interrupted (finished boards are kept in OUT/boards/: run again with
--resume), 143 terminated; other edgepipe errors exit with their own code (README, "Exit codes").
Same as `edgepipe fleet validate`; `edgepipe fleet merge` joins the reports of --shard runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any, List, Optional

from rich.console import Console

from edgepipe.errors import EdgepipeError
from edgepipe.fleet import progress_for, validate_fleet
from edgepipe.render import fleet_table
from edgepipe.runtime.errors import Terminated
from edgepipe.runtime.report import dumps, report_failure


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated()  # unwinds the fleet runner like Ctrl-C (it stops its boards' workers); exit 143


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="field_validate.py", description=__doc__.splitlines()[0])
    parser.add_argument("inventory", type=Path, help="inventory JSON (boards, models, expectations)")
    parser.add_argument("--baseline", type=Path, help="a previous fleet_report.json to compare against")
    parser.add_argument("--out", type=Path, default=Path("runs/fleet"), help="folder for fleet_report.json")
    parser.add_argument("--jobs", type=int, help="boards validated at once (default: min(4, boards))")
    parser.add_argument("--resume", action="store_true", help="skip boards already judged in --out")
    parser.add_argument("--shard", help="validate only shard K of N (K/N), chosen by a hash of the board name")
    parser.add_argument("--json", action="store_true", help="print the report as JSON only")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        report = validate_fleet(args.inventory, baseline=args.baseline, out_dir=args.out, progress=progress_for(err),
                                jobs=args.jobs, resume=args.resume, shard=args.shard)  # fmt: skip
    except (EdgepipeError, KeyboardInterrupt) as exc:
        return report_failure(exc, sys.stderr)
    if args.json:
        sys.stdout.write(dumps(report) + "\n")
    else:
        out.print(fleet_table(report))
        out.print("report: %s" % report.report_path, markup=False)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
