"""A bounded fuzz of the isolated runner: real small models with a few bytes changed (fixed seed), those
the reader accepts benchmarked through `host_runner.bench_model` (the path `edgepipe bench` takes: a
forked child) on both TFLite runtimes. Every outcome must be a result or a typed error (an EdgepipeError
whose exit code is in README's table, one line), never a signal that kills the test process, a traceback
from the child (IsolatedBug) or any other exception.

Half the changed bytes are zero bytes of the original made non-zero, as in ../shared/models/hostile: in a
flatbuffer those are mostly high bytes of offsets, sizes and dimensions, which is where the runtimes
crash; uniform changes mostly land in weights and change nothing. Measured here with this seed: the
reader refuses 135 of 300; of the rest, tflite_runtime 2.14 dies with SIGSEGV on 2 and fails to allocate
or invoke 25 (exit 23), ai_edge_litert 2.3 fails 56 (exit 23); all others give a result. About 25 s.
"""

from __future__ import annotations

import faulthandler
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, List, Tuple

from conftest import need_module, shared_path
from test_exit_codes import readme_exit_codes

from edgepipe.errors import EdgepipeError
from edgepipe.host_runner import bench_model
from edgepipe.runtime.options import RunOptions
from edgepipe.runtime.tflite_reader import read_model

SEED = 8
MUTANTS = 300
RUNTIMES = ["ai_edge_litert", "tflite_runtime"]
HANG_S = 60  # one mutant's bench; far above the ~0.05 s a normal one takes


def sources() -> List[Path]:
    return [
        shared_path("models", "coral-test-data", "keras_lstm_mnist_ptq.tflite"),  # LSTM, 14 kB
        shared_path("models", "mlperf-tiny-resnet8", "pretrainedResnet_quant.tflite"),  # convolutions, 98 kB
    ]


def mutants(folder: Path) -> Iterator[Tuple[str, Path]]:
    """MUTANTS models, each a source with 1-4 bytes changed; yields (what was changed, path)."""
    rng = random.Random(SEED)
    originals = [(path.name, path.read_bytes()) for path in sources()]
    zeros = [[i for i, b in enumerate(data) if b == 0] for _, data in originals]
    for n in range(MUTANTS):
        name, original = originals[n % len(originals)]
        data = bytearray(original)
        changes = []
        for _ in range(rng.randint(1, 4)):
            at = rng.choice(zeros[n % len(originals)]) if rng.random() < 0.5 else rng.randrange(len(data))
            new = rng.randrange(1, 256)
            changes.append("%d: %d→%d" % (at, data[at], new))
            data[at] = new
        path = folder / ("mutant_%03d.tflite" % n)
        path.write_bytes(bytes(data))
        yield "%s with %s" % (name, ", ".join(changes)), path


def _hung(signum: int, frame: Any) -> None:
    raise TimeoutError("no outcome within %d s" % HANG_S)  # run_isolated stops the child on any exception


def test_mutated_models_give_a_result_or_a_typed_error_on_both_runtimes(tmp_path: Path) -> None:
    for runtime in RUNTIMES:
        need_module(runtime, "pip install 'edgepipe[dev]' (ai-edge-litert, tflite-runtime 2.14 on Python < 3.12)")
    codes = readme_exit_codes()
    outcomes: Counter = Counter()
    saved = signal.signal(signal.SIGALRM, _hung)
    dumping = faulthandler.is_enabled()  # pytest's: a crashing child would print its stack as well
    faulthandler.disable()
    try:
        for what, path in mutants(tmp_path):
            try:
                read_model(str(path))
            except EdgepipeError as exc:
                assert exc.exit_code == 4, "%s: the reader said %r" % (what, exc)
                outcomes["refused by the reader"] += 1
                continue
            for runtime in RUNTIMES:
                signal.alarm(HANG_S)
                try:
                    result = bench_model(path, RunOptions(backend="cpu", runs=2, warmup=0, tflite_runtime=runtime))
                except EdgepipeError as exc:
                    line = exc.one_line()
                    assert exc.exit_code in codes and "\n" not in line, "%s on %s: %s" % (what, runtime, line)
                    outcomes["%s: %s (exit %d)" % (runtime, getattr(exc, "signal", None) or type(exc).__name__,
                                                   exc.exit_code)] += 1  # fmt: skip
                else:
                    assert result.runs == 2, "%s on %s" % (what, runtime)
                    outcomes["%s: result" % runtime] += 1
                finally:
                    signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, saved)
        if dumping:
            faulthandler.enable()
    print("fuzz outcomes (seed %d, %d mutants): %s" % (SEED, MUTANTS, dict(sorted(outcomes.items()))))
    benched = sum(n for key, n in outcomes.items() if key != "refused by the reader")
    assert benched >= MUTANTS // 2 * len(RUNTIMES) // 2, outcomes  # the reader accepted enough to mean something
    assert all(outcomes["%s: result" % runtime] for runtime in RUNTIMES), outcomes
