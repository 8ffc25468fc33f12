"""The ONNX route inside the converter process: ONNX → onnx2tf → a TensorFlow model that the
Keras/SavedModel path (static trace, TF's own converter, strict verification) then takes as it is.

Only onnx2tf's ONNX → TensorFlow step is used. Its own int8 output is not: it allows SELECT_TF_OPS,
and edgepipe's int8 conversion is TF's converter under TFLITE_BUILTINS_INT8 like every other format.

Three things onnx2tf does that edgepipe must control:
- It downloads a calibration sample file (`download_test_image_data`, 20 COCO images from GitHub) for
  every model whose inputs are all 4-D with 3 channels and a static batch, even for a plain
  conversion, and crashes offline. Those images only feed its own dummy inference (which helps it
  choose transposes), so here the function is replaced by seeded images made locally, and every
  network connection is refused while onnx2tf runs: a conversion never touches the network.
- It turns channels-first inputs into channels-last (NCHW → NHWC). The permutation it applied is
  found by running its TensorFlow model and onnxruntime on the same input, not guessed from shapes
  (a 1x28x28 input looks the same both ways), and reported to the parent for the calibration data.
- It rewrites the ONNX file in place when it simplifies it; it gets a copy in the work directory.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import socket
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .worker import Channel, WorkerError, _fmt_shape, _static_shape

# onnx2tf's sample file holds 20 images of 128x128x3 floats in [0, 1]; the stand-in has that form.
SAMPLE_IMAGES_SHAPE = (20, 128, 128, 3)
LAYOUT_ATOL = 1e-3  # relative to the output's scale: onnx2tf and onnxruntime run the same float graph


class OnnxSource:
    """The converted TensorFlow model and what the parent and the checks need to know about it."""

    def __init__(self, path: str, model: Any, spec: Dict[str, Any], source_shape: List[int]) -> None:
        self.path = path
        self.model = model
        self.spec = spec
        self.source_shape = source_shape
        self.static_shape = _static_shape(list(model.inputs[0].shape))
        self.layout_perm = list(range(len(source_shape)))
        self.transposes_found: List[str] = []
        self.versions: Dict[str, str] = {}
        self._session: Any = None

    def session(self) -> Any:
        if self._session is None:
            import onnxruntime

            self._session = onnxruntime.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        return self._session

    def reference(self, samples: np.ndarray) -> List[List[np.ndarray]]:
        """onnxruntime's outputs for samples given in the converted (channels-last) layout."""
        session = self.session()
        name = session.get_inputs()[0].name
        inverse = list(np.argsort(self.layout_perm))
        return [session.run(None, {name: np.transpose(x[None], inverse).astype(np.float32)}) for x in samples]

    def describe(self) -> Dict[str, Any]:
        return {
            "format": "onnx",
            "converted_by": "onnx2tf %s (ONNX → TensorFlow only; int8 by TensorFlow's converter)"
            % self.versions.get("onnx2tf", "?"),
            "onnx_input_shape": self.source_shape,
            "converted_input_shape": self.static_shape,
            "layout_perm": self.layout_perm,
            "layout_changed": self.layout_perm != sorted(self.layout_perm),
            "network": "blocked during onnx2tf; its sample-image download replaced by local seeded images",
        }


def load_onnx(path: str, workdir: str, seed: int, channel: Channel) -> OnnxSource:
    try:
        import onnx
        import onnx2tf
        import onnxruntime
    except ImportError as exc:
        raise WorkerError("onnx_import", "%s" % exc) from None
    channel.send("phase", phase="loading ONNX model")
    try:
        proto = onnx.load(path)
        onnx.checker.check_model(path)  # by path: models over 2 GB keep their weights outside the proto
    except Exception as exc:  # protobuf DecodeError, onnx ValidationError, OSError
        raise WorkerError("load", "%s: %s" % (type(exc).__name__, exc)) from None
    spec, source_shape = _input_of(proto)
    # onnx2tf may rewrite the file it is given; it gets a copy, the user's model is never touched.
    copy = os.path.join(workdir, "source.onnx")
    shutil.copyfile(path, copy)

    channel.send("phase", phase="converting ONNX to TensorFlow (onnx2tf)")
    out_dir = os.path.join(workdir, "onnx2tf")
    attempts: List[str] = []
    try:
        with _offline(attempts), _local_sample_images(seed), _cwd(workdir):
            model = onnx2tf.convert(
                input_onnx_file_path=copy,
                output_folder_path=out_dir,
                batch_size=1 if spec["shape"][0] is None else None,
                not_use_onnxsim=True,  # onnxsim is not installed, and it would run as a subprocess
                disable_model_save=True,  # edgepipe writes its own SavedModel at the static shape
                non_verbose=True,
                verbosity="error",
            )
    except SystemExit as exc:  # onnx2tf calls sys.exit(1) after printing (to the log) what it rejects
        message = "onnx2tf stopped (exit %s); its words are in the converter log" % exc.code
        raise WorkerError("onnx2tf", message) from None
    except WorkerError:
        raise
    except Exception as exc:
        raise WorkerError("onnx2tf", "%s: %s" % (type(exc).__name__, exc)) from None
    if attempts:
        raise WorkerError("onnx2tf", "onnx2tf tried to reach the network (%s); edgepipe refused it" % attempts[0])
    if model is None or len(model.inputs) != 1:
        raise WorkerError("onnx2tf", "onnx2tf returned no single-input TensorFlow model")
    source = OnnxSource(copy, model, spec, source_shape)
    source.versions = {"onnx2tf": onnx2tf.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    channel.send("phase", phase="matching onnx2tf's layout against onnxruntime")
    source.layout_perm = _find_layout(source, seed)
    return source


def _input_of(proto: Any) -> Tuple[Dict[str, Any], List[int]]:
    """The single graph input (initializers aside): its spec and its static shape with batch 1."""
    from onnx import TensorProto

    constants = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise WorkerError("input", "the ONNX model has %d inputs; convert supports one" % len(inputs))
    tensor_type = inputs[0].type.tensor_type
    if tensor_type.elem_type != TensorProto.FLOAT:
        dtype = TensorProto.DataType.Name(tensor_type.elem_type).lower()
        raise WorkerError("input", "the model input is %s; convert expects a float input" % dtype)
    shape: List[Optional[int]] = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    spec = {"name": inputs[0].name, "shape": shape, "dtype": "float32", "signature": None}
    return spec, _static_shape(shape)


def _find_layout(source: OnnxSource, seed: int) -> List[int]:
    """The axes permutation from the ONNX input to onnx2tf's input: identity or channels-last,
    whichever makes the TensorFlow model give onnxruntime's answer on the same random input."""
    rank = len(source.source_shape)
    candidates = [list(range(rank))]
    if rank >= 3:
        candidates.append([0] + list(range(2, rank)) + [1])
    x = np.random.default_rng(seed).random(source.static_shape[1:], dtype=np.float32)[None]
    got = [np.asarray(y) for y in _as_list(source.model(x, training=False))]
    worst = None
    for perm in candidates:
        if [source.source_shape[i] for i in perm] != source.static_shape:
            continue
        source.layout_perm = perm
        want = source.reference(x)[0]
        if len(want) != len(got):
            continue
        diff = 0.0
        for w, g in zip(want, got):
            w = np.moveaxis(w, 1, -1) if w.shape != g.shape and w.ndim >= 3 else w
            if w.size != g.size:
                diff = np.inf
                break
            scale = max(1.0, float(np.max(np.abs(w))))
            diff = max(diff, float(np.max(np.abs(w.reshape(-1) - g.reshape(-1)))) / scale)
        if diff <= LAYOUT_ATOL:
            return perm
        worst = diff if worst is None else min(worst, diff)
    raise WorkerError(
        "float_check",
        "onnx2tf's TensorFlow model (input %s) does not reproduce onnxruntime on the ONNX input %s "
        "(relative max |diff| %s)" % (_fmt_shape(source.static_shape), _fmt_shape(source.source_shape), worst),
    )


def _as_list(outputs: Any) -> List[Any]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@contextlib.contextmanager
def _offline(attempts: List[str]) -> Iterator[None]:
    """Refuse every connection and name lookup (loopback aside) while onnx2tf runs; record them."""

    def refuse(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) and address else address
        host = host.decode() if isinstance(host, bytes) else host
        if host is None or str(host) in ("127.0.0.1", "::1", "localhost"):
            return
        attempts.append(str(host))
        raise OSError("edgepipe: no network during conversion (%s)" % host)

    original_connect, original_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            refuse(address)
        return original_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        refuse((host,))
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect, socket.getaddrinfo = original_connect, original_getaddrinfo  # type: ignore


@contextlib.contextmanager
def _local_sample_images(seed: int) -> Iterator[None]:
    """onnx2tf's `download_test_image_data`, wherever it was imported, returns local seeded images."""

    def local_images() -> np.ndarray:
        return np.random.default_rng(seed).random(SAMPLE_IMAGES_SHAPE, dtype=np.float32)

    patched = []
    for name in ("onnx2tf.onnx2tf", "onnx2tf.utils.common_functions"):
        module = importlib.import_module(name)
        if hasattr(module, "download_test_image_data"):
            patched.append((module, module.download_test_image_data))
            module.download_test_image_data = local_images
    try:
        yield
    finally:
        for module, original in patched:
            module.download_test_image_data = original


@contextlib.contextmanager
def _cwd(path: str) -> Iterator[None]:
    """onnx2tf looks for (and may write) files in the current directory: the work directory."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
