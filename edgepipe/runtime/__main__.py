"""Device-side command line: `python -m edgepipe.runtime {bench,eval,inspect,doctor} ...`.

Runs on a board with Python 3.7+, numpy and one TFLite runtime (no typer, rich or TensorFlow).
Results are JSON on stdout (and, with `--output FILE`, written atomically to FILE). A failure is one
line `error: ...` on stderr, a JSON object `{"kind": "error", ...}` on stdout so that a host reading
stdout learns the error type too, and the exit code of the error class (README, "Exit codes").

`probe` is internal: the child process that loads libedgetpu first (see `edgetpu.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, List, Optional, Sequence

from .errors import DatasetError, EdgepipeError
from .report import RESULT_SCHEMA_VERSION, dumps, to_jsonable, write_json_atomic

COMMANDS = ("bench", "eval", "inspect", "doctor")


def _backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a .tflite model (uncompiled, or compiled *_edgetpu.tflite)")
    parser.add_argument(
        "--backend", choices=("auto", "edgetpu", "cpu"), default="auto", help="where to run (default: auto)"
    )
    parser.add_argument("--device", help="Edge TPU to use: usb, usb:N, pci, pci:N or :N (default: the first)")
    parser.add_argument("--cpu-model", help="uncompiled int8 twin to run on the CPU for a compiled model")
    parser.add_argument(
        "--runtime", choices=("litert", "ai_edge_litert", "tflite_runtime", "tensorflow"), help="TFLite runtime to use"
    )
    parser.add_argument("--threads", type=int, help="CPU interpreter threads (default: the runtime's)")
    parser.add_argument(
        "--preprocess", help="unit, raw, symmetric or caffe (default: the model's quantized input as is)"
    )
    parser.add_argument("--probe-timeout", type=float, default=60.0, help="seconds for the first Edge TPU load (child)")
    parser.add_argument("--output", help="also write the JSON result to this file")


def _open(args: argparse.Namespace) -> Any:
    from .backend import open_session

    session = open_session(
        args.model,
        backend=args.backend,
        device=args.device,
        cpu_model=args.cpu_model,
        runtime=args.runtime,
        num_threads=args.threads,
        probe_timeout=args.probe_timeout,
    )
    if session.fallback_reason:
        sys.stderr.write("warning: %s\n" % session.fallback_reason)
    return session


def _bench(argv: Sequence[str]) -> Any:
    parser = argparse.ArgumentParser(prog="python -m edgepipe.runtime bench", description="Time a model's inference.")
    _backend_options(parser)
    parser.add_argument("--runs", type=int, default=100, help="timed runs (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs after the first (default 10)")
    parser.add_argument("--input", help=".npy of raw uint8 pixels for the first input (default: random)")
    args = parser.parse_args(argv)
    import numpy as np

    from .runner import benchmark

    pixels = None
    if args.input:
        try:
            pixels = np.load(args.input, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError("cannot read --input %s: %s" % (args.input, " ".join(str(exc).split()))) from None
    session = _open(args)
    return benchmark(session, runs=args.runs, warmup=args.warmup, preset=args.preprocess, pixels=pixels), args.output


def _eval(argv: Sequence[str]) -> Any:
    parser = argparse.ArgumentParser(
        prog="python -m edgepipe.runtime eval", description="Measure a classifier's accuracy."
    )
    _backend_options(parser)
    parser.add_argument(
        "--data", required=True, help=".npz with `images` (N, ...) and `labels` (N,) [and `class_names`]"
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument(
        "--label-offset", default="auto", help="outputs before class 0 (auto: 1 for 1001-output ImageNet models)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="CPU batch size when the model can be resized")
    args = parser.parse_args(argv)
    from .runner import evaluate, guess_label_offset, load_eval_data

    images, labels, names = load_eval_data(args.data)
    if args.limit is not None:
        if args.limit < 1:
            raise DatasetError("--limit must be at least 1, got %d" % args.limit)
        images, labels = images[: args.limit], labels[: args.limit]
    session = _open(args)
    if args.label_offset == "auto":
        outputs = int(session.interpreter.get_output_details()[0]["shape"][-1])
        offset = guess_label_offset(outputs, len(names) if names else None)
    else:
        try:
            offset = int(args.label_offset)
        except ValueError:
            raise DatasetError("--label-offset must be auto or an integer, got %r" % args.label_offset) from None
    dataset = {"spec": "npz:%s" % args.data, "count": int(len(labels))}
    result = evaluate(
        session,
        images,
        labels,
        preset=args.preprocess,
        label_offset=offset,
        batch_size=args.batch_size,
        class_names=names,
        dataset=dataset,
    )
    return result, args.output


def _doctor(argv: Sequence[str]) -> Any:
    parser = argparse.ArgumentParser(prog="python -m edgepipe.runtime doctor", description="Check this machine.")
    parser.add_argument("--check-tensorflow", action="store_true", help="also import TensorFlow (slow)")
    parser.add_argument("--output", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    from .doctor import diagnose

    return diagnose(include_tensorflow=args.check_tensorflow), args.output


def _error_json(exc: EdgepipeError) -> str:
    return json.dumps(
        {
            "schema_version": RESULT_SCHEMA_VERSION,
            "kind": "error",
            "error": {
                "type": type(exc).__name__,
                "message": str(exc),
                "hint": exc.hint or None,
                "exit_code": exc.exit_code,
            },
        }
    )


def _run(handler: Callable[[Sequence[str]], Any], argv: Sequence[str]) -> int:
    try:
        result, output = handler(argv)
        if output:
            write_json_atomic(output, result)
    except EdgepipeError as exc:
        sys.stderr.write("error: %s\n" % exc.one_line())
        sys.stdout.write(_error_json(exc) + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    sys.stdout.write(dumps(to_jsonable(result)) + "\n")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m edgepipe.runtime {%s} ... (-h after a command for its options)\n" % ",".join(COMMANDS)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "inspect":
        from .inspect import main_inspect

        return main_inspect(rest)
    if command == "probe":
        from .probe import main_probe

        return main_probe(rest)
    handlers = {"bench": _bench, "eval": _eval, "doctor": _doctor}
    if command not in handlers:
        sys.stderr.write("error: unknown command %r\n%s" % (command, usage))
        return 2
    return _run(handlers[command], rest)


if __name__ == "__main__":
    sys.exit(main())
