"""One exit-code table for both sides (README, "Exit codes"): the host's `edgepipe` and the board's
`python -m edgepipe.runtime` give the code of the README's row for the same bad input, and every code an
error class (anywhere in the package) or a front door can produce is a row of that table.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Type

import pytest
from conftest import REPO, need_module, shared_path

import edgepipe
from edgepipe.runtime import errors as runtime_errors
from edgepipe.runtime.errors import EdgepipeError

_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(.+?)\s*\|\s*$")


def readme_exit_codes() -> Dict[int, str]:
    """{code: meaning} from the table under README's "## Exit codes" heading."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    codes = {int(m.group(1)): m.group(2) for m in map(_ROW.match, section.splitlines()) if m}
    assert codes, "no exit-code table in README's Exit codes section"
    return codes


def error_classes() -> Iterator[Type[EdgepipeError]]:
    """Every EdgepipeError subclass of the package (each module imported: some live beside their stage)."""
    for module in pkgutil.walk_packages(edgepipe.__path__, "edgepipe."):
        if not module.name.endswith("__main__"):  # running those is their import
            importlib.import_module(module.name)
    pending: List[Type[EdgepipeError]] = [EdgepipeError]
    while pending:
        cls = pending.pop()
        yield cls
        pending.extend(cls.__subclasses__())


def test_every_code_an_error_or_a_front_door_can_give_is_in_the_readme_table() -> None:
    codes = readme_exit_codes()
    produced = {"%s.%s" % (cls.__module__, cls.__name__): cls.exit_code for cls in error_classes()}
    assert len(produced) > 20  # the walk found the package's errors, not only the base class
    for name in ("EXIT_INTERNAL", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_TERMINATED"):
        produced["edgepipe.runtime.errors." + name] = getattr(runtime_errors, name)
    produced["success"] = 0
    missing = {name: code for name, code in produced.items() if code not in codes}
    assert not missing, "exit codes not in README's table: %s" % missing


def test_the_readme_row_for_23_names_the_runtime_crash() -> None:
    row = readme_exit_codes()[23]
    assert "inference failed" in row and "crashed (SIGSEGV)" in row and "deploy" in row


def run(front: str, args: List[str]) -> subprocess.CompletedProcess:
    command = ["-m", "edgepipe.cli"] if front == "host" else ["-m", "edgepipe.runtime"]
    env = dict(os.environ, COLUMNS="250")
    return subprocess.run([sys.executable, *command, *args], capture_output=True, text=True, env=env, timeout=300)


GOOD = ("models", "coral-test-data", "keras_lstm_mnist_ptq.tflite")
HOSTILE = ("models", "hostile", "segv_lstm.tflite")  # crashes both runtimes (tests/test_hostile.py)

# (case, README code, words of its README row, host arguments, device-side arguments); {good}, {hostile},
# {tmp} are filled in. The host's eval takes an npy: file, the device side's an .npz: each its own form.
CASES = [
    ("model missing", 3, "not found", ["bench", "{tmp}/none.tflite"], ["bench", "{tmp}/none.tflite"]),
    ("model not TFLite", 4, "model format", ["bench", "{tmp}/text.tflite"], ["bench", "{tmp}/text.tflite"]),
    ("model is a folder", 4, "model format", ["bench", "{tmp}"], ["bench", "{tmp}"]),
    ("--runs 0", 2, "bad command line", ["bench", "{good}", "--runs", "0"], ["bench", "{good}", "--runs", "0"]),
    ("--runs 10**22", 2, "bad command line", ["bench", "{good}", "--runs", "1" + "0" * 22],
     ["bench", "{good}", "--runs", "1" + "0" * 22]),
    ("--device bogus", 24, "device string", ["bench", "{good}", "--device", "bogus"],
     ["bench", "{good}", "--device", "bogus"]),
    ("eval data missing", 3, "not found", ["eval", "{good}", "--dataset", "npy:{tmp}/none.npy"],
     ["eval", "{good}", "--data", "{tmp}/none.npz"]),
    ("eval data not an array file", 6, "dataset problem", ["eval", "{good}", "--dataset", "npy:{tmp}/text.tflite",
     "--labels", "{tmp}/text.tflite"], ["eval", "{good}", "--data", "{tmp}/text.tflite"]),
    ("runtime crash", 23, "crashed", ["bench", "{hostile}", "--runs", "2", "--runtime", "litert"],
     ["bench", "{hostile}", "--runs", "2", "--runtime", "litert"]),
]  # fmt: skip


@pytest.mark.parametrize("case, code, words, host, device", CASES, ids=[c[0] for c in CASES])
def test_both_command_lines_give_the_readme_code_for_the_same_bad_input(
    case: str, code: int, words: str, host: List[str], device: List[str], tmp_path: Path
) -> None:
    if case == "runtime crash":
        need_module("ai_edge_litert", "pip install 'edgepipe[dev]'")
    row = readme_exit_codes()[code]
    assert words in row, "README's row %d (%s) does not say %r" % (code, row, words)
    (tmp_path / "text.tflite").write_text("not a model\n")
    paths = {"good": str(shared_path(*GOOD)), "hostile": str(shared_path(*HOSTILE)), "tmp": str(tmp_path)}
    for front, args in (("host", host), ("device side", device)):
        proc = run(front, [a.format(**paths) for a in args])
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == code, "%s, %s: exit %d, README says %d: %s" % (case, front, proc.returncode, code,
                                                                                 proc.stderr[-1500:])  # fmt: skip
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
