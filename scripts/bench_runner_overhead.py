"""Does the runner add overhead to invoke-only latency? `bench` p50 vs a bare `interpreter.invoke()` loop.

Both time the same allocated interpreter (same model, same input, same thread count) in alternating
rounds, so that machine load drifts affect both alike. Target: runner p50 within 5 % of the bare p50.

    .venv/bin/python scripts/bench_runner_overhead.py [--model M.tflite] [--runtime litert] [--rounds 7] [--runs 300]

Default model: Coral's uncompiled MobileNet (../shared/models/coral-test-data), on the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import List

from _bench import CORAL_MODELS, model_missing

from edgepipe.runtime.runner import benchmark
from edgepipe.runtime.session import open_session

DEFAULT_MODEL = CORAL_MODELS / "mobilenet_v1_0.25_128_quant.tflite"
TARGET = 0.05


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

    session = open_session(args.model, backend="cpu", tflite_runtime=args.runtime, threads=args.threads)
    benchmark(session, runs=args.warmup, warmup=args.warmup)  # sets the inputs and warms caches
    runner_p50: List[float] = []
    bare_p50: List[float] = []
    for round_index in range(args.rounds):
        # Alternate who goes first, so a trend in machine load does not favour one side.
        order = ("runner", "bare") if round_index % 2 == 0 else ("bare", "runner")
        for who in order:
            if who == "runner":
                runner_p50.append(benchmark(session, runs=args.runs, warmup=args.warmup).latency_ms.p50)
            else:
                bare_p50.append(bare_loop_p50_ms(session.interpreter, args.runs, args.warmup))
        print(
            "round %d: runner p50 %.4f ms, bare p50 %.4f ms, ratio %.4f"
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
        "runner invoke-only p50 (median of rounds) %.4f ms, bare invoke loop %.4f ms"
        % (statistics.median(runner_p50), statistics.median(bare_p50))
    )
    verdict = "within" if abs(ratio - 1) <= TARGET else "OUTSIDE"
    print(
        "ratio runner/bare = %.4f (median of per-round ratios): %s the %.0f %% target" % (ratio, verdict, TARGET * 100)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
