"""Comparing the compiler's operator table with edgepipe's offline pre-flight prediction."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

from ..errors import EdgepipeError
from .parse import OperatorRow, merge_rows
from .verdict import ModelResult


def _preflight_ops(model_path: str, multiple_subgraphs: bool) -> List[Any]:
    from ..runtime.preflight import inspect_model  # late: only a finished compile needs the pre-flight

    return list(inspect_model(model_path, multiple_subgraphs=multiple_subgraphs).ops)


def compare_with_preflight(
    predicted_ops: List[Any], operators: List[OperatorRow], model: str = ""
) -> List[Dict[str, Any]]:
    """Per op name, the pre-flight's predicted mapped / not-mapped counts vs the compiler's table.

    `predicted_ops` are objects with `.name` and `.edgetpu` ("mapped" or a reason), as returned by
    `edgepipe.runtime.preflight.inspect_model(...).ops`. Custom ops count as "CUSTOM", as in the table.
    """
    predicted: Dict[str, Dict[str, Any]] = {}
    for op in predicted_ops:
        name = op.name
        if getattr(op, "custom_code", None) or getattr(op, "is_custom", False) is True:
            name = "CUSTOM"
        entry = predicted.setdefault(name, {"mapped": 0, "not_mapped": 0, "reasons": []})
        verdict = getattr(op, "edgetpu", None)
        if verdict == "mapped":
            entry["mapped"] += 1
        else:
            entry["not_mapped"] += 1
            if verdict and verdict not in entry["reasons"]:
                entry["reasons"].append(str(verdict))
    compiled: Dict[str, Dict[str, Any]] = {}
    for r in operators:
        entry = compiled.setdefault(r.name, {"mapped": 0, "not_mapped": 0, "statuses": []})
        entry["mapped" if r.mapped else "not_mapped"] += r.count
        if not r.mapped and r.status not in entry["statuses"]:
            entry["statuses"].append(r.status)
    disagreements = []
    for name in list(dict.fromkeys(list(compiled) + list(predicted))):
        p = predicted.get(name, {"mapped": 0, "not_mapped": 0, "reasons": []})
        c = compiled.get(name, {"mapped": 0, "not_mapped": 0, "statuses": []})
        if (p["mapped"], p["not_mapped"]) != (c["mapped"], c["not_mapped"]):
            item: Dict[str, Any] = {"op": name, "predicted": p, "compiler": c}
            if model:
                item["model"] = model
            disagreements.append(item)
    return disagreements


def run_preflight(
    models: List[Path], results: List[ModelResult], multiple_subgraphs: bool
) -> Tuple[str, List[Dict[str, Any]]]:
    disagreements: List[Dict[str, Any]] = []
    for model in models:
        # One model: every block is its own, whatever names the output shows (a log from elsewhere).
        mine = results if len(models) == 1 else [r for r in results if r.input and _stem_of(r.input) == model.stem]
        if not mine or any(not r.operators for r in mine):
            return "skipped: no complete operator table from the compiler", []
        rows = merge_rows(row for r in mine for row in r.operators)
        try:
            predicted = _preflight_ops(str(model), multiple_subgraphs)
        except EdgepipeError as exc:
            return "failed: %s" % exc.one_line(), []
        except Exception as exc:  # a pre-flight bug must not cost the user the compile report
            return "failed: %s: %s" % (type(exc).__name__, exc), []
        disagreements.extend(compare_with_preflight(predicted, rows, model=model.name))
    return "compared", disagreements


_SEGMENT = re.compile(r"_segment_\d+_of_\d+$")


def _stem_of(path: str) -> str:
    """The input model's stem, also for a segment's input (`m_segment_0_of_2.tflite` -> `m`)."""
    return _SEGMENT.sub("", Path(path).stem)
