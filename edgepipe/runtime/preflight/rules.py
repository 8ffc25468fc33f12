"""The pre-flight's rules: the compiler's status words, the rules table and the Edge TPU op set.

Each entry names its source (the shorthand is explained in `edgepipe.runtime.preflight`) and is
marked uncertain where the public facts leave it unclear. Applied by checks.py (one op on its own)
and uncompiled.py (the graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from ..schema import BUILTIN_OPERATORS

# --- the compiler's statuses (REFERENCE §1.9, verbatim) -------------------------------------------

MAPPED = "mapped"
NOT_SUPPORTED = "Operation not supported"
UNSUPPORTED_DTYPE = "Operation is working on an unsupported data type"
UNSUPPORTED_RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
VERSION_NOT_SUPPORTED = "Operation version not supported"
NON_UNIT_STRIDES = "Only Strided-Slice with unitary strides supported"
MORE_THAN_ONE_SUBGRAPH = "More than one subgraph is not supported"
OTHERWISE_NOT_MAPPED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
# Seen from compiler 2.0 only (#25); REFERENCE §2.1 lists constant parameters as a requirement.
PARAM_NOT_CONSTANT = "Filter, bias, or other param is not constant at compile-time"
# No compiler status for these is public; the first is edgepipe's wording, the second the compiler's
# error line for the whole model (REFERENCE §1.7).
DYNAMIC_SHAPE = "Tensor has a dynamic shape (edgepipe's wording: no compiler status for this is public)"
UNRESOLVED_CUSTOM_OP = "Encountered unresolved custom op"


@dataclass(frozen=True)
class Rule:
    id: str
    applies_to: str
    status: str
    source: str
    certain: bool


# Tried in this order; the first that applies decides the op. Op-level reasons come before the
# subgraph rule because the compiler reports them even for ops after the cut (logs 07, 08: every
# LEAKY_RELU "Operation not supported", every non-unit STRIDED_SLICE its own status), and the data
# type check comes before the op list because DEQUANTIZE and the detection CUSTOM op, both absent
# from the list, are reported as "unsupported data type" (logs 09, 12).
RULES: Tuple[Rule, ...] = (
    Rule(
        "unresolved-custom-op",
        "custom op the compiler's TFLite interpreter has no kernel for (anything but "
        "TFLite_Detection_PostProcess); the compile then fails as a whole",
        UNRESOLVED_CUSTOM_OP,
        "REFERENCE §1.7 ('Encountered unresolved custom op: Atan' in three project READMEs); log 12 "
        "(TFLite_Detection_PostProcess compiles)",
        False,
    ),
    Rule(
        "quantize-float-input",
        "QUANTIZE whose input is float (the float→int8 step of a float-I/O model)",
        OTHERWISE_NOT_MAPPED,
        "log 09 (MNIST with float I/O, v15: the input QUANTIZE on the CPU, all later ops mapped)",
        True,
    ),
    Rule(
        "dtype",
        "an activation (input that is neither constant nor a variable, or any output) not INT8/UINT8. "
        "Constant inputs are exempt: weights, int32 biases and shape/axis/padding operands are "
        "compile-time parameters the compiler folds in (REFERENCE §2.1: parameters must be constant). "
        "Variables are exempt: LSTM state stays a tensor of the compiled op (the keras_lstm pair keeps "
        "its INT16 state as an input of edgetpu-custom-op)",
        UNSUPPORTED_DTYPE,
        "REFERENCE §1.9; logs 09, 12 (DEQUANTIZE, CUSTOM on float); #222",
        True,
    ),
    Rule(
        "unsupported-op",
        "op not in the Edge TPU op set (REFERENCE §2.2, see EDGETPU_OPS)",
        NOT_SUPPORTED,
        "REFERENCE §2.2 (coral.ai table); logs 07 (LEAKY_RELU), 08 (TRANSPOSE, compiler 15)",
        True,
    ),
    Rule(
        "op-version",
        "op version from a TensorFlow newer than compiler 16's TFLite (see op_versions.py); the "
        "compiler then rejects the whole model ('Didn't find op for builtin opcode')",
        VERSION_NOT_SUPPORTED,
        "REFERENCE §1.7, §2.3 (#631 CONV_2D v6, #879 QUANTIZE v3, #845 TRANSPOSE_CONV v4, "
        "libedgetpu#71 EXP v2); TensorFlow runtime_version.cc for each version's release; certain "
        "for versions from TF 2.8 on or with a public rejection, uncertain for TF 2.7",
        True,
    ),
    Rule(
        "param-not-constant",
        "CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV whose filter or bias is computed at "
        "run time (e.g. a matmul of two activations) instead of being a constant of the file",
        PARAM_NOT_CONSTANT,
        "#25 (FULLY_CONNECTED, compiler 2.0.267685300, this status verbatim); REFERENCE §2.1 (coral.ai: "
        "parameters such as bias tensors constant at compile time)",
        True,
    ),
    Rule(
        "dynamic",
        "an activation whose size is unknown until run time: -1 in the stored shape, or in the shape "
        "signature anywhere but the batch dimension (a dynamic batch alone is a model warning: the "
        "stored shape holds batch 1)",
        DYNAMIC_SHAPE,
        "REFERENCE §2.1 (coral.ai: tensor sizes constant at compile time, unverified); no compiler "
        "output for it is public",
        False,
    ),
    Rule(
        "rank",
        "an activation with more than 3 dimensions where any but the 3 innermost is larger than 1",
        UNSUPPORTED_RANK,
        "REFERENCE §1.9, §2.1 (#30 batch 30, #75, #708)",
        True,
    ),
    Rule(
        "strided-slice-stride",
        "STRIDED_SLICE whose constant strides (4th input) hold a value other than 1",
        NON_UNIT_STRIDES,
        "REFERENCE §1.9; log 08 (yolov5s)",
        True,
    ),
    Rule(
        "resize-size",
        "RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR whose output is more than 2x its input along height "
        "or width. coral.ai only says that, depending on input/output size, resizes may not map; no "
        "threshold is published. 2x is the largest factor seen mapped (logs 10, 12); the deeplab pair's "
        "1x1→33x33 resize is where its mapping stops, and the cityscapes pair leaves its 33x33→513x513 "
        "resize as its first CPU op",
        OTHERWISE_NOT_MAPPED,
        "#31 (status for a size-rejected resize), #206, #597 (maintainer: 'not mapped to TPU due to "
        "their size'); deeplab and cityscapes pairs; logs 10, 12",
        False,
    ),
    Rule(
        "after-first-cpu-op",
        "otherwise supported op that depends on an op left on the CPU, so it is not in the first Edge "
        "TPU subgraph (off with multiple_subgraphs=True, the compiler's experimental -a). The compiler "
        "sometimes words it 'Operation is otherwise supported, but not mapped due to some unspecified "
        "limitation' for QUANTIZE/RESHAPE/CONCATENATION at the output (logs 01, 07, 08)",
        MORE_THAN_ONE_SUBGRAPH,
        "REFERENCE §2.1 (#30, #461); logs 01, 07, 08; deeplab pair",
        True,
    ),
    Rule(
        "mapped",
        "every other op; uncertain when the op was never seen mapped in a real compiler output, when its "
        "version is from TF 2.5-2.6, for resizes (size limits unpublished), and for FULLY_CONNECTED with "
        "per-axis (per-channel) weights, which TF 2.21 writes but the TFLite int8 spec lists only for "
        "convolutions: no public compiler output shows what compiler 16 does with them (REFERENCE §1.7, §6), "
        "and for TILE other than the one form seen mapped (TILE_SEEN)",
        MAPPED,
        "see EDGETPU_OPS",
        True,
    ),
)
RULE = {rule.id: rule for rule in RULES}

# The Edge TPU op set (REFERENCE §2.2, coral.ai's table in TFLite builtin names), with where each op
# was seen supported by a real compiler. Empty: only coral.ai's table says so, hence uncertain.
EDGETPU_OPS: Dict[str, str] = {
    "ADD": "logs 02, 04, 12; deeplab pair",
    "AVERAGE_POOL_2D": "log 04; mobilenet_v1, deeplab pairs",
    "CONCATENATION": "logs 10, 12",
    "CONV_2D": "logs 02-07, 09-12; all pairs",
    "DEPTHWISE_CONV_2D": "logs 02-04, 12; mobilenet_v1, deeplab pairs",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "logs 02, 04-06, 09; keras_lstm pair",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "log 12",
    "LSTM": "",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "keras_lstm pair",
    "MAXIMUM": "",
    "MAX_POOL_2D": "logs 01, 05-07, 09, 10, 12",
    "MEAN": "log 02",
    "MINIMUM": "",
    "MUL": "log 08 (reported past the cut, i.e. supported)",
    "PACK": "",
    "PAD": "log 08 (reported past the cut, i.e. supported)",
    "PRELU": "",
    "QUANTIZE": "logs 01-03, 05, 12; keras_lstm pair",
    "REDUCE_MAX": "",
    "REDUCE_MIN": "",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "logs 05, 06, 09, 12; mobilenet_v1, keras_lstm pairs",
    "RESIZE_BILINEAR": "cityscapes pair (a 33x33 to 33x33 resize inside the compiled op)",
    "RESIZE_NEAREST_NEIGHBOR": "logs 10, 12",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "logs 02, 04-06, 09; mobilenet_v1, keras_lstm pairs",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "",
    "SQUEEZE": "",
    "STRIDED_SLICE": "log 08 (reported past the cut, i.e. supported)",
    "SUB": "log 08 (reported past the cut, i.e. supported)",
    "SUM": "",
    "SQUARED_DIFFERENCE": "",
    "TANH": "",
    # Not in coral.ai's table as REFERENCE §2.2 quotes it, yet Google's own compiled cityscapes model
    # maps it: its edgetpu-custom-op outputs only the tensor after TILE, QUANTIZE, CONCATENATION and
    # two CONV_2D, so all of them ran inside it. Seen only there, so see TILE_SEEN for what is certain.
    "TILE": "cityscapes pair (TILE v1, uint8 [1, 1, 1, 128] tiled to [1, 33, 33, 128])",
    # coral.ai lists it, yet compiler 15 answered "Operation not supported" (log 08).
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}

# What the one real TILE seen mapped did (cityscapes pair): constant multiples that repeat only along
# height and width of a rank-4 activation. Any other TILE is believed to map but is uncertain.
TILE_SEEN = "constant multiples [1, h, w, 1] on a rank-4 activation (cityscapes pair)"

# Inputs that must be compile-time constants: filter and bias (TRANSPOSE_CONV: output shape 0, filter 1,
# input 2, bias 3). Positions from TFLite's op definitions.
PARAMETER_INPUTS: Dict[str, Tuple[int, ...]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
}

# Custom ops the compiler's interpreter resolves (log 12 compiles a model holding it).
KNOWN_CUSTOM_OPS = ("TFLite_Detection_PostProcess",)

# Op versions with a public "Didn't find op for builtin opcode" from compiler 16 (REFERENCE §2.3).
REJECTED_VERSIONS = {
    ("CONV_2D", 6): "#631",
    ("QUANTIZE", 3): "#879",
    ("TRANSPOSE_CONV", 4): "#845, log 13",
    ("EXP", 2): "google-coral/libedgetpu#71",
}
# Versions compilers 14.1/15 refused to map ("Operation version not supported"): half-pixel-centre
# resizes from TF 2.x. Compiler 16's answer is not public; log 12 (v16) maps 12 nearest-neighbour resizes.
OLD_COMPILER_VERSION_LIMITS = {
    "RESIZE_NEAREST_NEIGHBOR": (3, "logs 01, 07, 08; #420"),
    "RESIZE_BILINEAR": (3, "#396"),
}
# Builtin codes from TF 2.8 on (RANDOM_STANDARD_NORMAL = 146) are unknown to compiler 16: #862 shows
# "Op builtin_code out of range: 151".
FIRST_UNKNOWN_BUILTIN_CODE = BUILTIN_OPERATORS.index("RANDOM_STANDARD_NORMAL")

ACTIVATION_DTYPES = ("INT8", "UINT8")
FLOAT_DTYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")

# About 8 MiB of on-chip SRAM caches parameters (REFERENCE §5.1). What is usable varies per compile:
# used + remaining was 8.05 MiB (log 08), 7.50 MiB (log 11), and as little as 6.89 MiB (#512).
ON_CHIP_CACHE_BYTES = 8 * 1024 * 1024
SMALLEST_CACHE_SEEN_BYTES = int(6.89 * 1024 * 1024)
