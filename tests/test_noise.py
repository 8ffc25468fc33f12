"""Normal output carries no TFLite runtime chatter (issue 14), but every other line the runtime prints.

LiteRT (and tf.lite) print "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ to file
descriptor 2 at a process's first allocate_tensors; `quiet_runtime_log()` drops that line and replays
the rest. These run real commands in real processes: only there does the runtime write to the descriptor.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

from conftest import REPO, need_module

from edgepipe.runtime.interpreters import RUNTIME_CHATTER

XNNPACK_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
RESNET8_INT8 = ("mlperf-tiny-resnet8", "pretrainedResnet_quant.tflite")


def run(argv: List[str], **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    environment.pop("EDGEPIPE_TFLITE_RUNTIME", None)
    environment.update(env)
    return subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO), env=environment, timeout=300)


def test_litert_really_prints_the_info_line(resnet8_dir: Path) -> None:
    """The control: a bare interpreter prints the line, so its absence below is edgepipe's doing."""
    need_module("ai_edge_litert", "pip install ai-edge-litert")
    code = "from ai_edge_litert.interpreter import Interpreter; Interpreter(model_path=%r).allocate_tensors()"
    proc = run([sys.executable, "-c", code % str(resnet8_dir / RESNET8_INT8[1])])
    assert proc.returncode == 0, proc.stderr
    assert XNNPACK_INFO in proc.stderr.splitlines()
    assert XNNPACK_INFO in RUNTIME_CHATTER


def test_bench_eval_and_device_bench_print_no_info_line(resnet8_dir: Path, datasets_dir: Path) -> None:
    """`edgepipe bench`, `edgepipe eval` (both run the model in a forked child) and the board's
    `python -m edgepipe.runtime bench` on the real MLPerf ResNet-8: no INFO line on stdout or stderr."""
    need_module("ai_edge_litert", "pip install ai-edge-litert")
    model = str(resnet8_dir / RESNET8_INT8[1])
    commands = [
        [sys.executable, "-m", "edgepipe.cli", "bench", model, "--runs", "3"],
        [sys.executable, "-m", "edgepipe.cli", "bench", model, "--runs", "3", "--json"],
        [sys.executable, "-m", "edgepipe.runtime", "bench", model, "--runs", "3"],
        [sys.executable, "-m", "edgepipe.cli", "eval", model, "--dataset", "cifar10", "--data-dir", str(datasets_dir),
         "--limit", "20", "--preprocess", "raw"],
    ]  # fmt: skip
    for argv in commands:
        proc = run(argv)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert "p50" in proc.stdout or "top1" in proc.stdout or "top-1" in proc.stdout, proc.stdout
        assert "XNNPACK" not in proc.stdout + proc.stderr, (argv, proc.stderr)


def test_a_real_runtime_warning_printed_while_loading_still_reaches_stderr(resnet8_dir: Path) -> None:
    """tf.lite's interpreter warns that it is deprecated while it is created, inside the quiet block:
    that line reaches stderr (only the INFO line is dropped), and so does edgepipe's own error."""
    need_module("tensorflow", "pip install -e '.[convert]'")
    model = str(resnet8_dir / RESNET8_INT8[1])
    proc = run(
        [sys.executable, "-m", "edgepipe.cli", "bench", model, "--runs", "3"], EDGEPIPE_TFLITE_RUNTIME="tensorflow"
    )
    assert proc.returncode == 0, proc.stderr
    assert "tf.lite.Interpreter is deprecated" in proc.stderr
    assert XNNPACK_INFO not in proc.stderr
    broken = str(resnet8_dir.parent / "coral-test-data" / "model_invoking_error.tflite")
    proc = run([sys.executable, "-m", "edgepipe.cli", "bench", broken], EDGEPIPE_TFLITE_RUNTIME="tensorflow")
    assert proc.returncode == 23, proc.stderr
    assert "unresolved custom op: fake-op-double" in proc.stderr
    assert XNNPACK_INFO not in proc.stderr


DELIBERATE = """
import ctypes, sys
from edgepipe.runtime.interpreters import load_tflite_runtime, quiet_runtime_log
libc = ctypes.CDLL(None)
runtime = load_tflite_runtime("ai_edge_litert")
with quiet_runtime_log():
    libc.dprintf(2, b"ERROR: first, from C\\n")
    runtime.make_interpreter(sys.argv[1]).allocate_tensors()
    sys.stderr.write("a Python warning\\n")
    libc.dprintf(2, b"ERROR: last, from C, no newline")
print("done")
"""


def test_quiet_runtime_log_replays_every_other_line_in_order(resnet8_dir: Path) -> None:
    """Lines written to descriptor 2 from C and from Python inside the block, around a real
    allocate_tensors, all come out on stderr in order, the last one without its newline too."""
    need_module("ai_edge_litert", "pip install ai-edge-litert")
    proc = run([sys.executable, "-c", DELIBERATE, str(resnet8_dir / RESNET8_INT8[1])])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    assert proc.stderr == "ERROR: first, from C\na Python warning\nERROR: last, from C, no newline"


OUT_OF_ORDER = """
import os, sys, threading
from edgepipe.runtime.interpreters import quiet_runtime_log
a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()

def first():
    with quiet_runtime_log():
        os.write(2, b"from the first block\\n")
        a_inside.set()
        b_inside.wait(1)  # set only if both blocks may be open at once
    a_left.set()

def second():
    a_inside.wait(10)
    with quiet_runtime_log():
        b_inside.set()
        a_left.wait(10)  # so the first block ends while this one is open
        os.write(2, b"from the second block\\n")

threads = [threading.Thread(target=f) for f in (second, first)]
for t in threads:
    t.start()
for t in threads:
    t.join()
os.write(2, b"after both\\n")
"""


def test_quiet_blocks_in_two_threads_leave_stderr_where_it_was() -> None:
    """Two threads each in a quiet block, the first leaving while the second would be inside: every
    line, and what is written after both, still reaches the real stderr (not a temporary file)."""
    proc = run([sys.executable, "-c", OUT_OF_ORDER])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["from the first block", "from the second block", "after both"]
