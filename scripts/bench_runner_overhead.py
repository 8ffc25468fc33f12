"""Does the runner add overhead to invoke-only latency? `edgepipe bench`'s p50 vs a bare `interpreter.invoke()` loop.

The runner side is what `edgepipe bench` calls: `host_runner.bench_model`, which runs the model in a
forked child (`runtime.isolated`: a TFLite runtime crash becomes exit 23) where it opens the session and
times the invokes. The bare side is the simplest loop anyone would write around invoke(), on an
interpreter this process opened (same model, runtime, thread count and seeded input). They alternate in rounds,
so that machine load drifts affect both alike. Target: p50 of the isolated runner at most 5 % above the
bare p50 (ratio <= 1.05). The wall time of each bench_model call (fork, session opening and warm-up
included) is printed too.

    .venv/bin/python scripts/bench_runner_overhead.py [--model M.tflite] [--runtime litert] [--rounds 7] [--runs 300]

Default model: Coral's uncompiled MobileNet (../shared/models/coral-test-data), on the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import List

from _bench import CORAL_MODELS, model_missing

from edgepipe.host_runner import bench_model
from edgepipe.runtime.isolated import isolation_enabled
from edgepipe.runtime.options import RunOptions
from edgepipe.runtime.runner import benchmark
from edgepipe.runtime.session import open_session

DEFAULT_MODEL = CORAL_MODELS / "mobilenet_v1_0.25_128_quant.tflite"
TARGET = 0.05  # the isolated runner's p50 at most 5 % above the bare loop's (below is no overhead, only noise)


def bare_loop_p50_ms(interpreter, runs: int, warmup: int) -> float:
    """The reference: the simplest loop anyone would write around invoke()."""
    for _ in range(warmup):
        interpreter.invoke()
    times: List[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--runtime", default="litert", help="litert, tflite_runtime or tensorflow")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (1: least noise)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    if model_missing(args.model):
        return 3

    if not isolation_enabled():
        print("isolation is off here (no fork, or $EDGEPIPE_ISOLATE=0): bench would run in-process", file=sys.stderr)
    options = RunOptions(backend="cpu", tflite_runtime=args.runtime, threads=args.threads, runs=args.runs,
                         warmup=args.warmup)  # fmt: skip
    # With one thread the interpreter opened here has no worker threads when bench_model forks.
    session = open_session(args.model, options)
    benchmark(session, runs=args.warmup, warmup=args.warmup)  # sets bench's seeded inputs and warms caches
    runner_p50: List[float] = []
    bare_p50: List[float] = []
    call_s: List[float] = []
    for round_index in range(args.rounds):
        # Alternate who goes first, so a trend in machine load does not favour one side.
        order = ("runner", "bare") if round_index % 2 == 0 else ("bare", "runner")
        for who in order:
            if who == "runner":
                started = time.perf_counter()
                runner_p50.append(bench_model(Path(args.model), options).latency_ms.p50)
                call_s.append(time.perf_counter() - started)
            else:
                bare_p50.append(bare_loop_p50_ms(session.interpreter, args.runs, args.warmup))
        print(
            "round %d: isolated bench p50 %.4f ms, bare p50 %.4f ms, ratio %.4f"
            % (round_index + 1, runner_p50[-1], bare_p50[-1], runner_p50[-1] / bare_p50[-1])
        )
    per_round = [r / b for r, b in zip(runner_p50, bare_p50)]
    ratio = statistics.median(per_round)
    runtime = session.tflite
    print(
        "model %s, %s %s, %d thread(s), %d rounds x %d runs"
        % (os.path.basename(args.model), runtime.name, runtime.version, args.threads, args.rounds, args.runs)
    )
    print(
        "isolated bench invoke-only p50 (median of rounds) %.4f ms, bare invoke loop %.4f ms"
        % (statistics.median(runner_p50), statistics.median(bare_p50))
    )
    print("one bench_model call (fork, session, %d warm-up + %d runs) %.3f s median"
          % (args.warmup, args.runs, statistics.median(call_s)))  # fmt: skip
    verdict = "within" if ratio <= 1 + TARGET else "OUTSIDE"
    print(
        "p50 ratio isolated bench / bare loop = %.4f (median of per-round ratios): %s the %.0f %% target"
        % (ratio, verdict, TARGET * 100)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
