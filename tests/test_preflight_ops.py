"""The pre-flight's op table and rules, one synthetic op at a time, against sources outside the code.

Each model here holds one well-formed int8 op (synthetic: written by tests/_tflite_builder.py) with
the dtypes, shapes and constant inputs a converter writes for it. The verdicts expected are NOT read
from the rules table they test:
- supported ops: the coral.ai "supported operations" list, as REFERENCE.md §2.2 quotes it (CORAL_OPS
  below; a test checks the quote against ../shared/edgetpu/REFERENCE.md), plus TILE, which that list
  lacks but Google's compiled cityscapes DeepLab maps (coral-test-data pair, see test_inspect.py);
- unsupported ops: everything else is "Operation not supported" (REFERENCE §1.9: "not in the Edge TPU
  op set"; LEAKY_RELU seen in log 07);
- statuses: the compiler's own words, copied from REFERENCE §1.9 as literals here.
So deleting a row (say TANH or MUL) from the op table, or adding one, fails a test here.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
from _tflite_builder import ABSENT, Input, act, const, ints, scalar_int, single_op, variable

from edgepipe.runtime import preflight
from edgepipe.runtime.preflight import OpVerdict, inspect_model
from edgepipe.runtime.schema import BUILTIN_OPERATORS
from edgepipe.runtime.tflite_reader import read_model_bytes

# The compiler's statuses, verbatim from REFERENCE.md §1.9.
MAPPED = "mapped"
NOT_SUPPORTED = "Operation not supported"
OTHERWISE = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
DATA_TYPE = "Operation is working on an unsupported data type"
RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
VERSION = "Operation version not supported"
STRIDES = "Only Strided-Slice with unitary strides supported"
SUBGRAPH = "More than one subgraph is not supported"
# Seen from compiler 2.0 only: google-coral/edgetpu#25, quoted in REFERENCE §2.1's sources.
PARAM = "Filter, bias, or other param is not constant at compile-time"

# coral.ai's supported operations as REFERENCE.md §2.2 lists them, with the TFLite builtin each name
# stands for. "LSTM (unidirectional)" covers TFLite's LSTM and UNIDIRECTIONAL_SEQUENCE_LSTM (the
# keras_lstm pair maps the latter).
CORAL_OPS: Dict[str, Tuple[str, ...]] = {
    "Add": ("ADD",),
    "AveragePool2d": ("AVERAGE_POOL_2D",),
    "Concatenation": ("CONCATENATION",),
    "Conv2d": ("CONV_2D",),
    "DepthwiseConv2d": ("DEPTHWISE_CONV_2D",),
    "ExpandDims": ("EXPAND_DIMS",),
    "FullyConnected": ("FULLY_CONNECTED",),
    "L2Normalization": ("L2_NORMALIZATION",),
    "Logistic": ("LOGISTIC",),
    "LSTM (unidirectional)": ("LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM"),
    "Maximum": ("MAXIMUM",),
    "MaxPool2d": ("MAX_POOL_2D",),
    "Mean": ("MEAN",),
    "Minimum": ("MINIMUM",),
    "Mul": ("MUL",),
    "Pack": ("PACK",),
    "Pad": ("PAD",),
    "PReLU": ("PRELU",),
    "Quantize": ("QUANTIZE",),
    "ReduceMax": ("REDUCE_MAX",),
    "ReduceMin": ("REDUCE_MIN",),
    "ReLU": ("RELU",),
    "ReLU6": ("RELU6",),
    "ReLUN1To1": ("RELU_N1_TO_1",),
    "Reshape": ("RESHAPE",),
    "ResizeBilinear": ("RESIZE_BILINEAR",),
    "ResizeNearestNeighbor": ("RESIZE_NEAREST_NEIGHBOR",),
    "Rsqrt": ("RSQRT",),
    "Slice": ("SLICE",),
    "Softmax": ("SOFTMAX",),
    "SpaceToDepth": ("SPACE_TO_DEPTH",),
    "Split": ("SPLIT",),
    "Squeeze": ("SQUEEZE",),
    "StridedSlice": ("STRIDED_SLICE",),
    "Sub": ("SUB",),
    "Sum": ("SUM",),
    "SquaredDifference": ("SQUARED_DIFFERENCE",),
    "Tanh": ("TANH",),
    "Transpose": ("TRANSPOSE",),
    "TransposeConv": ("TRANSPOSE_CONV",),
}
# Mapped by the real compiler in Google's compiled cityscapes DeepLab, though not in the list above.
SEEN_MAPPED = ("TILE",)
SUPPORTED = sorted({b for names in CORAL_OPS.values() for b in names} | set(SEEN_MAPPED))
# Not operators a model can hold as a builtin: the custom-op escape and a schema placeholder.
NOT_BUILTINS = ("CUSTOM", "PLACEHOLDER_FOR_GREATER_OP_CODES")
UNSUPPORTED = [name for name in BUILTIN_OPERATORS if name not in SUPPORTED and name not in NOT_BUILTINS]

X = [1, 8, 8, 4]  # an int8 activation: batch 1, 8x8, 4 channels


def _weights(*shape: int) -> Input:
    n = 1
    for d in shape:
        n *= d
    return const(list(shape), "INT8", bytes((i * 7) % 256 for i in range(n)))


def _bias(n: int) -> Input:
    return const([n], "INT32", struct.pack("<%di" % n, *range(n)))


def _lstm(name: str) -> bytes:
    """Input [1, 4, 8] (batch, time, features), 4 units: 4 input and 4 recurrent int8 weight matrices,
    no peepholes, 4 int32 gate biases, no projection, and the two int16 state variables, as the keras
    LSTM pair stores them."""
    weights = [_weights(4, 8)] * 4 + [_weights(4, 4)] * 4
    inputs = [act([1, 4, 8])] + weights + [ABSENT] * 3 + [_bias(4)] * 4 + [ABSENT] * 2
    inputs += [variable([1, 4], "INT16"), variable([1, 4], "INT16")]
    return single_op(name, inputs, [[1, 4, 4]])


# One well-formed model per supported builtin.
OP_MODELS: Dict[str, Callable[[], bytes]] = {
    "ADD": lambda: single_op("ADD", [act(X), act(X)], [X]),
    "AVERAGE_POOL_2D": lambda: single_op("AVERAGE_POOL_2D", [act(X)], [[1, 4, 4, 4]]),
    "CONCATENATION": lambda: single_op("CONCATENATION", [act(X), act(X)], [[1, 8, 8, 8]]),
    "CONV_2D": lambda: single_op("CONV_2D", [act(X), _weights(4, 3, 3, 4), _bias(4)], [[1, 6, 6, 4]]),
    "DEPTHWISE_CONV_2D": lambda: single_op(
        "DEPTHWISE_CONV_2D", [act(X), _weights(1, 3, 3, 4), _bias(4)], [[1, 6, 6, 4]]
    ),
    "EXPAND_DIMS": lambda: single_op("EXPAND_DIMS", [act([8, 4]), scalar_int(0)], [[1, 8, 4]]),
    "FULLY_CONNECTED": lambda: single_op("FULLY_CONNECTED", [act([1, 16]), _weights(8, 16), _bias(8)], [[1, 8]]),
    "L2_NORMALIZATION": lambda: single_op("L2_NORMALIZATION", [act(X)], [X]),
    "LOGISTIC": lambda: single_op("LOGISTIC", [act(X)], [X]),
    "LSTM": lambda: _lstm("LSTM"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": lambda: _lstm("UNIDIRECTIONAL_SEQUENCE_LSTM"),
    "MAXIMUM": lambda: single_op("MAXIMUM", [act(X), act(X)], [X]),
    "MAX_POOL_2D": lambda: single_op("MAX_POOL_2D", [act(X)], [[1, 4, 4, 4]]),
    "MEAN": lambda: single_op("MEAN", [act(X), ints([1, 2])], [[1, 1, 1, 4]]),
    "MINIMUM": lambda: single_op("MINIMUM", [act(X), act(X)], [X]),
    "MUL": lambda: single_op("MUL", [act(X), act(X)], [X]),
    "PACK": lambda: single_op("PACK", [act([8, 4]), act([8, 4])], [[2, 8, 4]]),
    "PAD": lambda: single_op("PAD", [act(X), ints([0, 0, 1, 1, 1, 1, 0, 0])], [[1, 10, 10, 4]]),
    "PRELU": lambda: single_op("PRELU", [act(X), _weights(1, 1, 4)], [X]),
    "QUANTIZE": lambda: single_op("QUANTIZE", [act(X)], [X]),  # int8 -> int8: a requantize
    "REDUCE_MAX": lambda: single_op("REDUCE_MAX", [act(X), ints([1, 2])], [[1, 1, 1, 4]]),
    "REDUCE_MIN": lambda: single_op("REDUCE_MIN", [act(X), ints([1, 2])], [[1, 1, 1, 4]]),
    "RELU": lambda: single_op("RELU", [act(X)], [X]),
    "RELU6": lambda: single_op("RELU6", [act(X)], [X]),
    "RELU_N1_TO_1": lambda: single_op("RELU_N1_TO_1", [act(X)], [X]),
    "RESHAPE": lambda: single_op("RESHAPE", [act(X), ints([1, 256])], [[1, 256]]),
    "RESIZE_BILINEAR": lambda: single_op("RESIZE_BILINEAR", [act(X), ints([16, 16])], [[1, 16, 16, 4]]),
    "RESIZE_NEAREST_NEIGHBOR": lambda: single_op("RESIZE_NEAREST_NEIGHBOR", [act(X), ints([16, 16])], [[1, 16, 16, 4]]),
    "RSQRT": lambda: single_op("RSQRT", [act(X)], [X]),
    "SLICE": lambda: single_op("SLICE", [act(X), ints([0, 0, 0, 0]), ints([1, 4, 4, 4])], [[1, 4, 4, 4]]),
    "SOFTMAX": lambda: single_op("SOFTMAX", [act([1, 16])], [[1, 16]]),
    "SPACE_TO_DEPTH": lambda: single_op("SPACE_TO_DEPTH", [act(X)], [[1, 4, 4, 16]]),
    "SPLIT": lambda: single_op("SPLIT", [scalar_int(3), act(X)], [[1, 8, 8, 2], [1, 8, 8, 2]]),
    "SQUEEZE": lambda: single_op("SQUEEZE", [act([1, 1, 8, 4])], [[1, 8, 4]]),
    "STRIDED_SLICE": lambda: single_op(
        "STRIDED_SLICE", [act(X), ints([0, 0, 0, 0]), ints([1, 4, 4, 4]), ints([1, 1, 1, 1])], [[1, 4, 4, 4]]
    ),
    "SUB": lambda: single_op("SUB", [act(X), act(X)], [X]),
    "SUM": lambda: single_op("SUM", [act(X), ints([1, 2])], [[1, 1, 1, 4]]),
    "SQUARED_DIFFERENCE": lambda: single_op("SQUARED_DIFFERENCE", [act(X), act(X)], [X]),
    "TANH": lambda: single_op("TANH", [act(X)], [X]),
    "TILE": lambda: single_op("TILE", [act([1, 1, 1, 4]), ints([1, 8, 8, 1])], [X]),
    "TRANSPOSE": lambda: single_op("TRANSPOSE", [act(X), ints([0, 2, 1, 3])], [X]),
    "TRANSPOSE_CONV": lambda: single_op("TRANSPOSE_CONV", [ints(X), _weights(4, 3, 3, 4), act([1, 6, 6, 4])], [X]),
}


def _verdict(data: bytes, index: int = 0) -> OpVerdict:
    report = inspect_model(read_model_bytes(data, "synthetic.tflite"))
    return report.ops[index]


def test_coral_list_is_quoted_from_the_reference(shared: Path) -> None:
    """CORAL_OPS is exactly the list in REFERENCE.md §2.2, so the expectations below are that source's."""
    text = (shared / "edgetpu" / "REFERENCE.md").read_text()
    section = text[text.index("### 2.2 Supported operations") :]
    paragraph = section.split("\n\n")[1]
    quoted = [n.strip().rstrip(".") for n in " ".join(paragraph.splitlines()).split(",")]
    assert quoted == list(CORAL_OPS)


def test_every_supported_op_has_a_model_here() -> None:
    assert sorted(OP_MODELS) == SUPPORTED


@pytest.mark.parametrize("name", SUPPORTED)
def test_synthetic_supported_op_is_mapped(name: str) -> None:
    data = OP_MODELS[name]()
    ops = read_model_bytes(data, "synthetic.tflite").main.operators
    assert [o.name for o in ops] == [name]  # the model holds the op under test, and only it
    v = _verdict(data)
    assert v.edgetpu == MAPPED, (v.rule, v.detail)


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_synthetic_op_outside_the_edgetpu_set_is_not_supported(name: str) -> None:
    v = _verdict(single_op(name, [act([1, 4])], [[1, 4]]))
    assert v.edgetpu == NOT_SUPPORTED, (v.rule, v.detail)


# --- conditions: one passing and one failing case each -------------------------------------------------

CONDITIONS: List[Tuple[str, Callable[[], bytes], str, str]] = [
    # (case, model, expected status, source)
    ("resize_2x", lambda: OP_MODELS["RESIZE_NEAREST_NEIGHBOR"](), MAPPED, "logs 10, 12: 2x resizes mapped"),
    (
        "resize_3x",
        lambda: single_op("RESIZE_BILINEAR", [act(X), ints([24, 24])], [[1, 24, 24, 4]]),
        OTHERWISE,
        "deeplab pairs: the 33x and 15.5x upscales stay on the CPU",
    ),
    ("rank_batch_1", lambda: single_op("ADD", [act(X), act(X)], [X]), MAPPED, "REFERENCE §2.1"),
    (
        "rank_batch_2",
        lambda: single_op("ADD", [act([2, 8, 8, 4]), act([2, 8, 8, 4])], [[2, 8, 8, 4]]),
        RANK,
        "REFERENCE §1.9, #30 (batch > 1)",
    ),
    ("fc_constant_weights", lambda: OP_MODELS["FULLY_CONNECTED"](), MAPPED, "REFERENCE §2.1"),
    (
        "fc_run_time_weights",
        lambda: single_op("FULLY_CONNECTED", [act([1, 16]), act([8, 16]), _bias(8)], [[1, 8]]),
        PARAM,
        "#25",
    ),
    ("quantize_int8_input", lambda: OP_MODELS["QUANTIZE"](), MAPPED, "keras_lstm pair, logs 01-03"),
    (
        "quantize_float_input",
        lambda: single_op("QUANTIZE", [act(X, "FLOAT32")], [X]),
        OTHERWISE,
        "log 09 (float-I/O MNIST: input QUANTIZE on the CPU)",
    ),
    (
        "conv_int32_output",
        lambda: single_op("CONV_2D", [act(X), _weights(4, 3, 3, 4), _bias(4)], [[1, 6, 6, 4]], out_dtype="INT32"),
        DATA_TYPE,
        "REFERENCE §1.9 (non-int8 CONV_2D), #222",
    ),
    (
        "conv_v6",
        lambda: single_op("CONV_2D", [act(X), _weights(4, 3, 3, 4), _bias(4)], [[1, 6, 6, 4]], version=6),
        VERSION,
        "#631 (CONV_2D v6 from TF 2.9)",
    ),
    (
        "strided_slice_stride_2",
        lambda: single_op(
            "STRIDED_SLICE", [act(X), ints([0, 0, 0, 0]), ints([1, 8, 8, 4]), ints([1, 2, 2, 1])], [[1, 4, 4, 4]]
        ),
        STRIDES,
        "log 08 (yolov5s)",
    ),
    (
        "leaky_relu",
        lambda: single_op("LEAKY_RELU", [act(X)], [X]),
        NOT_SUPPORTED,
        "log 07 (compiler 15)",
    ),
]


@pytest.mark.parametrize("case, build, status, source", CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_synthetic_condition(case: str, build: Callable[[], bytes], status: str, source: str) -> None:
    v = _verdict(build())
    assert v.edgetpu == status, (case, source, v.rule, v.detail)


def test_synthetic_tile_is_certain_only_in_the_form_seen_mapped() -> None:
    """The cityscapes pair maps TILE with constant multiples [1, h, w, 1]; tiling channels was never
    seen, so it is predicted mapped but marked uncertain."""
    seen = _verdict(OP_MODELS["TILE"]())
    assert seen.edgetpu == MAPPED and seen.certain
    channels = _verdict(single_op("TILE", [act([1, 8, 8, 1]), ints([1, 1, 1, 4])], [X]))
    assert channels.edgetpu == MAPPED and not channels.certain and "TILE" in channels.detail


# --- every rule of the table has a case ----------------------------------------------------------------


def _cut_off() -> bytes:
    """input -> ADD -> LEAKY_RELU -> ADD: the second ADD depends on an op left on the CPU after the
    first Edge TPU subgraph (ADD), so without -a it cannot join it."""
    from _tflite_builder import model, op, opcode, tensor

    return model(
        [opcode("ADD"), opcode("LEAKY_RELU")],
        [tensor([1, 4], name=n) for n in ("in", "a", "b", "out")],
        [op(0, [0, 0], [1]), op(1, [1], [2]), op(0, [2, 2], [3])],
        [0],
        [3],
    )


# rule id -> (model, op index, expected status or None where the wording is edgepipe's own, source)
RULE_CASES: Dict[str, Tuple[Callable[[], bytes], int, object, str]] = {
    "unresolved-custom-op": (
        lambda: _custom_model("Atan"),
        0,
        "Encountered unresolved custom op: Atan",
        "REFERENCE §1.7",
    ),
    "quantize-float-input": (CONDITIONS[7][1], 0, OTHERWISE, "log 09"),
    "dtype": (CONDITIONS[8][1], 0, DATA_TYPE, "REFERENCE §1.9"),
    "unsupported-op": (CONDITIONS[11][1], 0, NOT_SUPPORTED, "log 07"),
    "op-version": (CONDITIONS[9][1], 0, VERSION, "#631"),
    "param-not-constant": (CONDITIONS[5][1], 0, PARAM, "#25"),
    "dynamic": (
        lambda: single_op("RELU", [act([1, 4])], [[1, 4]], signatures={0: [1, -1]}),
        0,
        None,
        "REFERENCE §2.1 (no compiler status is public)",
    ),
    "rank": (CONDITIONS[3][1], 0, RANK, "REFERENCE §1.9"),
    "strided-slice-stride": (CONDITIONS[10][1], 0, STRIDES, "log 08"),
    "resize-size": (CONDITIONS[1][1], 0, OTHERWISE, "deeplab pairs"),
    "after-first-cpu-op": (_cut_off, 2, SUBGRAPH, "REFERENCE §2.1 (#30, #461)"),
    "mapped": (OP_MODELS["ADD"], 0, MAPPED, "coral.ai list"),
}


def _custom_model(code: str) -> bytes:
    from _tflite_builder import model, op, opcode, tensor

    return model(
        [opcode("CUSTOM", custom=code)],
        [tensor([1, 4], name="in"), tensor([1, 4], name="out")],
        [op(0, [0], [1])],
        [0],
        [1],
    )


def test_every_rule_has_a_case() -> None:
    assert set(RULE_CASES) == {rule.id for rule in preflight.RULES}


@pytest.mark.parametrize("rule_id", sorted(RULE_CASES))
def test_synthetic_rule_decides_its_case(rule_id: str) -> None:
    build, index, status, source = RULE_CASES[rule_id]
    v = _verdict(build(), index)
    assert v.rule == rule_id, (source, v.detail)
    if status is not None:
        assert v.edgetpu == status, source
