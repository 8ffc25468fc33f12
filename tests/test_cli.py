"""edgepipe/cli.py: the command line itself, apart from the stages it calls.

The run options (--backend, --device, --runs, ...) are declared once for every command that takes them
and reach the stage as one RunOptions; a value out of bounds is the one-line usage error RunOptions
words (exit 2), not typer's boxed one; and the help texts tell a newcomer where things come from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List

import pytest
from typer.testing import CliRunner

import edgepipe.deploy
import edgepipe.host_runner
import edgepipe.suites.resnet
from edgepipe.cli import app
from edgepipe.runtime.options import RunOptions


class Reached(Exception):
    """Raised by a stand-in stage: the command got this far and handed it these options."""

    def __init__(self, options: RunOptions) -> None:
        super().__init__("reached")
        self.options = options


def _stop(options_at: int) -> Any:
    def stage(*args: Any, **kwargs: Any) -> None:
        raise Reached(kwargs["options"] if "options" in kwargs else args[options_at])

    return stage


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["bench", "m.tflite", "--runs", "0"], "--runs"),
        (["bench", "m.tflite", "--warmup", "-1"], "--warmup"),
        (["bench", "m.tflite", "--threads", "0"], "--threads"),
        (["eval", "m.tflite", "--dataset", "mnist", "--threads", "0"], "--threads"),
        (["suite", "mnist", "--runs", "0"], "--runs"),
        (["suite", "resnet", "--warmup", "-1"], "--warmup"),
        (["deploy", "m.tflite", "--to", "local:DIR", "--runs", "0"], "--runs"),
    ],
)
def test_run_option_out_of_bounds_is_one_line_exit_2(argv: List[str], flag: str, tmp_path: Path) -> None:
    """`bench --runs 0` printed typer's multi-line boxed error; RunOptions' own line is the one wanted."""
    argv = [a.replace("DIR", str(tmp_path / "board")) for a in argv]
    if argv[0] in ("suite", "deploy"):
        argv += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: %s must be an integer from" % flag), result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out").exists() and not (tmp_path / "board").exists()


def test_run_options_reach_the_stage_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edgepipe.host_runner, "bench_model", _stop(1))
    argv = ["bench", "m.tflite", "--backend", "cpu", "--device", "usb:0", "--cpu-model", "twin.tflite"]
    argv += ["--runtime", "litert", "--threads", "3", "--runs", "7", "--warmup", "2"]
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, Reached), result.output
    wanted = RunOptions(backend="cpu", device="usb:0", cpu_model="twin.tflite", tflite_runtime="litert",
                        threads=3, runs=7, warmup=2)  # fmt: skip
    assert result.exception.options == wanted


def test_each_command_keeps_its_own_run_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(edgepipe.suites.resnet, "run_resnet_suite", _stop(-1))
    monkeypatch.setattr(edgepipe.deploy, "deploy", _stop(2))
    resnet = CliRunner().invoke(app, ["suite", "resnet", "--out", str(tmp_path / "r")])
    assert isinstance(resnet.exception, Reached), resnet.output
    assert resnet.exception.options == RunOptions(runs=50, warmup=5)
    deploy = CliRunner().invoke(app, ["deploy", "m.tflite", "--to", "local:%s" % tmp_path, "--out", str(tmp_path)])
    assert isinstance(deploy.exception, Reached), deploy.output
    assert deploy.exception.options == RunOptions(runs=100, warmup=10)


def _option_help(command: List[str], flag: str) -> str:
    """The help row of `flag` on `command --help`, box and padding removed."""
    screen = CliRunner().invoke(app, command + ["--help"], env={"COLUMNS": "400"}).output
    rows = [" ".join(re.sub("[\u2500-\u257f*]", " ", line).split()) for line in screen.splitlines()]
    found = [row for row in rows if row.split(" ")[0] == flag]
    assert len(found) == 1, (command, flag, screen)
    return found[0]


def test_help_says_where_things_come_from() -> None:
    """The first hour: help texts left out the download cache, the compiler's variable and labels.csv."""
    assert "download cache" in _option_help(["eval"], "--data-dir")
    for suite in (["suite", "mnist"], ["suite", "resnet"]):
        assert "$EDGEPIPE_EDGETPU_COMPILER" in _option_help(suite, "--compiler")
    assert "labels.csv" in _option_help(["convert"], "--calib")
    for command in (["bench"], ["eval"], ["convert"], ["suite", "mnist"], ["deploy"], ["fleet", "merge"]):
        assert _option_help(command, "--json").startswith("--json Print"), command  # a flag: no <bool>


@pytest.mark.parametrize(
    "argv, words, where",
    [
        (["eval", "m.tflite", "--dataset", "mnist", "--limit", "0"], "Invalid value for '--limit'", "edgepipe eval"),
        (["bench", "m.tflite", "--bogus"], "No such option: --bogus", "edgepipe bench"),
        (["nosuch"], "No such command 'nosuch'", "edgepipe"),
        (["bench"], "Missing argument", "edgepipe bench"),
        (["suite", "mnist", "--epochs", "0"], "Invalid value for '--epochs'", "edgepipe suite mnist"),
        (["compile"], "give MODEL.tflite (one or more), or --from-log FILE", "edgepipe compile"),
    ],
)
def test_command_line_mistakes_are_one_line_exit_2(argv: List[str], words: str, where: str) -> None:
    """typer's own parse errors (unknown option or command, a typer bound, a missing argument, a command's
    BadParameter) were a usage text and a boxed panel; now one `error:` line naming where the help is."""
    result = CliRunner().invoke(app, argv, prog_name="edgepipe")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
    assert lines[0].endswith("See `%s --help`" % where), lines[0]
    assert result.stdout == ""


def test_bare_groups_still_print_their_help() -> None:
    """The one-line rule stops at `edgepipe` / `edgepipe suite` with nothing after them: those show help."""
    for argv in ([], ["suite"]):
        result = CliRunner().invoke(app, argv, prog_name="edgepipe")
        assert result.exit_code == 2 and "Usage: edgepipe" in result.output and "error:" not in result.output
