"""Field validation of a fleet of deployed boards: deploy to each, judge the results, one report.

For engineers who re-validate boards already in the field: one inventory file names the boards and
what each must achieve; `validate_fleet` deploys to the boards `jobs` at a time (a dead board is
recorded as unreachable, the others still run), checks every model's summary against `expect` and,
optionally, against a previous fleet report, and writes OUT/boards/NAME.json per board as it
finishes and OUT/fleet_report.json at the end. `merge_reports` joins the reports of `--shard K/N` runs.

Parts: `inventory` (the file formats, checked whole before any board is touched), `run` (parallel,
resumable, sharded), `worker` (one board's deploy in its own process), `judge` (verdicts, strict JSON),
`merge` (shard reports -> one report), `progress` (per-board progress on stderr).

Inventory format (JSON; relative paths are relative to the inventory file)::

    {
      "models": ["models/mobilenet_v1_0.25_128_quant_edgetpu.tflite"],   required, one or more
      "eval": {"spec": "images:samples", "limit": 50},   optional; spec: mnist, cifar10 or images:DIR
      "data_dir": "datasets",                            optional, for mnist / cifar10
      "runs": 50, "warmup": 5,                           optional (defaults 50 and 5; at most 1,000,000)
      "timeout_s": 1800,                                 optional: seconds per board, retry included
      "expect": {                                        optional, every key optional
        "backend": "edgetpu",        every model must have run on this backend (edgetpu or cpu)
        "min_top1": 0.40,            top-1 as a fraction, 0 to 1 (0.40 = 40 %; needs "eval")
        "max_p50_ms": 5.0,           median latency per inference
        "max_top1_drop_pp": 1.0,     with a baseline: top-1 may drop at most this many percentage points
        "max_p50_ratio": 1.5         with a baseline: p50 may grow at most this factor
      },
      "boards": [                                        required, one or more
        {"name": "line3-cam1",                           required: letters, digits, . _ - ; unique
         "to": "ssh://mendel@10.0.3.21[:port]",          required: ssh://user@host[:port] or local:DIR
         "identity": "keys/fleet_ed25519",               optional SSH key
         "known_hosts": "keys/known_hosts",              optional SSH known_hosts file
         "python": "/usr/bin/python3",                   optional interpreter on the board (default: python3
                                                         over SSH, this interpreter for local:)
         "remote_dir": "/tmp",                           optional parent folder on the board
         "backend": "auto",                              optional: auto (default), edgetpu or cpu
         "device": "usb",                                optional Edge TPU: usb, usb:N, pci, pci:N, :N
         "timeout_s": 600,                               optional: overrides the shared "timeout_s"
         "expect": {"max_p50_ms": 8.0},                  optional: overrides keys of the shared "expect"
         "comment": "..."}                               optional, ignored (also allowed at the top)
      ]
    }

Unknown keys, wrong types, NaN / Infinity and out-of-range numbers are refused (a typo must not
silently drop a check): InventoryError, exit code 2, before any board is touched. A baseline is
checked as strictly.

Verdict per board: "pass" (every model met every expectation), "fail" (it ran but missed one, or a
bench/eval command failed on it; a model that crashed the TFLite runtime there is named with the signal,
and the board's other models are still measured and judged), "unreachable" (no validation happened:
connection, login, Python, runtime or upload failed, or no result within the board's timeout). A
transport failure is tried once more; the failed try is kept in the board's "attempts". Each non-pass
verdict carries its reasons as one line each.

A baseline is a previous fleet_report.json: boards and models are matched by name. When a baseline is
given and the inventory sets no limits, top-1 may drop at most DEFAULT_MAX_TOP1_DROP_PP and p50 may grow
at most DEFAULT_MAX_P50_RATIO. The report written here is itself a valid baseline for the next run.
"""

from .inventory import Board, Inventory, load_baseline, load_inventory, parse_shard, shard_of
from .judge import (
    DEFAULT_MAX_P50_RATIO,
    DEFAULT_MAX_TOP1_DROP_PP,
    REPORT_NAME,
    BoardResult,
    FleetReport,
    ModelVerdict,
    judge_model,
)
from .merge import merge_reports
from .progress import FleetProgress, progress_for
from .run import validate_fleet

__all__ = [
    "DEFAULT_MAX_P50_RATIO",
    "DEFAULT_MAX_TOP1_DROP_PP",
    "REPORT_NAME",
    "Board",
    "BoardResult",
    "FleetProgress",
    "FleetReport",
    "Inventory",
    "ModelVerdict",
    "judge_model",
    "load_baseline",
    "load_inventory",
    "merge_reports",
    "parse_shard",
    "progress_for",
    "shard_of",
    "validate_fleet",
]
