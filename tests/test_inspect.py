"""`edgepipe inspect` (edgepipe.runtime.preflight) against real models and hostile files.

- "real pair" tests use Coral's uncompiled/compiled pairs in ../shared/models/coral-test-data: the
  compiled file is the real edgetpu_compiler's output, so the ops still in it are exactly the ops the
  compiler left on the CPU. The pre-flight on the uncompiled file must name the same ops.
- TF tests convert small Keras models with the real TF converter (tf.lite.TFLiteConverter, not
  edgepipe.convert) once per session, and cross-check the reader with the LiteRT interpreter.
- Rule tests build tiny flatbuffers by hand (`_Flatbuffer` below): the only way to get e.g. a
  CONV_2D v6 or a rank-4 activation without a TensorFlow of that era. They say "synthetic" in their names.
- Bad input: real files broken in known ways, hostile flatbuffers (shared tables, absurd counts,
  cycles), and a bounded hypothesis fuzz over mutated real models.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
from _tflite_builder import FB, TYPE
from _tflite_builder import model as _model
from _tflite_builder import op as _op
from _tflite_builder import opcode as _opcode
from _tflite_builder import tensor as _tensor
from conftest import REPO, SHARED, missing, need_module, shared_path
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgepipe.cli import app
from edgepipe.runtime import preflight as insp
from edgepipe.runtime.errors import EdgepipeError, InputNotFoundError, ModelFormatError
from edgepipe.runtime.preflight import (
    MAPPED,
    MORE_THAN_ONE_SUBGRAPH,
    NON_UNIT_STRIDES,
    NOT_SUPPORTED,
    PARAM_NOT_CONSTANT,
    UNSUPPORTED_DTYPE,
    UNSUPPORTED_RANK,
    VERSION_NOT_SUPPORTED,
    InspectReport,
    inspect_file,
    inspect_model,
    main_inspect,
)
from edgepipe.runtime.report import dumps
from edgepipe.runtime.text import render_text
from edgepipe.runtime.tflite_reader import EDGETPU_CUSTOM_OP, read_model, read_model_bytes

# Every uncompiled/compiled pair in the folder, found when the tests are collected, so a pair added to
# ../shared gets its own test id without a change here. (No folder: one placeholder id, which skips
# locally and fails in CI through the coral_data fixture.)
LITERT = "pip install 'edgepipe[convert]'"  # ai_edge_litert comes with the convert extra
_CORAL_DIR = SHARED / "models" / "coral-test-data"
PAIRS = sorted(p.name[: -len("_edgetpu.tflite")] for p in _CORAL_DIR.glob("*_edgetpu.tflite")) or ["no-coral-test-data"]
# Pairs the pre-flight is known to get wrong, with the reason: each is a strict xfail, so a fix shows up
# as XPASS (and fails) instead of going unnoticed. Empty since TILE was learnt from the cityscapes pair.
KNOWN_WRONG: Dict[str, str] = {}
DEEPLAB_PASCAL = "deeplabv3_mnv2_dm05_pascal_quant"
CONTRACT_KEYS = {"compiled_for_edgetpu", "ops_total", "tpu_ops", "cpu_ops", "ops"}


def _pair(coral_data: Path, stem: str) -> Tuple[Path, Path]:
    uncompiled, compiled = coral_data / (stem + ".tflite"), coral_data / (stem + "_edgetpu.tflite")
    if not uncompiled.exists() or not compiled.exists():
        pytest.fail("%s: no uncompiled/compiled pair in %s" % (stem, coral_data))
    return uncompiled, compiled


def _cpu_ops_in_compiled_file(path: Path) -> List[str]:
    """The oracle: straight from Google's compiled flatbuffer, every op that is not the Edge TPU op is
    an op the real compiler left on the CPU."""
    return [op.name for op in read_model(str(path)).main.operators if op.name != EDGETPU_CUSTOM_OP]


def _manifest_cpu_ops(coral_data: Path, stem: str) -> Optional[int]:
    """CPU ops after compiling as MANIFEST.md's table states them (a second, hand-written source):
    'all mapped' is 0, '+ N ops left on the CPU' is N; None when the pair has no row there."""
    for line in (coral_data / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[1] == stem:
            if "all mapped" in cells[3]:
                return 0
            found = re.search(r"\+ (\d+) ops? left on the CPU", cells[3])
            return int(found.group(1)) if found else None
    return None


def _one_line_error(exc: EdgepipeError) -> str:
    line = exc.one_line()
    assert "\n" not in line and line.strip() == line and line
    return line


def _known_wrong(stem: str) -> Any:
    if stem in KNOWN_WRONG:
        return pytest.param(stem, marks=pytest.mark.xfail(reason=KNOWN_WRONG[stem], strict=True))
    return stem


# --- real pairs: pre-flight vs the real compiler ---------------------------------------------------


@pytest.mark.parametrize("stem", [_known_wrong(s) for s in PAIRS])
def test_real_pair_preflight_cpu_ops_equal_the_compilers(coral_data: Path, stem: str) -> None:
    uncompiled, compiled = _pair(coral_data, stem)
    left_on_cpu = _cpu_ops_in_compiled_file(compiled)
    stated = _manifest_cpu_ops(coral_data, stem)
    assert stated is None or stated == len(left_on_cpu), "MANIFEST.md and the compiled file disagree"

    predicted = inspect_file(uncompiled)
    assert not predicted.compiled_for_edgetpu and not predicted.needs_edgetpu_delegate
    assert predicted.ops_total == len(read_model(str(uncompiled)).main.operators)
    assert predicted.cpu_ops == len(left_on_cpu)
    assert predicted.tpu_ops == predicted.ops_total - predicted.cpu_ops
    # Not only the count: the same ops, in the same order, as the compiler left in its output.
    assert [v.name for v in predicted.ops if v.edgetpu != MAPPED] == left_on_cpu
    assert predicted.subgraphs == 1 and predicted.compile_blockers == []
    # The tensors the compiled op hands to the CPU are the ones the pre-flight predicts crossing.
    actual = inspect_file(compiled)
    crossing = sorted((c["name"], c["from"], c["to"]) for c in predicted.tensors_crossing)
    assert crossing == sorted((c["name"], c["from"], c["to"]) for c in actual.tensors_crossing)
    if not left_on_cpu:
        assert predicted.first_cpu_op is None and all(v.edgetpu == MAPPED for v in predicted.ops)
        assert predicted.off_chip_warning is None and predicted.tpu_parameter_bytes == predicted.parameter_bytes


def test_real_pair_folder_holds_every_pair_manifest_lists(coral_data: Path) -> None:
    """The glob above found what MANIFEST.md lists, so no pair escapes the tests."""
    listed = set(re.findall(r"^\| (\w[\w.]*) \|", (coral_data / "MANIFEST.md").read_text(), re.M)) - {"pair"}
    assert listed and listed <= set(PAIRS)


def test_real_cityscapes_tile_maps_as_in_googles_compiled_model(coral_data: Path) -> None:
    """deeplab_mobilenet_edgetpu_slim_cityscapes: the compiled op's one output is the tensor after
    TILE, QUANTIZE, CONCATENATION, two CONV_2D and a 33x33 -> 33x33 RESIZE_BILINEAR, so all ran on the
    Edge TPU; only the 33x33 -> 513x513 resize and ARG_MAX stayed outside it."""
    stem = "deeplab_mobilenet_edgetpu_slim_cityscapes_quant"
    uncompiled, compiled = _pair(coral_data, stem)
    compiled_model = read_model(str(compiled)).main
    tpu_outputs = {
        compiled_model.tensors[t].name
        for op in compiled_model.operators
        if op.name == EDGETPU_CUSTOM_OP
        for t in op.outputs
    }
    predicted = inspect_file(uncompiled)
    tile = next(v for v in predicted.ops if v.name == "TILE")
    assert tile.edgetpu == MAPPED and tile.certain
    assert predicted.first_cpu_op is not None and predicted.first_cpu_op["name"] == "RESIZE_BILINEAR"
    assert {c["name"] for c in predicted.tensors_crossing} == tpu_outputs == {"ResizeBilinear"}


def test_real_deeplab_preflight_cuts_where_the_compiler_cut(coral_data: Path) -> None:
    uncompiled, compiled = _pair(coral_data, DEEPLAB_PASCAL)
    predicted = inspect_file(uncompiled)
    assert [v.name for v in predicted.ops if v.edgetpu != MAPPED] == _cpu_ops_in_compiled_file(compiled)
    first = predicted.first_cpu_op
    assert first is not None and (first["index"], first["name"]) == (64, "RESIZE_BILINEAR")
    # Every CPU op after the first one is either cut off or unsupported on its own (ARG_MAX: int64).
    later = [v for v in predicted.ops if v.index > 64 and v.edgetpu != MAPPED]
    assert {v.edgetpu for v in later} <= {MORE_THAN_ONE_SUBGRAPH, UNSUPPORTED_DTYPE, insp.OTHERWISE_NOT_MAPPED}
    assert [v.name for v in later if v.edgetpu == UNSUPPORTED_DTYPE] == ["ARG_MAX"]
    assert len(predicted.tensors_crossing) == 2
    assert {(c["from"], c["to"]) for c in predicted.tensors_crossing} == {("edgetpu", "cpu")}


@pytest.mark.parametrize("stem", PAIRS)
def test_real_compiled_model_reports_actual_counts(coral_data: Path, stem: str) -> None:
    compiled = _pair(coral_data, stem)[1]
    ops = read_model(str(compiled)).main.operators
    left_on_cpu = _cpu_ops_in_compiled_file(compiled)
    report = inspect_file(compiled)
    assert report.compiled_for_edgetpu and report.needs_edgetpu_delegate
    assert report.tpu_ops == sum(op.name == EDGETPU_CUSTOM_OP for op in ops) == 1
    assert report.cpu_ops == len(left_on_cpu) and report.ops_total == len(ops)
    assert [o.on for o in report.ops] == ["edgetpu" if op.name == EDGETPU_CUSTOM_OP else "cpu" for op in ops]
    assert any("needs the Edge TPU delegate" in w for w in report.warnings)
    assert "needs the Edge TPU delegate" in render_text(report)
    assert report.edgetpu_executable_bytes and report.edgetpu_executable_bytes > 100_000
    if report.cpu_ops:
        assert report.first_cpu_op is not None and report.first_cpu_op["name"] == left_on_cpu[0]
        assert {c["from"] for c in report.tensors_crossing} == {"edgetpu"}
        consumers = {i for c in report.tensors_crossing for i in c["consumers"]}
        assert all(report.ops[i].on == "cpu" for i in consumers)
        assert "tensors crossing Edge TPU <-> CPU:" in render_text(report)
    else:
        assert report.tensors_crossing == [] and report.first_cpu_op is None


def test_real_model_tensors_match_the_litert_interpreter(coral_data: Path) -> None:
    """The reader's tensors (dtype, shape, quantization) against what LiteRT reads from the same file."""
    interpreter_module = need_module("ai_edge_litert.interpreter", LITERT)
    path = coral_data / "mobilenet_v1_0.25_128_quant.tflite"
    _assert_tensors_match_litert(inspect_file(path), interpreter_module.Interpreter(model_path=str(path)))


def _assert_tensors_match_litert(report: InspectReport, interpreter: Any) -> None:
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    mine = {t["index"]: t for t in report.tensors}
    assert len(mine) == len(report.tensors) and set(details) <= set(mine)
    for index, d in details.items():
        t = mine[index]
        assert t["name"] == d["name"]
        assert t["dtype"] == d["dtype"].__name__
        assert t["shape"] == [int(x) for x in d["shape"]]
        assert t.get("shape_signature", t["shape"]) == [int(x) for x in d["shape_signature"]]
        scales = d["quantization_parameters"]["scales"]
        if len(scales) > 1:
            assert t["quantization"] == {
                "per_axis": True,
                "axis": d["quantization_parameters"]["quantized_dimension"],
                "channels": len(scales),
            }
        elif len(scales) == 1:
            assert t["quantization"]["scale"] == pytest.approx(float(scales[0]), rel=1e-6)
            assert t["quantization"]["zero_point"] == int(d["quantization_parameters"]["zero_points"][0])
        else:
            assert "quantization" not in t


def test_real_invalid_model_is_read_and_its_unresolved_custom_op_reported(coral_data: Path) -> None:
    """model_invoking_error.tflite is a well-formed flatbuffer whose only op, the custom op
    'fake-op-double', has no kernel anywhere: LiteRT loads the file and fails only when preparing the
    op. So inspect reads it too and reports the reason the compiler (and any runtime) will refuse it,
    instead of calling the file corrupt."""
    path = coral_data / "model_invoking_error.tflite"
    report = inspect_file(path)
    assert (report.ops_total, report.tpu_ops, report.cpu_ops) == (1, 0, 1)
    assert report.ops[0].name == "fake-op-double" and report.ops[0].custom_code == "fake-op-double"
    assert report.ops[0].edgetpu == "Encountered unresolved custom op: fake-op-double"
    assert any("unresolved custom op" in b for b in report.compile_blockers)
    interpreter_module = need_module("ai_edge_litert.interpreter", LITERT)
    interpreter = interpreter_module.Interpreter(model_path=str(path))
    with pytest.raises(RuntimeError, match="unresolved custom op: fake-op-double"):
        interpreter.allocate_tensors()


# --- the JSON contract through the CLI ---------------------------------------------------------------


@pytest.mark.parametrize("compiled", [False, True], ids=["uncompiled", "compiled"])
def test_cli_json_contract(coral_data: Path, compiled: bool) -> None:
    path = _pair(coral_data, DEEPLAB_PASCAL)[int(compiled)]
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)  # nothing but the report on stdout
    assert set(report) >= CONTRACT_KEYS
    assert report["compiled_for_edgetpu"] is compiled
    assert all(isinstance(report[k], int) for k in ("ops_total", "tpu_ops", "cpu_ops"))
    assert len(report["ops"]) == report["ops_total"] == report["tpu_ops"] + report["cpu_ops"]
    assert [op["index"] for op in report["ops"]] == list(range(report["ops_total"]))
    for op in report["ops"]:
        assert isinstance(op["name"], str) and op["name"] and isinstance(op["version"], int)
    if compiled:
        assert (report["tpu_ops"], report["cpu_ops"]) == (1, 8)
        assert report["needs_edgetpu_delegate"] is True
    else:
        verdicts = [op["edgetpu"] for op in report["ops"]]
        assert all(isinstance(v, str) and v for v in verdicts)
        assert verdicts.count("mapped") == report["tpu_ops"] == 64
        assert report["cpu_ops"] == 8 and report["first_cpu_op"]["name"] == "RESIZE_BILINEAR"
    # Warnings go to stderr, so the JSON stays parseable.
    assert ("needs the Edge TPU delegate" in result.stderr) is compiled


def test_cli_table_marks_the_first_cpu_op(coral_data: Path) -> None:
    path = _pair(coral_data, DEEPLAB_PASCAL)[0]
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "first CPU op: #64 RESIZE_BILINEAR v1" in text and "64 / 8 of 72" in text
    assert "Tensors crossing Edge TPU <-> CPU, predicted" in text and "#63 -> #64" in text


@pytest.mark.parametrize(
    "kind, exit_code",
    [("missing", InputNotFoundError.exit_code), ("empty", 4), ("directory", 4), ("text", 4)],
)
def test_cli_bad_input_is_one_line_and_its_exit_code(tmp_path: Path, kind: str, exit_code: int) -> None:
    path = tmp_path / ("model.tflite" if kind != "directory" else "a_dir")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("this is not a model\n" * 10)
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == exit_code
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in " ".join(result.stderr.split())


# --- the device side: python -m edgepipe.runtime inspect --------------------------------------------


def _device_side(args: Sequence[str]) -> subprocess.CompletedProcess:
    """Run the board's entry point; also report whether any host-only package got imported."""
    code = (
        "import sys\n"
        "try:\n"
        "    from edgepipe.runtime.__main__ import main\n"
        "    rc = main(['inspect'] + sys.argv[1:])\n"
        "except ImportError:\n"  # no runtime CLI in this tree: the module's own entry point
        "    from edgepipe.runtime.preflight import main_inspect\n"
        "    rc = main_inspect(sys.argv[1:])\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'typer', 'rich') if m in sys.modules]\n"
        "sys.exit(97 if heavy else rc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=str(REPO), capture_output=True, text=True, timeout=120
    )


def test_device_side_inspect_needs_no_tensorflow(coral_data: Path) -> None:
    path = _pair(coral_data, "keras_lstm_mnist_ptq")[1]
    done = _device_side([str(path), "--json"])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["compiled_for_edgetpu"] is True and (report["tpu_ops"], report["cpu_ops"]) == (1, 0)


def test_device_side_module_entry_point(coral_data: Path, tmp_path: Path) -> None:
    """`python -m edgepipe.runtime inspect` itself, for a good and a missing model."""
    main_file = REPO / "edgepipe" / "runtime" / "__main__.py"
    assert main_file.exists(), "the device side's entry point is missing"
    command = [sys.executable, "-m", "edgepipe.runtime", "inspect"]
    good = subprocess.run(
        command + [str(_pair(coral_data, "mobilenet_v1_0.25_128_quant")[0])],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert good.returncode == 0, good.stderr
    assert "31 / 0 of 31" in good.stdout
    missing = subprocess.run(
        command + [str(tmp_path / "nope.tflite"), "--json"], cwd=str(REPO), capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == InputNotFoundError.exit_code
    assert len(missing.stderr.strip().splitlines()) == 1 and "nope.tflite" in missing.stderr
    assert json.loads(missing.stdout)["error"]["type"] == "InputNotFoundError"


def _python_3_7() -> Optional[str]:
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7*/bin/python")))
    candidates.append(shutil.which("python3.7") or "")
    for python in filter(None, candidates):
        try:
            done = subprocess.run(
                [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.stdout.strip() == b"(3, 7)":  # (a pyenv shim for an inactive version fails here)
            return python
    return None


def test_device_side_inspect_runs_on_python_3_7(coral_data: Path) -> None:
    """The board's Python (Mendel 5: 3.7). vermin checks the syntax; this runs the real thing."""
    python = _python_3_7()
    if python is None:
        # CI has a python3.7 only where the machine does (.ci/run), so this may skip there too.
        missing("no Python 3.7 interpreter here (python3.7 on PATH or ~/.pyenv/versions/3.7*)", ci_provides=False)
    path = _pair(coral_data, DEEPLAB_PASCAL)[0]
    done = subprocess.run(
        [
            python,
            "-c",
            "from edgepipe.runtime.preflight import main_inspect; import sys; sys.exit(main_inspect(sys.argv[1:]))",
            str(path),
            "--json",
        ],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["tpu_ops"], report["cpu_ops"]) == (64, 8)
    assert report == json.loads(dumps(inspect_file(path)))  # same report as under the host's Python


def test_main_inspect_json_and_errors(coral_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main_inspect([str(_pair(coral_data, "mobilenet_v1_0.25_128_quant")[1]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tpu_ops"] == 1
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    assert main_inspect([str(bad)]) == ModelFormatError.exit_code
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "bad.tflite" in captured.err


# --- models from the real TF converter ----------------------------------------------------------------


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """Full-int8 models with uint8 I/O from tf.lite.TFLiteConverter (TF 2.21), converted once."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = need_module("tensorflow", "pip install 'edgepipe[convert]'")
    import keras
    import numpy as np

    from edgepipe.models import build_seed_mnist_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("inspect_models")

    def batch1(model: Any, shape: Tuple[int, ...]) -> Any:
        # A concrete batch-1 signature: the converter then writes static shapes throughout.
        inputs = keras.Input(batch_shape=(1,) + shape)
        return keras.Model(inputs, model(inputs))

    def convert(name: str, model: Any, shape: Tuple[int, ...], ops: List[Any]) -> None:
        def representative() -> Any:
            for _ in range(8):
                yield [rng.random((1,) + shape, dtype=np.float32)]

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = ops
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
        (out / (name + ".tflite")).write_bytes(converter.convert())

    int8_only = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    convert("seed", batch1(build_seed_mnist_model(compile=False), (28, 28)), (28, 28), int8_only)
    # SIN has no int8 kernel: with TFLITE_BUILTINS allowed the converter keeps it in float between a
    # DEQUANTIZE and a QUANTIZE ("int8 with float fallback").
    with_sin = keras.Sequential(
        [
            keras.layers.InputLayer(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(4, (3, 3), activation="relu"),
            keras.layers.Lambda(lambda x: tf.math.sin(x)),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    convert("sin", batch1(with_sin, (28, 28)), (28, 28), int8_only + [tf.lite.OpsSet.TFLITE_BUILTINS])
    # The seed model as built, with its unknown (None) batch.
    convert("dynamic_batch", build_seed_mnist_model(compile=False), (28, 28), int8_only)
    # 3072 x 3072 int8 weights = 9 MiB, more than the Edge TPU's ~8 MiB parameter cache.
    wide_in = keras.Input(batch_shape=(1, 3072))
    convert("big", keras.Model(wide_in, keras.layers.Dense(3072)(wide_in)), (3072,), int8_only)
    return {p.stem: p for p in out.glob("*.tflite")}


@pytest.mark.slow
def test_seed_mnist_int8_is_predicted_fully_mapped(converted: Dict[str, Path]) -> None:
    report = inspect_file(converted["seed"])
    assert report.inputs[0]["dtype"] == "uint8" and report.inputs[0]["shape"] == [1, 28, 28]
    assert [v.name for v in report.ops] == [
        "QUANTIZE",
        "RESHAPE",
        "CONV_2D",
        "MAX_POOL_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "QUANTIZE",
    ]
    assert report.tpu_ops == report.ops_total == 7 and report.cpu_ops == 0 and report.first_cpu_op is None
    assert report.subgraphs == 1 and report.compile_blockers == [] and report.off_chip_warning is None
    # TF 2.21 writes per-channel FULLY_CONNECTED weights; no public compiler output covers them.
    fc = report.ops[5]
    assert fc.edgetpu == MAPPED and not fc.certain and "per-axis" in fc.detail
    assert report.uncertain_ops == 1


@pytest.mark.slow
def test_float_fallback_op_is_named_first(converted: Dict[str, Path]) -> None:
    report = inspect_file(converted["sin"])
    names = [v.name for v in report.ops]
    sin = names.index("SIN")
    first = report.first_cpu_op
    # The compiler first meets the DEQUANTIZE that feeds SIN (float): that is the first CPU op, and
    # its detail names SIN as the cause.
    assert first is not None and (first["index"], first["name"]) == (sin - 1, "DEQUANTIZE")
    assert first["edgetpu"] == UNSUPPORTED_DTYPE and "SIN #%d" % sin in first["detail"]
    assert report.ops[sin].edgetpu == UNSUPPORTED_DTYPE
    assert all(v.edgetpu == MAPPED for v in report.ops[: sin - 1])
    assert all(v.edgetpu != MAPPED for v in report.ops[sin - 1 :])
    assert report.ops[names.index("FULLY_CONNECTED")].edgetpu == MORE_THAN_ONE_SUBGRAPH
    assert report.cpu_ops == len(names) - (sin - 1)


@pytest.mark.slow
def test_dynamic_batch_falls_back_at_the_shape_arithmetic(converted: Dict[str, Path]) -> None:
    report = inspect_file(converted["dynamic_batch"])
    assert report.inputs[0]["shape_signature"] == [-1, 28, 28]
    first = report.first_cpu_op
    assert first is not None and (first["index"], first["name"]) == (1, "SHAPE")
    assert first["edgetpu"] == UNSUPPORTED_DTYPE and "dynamic" in first["detail"]
    # The convolution depends on the reshape that uses the run-time batch size: cut off.
    conv = next(v for v in report.ops if v.name == "CONV_2D")
    assert conv.edgetpu == MORE_THAN_ONE_SUBGRAPH
    assert report.cpu_ops > report.tpu_ops
    assert any("dynamic batch" in w and "fixed batch of 1" in w for w in report.warnings)


@pytest.mark.slow
def test_parameters_beyond_the_on_chip_cache_warn(converted: Dict[str, Path]) -> None:
    report = inspect_file(converted["big"])
    assert report.tpu_ops == report.ops_total and report.tpu_parameter_bytes == 3072 * 3072
    assert report.off_chip_warning is not None and "exceed its ~8 MiB on-chip cache" in report.off_chip_warning
    assert report.off_chip_warning in render_text(report)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seed", "dynamic_batch"])
def test_converted_tensors_match_the_litert_interpreter(converted: Dict[str, Path], name: str) -> None:
    interpreter_module = need_module("ai_edge_litert.interpreter", LITERT)
    path = converted[name]
    _assert_tensors_match_litert(inspect_file(path), interpreter_module.Interpreter(model_path=str(path)))


# --- synthetic flatbuffers: single rules, and hostile structure -------------------------------------


def _synthetic(data: bytes, **options: Any) -> InspectReport:
    return inspect_model(read_model_bytes(data, "synthetic.tflite"), **options)


def test_synthetic_writer_makes_files_litert_reads() -> None:
    """The hand-made files are real TFLite: LiteRT loads one and computes with it."""
    interpreter_module = need_module("ai_edge_litert.interpreter", LITERT)
    import numpy as np

    data = _model(
        [_opcode("ADD")],
        [_tensor([1, 4], "FLOAT32", "a"), _tensor([1, 4], "FLOAT32", "b"), _tensor([1, 4], "FLOAT32", "sum")],
        [_op(0, [0, 1], [2])],
        [0, 1],
        [2],
    )
    interpreter = interpreter_module.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(0, np.ones((1, 4), np.float32))
    interpreter.set_tensor(1, np.full((1, 4), 2, np.float32))
    interpreter.invoke()
    assert interpreter.get_tensor(2).tolist() == [[3.0] * 4]
    report = _synthetic(data)
    assert [t["name"] for t in report.tensors] == ["a", "b", "sum"] and report.buffers == 1


def _chain(first: str, first_version: int = 1, shape: Sequence[int] = (1, 4), **tensor_options: Any) -> bytes:
    """input -> FIRST -> ADD -> output, all int8 unless told otherwise."""
    return _model(
        [_opcode(first, first_version), _opcode("ADD")],
        [_tensor([1, 4], name="in"), _tensor(shape, name="mid", **tensor_options), _tensor([1, 4], name="out")],
        [_op(0, [0], [1]), _op(1, [1, 1], [2])],
        [0],
        [2],
    )


def test_synthetic_unsupported_op_cuts_off_what_follows_unless_multiple_subgraphs() -> None:
    data = _model(
        [_opcode("ADD"), _opcode("LEAKY_RELU")],
        [_tensor([1, 4], name=n) for n in ("in", "a", "b", "out")],
        [_op(0, [0, 0], [1]), _op(1, [1], [2]), _op(0, [2, 2], [3])],
        [0],
        [3],
    )
    one = _synthetic(data)
    assert [v.edgetpu for v in one.ops] == [MAPPED, NOT_SUPPORTED, MORE_THAN_ONE_SUBGRAPH]
    assert (one.tpu_ops, one.cpu_ops, one.subgraphs) == (1, 2, 1)
    assert one.first_cpu_op is not None and one.first_cpu_op["name"] == "LEAKY_RELU"
    assert [(c["from"], c["to"]) for c in one.tensors_crossing] == [("edgetpu", "cpu")]
    several = _synthetic(data, multiple_subgraphs=True)
    assert [v.edgetpu for v in several.ops] == [MAPPED, NOT_SUPPORTED, MAPPED]
    assert (several.tpu_ops, several.cpu_ops, several.subgraphs) == (2, 1, 2)
    assert any("experimental" in w for w in several.warnings)


def test_synthetic_rank_above_three_innermost_dimensions() -> None:
    report = _synthetic(_chain("RELU", shape=[2, 1, 1, 4]))
    # The ADD reads that tensor too, so it fails the same rule on its own.
    assert [v.edgetpu for v in report.ops] == [UNSUPPORTED_RANK, UNSUPPORTED_RANK] and report.tpu_ops == 0
    # Leading 1s are fine: only the 3 innermost dimensions may exceed 1.
    assert _synthetic(_chain("RELU", shape=[1, 1, 2, 3, 4])).ops[0].edgetpu == MAPPED


def test_synthetic_op_version_newer_than_compiler_16() -> None:
    report = _synthetic(_chain("RELU", first_version=3))  # RELU v3 is from TF 2.5: accepted, uncertain
    assert report.ops[0].edgetpu == MAPPED and not report.ops[0].certain
    data = _model(
        [_opcode("CONV_2D", 6)],
        [_tensor([1, 4, 4, 1], name="in"), _tensor([1, 3, 3, 1], buffer=1), _tensor([1, 2, 2, 1], name="out")],
        [_op(0, [0, 1, -1], [2])],
        [0],
        [2],
        buffers=[bytes(9)],
    )
    conv = _synthetic(data)
    assert conv.ops[0].edgetpu == VERSION_NOT_SUPPORTED and "#631" in conv.ops[0].detail
    assert any("Didn't find op for builtin opcode 'CONV_2D' version '6'" in b for b in conv.compile_blockers)


def test_synthetic_strided_slice_strides() -> None:
    def model(strides: Sequence[int]) -> bytes:
        constants = [struct.pack("<2i", 0, 0), struct.pack("<2i", 1, 4), struct.pack("<2i", *strides)]
        return _model(
            [_opcode("STRIDED_SLICE")],
            [_tensor([1, 4], name="in")]
            + [_tensor([2], "INT32", name, buffer=i + 1) for i, name in enumerate(("begin", "end", "strides"))]
            + [_tensor([1, 4 // strides[1]], name="out")],
            [_op(0, [0, 1, 2, 3], [4])],
            [0],
            [4],
            buffers=constants,
        )

    assert _synthetic(model([1, 1])).ops[0].edgetpu == MAPPED
    stepped = _synthetic(model([1, 2])).ops[0]
    assert stepped.edgetpu == NON_UNIT_STRIDES and "[1, 2]" in stepped.detail


def test_synthetic_dynamic_non_batch_dimension_is_uncertain() -> None:
    report = _synthetic(_chain("RELU", signature=[1, -1]))
    assert report.ops[0].rule == "dynamic" and not report.ops[0].certain
    assert report.ops[0].edgetpu.startswith("Tensor has a dynamic shape")


def test_synthetic_filter_computed_at_run_time() -> None:
    data = _model(
        [_opcode("FULLY_CONNECTED")],
        [_tensor([1, 4], name="x"), _tensor([4, 4], name="w"), _tensor([1, 4], name="y")],
        [_op(0, [0, 1, -1], [2])],
        [0, 1],
        [2],
    )
    assert _synthetic(data).ops[0].edgetpu == PARAM_NOT_CONSTANT


def test_synthetic_float_model_is_a_compile_blocker() -> None:
    data = _model(
        [_opcode("RELU")], [_tensor([1, 4], "FLOAT32", n) for n in ("in", "out")], [_op(0, [0], [1])], [0], [1]
    )
    report = _synthetic(data)
    assert report.ops[0].edgetpu == UNSUPPORTED_DTYPE and report.tpu_ops == 0
    assert any("Model not quantized" in b for b in report.compile_blockers)


def test_rules_table_is_sourced_and_uses_the_compilers_words(shared: Path) -> None:
    reference = (shared / "edgetpu" / "REFERENCE.md").read_text()
    for rule in insp.RULES:
        assert rule.source.strip() and rule.applies_to.strip()
    # Statuses the pre-flight claims are the compiler's own must appear verbatim in the reference.
    for status in (
        NOT_SUPPORTED,
        UNSUPPORTED_DTYPE,
        UNSUPPORTED_RANK,
        VERSION_NOT_SUPPORTED,
        NON_UNIT_STRIDES,
        MORE_THAN_ONE_SUBGRAPH,
        insp.OTHERWISE_NOT_MAPPED,
    ):
        assert status in reference
    # Rules resting on unclear public facts are marked uncertain.
    assert {"dynamic", "resize-size"} <= {r.id for r in insp.RULES if not r.certain}


# --- bad input ---------------------------------------------------------------------------------------


def _flip(data: bytes, positions: Sequence[int]) -> bytes:
    out = bytearray(data)
    for p in positions:
        out[p] ^= 0xFF
    return bytes(out)


def _broken_files(coral_data: Path) -> Dict[str, bytes]:
    good = (coral_data / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    # (mobilenet's last bytes are a ZIP of its labels appended after the flatbuffer, so cutting them
    # leaves a valid model; the LSTM file ends with flatbuffer data.)
    lstm = (coral_data / "keras_lstm_mnist_ptq.tflite").read_bytes()
    noise = random.Random(7)
    return {
        "empty": b"",
        "seven_bytes": good[:7],
        "header_only": good[:64],
        "truncated_half": good[: len(good) // 2],
        "truncated_last_byte": lstm[:-1],
        "root_offset_flipped": _flip(good, [0, 1, 2, 3]),
        "identifier_flipped": _flip(good, [5]),
        "random_bytes": bytes(noise.getrandbits(8) for _ in range(4096)),
        "random_with_identifier": struct.pack("<I", 64) + b"TFL3" + bytes(noise.getrandbits(8) for _ in range(4096)),
        "bmp_image": (coral_data / "bird.bmp").read_bytes(),
        "label_text": (coral_data / "imagenet_labels.txt").read_bytes(),
    }


def test_broken_real_files_raise_one_line_model_format_errors(coral_data: Path, tmp_path: Path) -> None:
    for name, data in _broken_files(coral_data).items():
        path = tmp_path / (name + ".tflite")
        path.write_bytes(data)
        with pytest.raises(ModelFormatError) as info:
            inspect_file(path)
        assert str(path) in _one_line_error(info.value), name


def test_paths_that_are_not_model_files(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError) as missing:
        inspect_file(tmp_path / "missing.tflite")
    assert "missing.tflite" in _one_line_error(missing.value)
    with pytest.raises(ModelFormatError, match="directory"):
        inspect_file(tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.tflite"
        os.mkfifo(fifo)
        with pytest.raises(ModelFormatError, match="not a regular file"):
            inspect_file(fifo)  # reading it would block forever
    if os.path.exists("/dev/zero"):
        with pytest.raises(ModelFormatError, match="not a regular file"):
            inspect_file("/dev/zero")  # reading it would never end
        with pytest.raises(ModelFormatError, match="not a regular file"):
            inspect_model("/dev/zero")  # the path form compile.py uses takes the same guard


def _absurd(kind: str) -> bytes:
    tensors = [_tensor([1, 4], name="a"), _tensor([1, 4], name="b")]
    op = _op(0, [0], [1])
    if kind == "shape_claims_2g_dims":
        tensors[0] = FB.table(f0=FB.numbers("i", [1, 4], claim=0x7FFFFFFF), f1=("b", TYPE["INT8"]))
    elif kind == "opcode_index":
        op = _op(1000, [0], [1])
    elif kind == "tensor_index":
        op = _op(0, [5000], [1])
    elif kind == "buffer_index":
        tensors[0] = _tensor([1, 4], buffer=10**9)
    elif kind == "negative_index":
        op = _op(0, [-7], [1])
    return _model([_opcode("RELU")], tensors, [op], [0], [1])


@pytest.mark.parametrize(
    "kind", ["shape_claims_2g_dims", "opcode_index", "tensor_index", "buffer_index", "negative_index"]
)
def test_synthetic_absurd_counts_and_indices_are_format_errors(kind: str) -> None:
    with pytest.raises(ModelFormatError) as info:
        _synthetic(_absurd(kind))
    _one_line_error(info.value)


def test_synthetic_cycle_is_a_format_error() -> None:
    data = _model(
        [_opcode("ADD")],
        [_tensor([1, 4], name=n) for n in ("in", "a", "b")],
        [_op(0, [0, 2], [1]), _op(0, [1, 1], [2])],
        [0],
        [2],
    )
    with pytest.raises(ModelFormatError, match="cycle"):
        _synthetic(data)


def test_synthetic_shared_long_name_exhausts_the_work_budget() -> None:
    """100,000 tensors sharing one table with a 100 KB name: 10 GB of names from a 0.5 MB file."""
    shared_tensor = _tensor([1, 4], name="x" * 100_000)
    data = _model([_opcode("ADD")], [shared_tensor] * 100_000, [_op(0, [0, 1], [2])], [0, 1], [2])
    with pytest.raises(ModelFormatError, match="far more tables and values"):
        _synthetic(data)


@pytest.mark.parametrize("kind", ["many_writers_and_readers", "dequantize_fan_out", "long_names", "huge_rank"])
def test_synthetic_hostile_sharing_stays_linear(kind: str) -> None:
    """Shared tables make a small file describe a big graph. The reader charges each read, and the
    report's size must stay within a constant factor of the file's (no quadratic text or walks)."""
    n = 20_000
    if kind == "many_writers_and_readers":
        writer, reader = _op(0, [], [0]), _op(0, [0, 0], [1])
        data = _model([_opcode("ADD")], [_tensor([1, 4])] * 2, [writer] * n + [reader] * n, [], [1])
    elif kind == "dequantize_fan_out":
        tensors = [_tensor([1, 4]), _tensor([1, 4], "FLOAT32"), _tensor([1, 4])]
        ops = [_op(1, [0], [1])] * n + [_op(0, [1, 1], [2])] * n
        data = _model([_opcode("ADD"), _opcode("DEQUANTIZE")], tensors, ops, [0], [2])
    elif kind == "long_names":
        tensors = [_tensor([1, 4], "FLOAT32", "n" * 20_000), _tensor([1, 4], name="y" * 20_000), _tensor([1, 4])]
        ops = [_op(0, [0, 1], [2])] * n
        data = _model([_opcode("ADD", custom=None)], tensors, ops, [0] * n, [2] * n)
    else:
        wide = _tensor([2] + [1] * 100_000, "FLOAT32", "wide")
        data = _model(
            [_opcode("ADD")], [wide, _tensor([1, 4]), _tensor([1, 4])], [_op(0, [0, 1], [2])] * n, [0] * n, [2]
        )
    report = _synthetic(data)
    assert report.ops_total in (n, 2 * n)
    text = dumps(report)
    # Linear: a bounded amount per op (names and shapes are clipped) plus a constant factor per byte.
    assert len(text) < 2_000 * report.ops_total + 60 * len(data)
    assert len(render_text(report)) < 2_000 * report.ops_total + 60 * len(data)


# Real models to mutate: small and large, uncompiled and compiled, and the real invalid one.
FUZZ_MODELS = (
    "keras_lstm_mnist_ptq.tflite",
    "keras_lstm_mnist_ptq_edgetpu.tflite",
    "mobilenet_v1_0.25_128_quant.tflite",
    "deeplabv3_mnv2_dm05_pascal_quant.tflite",
    "deeplabv3_mnv2_dm05_pascal_quant_edgetpu.tflite",
    "model_invoking_error.tflite",
)


@functools.cache
def _fuzz_source(name: str) -> bytes:
    return shared_path("models", "coral-test-data", name).read_bytes()


@st.composite
def _mutated_models(draw: st.DrawFn) -> bytes:
    data = bytearray(_fuzz_source(draw(st.sampled_from(FUZZ_MODELS))))
    for _ in range(draw(st.integers(1, 3))):
        # Truncation nearly always ends in an error, so it is drawn less often than the rest.
        kind = draw(st.sampled_from(["flip", "flip", "word", "splice", "zero", "truncate"]))
        # Offsets, counts and vtables sit mostly in the first and last kilobytes; aim there often.
        head = draw(st.booleans())
        limit = min(len(data), 4096) if head else len(data)
        if len(data) < 8:
            break
        at = draw(st.integers(0, limit - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "word":
            at = min(at, len(data) - 4)
            value = draw(st.sampled_from([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, len(data), len(data) - at]))
            data[at : at + 4] = struct.pack("<I", value)
        elif kind == "truncate":
            data = data[:at]
        elif kind == "zero":
            size = draw(st.integers(1, 64))
            data[at : at + size] = bytes(len(data[at : at + size]))
        else:
            donor = _fuzz_source(draw(st.sampled_from(FUZZ_MODELS)))
            start = draw(st.integers(0, len(donor) - 1))
            data[at : at + draw(st.integers(1, 2048))] = donor[start : start + 2048]
    return bytes(data)


@settings(
    max_examples=300,
    deadline=timedelta(seconds=10),
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=_mutated_models())
def test_fuzz_mutated_real_models_give_a_report_or_a_typed_error(coral_data: Path, data: bytes) -> None:
    try:
        report = inspect_model(read_model_bytes(data, "mutated.tflite"))
    except EdgepipeError as exc:
        _one_line_error(exc)
        event("typed error: %s" % type(exc).__name__)
        return
    event("report")  # (--hypothesis-show-statistics shows how many mutants still parse)
    # A report that parses must also serialise and render.
    assert json.loads(dumps(report))["ops_total"] == report.ops_total
    assert render_text(report)
