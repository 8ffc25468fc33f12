"""The probe child: `python -m edgepipe.runtime probe --library PATH [--model M --device D --runtime R]`.

It does the risky first steps with libedgetpu (load it, ask its version, list devices, and with a
model: create the Edge TPU delegate and allocate the model) and prints one JSON line per step
(`{"stage": ...}`) before starting it, then `{"result": {...}}`. If the process crashes or hangs,
the parent (`edgetpu.run_probe`) knows the last step from those lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from .edgetpu import parse_device, select_device
from .errors import EdgepipeError
from .libedgetpu import query_library
from .report import to_jsonable


def _say(message: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(to_jsonable(message)) + "\n")
    sys.stdout.flush()


def probe(
    library: str, model: Optional[str] = None, device: Optional[str] = None, runtime: Optional[str] = None
) -> Dict[str, Any]:
    state = {"stage": "start"}

    def stage(name: str) -> None:
        state["stage"] = name
        _say({"stage": name})

    result: Dict[str, Any] = {"ok": False, "library": library}
    try:
        spec = parse_device(device)
        tflite = None
        if model:
            from .interpreters import load_tflite_runtime

            stage("load_runtime")
            tflite = load_tflite_runtime(runtime)
            result["runtime"] = tflite.describe()
        result.update(query_library(library, stage))
        if model:
            stage("select_device")
            chosen = select_device(result["devices"], spec)
            if chosen is None:
                raise LookupError("no Edge TPU matches %s among %d listed" % (spec, len(result["devices"])))
            result["device"] = chosen
            stage("load_delegate")
            options = {"device": device} if device else {}
            delegate = tflite.load_delegate(library, options)
            stage("create_interpreter")
            interpreter = tflite.make_interpreter(model, delegates=[delegate])
            stage("allocate_tensors")
            interpreter.allocate_tensors()
        stage("done")
        result["ok"] = True
    except (Exception, EdgepipeError) as exc:  # everything is reported; the parent decides
        result["error"] = " ".join(str(exc).split()) or type(exc).__name__
    result["stage"] = state["stage"]
    return result


def main_probe(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgepipe.runtime probe")
    parser.add_argument("--library", required=True, help="libedgetpu to load")
    parser.add_argument("--model", help="also create the delegate and allocate this model")
    parser.add_argument("--device", help="usb, usb:N, pci, pci:N or :N")
    parser.add_argument("--runtime", help="TFLite runtime to use (ai_edge_litert, tflite_runtime, tensorflow)")
    args = parser.parse_args(argv)
    result = probe(args.library, args.model, args.device, args.runtime)
    _say({"result": result})
    return 0


__all__ = ["main_probe", "probe"]
