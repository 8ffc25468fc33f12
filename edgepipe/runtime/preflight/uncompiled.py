"""An uncompiled model: per-op checks, then TFLite's delegate partitioning decides which supported
ops end up in the (first) Edge TPU subgraph; plus the whole-model blockers and warnings."""

from __future__ import annotations

import heapq
from typing import Dict, List, Optional, Sequence

from ..errors import ModelFormatError
from ..tflite_reader import Model, Operator, Subgraph
from .checks import Check, check_op, version_check
from .graph import (
    activation_tensors,
    clip,
    constant_bytes_of,
    dims_text,
    io_tensors,
    mib,
    producers_of,
    readers_of,
    tensor_at,
)
from .result import InspectReport, OpVerdict, inspect_report
from .rules import (
    ACTIVATION_DTYPES,
    KNOWN_CUSTOM_OPS,
    MAPPED,
    MORE_THAN_ONE_SUBGRAPH,
    ON_CHIP_CACHE_BYTES,
    SMALLEST_CACHE_SEEN_BYTES,
)


class Partition:
    """TFLite's delegate partitioning (graph_info.cc), greedy as in TF 2.5: alternating node sets of
    one kind, each grown by data dependence until nothing more of its kind is ready. A new set takes the
    kind of the lowest-index ready op."""

    def __init__(self, sg: Subgraph, on_tpu: Sequence[bool]) -> None:
        n = len(sg.operators)
        producer = producers_of(sg)
        waiting_on = [0] * n
        consumers: List[List[int]] = [[] for _ in range(n)]
        for op in sg.operators:
            deps = {producer[t] for t in op.inputs if t in producer}
            for d in deps:
                consumers[d].append(op.index)
            waiting_on[op.index] = len(deps)
        self.set_of = [-1] * n  # index of the node set each op landed in
        self.kinds: List[bool] = []  # True: an Edge TPU set
        ready = [
            [i for i in range(n) if waiting_on[i] == 0 and on_tpu[i]],
            [i for i in range(n) if waiting_on[i] == 0 and not on_tpu[i]],
        ]
        for heap in ready:
            heapq.heapify(heap)
        while ready[0] or ready[1]:
            # The lowest-index ready op decides what kind of set comes next.
            kind = ready[0][0] < ready[1][0] if ready[0] and ready[1] else bool(ready[0])
            current = len(self.kinds)
            self.kinds.append(kind)
            heap = ready[0] if kind else ready[1]
            while heap:
                i = heapq.heappop(heap)
                self.set_of[i] = current
                for c in consumers[i]:
                    waiting_on[c] -= 1
                    if waiting_on[c] == 0:
                        heapq.heappush(ready[0] if on_tpu[c] else ready[1], c)
        stuck = [i for i in range(n) if self.set_of[i] < 0]
        if stuck:
            raise ModelFormatError(
                "operator %d of %s reads a tensor that depends on its own output (a cycle); no interpreter can run it"
                % (stuck[0], sg.name or "the main subgraph"),
                hint="Re-export the model",
            )


def _float_readers_note(sg: Subgraph, op: Operator, readers: Dict[int, List[int]], producer: Dict[int, int]) -> str:
    """For a DEQUANTIZE: the ops its float output feeds. Under int8-with-float-fallback conversion these
    are the ops the converter could not quantize, the cause the user has to fix (the DEQUANTIZE is only
    where the compiler first notices). Only the tensor's (first) writer reports its readers, which keeps
    the work linear when a hostile file has many ops write one tensor."""
    fed: List[int] = []
    for t in set(op.outputs):
        if producer.get(t) == op.index:
            fed.extend(readers.get(t, ()))
    if not fed:
        return ""
    fed = sorted(set(fed))
    shown = ", ".join("%s #%d" % (clip(sg.operators[i].name), i) for i in fed[:5])
    more = " and %d more" % (len(fed) - 5) if len(fed) > 5 else ""
    return "; its float output feeds %s%s, left in float by the converter" % (shown, more)


def inspect_uncompiled(model: Model, multiple_subgraphs: bool) -> InspectReport:
    sg = model.main
    checks = [check_op(model, sg, op) for op in sg.operators]
    readers, producer = readers_of(sg), producers_of(sg)
    for op, check in zip(sg.operators, checks):
        if check.rule == "dtype" and op.name == "DEQUANTIZE":
            check.detail += _float_readers_note(sg, op, readers, producer)
        elif check.rule == "dtype" and op.name == "SHAPE" and op.inputs:
            source = tensor_at(sg, op.inputs[0])
            if source is not None and source.is_dynamic:
                check.detail += "; it reads the run-time size of %r, whose shape signature %s is dynamic" % (
                    clip(source.name),
                    dims_text(source.shape_signature or source.shape),
                )
    partition = Partition(sg, [c.on_tpu for c in checks])
    tpu_sets = [i for i, kind in enumerate(partition.kinds) if kind]
    kept = set(tpu_sets) if multiple_subgraphs else set(tpu_sets[:1])

    # An op past the cut is certainly there only if an op it depends on, past the first Edge TPU
    # set, is certainly on the CPU.
    upstream_cpu = certainly_cut_off(sg, checks, partition, tpu_sets[0] if tpu_sets else -1)
    verdicts: List[OpVerdict] = []
    for op, check in zip(sg.operators, checks):
        rule, status, certain, detail = check.rule, check.status, check.certain, check.detail
        if check.on_tpu and partition.set_of[op.index] not in kept:
            rule, status = "after-first-cpu-op", MORE_THAN_ONE_SUBGRAPH
            certain = upstream_cpu[op.index]
            detail = "depends on ops left on the CPU" + (
                "" if certain else "; the ops that cut it off are themselves uncertain"
            )
        verdicts.append(
            OpVerdict(
                index=op.index,
                name=clip(op.name),
                version=op.version,
                edgetpu=MAPPED if rule == "mapped" else status,
                rule=rule,
                certain=certain,
                outputs=[clip(sg.tensors[t].name) for t in op.outputs if 0 <= t < len(sg.tensors)],
                detail=detail,
                custom_code=None if op.custom_code is None else clip(op.custom_code),
            )
        )

    on_tpu = [v.edgetpu == MAPPED for v in verdicts]
    tpu_ops = sum(on_tpu)
    cpu_verdicts = [v for v in verdicts if v.edgetpu != MAPPED]
    tpu_parameter_bytes = constant_bytes_of(sg, [op for op, tpu in zip(sg.operators, on_tpu) if tpu])
    warnings = model_warnings(model, sg, multiple_subgraphs, partition, tpu_ops)
    return inspect_report(
        model,
        on_tpu,
        multiple_subgraphs,
        compiled_for_edgetpu=False,
        ops_total=len(verdicts),
        tpu_ops=tpu_ops,
        cpu_ops=len(cpu_verdicts),
        subgraphs=len(kept),
        tpu_parameter_bytes=tpu_parameter_bytes,
        off_chip_warning=off_chip_text(tpu_parameter_bytes),
        ops=list(verdicts),
        first_cpu_op=first_cpu_op_of(cpu_verdicts),
        needs_edgetpu_delegate=False,
        uncertain_ops=sum(not v.certain for v in verdicts),
        compile_blockers=find_compile_blockers(model, sg),
        edgetpu_executable_bytes=None,
        warnings=warnings,
    )


def certainly_cut_off(sg: Subgraph, checks: Sequence[Check], partition: Partition, first_tpu_set: int) -> List[bool]:
    """Per op: does it depend on an op that is certainly on the CPU by its own rule and comes after the
    first Edge TPU set? (Visited in set order, a topological order, so one pass suffices.)"""
    producer = producers_of(sg)
    cut = [False] * len(sg.operators)
    for i in sorted(range(len(sg.operators)), key=lambda i: (partition.set_of[i], i)):
        for t in set(sg.operators[i].inputs):
            p = producer.get(t)
            if p is None:
                continue
            own = not checks[p].on_tpu and checks[p].certain and partition.set_of[p] > first_tpu_set
            if cut[p] or own:
                cut[i] = True
    return cut


def off_chip_text(tpu_parameter_bytes: int) -> Optional[str]:
    if tpu_parameter_bytes > ON_CHIP_CACHE_BYTES:
        return (
            "%s of parameters for the Edge TPU exceed its ~8 MiB on-chip cache by %s: the compiler will "
            "stream at least that much from host memory on every inference (slow, especially over USB)"
            % (mib(tpu_parameter_bytes), mib(tpu_parameter_bytes - ON_CHIP_CACHE_BYTES))
        )
    if tpu_parameter_bytes > SMALLEST_CACHE_SEEN_BYTES:
        return (
            "%s of parameters for the Edge TPU: the compiler has left as little as 6.89 MiB of the cache "
            "for parameters (#512), so part may be streamed from host memory on every inference"
            % mib(tpu_parameter_bytes)
        )
    return None


def first_cpu_op_of(cpu_verdicts: Sequence[OpVerdict]) -> Optional[dict]:
    if not cpu_verdicts:
        return None
    v = cpu_verdicts[0]
    return {
        "index": v.index,
        "name": v.name,
        "version": v.version,
        "edgetpu": v.edgetpu,
        "rule": v.rule,
        "detail": v.detail,
    }


def find_compile_blockers(model: Model, sg: Subgraph) -> List[str]:
    """Problems for which the compiler rejects the whole model (REFERENCE §1.7), not just some ops.
    One line per operator code (op kind and version), naming its first op and how many there are."""
    users: Dict[int, List[int]] = {}
    for op in sg.operators:
        users.setdefault(op.opcode_index, []).append(op.index)
    blockers = []
    for indices in sorted(users.values()):
        op = sg.operators[indices[0]]
        where = "op %d" % op.index if len(indices) == 1 else "op %d and %d more" % (op.index, len(indices) - 1)
        state, certain, why = version_check(op)
        if state == "too-new":
            blockers.append(
                "%s%s: %s; expect \"Didn't find op for builtin opcode '%s' version '%d'\" and 'Model could not "
                "be parsed'" % ("" if certain else "(uncertain) ", where, why, clip(op.name), op.version)
            )
        elif op.is_custom and op.name not in KNOWN_CUSTOM_OPS:
            blockers.append(
                "(uncertain) %s: custom op %r has no kernel in the compiler's TFLite interpreter; expect "
                "'Encountered unresolved custom op: %s' and 'Model failed in Tflite interpreter'"
                % (where, clip(op.name), clip(op.name))
            )
    quantized = any(
        t.dtype in ACTIVATION_DTYPES and not t.is_constant for op in sg.operators for t in activation_tensors(sg, op)
    )
    if sg.operators and not quantized:
        blockers.append(
            "no activation is int8/uint8: compilers answer 'Model not quantized' (log 14, #168, #213) or map "
            "nothing (#222); convert with full-integer quantization"
        )
    return blockers


def model_warnings(
    model: Model, sg: Subgraph, multiple_subgraphs: bool, partition: Partition, tpu_ops: int
) -> List[str]:
    warnings = []
    dynamic_batch = [
        clip(t.name)
        for t in io_tensors(sg, sg.inputs)
        if t.shape_signature is not None
        and t.shape_signature[:1] == [-1]
        and all(d >= 0 for d in t.shape_signature[1:])
    ]
    if dynamic_batch:
        shape_ops = [op.index for op in sg.operators if op.name == "SHAPE"]
        listed = ", ".join(str(i) for i in shape_ops[:5])
        if len(shape_ops) > 5:
            listed += " and %d more" % (len(shape_ops) - 5)
        consequence = (
            "the converter added batch-size arithmetic on int32 (SHAPE at op %s), which falls back to the CPU" % listed
            if shape_ops
            else "the converter added no batch-size arithmetic (no SHAPE op)"
        )
        warnings.append(
            "input %s has a dynamic batch (shape signature -1): the compiler is believed to compile the stored "
            "batch of 1 (uncertain); %s. Convert with a fixed batch of 1"
            % (", ".join(repr(n) for n in dynamic_batch), consequence)
        )
    if len(model.subgraphs) > 1:
        warnings.append(
            "the model has %d TFLite subgraphs (control flow); only the main one is inspected" % len(model.subgraphs)
        )
    tpu_sets = sum(partition.kinds)
    if multiple_subgraphs and tpu_sets > 1:
        warnings.append(
            "multiple-subgraph mode (-a) is experimental: %d Edge TPU subgraphs predicted, each with its own "
            "CPU↔TPU transfers; measure whether it is faster (#461, #317)" % tpu_sets
        )
    if sg.operators and tpu_ops == 0:
        warnings.append("no op is predicted to map to the Edge TPU: everything would run on the CPU")
    return warnings
