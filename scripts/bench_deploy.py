"""How long does one `deploy` over SSH take, and how many SSH connections does it open?

Starts a real OpenSSH server on 127.0.0.1 (tests/loopback_sshd.py, as the tests do), then deploys
Coral's MobileNet 0.25 (the compiled model; its CPU twin travels with it) with `--runs 20` to it
several times: in-process (`edgepipe.deploy.deploy`, what `fleet` calls) and through the CLI (what a
user types, including the CLI's own start-up). Connections are counted twice: by the report
(`ssh_connections`) and by the server's log (one "Accepted publickey" line per connection).
Target (issue 12): <= 1.2 s and 1 connection per deploy.

    .venv/bin/python scripts/bench_deploy.py [--rounds 5] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from _bench import CORAL_MODELS, model_missing
from loopback_sshd import SshdUnavailable, accepted_logins, loopback_sshd

from edgepipe.deploy import deploy, parse_target
from edgepipe.runtime.options import RunOptions

MODEL = CORAL_MODELS / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
TARGET_S = 1.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if model_missing(args.model):
        return 3
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        root = Path(tmp)
        try:
            server_cm = loopback_sshd(root / "sshd")
            server = server_cm.__enter__()
        except SshdUnavailable as exc:
            print(str(exc), file=sys.stderr)
            return 2
        try:
            rows = run_rounds(server, root, args)
        finally:
            server_cm.__exit__(None, None, None)
    for how in ("api", "cli"):
        walls = [r["wall_s"] for r in rows if r["how"] == how]
        logins = sorted({r["logins"] for r in rows if r["how"] == how})
        reported = sorted({r["reported"] for r in rows if r["how"] == how}, key=str)
        print(
            "%s: median %.3f s (min %.3f, max %.3f) over %d deploys; target <= %.1f s -> ratio %.2f; "
            "ssh connections per deploy: sshd log %s, report %s"
            % (how, statistics.median(walls), min(walls), max(walls), len(walls), TARGET_S,
               statistics.median(walls) / TARGET_S, logins, reported)
        )  # fmt: skip
        # Where the time goes (medians): the report's own steps; over SSH "upload" holds the connection's
        # handshake and the first command (one round trip). "outside" is the rest of the wall time: for the
        # CLI its start-up (imports) and printing.
        steps = {k: statistics.median(float(r["timings"].get(k, 0.0)) for r in rows if r["how"] == how)
                 for k in ("bundle", "upload", "run", "total")}  # fmt: skip
        outside = statistics.median(float(r["wall_s"]) - float(r["timings"].get("total", 0.0))
                                    for r in rows if r["how"] == how)  # fmt: skip
        print("    steps: bundle %.3f s, upload %.3f s, run %.3f s, total %.3f s; outside deploy() %.3f s"
              % (steps["bundle"], steps["upload"], steps["run"], steps["total"], outside))  # fmt: skip
    return 0


def run_rounds(server: Dict[str, object], root: Path, args: argparse.Namespace) -> List[Dict[str, object]]:
    log = Path(str(server["log"]))
    remote = root / "remote"
    remote.mkdir()
    common = dict(identity=Path(str(server["key"])), known_hosts=Path(str(server["known_hosts"])))
    rows: List[Dict[str, object]] = []
    cli = [sys.executable, "-m", "edgepipe.cli", "deploy", args.model, "--to", str(server["url"]),
           "--identity", str(server["key"]), "--known-hosts", str(server["known_hosts"]),
           "--python", sys.executable, "--remote-dir", str(remote), "--runs", str(args.runs), "--json"]  # fmt: skip
    for i in range(args.rounds + 1):  # round 0 warms the page cache and accepts the host key; not counted
        for how in ("api", "cli"):
            before = accepted_logins(log)
            start = time.perf_counter()
            if how == "api":
                target = parse_target(str(server["url"]), python=sys.executable, remote_dir=str(remote), **common)
                with target:
                    report = deploy([Path(args.model)], target, RunOptions(runs=args.runs))
                reported = report.ssh_connections
                timings = dict(report.timings_s)
            else:
                proc = subprocess.run(cli + ["--out", str(root / ("out%d" % i))], capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit("deploy failed: %s" % proc.stderr[-2000:])
                answer = json.loads(proc.stdout)
                reported, timings = answer.get("ssh_connections"), answer.get("timings_s") or {}
            wall = time.perf_counter() - start
            time.sleep(0.2)  # let sshd write its log line
            if i:
                rows.append({"how": how, "wall_s": wall, "logins": accepted_logins(log) - before, "reported": reported,
                             "timings": timings})  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.exit(main())
