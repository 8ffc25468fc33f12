"""Device-side command line: `python -m edgepipe.runtime {bench,eval,inspect,doctor} ...`.

Runs on a board with Python 3.7+, numpy and one TFLite runtime (no typer, rich or TensorFlow).
Results are JSON on stdout (and, with `--output FILE`, written atomically to FILE). A failure is one
line `error: ...` on stderr, a JSON object `{"kind": "error", ...}` on stdout so that a host reading
stdout learns the error type too, and the exit code of the error class (README, "Exit codes").

`probe` is internal: the child process that loads libedgetpu first (see `edgetpu.py`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, List, Optional, Sequence

from .errors import EXIT_USAGE, DatasetError, EdgepipeError, UsageError
from .isolated import run_isolated
from .options import RunOptions, add_arguments
from .report import dumps, report_failure, to_jsonable, write_json_atomic
from .tflite_reader import read_model

COMMANDS = ("bench", "eval", "inspect", "doctor")


def _model_arguments(parser: argparse.ArgumentParser, bench: bool = False) -> None:
    parser.add_argument("model", help="a .tflite model (uncompiled, or compiled *_edgetpu.tflite)")
    add_arguments(parser, bench=bench)
    parser.add_argument(
        "--preprocess", help="unit, raw, symmetric or caffe (default: the model's quantized input as is)"
    )
    parser.add_argument("--output", help="also write the JSON result to this file")


def _open(model: str, options: RunOptions) -> Any:
    from .session import open_session

    session = open_session(model, options)
    if session.fallback_reason:
        sys.stderr.write("warning: %s\n" % session.fallback_reason)
    return session


def _bench(argv: Sequence[str]) -> Any:
    parser = argparse.ArgumentParser(prog="python -m edgepipe.runtime bench", description="Time a model's inference.")
    _model_arguments(parser, bench=True)
    parser.add_argument("--input", help=".npy of raw uint8 pixels for the first input (default: random)")
    args = parser.parse_args(argv)
    options = RunOptions.from_args(args)
    read_model(args.model)  # a missing or malformed model first, as on the host (exit 3 / 4)
    import numpy as np

    pixels = None
    if args.input:
        try:
            pixels = np.load(args.input, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError("cannot read --input %s: %s" % (args.input, " ".join(str(exc).split()))) from None
    result = run_isolated(args.model, _bench_here, args.model, options, args.preprocess, pixels)
    return result, args.output


def _bench_here(model: str, options: RunOptions, preset: Optional[str], pixels: Any, progress: Any) -> Any:
    from .runner import benchmark

    session = _open(model, options)
    return benchmark(session, runs=options.runs, warmup=options.warmup, preset=preset, pixels=pixels)


def _eval(argv: Sequence[str]) -> Any:
    parser = argparse.ArgumentParser(
        prog="python -m edgepipe.runtime eval", description="Measure a classifier's accuracy."
    )
    _model_arguments(parser)
    parser.add_argument(
        "--data", required=True, help=".npz with `images` (N, ...) and `labels` (N,) [and `class_names`]"
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument(
        "--label-offset", default="auto", help="outputs before class 0 (auto: 1 for 1001-output ImageNet models)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="CPU batch size when the model can be resized")
    args = parser.parse_args(argv)
    options = RunOptions.from_args(args)
    read_model(args.model)  # a missing or malformed model first, as on the host (exit 3 / 4)
    from .accuracy import load_eval_data

    images, labels, names = load_eval_data(args.data)
    if args.limit is not None:
        if args.limit < 1:
            raise DatasetError("--limit must be at least 1, got %d" % args.limit)
        images, labels = images[: args.limit], labels[: args.limit]
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1, got %d" % args.batch_size)
    dataset = {"spec": "npz:%s" % args.data, "count": int(len(labels))}
    result = run_isolated(args.model, _eval_here, args, options, images, labels, names, dataset)
    return result, args.output


def _eval_here(
    args: argparse.Namespace, options: RunOptions, images: Any, labels: Any, names: Any, dataset: Any, progress: Any
) -> Any:
    from .accuracy import evaluate, guess_label_offset

    session = _open(args.model, options)
    if args.label_offset == "auto":
        outputs = int(session.interpreter.get_output_details()[0]["shape"][-1])
        offset = guess_label_offset(outputs, len(names) if names else None)
    else:
        try:
            offset = int(args.label_offset)
        except ValueError:
            raise DatasetError("--label-offset must be auto or an integer, got %r" % args.label_offset) from None
    return evaluate(
        session,
        images,
        labels,
        preset=args.preprocess,
        label_offset=offset,
        batch_size=args.batch_size,
        class_names=names,
        dataset=dataset,
    )


def _doctor(argv: Sequence[str]) -> Any:
    parser = argparse.ArgumentParser(prog="python -m edgepipe.runtime doctor", description="Check this machine.")
    parser.add_argument("--check-tensorflow", action="store_true", help="also import TensorFlow (slow)")
    parser.add_argument("--output", help="also write the JSON result to this file")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 21 when an error is reported or no Edge TPU is ready, 20 when no TFLite runtime works "
        "(as the host's `edgepipe doctor`); without it the exit is 0 whenever the report was made",
    )
    parser.add_argument(
        "--cpu-only", action="store_true", help="with --strict: fail only when models cannot run on the CPU (20)"
    )
    args = parser.parse_args(argv)
    from .doctor import diagnose, exit_code

    report = diagnose(include_tensorflow=args.check_tensorflow)
    # Exit 0 by default: deploy and the HIL suite read this report from stdout to explain a board's state.
    return report, args.output, exit_code(report, args.cpu_only) if args.strict else 0


def _run(handler: Callable[[Sequence[str]], Any], argv: Sequence[str]) -> int:
    try:
        outcome = handler(argv)  # (result, --output file[, exit code: doctor --strict's verdict])
        result, output = outcome[0], outcome[1]
        if output:
            write_json_atomic(output, result)
    except (EdgepipeError, KeyboardInterrupt) as exc:
        return report_failure(exc, sys.stderr, sys.stdout)
    sys.stdout.write(dumps(to_jsonable(result)) + "\n")
    return outcome[2] if len(outcome) > 2 else 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m edgepipe.runtime {%s} ... (-h after a command for its options)\n" % ",".join(COMMANDS)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage)
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    if command == "inspect":
        from .preflight import main_inspect

        return main_inspect(rest)
    if command == "probe":
        from .probe import main_probe

        return main_probe(rest)
    handlers = {"bench": _bench, "eval": _eval, "doctor": _doctor}
    if command not in handlers:
        sys.stderr.write("error: unknown command %r\n%s" % (command, usage))
        return EXIT_USAGE
    return _run(handlers[command], rest)


if __name__ == "__main__":
    sys.exit(main())
