"""In which TensorFlow release each TFLite builtin op version first appeared.

Why: `edgetpu_compiler` 16.0 (the last one, built mid-2021) carries the TFLite of its day. A model
holding an op version from a later TensorFlow fails to load in it ("Didn't find op for builtin opcode
'CONV_2D' version '6'", REFERENCE §1.7, §2.3), so the pre-flight needs each version's release.

Source (facts only, transcribed): the op-version → minimum-runtime map in TensorFlow's
`tensorflow/compiler/mlir/lite/tools/versioning/runtime_version.cc` (`FindMinimumRuntimeVersionForOp`),
as of TensorFlow 2.21. Each entry lists the release of versions 1, 2, 3, ... in order; "-" marks a
version that never shipped (BROADCAST_TO v1 was rolled back). Patch levels are dropped (1.13.1 → 1.13).
Ops absent here (CALL, CUSTOM, DELEGATE, ...) are not versioned by that map.
"""

from typing import Dict, Optional, Tuple

_RELEASES = {
    "ABS": "1.13 2.4 2.5 2.6 2.12",
    "ADD": "1.5 1.14 2.4 2.6 2.13 2.23",
    "ADD_N": "1.14",
    "ARG_MAX": "1.9 1.14 2.9",
    "ARG_MIN": "1.9 1.14 2.9",
    "ASSIGN_VARIABLE": "2.6",
    "ATAN2": "2.10",
    "AVERAGE_POOL_2D": "1.5 1.14 2.3",
    "BATCH_MATMUL": "2.3 2.3 2.4 2.5",
    "BATCH_TO_SPACE_ND": "1.6 1.14 2.3 2.12",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "1.14 1.14 1.14",
    "BIDIRECTIONAL_SEQUENCE_RNN": "1.14 1.14 2.3",
    "BITCAST": "2.13",
    "BITWISE_XOR": "2.13",
    "BROADCAST_ARGS": "2.6",
    "BROADCAST_TO": "- 2.5 2.5",
    "BUCKETIZE": "2.8",
    "CALL_ONCE": "2.5",
    "CAST": "1.5 2.7 2.8 2.9 2.12 2.15 2.17 2.21",
    "CEIL": "1.14",
    "COMPLEX_ABS": "2.5",
    "CONCATENATION": "1.5 1.14 2.3 2.14 2.21",
    "CONV_2D": "1.5 1.14 1.14 2.3 2.4 2.9 2.11 2.15",
    "CONV_3D": "2.5",
    "CONV_3D_TRANSPOSE": "2.6",
    "COS": "1.14",
    "CUMSUM": "2.4",
    "DENSIFY": "2.2",
    "DEPTH_TO_SPACE": "2.1 2.5",
    "DEPTHWISE_CONV_2D": "1.5 1.12 1.14 2.2 2.3 2.3 2.11",
    "DEQUANTIZE": "1.13 1.14 1.15 2.2 2.7 2.18 2.21 2.22",
    "DILATE": "2.15",
    "DIV": "1.6 2.3",
    "DYNAMIC_UPDATE_SLICE": "2.9 2.17 2.19 2.20 2.21 2.22",
    "ELU": "1.14",
    "EMBEDDING_LOOKUP": "1.13 1.14 1.14 2.18 2.21",
    "EMBEDDING_LOOKUP_SPARSE": "1.5",
    "EQUAL": "1.14 1.14 2.3 2.13 2.21",
    "EXP": "1.7 2.12",
    "EXPAND_DIMS": "1.10",
    "FAKE_QUANT": "1.5 1.10",
    "FILL": "1.13 2.3 2.5 2.12",
    "FLOOR": "1.9",
    "FLOOR_DIV": "1.14 1.14 2.13",
    "FLOOR_MOD": "1.13 2.13",
    "FULLY_CONNECTED": "1.5 1.10 1.14 1.14 2.0 2.1 2.3 2.3 2.3 2.11 2.15 2.17 2.18 2.21",
    "GATHER": "1.6 1.14 1.15 2.4 2.5 2.13 2.15",
    "GATHER_ND": "1.14 2.3 2.5 2.13 2.16",
    "GELU": "2.9 2.9",
    "GREATER": "1.14 1.14",
    "GREATER_EQUAL": "1.14 1.14 2.13",
    "HARD_SWISH": "1.15",
    "HASHTABLE": "2.5",
    "HASHTABLE_FIND": "2.5",
    "HASHTABLE_IMPORT": "2.5",
    "HASHTABLE_LOOKUP": "1.5",
    "HASHTABLE_SIZE": "2.5",
    "IF": "1.15",
    "IMAG": "2.5",
    "L2_NORMALIZATION": "1.5 1.14",
    "L2_POOL_2D": "1.5",
    "LEAKY_RELU": "1.13 2.3",
    "LESS": "1.14 1.14 2.13",
    "LESS_EQUAL": "1.14 1.14",
    "LOCAL_RESPONSE_NORMALIZATION": "1.5",
    "LOG": "1.14 2.15",
    "LOG_SOFTMAX": "1.14 1.14",
    "LOGICAL_AND": "1.11",
    "LOGICAL_NOT": "1.11",
    "LOGICAL_OR": "1.11",
    "LOGISTIC": "1.14 1.14 2.3",
    "LSH_PROJECTION": "1.5",
    "LSTM": "1.7 1.10 1.14 2.3",
    "MATRIX_DIAG": "1.14",
    "MATRIX_SET_DIAG": "1.14",
    "MAX_POOL_2D": "1.5 1.14 2.3",
    "MAXIMUM": "1.14 1.14 2.3 2.3",
    "MEAN": "1.6 1.14 2.4",
    "MINIMUM": "1.14 1.14 2.3 2.3",
    "MIRROR_PAD": "1.13 2.3 2.12",
    "MUL": "1.5 1.14 1.15 2.3 2.6 2.11 2.13 2.23",
    "MULTINOMIAL": "2.8",
    "NEG": "1.9",
    "NON_MAX_SUPPRESSION_V4": "2.1",
    "NON_MAX_SUPPRESSION_V5": "2.1",
    "NOT_EQUAL": "1.14 1.14 2.3 2.21",
    "ONE_HOT": "1.11",
    "PACK": "1.11 1.14 2.3 2.13",
    "PAD": "1.5 1.14 2.4 2.6 2.20",
    "PADV2": "1.9 1.14 2.4 2.6 2.20",
    "POW": "1.10",
    "PRELU": "1.8",
    "QUANTIZE": "1.14 1.15 2.7 2.21 2.21 2.21",
    "RANDOM_STANDARD_NORMAL": "2.8",
    "RANDOM_UNIFORM": "2.8",
    "RANGE": "1.13 2.14",
    "RANK": "1.14",
    "READ_VARIABLE": "2.6",
    "REAL": "2.5",
    "REDUCE_ALL": "2.6",
    "REDUCE_ANY": "1.11",
    "REDUCE_MAX": "1.11 1.14 2.5",
    "REDUCE_MIN": "1.11 1.14 2.5",
    "REDUCE_PROD": "1.11 2.6",
    "REDUCE_WINDOW": "2.15",
    "RELU": "1.5 2.1 2.5",
    "RELU6": "1.5 1.14 2.5",
    "RELU_0_TO_1": "2.10",
    "RELU_N1_TO_1": "1.5",
    "RESHAPE": "1.5",
    "RESIZE_BILINEAR": "1.7 1.14 2.2 2.5",
    "RESIZE_NEAREST_NEIGHBOR": "1.13 1.14 2.3 2.4",
    "REVERSE_SEQUENCE": "1.14",
    "REVERSE_V2": "1.14 2.2 2.5",
    "RFFT2D": "2.5",
    "RIGHT_SHIFT": "2.13",
    "RNN": "1.5 1.14 2.3",
    "ROUND": "1.14",
    "RSQRT": "1.10 2.5 2.15",
    "SCATTER_ND": "2.1",
    "SEGMENT_SUM": "2.2",
    "SELECT": "1.14 1.14 2.12 2.12",
    "SELECT_V2": "2.2 2.12",
    "SHAPE": "1.10",
    "SIGN": "2.11 2.12",
    "SIN": "1.9",
    "SKIP_GRAM": "1.5",
    "SLICE": "1.14 1.14 1.14 2.4 2.5 2.14 2.21",
    "SOFTMAX": "1.5 1.14 2.3",
    "SPACE_TO_BATCH_ND": "1.6 1.14 2.3 2.12",
    "SPACE_TO_DEPTH": "1.5 1.14",
    "SPARSE_TO_DENSE": "1.9 1.14 1.15",
    "SPLIT": "1.5 1.14 1.14 2.3",
    "SPLIT_V": "1.13 2.3",
    "SQRT": "1.10 2.21",
    "SQUARE": "1.12",
    "SQUARED_DIFFERENCE": "1.13 2.5",
    "SQUEEZE": "1.6 2.5",
    "STRIDED_SLICE": "1.6 1.14 2.1 2.2 2.5 2.6 2.14 2.14",
    "SUB": "1.6 1.14 2.3 2.4 2.4",
    "SUM": "1.10 1.15",
    "SVDF": "1.5 1.14 2.2 2.3",
    "TANH": "1.14 1.14 2.3",
    "TILE": "1.10 2.2 2.8",
    "TOPK_V2": "1.7 1.14 2.13",
    "TRANSPOSE": "1.6 1.14 1.15 2.3 2.4 2.12 2.14 2.22",
    "TRANSPOSE_CONV": "1.9 2.2 2.3 2.13 2.15",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "1.13 1.14 2.3 2.12",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "1.14 1.14 2.3",
    "UNIQUE": "1.14",
    "UNPACK": "1.11 1.14 2.2 2.3 2.22",
    "UNSORTED_SEGMENT_MAX": "2.10",
    "UNSORTED_SEGMENT_MIN": "2.11",
    "UNSORTED_SEGMENT_PROD": "2.10",
    "UNSORTED_SEGMENT_SUM": "2.10",
    "VAR_HANDLE": "2.6",
    "WHERE": "1.14 2.8",
    "WHILE": "1.15",
    "ZEROS_LIKE": "1.12",
}

# Returned for a version past the end of an op's list: newer than TensorFlow 2.21's map.
BEYOND_TABLE = (99, 0)


def _parse(text: str) -> Tuple[Optional[Tuple[int, int]], ...]:
    out = []
    for item in text.split():
        if item == "-":
            out.append(None)
        else:
            major, minor = item.split(".")
            out.append((int(major), int(minor)))
    return tuple(out)


RELEASES: Dict[str, Tuple[Optional[Tuple[int, int]], ...]] = {op: _parse(v) for op, v in _RELEASES.items()}


def release_of(op: str, version: int) -> Optional[Tuple[int, int]]:
    """(major, minor) of the TensorFlow release that introduced `op` version `version`.

    None when the op is not in the map or the version never shipped; `BEYOND_TABLE` when the version
    is newer than anything the map lists.
    """
    releases = RELEASES.get(op)
    if releases is None or version < 1:
        return None
    if version > len(releases):
        return BEYOND_TABLE
    return releases[version - 1]
