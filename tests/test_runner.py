"""The runner: latency (`benchmark`), accuracy (`evaluate`), backend choice for real models, and the
`bench` / `eval` commands, against the real LiteRT and tflite_runtime 2.14 interpreters side by side.

Models: Coral's real MobileNet pair from shared/models/coral-test-data, and small MNIST classifiers
trained and converted with TensorFlow in a fixture (int8, uint8 and float input/output), evaluated on
the real 10,000-image MNIST test set from shared/datasets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from conftest import need_module
from test_deploy import direct_top1_hits, imagenet_eval_crop_128
from typer.testing import CliRunner

from edgepipe.cli import app
from edgepipe.runtime.accuracy import evaluate, guess_label_offset, model_input, predict
from edgepipe.runtime.edgetpu import LIBEDGETPU_ENV
from edgepipe.runtime.errors import BackendError, InferenceError
from edgepipe.runtime.runner import Port, benchmark, latency_stats, time_invokes
from edgepipe.runtime.session import open_session

RUNTIMES = ["ai_edge_litert", "tflite_runtime"]
MOBILENET = "mobilenet_v1_0.25_128_quant"
# The official MNIST test set's class counts (shared/datasets/mnist/MANIFEST.md).
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese", "Egyptian cat"}


@pytest.fixture(autouse=True)
def _no_libedgetpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make "no Edge TPU runtime" deterministic even on a machine that has one installed."""
    monkeypatch.setenv(LIBEDGETPU_ENV, str(tmp_path / "no-libedgetpu.so.1"))
    monkeypatch.delenv("EDGEPIPE_TFLITE_RUNTIME", raising=False)


@pytest.fixture(scope="module")
def imagenet_labels(coral_data: Path) -> list:
    return (coral_data / "imagenet_labels.txt").read_text().splitlines()


@pytest.fixture(scope="module")
def cat_pixels(coral_data: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(coral_data / "cat.bmp") as img:
        return np.asarray(img.convert("RGB").resize((128, 128), Image.BILINEAR), dtype=np.uint8)


# --- latency statistics ----------------------------------------------------------------------------


def test_latency_stats_math() -> None:
    seconds = [0.001, 0.002, 0.003, 0.004, 0.010]
    stats = latency_stats(seconds, first_s=0.5)
    assert stats.first == 500.0  # kept apart: not in min/mean/max
    assert stats.n == 5
    assert stats.min == 1.0 and stats.max == 10.0
    assert stats.mean == pytest.approx(4.0)
    assert stats.std == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1), abs=1e-4)  # sample std
    assert stats.p50 == pytest.approx(3.0)
    assert stats.p90 == pytest.approx(7.6)  # linear interpolation between 4 and 10
    assert stats.p99 == pytest.approx(9.76)


def test_latency_stats_edge_cases() -> None:
    one = latency_stats([0.002])
    assert one.first is None and one.std == 0.0 and one.p50 == one.p99 == one.min == one.max == 2.0
    with pytest.raises(InferenceError):
        latency_stats([])


def test_time_invokes_counts_each_invoke_once(coral_data: Path) -> None:
    session = open_session(str(coral_data / ("%s.tflite" % MOBILENET)), backend="cpu")
    calls = []
    real_invoke = session.interpreter.invoke

    class Counting:
        def invoke(self) -> None:
            calls.append(1)
            real_invoke()

    times = time_invokes(Counting(), 7)
    assert len(times) == 7 and len(calls) == 7 and all(t > 0 for t in times)


# --- quantized inputs ------------------------------------------------------------------------------


def test_model_input_uses_the_tensors_own_scale_and_zero_point() -> None:
    pixels = np.array([[0, 1, 2, 128, 255]], dtype=np.uint8)
    int8 = Port(0, np.dtype(np.int8), (1, 5), 1 / 255, -128)
    uint8_third = Port(0, np.dtype(np.uint8), (1, 5), 3 / 255, 0)
    float32 = Port(0, np.dtype(np.float32), (1, 5), 0.0, 0)
    assert model_input(pixels, int8, "unit", False).tolist() == [[-128, -127, -126, 0, 127]]
    assert model_input(pixels, uint8_third, "unit", False).tolist() == [[0, 0, 1, 43, 85]]
    assert model_input(pixels, float32, None, False) == pytest.approx(pixels / 255.0)
    # Already preprocessed floats (npy datasets) are only quantized.
    assert model_input(np.array([[0.0, 0.6, 1.0]]), int8, None, True).tolist() == [[-128, 25, 127]]


def test_guess_label_offset() -> None:
    assert guess_label_offset(1001, 1000) == 1
    assert guess_label_offset(1001) == 1
    assert guess_label_offset(10, 10) == 0
    assert guess_label_offset(1000, 1000) == 0


# --- Coral MobileNet on the CPU -----------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_mobilenet_on_cpu_classifies_the_cat(coral_data, imagenet_labels, cat_pixels, runtime) -> None:
    model = coral_data / ("%s.tflite" % MOBILENET)
    session = open_session(str(model), backend="cpu", tflite_runtime=runtime)
    result = benchmark(session, runs=5, warmup=1, pixels=cat_pixels)
    top = result.prediction[0]
    assert imagenet_labels[top["index"]] in CAT_CLASSES, [imagenet_labels[p["index"]] for p in result.prediction]
    assert result.backend == "cpu" and result.requested_backend == "cpu"
    assert result.environment["runtime"]["name"] == runtime
    if runtime == "tflite_runtime":
        assert result.environment["runtime"]["version"] == "2.14.0"


def test_bench_result_shape_and_fingerprint(coral_data: Path) -> None:
    model = coral_data / ("%s.tflite" % MOBILENET)
    result = benchmark(open_session(str(model), backend="cpu"), runs=12, warmup=3)
    for stats in (result.latency_ms, result.end_to_end_ms):
        assert stats.n == 12 and stats.first is not None and stats.first > 0
        assert stats.min <= stats.p50 <= stats.p90 <= stats.p99 <= stats.max
    assert result.runs == 12 and result.warmup == 3 and result.schema_version == 1 and result.kind == "bench"
    assert result.inputs == [{"shape": [1, 128, 128, 3], "dtype": "uint8", "scale": 0.0078125, "zero_point": 128}]
    env = result.environment
    for key in ("hostname", "os", "python", "runtime", "libedgetpu", "device"):
        assert env[key] is not None, key
    assert env["device"]["type"] == "cpu"
    import hashlib

    assert result.model["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert result.model["compiled_for_edgetpu"] is False and result.fallback_reason is None
    assert "not compiled for the Edge TPU" not in result.backend_reason  # cpu was asked for
    with pytest.raises(InferenceError):
        benchmark(open_session(str(model), backend="cpu"), runs=0)


def test_compiled_model_auto_without_edgetpu_runs_twin_and_classifies_cat(
    coral_data, imagenet_labels, cat_pixels
) -> None:
    compiled = coral_data / ("%s_edgetpu.tflite" % MOBILENET)
    session = open_session(str(compiled), backend="auto")
    result = benchmark(session, runs=3, warmup=0, pixels=cat_pixels)
    assert result.backend == "cpu" and result.requested_backend == "auto"
    assert result.model["path"] == str(compiled) and result.model["compiled_for_edgetpu"] is True
    assert result.run_model["path"] == str(coral_data / ("%s.tflite" % MOBILENET))
    assert result.run_model["compiled_for_edgetpu"] is False
    assert "no usable Edge TPU" in result.fallback_reason and "uncompiled twin" in result.fallback_reason
    assert imagenet_labels[result.prediction[0]["index"]] in CAT_CLASSES


def test_cpu_backend_on_compiled_model_without_twin_is_a_clear_error(coral_data: Path, tmp_path: Path) -> None:
    lonely = tmp_path / "lonely_edgetpu.tflite"
    shutil.copyfile(coral_data / ("%s_edgetpu.tflite" % MOBILENET), lonely)
    with pytest.raises(BackendError) as info:
        open_session(str(lonely), backend="cpu")
    text = info.value.one_line()
    assert info.value.exit_code == 22
    assert "cannot run on the CPU" in text and "lonely.tflite does not exist" in text and "--cpu-model" in text
    # auto fails the same way: no Edge TPU here and nothing to run on the CPU.
    with pytest.raises(BackendError) as auto_info:
        open_session(str(lonely), backend="auto")
    assert "no usable Edge TPU" in str(auto_info.value)


def test_cpu_model_given_explicitly(coral_data: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.tflite"  # not an _edgetpu name, so no twin can be derived
    shutil.copyfile(coral_data / ("%s_edgetpu.tflite" % MOBILENET), renamed)
    twin = coral_data / ("%s.tflite" % MOBILENET)
    session = open_session(str(renamed), backend="cpu", cpu_model=str(twin))
    assert session.backend == "cpu" and session.run_model_path == str(twin)
    with pytest.raises(BackendError) as info:
        open_session(str(renamed), backend="cpu", cpu_model=str(coral_data / "keras_lstm_mnist_ptq.tflite"))
    assert "inputs/outputs differ" in str(info.value)
    with pytest.raises(BackendError) as compiled_twin:
        open_session(str(renamed), backend="cpu", cpu_model=str(renamed))
    assert "compiled for the Edge TPU too" in str(compiled_twin.value)


def test_bench_cli_json_marks_cpu_fallback(coral_data: Path) -> None:
    compiled = coral_data / ("%s_edgetpu.tflite" % MOBILENET)
    result = CliRunner().invoke(
        app, ["bench", str(compiled), "--runs", "5", "--warmup", "1", "--image", str(coral_data / "cat.bmp"), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["backend"] == "cpu" and report["fallback_reason"]
    assert report["device"] is None and report["runs"] == 5
    assert set(report["latency_ms"]) >= {"first", "min", "mean", "std", "p50", "p90", "p99", "max"}
    assert set(report["end_to_end_ms"]) >= {"first", "min", "mean", "std", "p50", "p90", "p99", "max"}
    assert "warning:" in result.stderr and "uncompiled twin" in result.stderr


def test_bench_cli_errors_and_exit_codes(coral_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    compiled = coral_data / ("%s_edgetpu.tflite" % MOBILENET)
    lonely = tmp_path / "lonely_edgetpu.tflite"
    shutil.copyfile(compiled, lonely)
    cases = [
        (["bench", str(compiled), "--backend", "edgetpu"], 21, "no Edge TPU runtime"),
        (["bench", str(lonely), "--backend", "cpu"], 22, "cannot run on the CPU"),
        (["bench", str(compiled), "--device", "tpu:0"], 24, "invalid Edge TPU device"),
        (["bench", str(tmp_path / "absent.tflite")], 3, "model file not found"),
        (["bench", str(coral_data / "cat.bmp")], 4, ""),
    ]
    for argv, code, text in cases:
        result = runner.invoke(app, argv)
        assert result.exit_code == code, (argv, result.output)
        assert "error:" in result.stderr and text in result.stderr
        assert result.stdout == ""
    bad = runner.invoke(app, ["bench", str(compiled), "--backend", "gpu"])
    assert bad.exit_code == 2


def test_device_cli_bench_writes_json(coral_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edgepipe.runtime", "bench", str(coral_data / ("%s_edgetpu.tflite" % MOBILENET))]
        + ["--runs", "4", "--warmup", "0", "--runtime", "tflite_runtime", "--output", str(out)],
        capture_output=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == printed
    assert printed["backend"] == "cpu" and printed["environment"]["runtime"]["name"] == "tflite_runtime"
    assert b"warning: no usable Edge TPU" in proc.stderr


def test_eval_imagenet_samples_on_compiled_model_falls_back(coral_data: Path, datasets_dir: Path) -> None:
    """Coral's MobileNet on the 250 real ImageNet samples (45.2 % top-1 with the MANIFEST's square crop;
    edgepipe crops the central 87.5 %, as TF-Slim's ImageNet evaluation does)."""
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(coral_data / ("%s_edgetpu.tflite" % MOBILENET)),
            "--dataset",
            "images:%s" % (datasets_dir / "imagenet-samples"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["backend"] == "cpu" and "uncompiled twin" in report["fallback_reason"]
    assert report["n"] == 250 and report["label_offset"] == 1 and report["num_classes"] == 1000
    # Exact, by a separate path: the same runtime module called directly on the same JPEGs, preprocessed
    # with PIL in the test (test_deploy checks that path gives the MANIFEST's 45.2 % with its crop).
    runtime = report["environment"]["runtime"]["name"]
    assert runtime in ("ai_edge_litert", "tflite_runtime")
    twin = coral_data / ("%s.tflite" % MOBILENET)
    samples = datasets_dir / "imagenet-samples"
    hits = direct_top1_hits(runtime + ".interpreter", twin, samples, imagenet_eval_crop_128)
    assert report["top1"] == hits / 250 and report["top5"] > report["top1"]
    assert report["confusion_matrix"] is None  # 1000 classes: too many
    assert len(report["per_class"]) == 250 and report["per_class"][0]["name"]


# --- MNIST models made with TensorFlow -----------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_test(datasets_dir: Path):
    from edgepipe.data import load_dataset

    return load_dataset("mnist", split="test", data_dir=datasets_dir)


@pytest.fixture(scope="module")
def mnist_models(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The seed MNIST CNN, trained for one epoch on 20,000 real training images, converted to full
    int8 with int8, uint8 and float32 input/output (calibrated on 200 training images, pixel/255)."""
    tf = need_module("tensorflow", "pip install 'edgepipe[convert]'")
    from edgepipe.data import load_dataset
    from edgepipe.models import train_seed_mnist_model

    train = load_dataset("mnist", split="train", data_dir=datasets_dir)
    model = train_seed_mnist_model(train.images[:20000], train.labels[:20000], epochs=1, seed=0)

    def representative():
        for i in range(200):
            yield [train.images[i : i + 1].astype(np.float32) / 255.0]

    out = tmp_path_factory.mktemp("mnist_models")
    paths = {}
    for name, io_type in (("int8", tf.int8), ("uint8", tf.uint8), ("float32", tf.float32)):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
        paths[name] = out / ("mnist_%s.tflite" % name)
        paths[name].write_bytes(converter.convert())
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_eval_mnist_10k_int8_uint8_float_inputs(mnist_models, mnist_test, runtime) -> None:
    assert len(mnist_test) == 10000
    results = {}
    for name, path in mnist_models.items():
        session = open_session(str(path), backend="cpu", tflite_runtime=runtime)
        dtype = session.interpreter.get_input_details()[0]["dtype"]
        assert np.dtype(dtype).name == name
        result = evaluate(
            session, mnist_test.images, mnist_test.labels, preset="unit", class_names=mnist_test.class_names
        )
        results[name] = result
        assert result.n == 10000 and result.num_classes == 10
        assert result.top1 > 0.9 and result.top5 >= result.top1
        assert result.batch_size == 64, result.batch_note  # 10,000 images go through in batches
        assert [c["n"] for c in result.per_class] == MNIST_TEST_COUNTS
        assert [c["name"] for c in result.per_class] == [str(d) for d in range(10)]
        matrix = np.array(result.confusion_matrix)
        assert matrix.shape == (10, 10) and matrix.sum() == 10000
        assert int(np.trace(matrix)) == result.correct_top1
        assert matrix.sum(axis=1).tolist() == MNIST_TEST_COUNTS
        assert [c["correct"] for c in result.per_class] == np.diag(matrix).tolist()
    # One quantized network behind three input types: the accuracies must agree closely.
    top1 = [r.top1 for r in results.values()]
    assert max(top1) - min(top1) < 0.005, top1


@pytest.mark.slow
def test_eval_batched_equals_batch_one(mnist_models, mnist_test) -> None:
    session = open_session(str(mnist_models["int8"]), backend="cpu")
    images = mnist_test.images[:300]
    batched = predict(session, images, preset="unit", batch_size=64)
    single = predict(session, images, preset="unit", batch_size=1)
    assert batched.batch_size == 64 and single.batch_size == 1
    np.testing.assert_array_equal(batched.top_indices, single.top_indices)
    np.testing.assert_allclose(batched.top_scores, single.top_scores)


@pytest.mark.slow
def test_eval_default_preprocessing_of_quantized_inputs(mnist_models, mnist_test) -> None:
    """Without --preprocess, uint8 inputs take raw pixels and int8 pixels - 128: right for these
    models, whose input scale is 1/255 (calibrated on pixel/255)."""
    for name in ("int8", "uint8"):
        session = open_session(str(mnist_models[name]), backend="cpu")
        default = evaluate(session, mnist_test.images[:2000], mnist_test.labels[:2000])
        unit = evaluate(session, mnist_test.images[:2000], mnist_test.labels[:2000], preset="unit")
        assert default.top1 == unit.top1


@pytest.mark.slow
def test_eval_cli_mnist_and_npy(mnist_models, datasets_dir, mnist_test, tmp_path) -> None:
    runner = CliRunner()
    args = ["eval", str(mnist_models["uint8"]), "--dataset", "mnist", "--data-dir", str(datasets_dir)]
    result = runner.invoke(app, args + ["--limit", "3000", "--preprocess", "unit", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 3000 and report["dataset"]["spec"] == "mnist" and report["dataset"]["checksum_verified"]
    assert report["backend"] == "cpu" and report["top1"] > 0.85
    assert len(report["confusion_matrix"]) == 10 and len(report["per_class"]) == 10
    table = runner.invoke(app, args + ["--limit", "500"])
    assert table.exit_code == 0 and "Confusion matrix" in table.stdout

    # npy: already-preprocessed floats plus --labels give the same answer as raw pixels + unit (--limit
    # took a seeded class-balanced sample: the same one, loaded here).
    from edgepipe.data import load_dataset

    sample = load_dataset("mnist", split="test", data_dir=datasets_dir, limit=3000)
    floats, labels = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(floats, sample.images.astype(np.float32) / 255.0)
    np.save(labels, sample.labels)
    npy = runner.invoke(
        app, ["eval", str(mnist_models["uint8"]), "--dataset", "npy:%s" % floats, "--labels", str(labels), "--json"]
    )
    assert npy.exit_code == 0, npy.output
    assert json.loads(npy.stdout)["top1"] == report["top1"]
    unlabelled = runner.invoke(app, ["eval", str(mnist_models["uint8"]), "--dataset", "npy:%s" % floats])
    assert unlabelled.exit_code == 6 and "--labels" in unlabelled.stderr


@pytest.mark.slow
def test_device_cli_eval_npz(mnist_models, mnist_test, tmp_path) -> None:
    data = tmp_path / "mnist_1000.npz"
    np.savez(
        data, images=mnist_test.images[:1000], labels=mnist_test.labels[:1000], class_names=np.array(list("0123456789"))
    )
    proc = subprocess.run(
        [sys.executable, "-m", "edgepipe.runtime", "eval", str(mnist_models["int8"]), "--data", str(data)]
        + ["--preprocess", "unit", "--limit", "800"],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["kind"] == "eval" and report["n"] == 800 and report["top1"] > 0.85
    assert report["label_offset"] == 0 and report["per_class"][3]["name"] == "3"
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgepipe.runtime",
            "eval",
            str(mnist_models["int8"]),
            "--data",
            str(tmp_path / "no.npz"),
        ],
        capture_output=True,
        timeout=300,
    )
    assert missing.returncode == 3 and b"evaluation data not found" in missing.stderr  # as the host's npy:


def test_tflite_runtime_after_tensorflow_in_one_process_is_refused_with_the_reason(coral_data: Path) -> None:
    """Real clash: tflite_runtime 2.14 loaded after TensorFlow 2.21 fails on every model (vector::reserve)."""
    need_module("tflite_runtime", "pip install 'edgepipe[dev]' (tflite-runtime 2.14, Python < 3.12 on Linux)")
    need_module("tensorflow", "pip install 'edgepipe[convert]'")
    code = (
        "import sys, tensorflow\n"
        "from edgepipe.runtime.session import open_session\n"
        "from edgepipe.runtime.errors import RuntimeNotFoundError\n"
        "try:\n"
        "    open_session(sys.argv[1], backend='cpu', tflite_runtime='tflite_runtime')\n"
        "except RuntimeNotFoundError as exc:\n"
        "    print(exc.exit_code, exc.one_line())\n"
    )
    model = str(coral_data / "mobilenet_v1_0.25_128_quant.tflite")
    proc = subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("20 ")
    assert "already imported TensorFlow" in proc.stdout


@pytest.mark.parametrize("name", ["[/]nope.tflite", "model[int8].tflite"])
def test_cli_error_names_a_file_literally_never_as_markup(name: str, tmp_path: Path) -> None:
    """A file name with rich markup in it ('[/]', '[int8]') is printed as it is: one line, exit 3, no traceback."""
    for argv in (["inspect", name], ["bench", name]):
        command = [sys.executable, "-m", "edgepipe.cli"] + argv
        proc = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.splitlines() == ["error: model file not found: %s. Check the path" % name]
        assert proc.stdout == ""


def test_run_options_travel_through_the_device_command_line_unchanged() -> None:
    """What deploy writes into the remote command (`to_argv`) is what the device side builds (`from_args`)."""
    import argparse

    from edgepipe.runtime.options import RunOptions, add_arguments

    sent = RunOptions(backend="edgetpu", device="usb:1", tflite_runtime="tflite_runtime", threads=2, probe_timeout=5.0,
                      runs=7, warmup=0)  # fmt: skip
    parser = argparse.ArgumentParser()
    add_arguments(parser, bench=True)
    assert RunOptions.from_args(parser.parse_args(sent.to_argv("bench"))) == sent
    assert "--runs" not in sent.to_argv("eval")
    with pytest.raises(BackendError):
        RunOptions(backend="gpu")
    from edgepipe.runtime.errors import InvalidDeviceError

    with pytest.raises(InvalidDeviceError):
        RunOptions(device="tpu:0")


def test_one_exit_code_mapping_for_every_front_door() -> None:
    from edgepipe.errors import DeployError, InventoryError
    from edgepipe.runtime.errors import exit_code_for

    assert [exit_code_for(e) for e in (InventoryError("x"), DeployError("x"), KeyboardInterrupt(), ValueError())] == [
        2, 50, 130, 1,
    ]  # fmt: skip
