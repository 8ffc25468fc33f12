"""Field validation of a fleet of deployed boards (the inventory format: `edgepipe/fleet.py`).

    python scripts/field_validate.py INVENTORY.json [--baseline PREV.json] [--out DIR] [--json]

Prints one row per board (verdict, backend, p50, top-1, reasons); progress goes to stderr.
Exit codes: 0 every board passed, 1 any board failed or was unreachable, 2 bad inventory or baseline
file (one line on stderr); other edgepipe errors exit with their own code (README, "Exit codes").
Same as `edgepipe fleet validate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from rich.console import Console

from edgepipe.errors import EdgepipeError
from edgepipe.fleet import validate_fleet
from edgepipe.render import fleet_table
from edgepipe.runtime.report import dumps, report_failure


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="field_validate.py", description=__doc__.splitlines()[0])
    parser.add_argument("inventory", type=Path, help="inventory JSON (boards, models, expectations)")
    parser.add_argument("--baseline", type=Path, help="a previous fleet_report.json to compare against")
    parser.add_argument("--out", type=Path, default=Path("runs/fleet"), help="folder for fleet_report.json")
    parser.add_argument("--json", action="store_true", help="print the report as JSON only")
    args = parser.parse_args(argv)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        report = validate_fleet(
            args.inventory, baseline=args.baseline, out_dir=args.out,
            progress=lambda message: err.print(message, style="dim", markup=False),
        )  # fmt: skip
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
