"""Field validation of a fleet of deployed boards: deploy to each, judge the results, one report.

For engineers who re-validate boards already in the field: one inventory file names the boards and
what each must achieve; `validate_fleet` runs `edgepipe.deploy.deploy` on every board (a dead board
is recorded as unreachable, the others still run), checks every model's summary against the
expectations and, optionally, against a previous fleet report, and writes OUT/fleet_report.json.

Inventory format (JSON; relative paths are relative to the inventory file)::

    {
      "models": ["models/mobilenet_v1_0.25_128_quant_edgetpu.tflite"],   required, one or more
      "eval": {"spec": "images:samples", "limit": 50},   optional; spec: mnist, cifar10 or images:DIR
      "data_dir": "datasets",                            optional, for mnist / cifar10
      "runs": 50, "warmup": 5,                           optional (defaults 50 and 5)
      "expect": {                                        optional, every key optional
        "backend": "edgetpu",        every model must have run on this backend (edgetpu or cpu)
        "min_top1": 0.40,            top-1 as a fraction (needs "eval")
        "max_p50_ms": 5.0,           median latency per inference
        "max_top1_drop_pp": 1.0,     with a baseline: top-1 may drop at most this many percentage points
        "max_p50_ratio": 1.5         with a baseline: p50 may grow at most this factor
      },
      "boards": [                                        required, one or more
        {"name": "line3-cam1",                           required: letters, digits, . _ - ; unique
         "to": "ssh://mendel@10.0.3.21[:port]",          required: ssh://user@host[:port] or local:DIR
         "identity": "keys/fleet_ed25519",               optional SSH key
         "known_hosts": "keys/known_hosts",              optional SSH known_hosts file
         "python": "/usr/bin/python3",                   optional interpreter on the board
         "remote_dir": "/tmp",                           optional parent folder on the board
         "backend": "auto",                              optional: auto (default), edgetpu or cpu
         "device": "usb",                                optional Edge TPU: usb, usb:N, pci, pci:N, :N
         "expect": {"max_p50_ms": 8.0},                  optional: overrides keys of the shared "expect"
         "comment": "..."}                               optional, ignored (also allowed at the top)
      ]
    }

Unknown keys are refused (a typo must not silently drop a check): InventoryError, exit code 2.

Verdict per board: "pass" (every model met every expectation), "fail" (it ran but missed one, or a
bench/eval command failed on it), "unreachable" (no validation happened: connection, login, Python,
runtime or upload failed). Each non-pass verdict carries its reasons as one line each.

A baseline is a previous fleet_report.json: boards and models are matched by name. When a baseline is
given and the inventory sets no limits, top-1 may drop at most DEFAULT_MAX_TOP1_DROP_PP and p50 may grow
at most DEFAULT_MAX_P50_RATIO. The report written here is itself a valid baseline for the next run.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import __version__
from .deploy import DeployReport, deploy, parse_target
from .errors import DeployError, EdgepipeError, InventoryError, RemoteCommandError
from .runtime.options import BACKENDS, RunOptions
from .runtime.report import ResultHeader, header, make_dirs, to_jsonable, write_json_atomic

REPORT_NAME = "fleet_report.json"
DEFAULT_MAX_TOP1_DROP_PP = 1.0
DEFAULT_MAX_P50_RATIO = 1.5
DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5
TOP_KEYS = {"boards", "models", "eval", "data_dir", "runs", "warmup", "expect", "comment"}
BOARD_KEYS = {"name", "to", "identity", "known_hosts", "python", "remote_dir", "backend", "device", "expect",
              "comment"}  # fmt: skip
EVAL_KEYS = {"spec", "limit"}
EXPECT_KEYS = {"backend", "min_top1", "max_p50_ms", "max_top1_drop_pp", "max_p50_ratio"}
_BOARD_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # also a folder name under OUT/boards/

Progress = Callable[[str], None]


@dataclass
class Board:
    name: str
    to: str  # as written, relative local: folders resolved
    target: Any  # LocalTarget | SshTarget
    options: RunOptions  # backend and device from the board, runs and warmup from the inventory
    expect: Dict[str, Any]  # the shared expectations with this board's overrides applied


@dataclass
class Inventory:
    path: Path
    models: List[Path]
    boards: List[Board]
    eval_spec: Optional[str]
    limit: Optional[int]
    data_dir: Optional[Path]
    runs: int
    warmup: int
    expect: Dict[str, Any]


@dataclass
class ModelVerdict:
    model: str
    source: str
    summary: Dict[str, Any]  # backend, fallback_reason, p50_ms, top1, n (from deploy)
    reasons: List[str]  # each missed expectation, one line
    baseline: Optional[Dict[str, Any]] = None  # baseline top1 / p50_ms and the drop / ratio against them


@dataclass
class BoardResult:
    name: str
    target: str
    verdict: str  # pass | fail | unreachable
    reasons: List[str]
    notes: List[str]
    expect: Dict[str, Any]
    models: List[ModelVerdict]
    remote: Dict[str, Any]  # python, runtime, libedgetpu, devices, edgetpu_ready (from the board's doctor)
    results_path: Optional[str]
    error: Optional[str]  # the DeployError line when deploy did not finish
    elapsed_s: float


@dataclass
class FleetReport(ResultHeader):
    inventory: str
    baseline: Optional[str]
    boards: List[BoardResult]
    counts: Dict[str, int]
    passed: bool
    report_path: Optional[str] = None
    edgepipe_version: str = __version__

    @property
    def exit_code(self) -> int:
        """0 when every board passed, else 1."""
        return 0 if self.passed else 1


# --- reading the inventory ----------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError("%s %s does not exist" % (what, path), hint="Check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError("cannot read %s %s: %s" % (what, path, exc)) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InventoryError("%s %s is not valid JSON: %s" % (what, path, exc), hint="Fix the JSON syntax") from None


def _check_keys(value: Any, allowed: set, where: str, path: Path) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise InventoryError("%s: %s must be a JSON object, not %s" % (path, where, type(value).__name__))
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InventoryError(
            "%s: unknown key %s in %s" % (path, ", ".join(repr(k) for k in unknown), where),
            hint="Allowed there: %s" % ", ".join(sorted(allowed)),
        )
    return value


def _number(value: Any, where: str, path: Path, minimum: float = 0.0, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < minimum:
        kind = "an integer" if integer else "a number"
        raise InventoryError("%s: %s must be %s >= %g, not %r" % (path, where, kind, minimum, value))
    return value


def _string(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise InventoryError("%s: %s must be a non-empty string, not %r" % (path, where, value))
    return value


def _expect(value: Any, where: str, path: Path) -> Dict[str, Any]:
    expect = dict(_check_keys(value, EXPECT_KEYS, where, path))
    if "backend" in expect and expect["backend"] not in ("edgetpu", "cpu"):
        raise InventoryError("%s: %s.backend must be \"edgetpu\" or \"cpu\", not %r" % (path, where, expect["backend"]))
    for key in EXPECT_KEYS - {"backend"}:
        if key in expect:
            _number(expect[key], "%s.%s" % (where, key), path)
    if "min_top1" in expect and expect["min_top1"] > 1:
        raise InventoryError(
            "%s: %s.min_top1 is a fraction (0.4 = 40 %%), not %r" % (path, where, expect["min_top1"])
        )
    return expect


def _relative(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _board(
    value: Any, index: int, shared_expect: Dict[str, Any], base: Path, path: Path, runs: int, warmup: int
) -> Board:
    where = "boards[%d]" % index
    entry = _check_keys(value, BOARD_KEYS, where, path)
    for key in ("name", "to"):
        if key not in entry:
            raise InventoryError("%s: %s has no %r" % (path, where, key), hint="Every board needs \"name\" and \"to\"")
    name = _string(entry["name"], where + ".name", path)
    if not _BOARD_NAME.match(name):
        raise InventoryError("%s: board name %r may hold only letters, digits, '.', '_' and '-'" % (path, name))
    where = "board %r" % name
    to = _string(entry["to"], where + " \"to\"", path)
    if to.startswith("local:") and to[len("local:"):]:
        to = "local:%s" % _relative(base, to[len("local:"):])
    options: Dict[str, Any] = {}
    for key in ("python", "remote_dir", "device"):
        if key in entry:
            options[key] = _string(entry[key], "%s %r" % (where, key), path)
    for key in ("identity", "known_hosts"):
        if key in entry:
            options[key] = _relative(base, _string(entry[key], "%s %r" % (where, key), path))
    backend = entry.get("backend", "auto")
    if backend not in BACKENDS:
        raise InventoryError("%s: %s backend must be one of %s, not %r" % (path, where, ", ".join(BACKENDS), backend))
    try:
        run = RunOptions(backend=backend, device=options.pop("device", None), runs=runs, warmup=warmup)
        target = parse_target(to, **options)
    except EdgepipeError as exc:
        raise InventoryError("%s: %s: %s" % (path, where, exc.one_line())) from None
    expect = dict(shared_expect)
    expect.update(_expect(entry.get("expect", {}), where + " expect", path))
    return Board(name=name, to=to, target=target, options=run, expect=expect)


def load_inventory(path: Path) -> Inventory:
    """Read and check an inventory file; InventoryError (exit 2) names the first problem."""
    path = Path(path)
    raw = _check_keys(_read_json(path, "inventory"), TOP_KEYS, "the inventory", path)
    base = path.resolve().parent
    for key in ("models", "boards"):
        if not isinstance(raw.get(key), list) or not raw[key]:
            raise InventoryError("%s: %r must be a non-empty list" % (path, key))
    models = [_relative(base, _string(m, "models[%d]" % i, path)) for i, m in enumerate(raw["models"])]
    for model in models:
        if not model.is_file():
            raise InventoryError(
                "%s: model %s does not exist" % (path, model), hint="Paths are relative to the inventory file"
            )
    eval_spec: Optional[str] = None
    limit: Optional[int] = None
    if "eval" in raw:
        evaluation = _check_keys(raw["eval"], EVAL_KEYS, "\"eval\"", path)
        eval_spec = _string(evaluation.get("spec"), "eval.spec", path)
        if eval_spec.startswith("images:"):
            eval_spec = "images:%s" % _relative(base, eval_spec[len("images:"):])
        if evaluation.get("limit") is not None:
            limit = _number(evaluation["limit"], "eval.limit", path, minimum=1, integer=True)
    data_dir = _relative(base, _string(raw["data_dir"], "data_dir", path)) if "data_dir" in raw else None
    runs = _number(raw.get("runs", DEFAULT_RUNS), "runs", path, minimum=1, integer=True)
    warmup = _number(raw.get("warmup", DEFAULT_WARMUP), "warmup", path, integer=True)
    expect = _expect(raw.get("expect", {}), "expect", path)
    boards = [_board(b, i, expect, base, path, runs, warmup) for i, b in enumerate(raw["boards"])]
    names = [b.name for b in boards]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InventoryError("%s: board name %s is used more than once" % (path, ", ".join(map(repr, duplicates))))
    if eval_spec is None:
        needs_eval = sorted({b.name for b in boards if "min_top1" in b.expect})
        if needs_eval:
            raise InventoryError(
                "%s: expect.min_top1 (boards %s) needs top-1, but there is no \"eval\"" % (path, ", ".join(needs_eval)),
                hint="Add \"eval\": {\"spec\": \"images:DIR\", \"limit\": N} or drop min_top1",
            )
    return Inventory(path=path, models=models, boards=boards, eval_spec=eval_spec, limit=limit, data_dir=data_dir,
                     runs=runs, warmup=warmup, expect=expect)  # fmt: skip


def load_baseline(path: Path) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """A previous fleet report → {(board, model): summary} of the boards that ran."""
    path = Path(path)
    raw = _read_json(path, "baseline")
    if not isinstance(raw, dict) or raw.get("kind") != "fleet" or not isinstance(raw.get("boards"), list):
        raise InventoryError(
            "baseline %s is not a fleet report" % path, hint="Pass a fleet_report.json written by a previous run"
        )
    summaries: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for board in raw["boards"]:
        for model in (board or {}).get("models") or []:
            if isinstance(model, dict) and isinstance(model.get("summary"), dict):
                summaries[(str(board.get("name")), str(model.get("model")))] = model["summary"]
    return summaries


# --- judging --------------------------------------------------------------------------------------


def _pct(fraction: float) -> str:
    return "%.1f %%" % (100.0 * fraction)


def judge_model(
    model: str, summary: Dict[str, Any], expect: Dict[str, Any], base: Optional[Dict[str, Any]]
) -> Tuple[List[str], Optional[Dict[str, Any]]]:
    """The reasons `summary` misses `expect` (empty: it passes), and the comparison with `base` if any."""
    reasons: List[str] = []
    backend, p50, top1 = summary.get("backend"), summary.get("p50_ms"), summary.get("top1")
    wanted = expect.get("backend")
    if wanted and backend != wanted:
        why = summary.get("fallback_reason") or summary.get("backend_reason") or "no reason given"
        reasons.append("%s: ran on %s, expected %s: %s" % (model, backend, wanted, why))
    if "max_p50_ms" in expect:
        if p50 is None:
            reasons.append("%s: no p50 latency measured" % model)
        elif p50 > expect["max_p50_ms"]:
            reasons.append("%s: p50 %.3f ms > max %.3f ms" % (model, p50, expect["max_p50_ms"]))
    if "min_top1" in expect:
        if top1 is None:
            reasons.append("%s: no top-1 measured" % model)
        elif top1 < expect["min_top1"]:
            reasons.append("%s: top-1 %s < min %s" % (model, _pct(top1), _pct(expect["min_top1"])))
    if base is None:
        return reasons, None
    comparison: Dict[str, Any] = {key: base.get(key) for key in ("top1", "p50_ms", "backend")}
    if top1 is not None and base.get("top1") is not None:
        drop = round(100.0 * (base["top1"] - top1), 3)
        comparison["top1_drop_pp"] = drop
        limit = expect.get("max_top1_drop_pp", DEFAULT_MAX_TOP1_DROP_PP)
        if drop > limit:
            reasons.append(
                "%s: top-1 dropped %.1f pp vs baseline (%s → %s), max %.1f pp"
                % (model, drop, _pct(base["top1"]), _pct(top1), limit)
            )
    if p50 is not None and base.get("p50_ms"):
        ratio = round(p50 / base["p50_ms"], 3)
        comparison["p50_ratio"] = ratio
        limit = expect.get("max_p50_ratio", DEFAULT_MAX_P50_RATIO)
        if ratio > limit:
            reasons.append(
                "%s: p50 %.2fx the baseline (%.3f → %.3f ms), max %.2fx" % (model, ratio, base["p50_ms"], p50, limit)
            )
    return reasons, comparison


def _remote_summary(report: DeployReport) -> Dict[str, Any]:
    remote = report.remote
    runtime = remote.get("runtime") or {}
    return {
        "python": remote.get("python"),
        "interpreter": remote.get("interpreter"),
        "runtime": ("%s %s" % (runtime.get("name"), runtime.get("version") or "")).strip() if runtime else None,
        "libedgetpu": (remote.get("libedgetpu") or {}).get("path"),
        "devices": remote.get("devices") or [],
        "edgetpu_ready": remote.get("edgetpu_ready"),
    }


def _validate_board(
    board: Board,
    inventory: Inventory,
    baseline: Optional[Dict[Tuple[str, str], Dict[str, Any]]],
    out_dir: Path,
    say: Progress,
) -> BoardResult:
    started = time.perf_counter()
    try:
        report = deploy(
            inventory.models, board.target, board.options, eval_spec=inventory.eval_spec, limit=inventory.limit,
            data_dir=inventory.data_dir, out_dir=out_dir / "boards" / board.name,
            progress=lambda message: say("%s: %s" % (board.name, message)),
        )  # fmt: skip
    except DeployError as exc:
        line = exc.one_line()
        # Reached and verified, but bench/eval failed there: a failed validation, not an unreachable board.
        verdict = "fail" if isinstance(exc, RemoteCommandError) else "unreachable"
        return BoardResult(name=board.name, target=board.target.describe(), verdict=verdict, reasons=[line], notes=[],
                           expect=board.expect, models=[], remote={}, results_path=None, error=line,
                           elapsed_s=round(time.perf_counter() - started, 3))  # fmt: skip
    models: List[ModelVerdict] = []
    reasons: List[str] = []
    notes: List[str] = []
    for result in report.results:
        base = None
        if baseline is not None:
            base = baseline.get((board.name, result.model))
            if base is None:
                notes.append("%s: not in the baseline, not compared" % result.model)
        model_reasons, comparison = judge_model(result.model, result.summary, board.expect, base)
        models.append(ModelVerdict(model=result.model, source=result.source, summary=result.summary,
                                   reasons=model_reasons, baseline=comparison))  # fmt: skip
        reasons.extend(model_reasons)
    return BoardResult(
        name=board.name, target=report.target, verdict="fail" if reasons else "pass", reasons=reasons, notes=notes,
        expect=board.expect, models=models, remote=_remote_summary(report), results_path=report.results_path,
        error=None, elapsed_s=round(time.perf_counter() - started, 3),
    )  # fmt: skip


def validate_fleet(
    inventory_path: Path,
    baseline: Optional[Path] = None,
    out_dir: Path = Path("runs/fleet"),
    progress: Optional[Progress] = None,
) -> FleetReport:
    """Deploy to and judge every board of the inventory; write OUT/fleet_report.json (atomically)."""
    say = progress or (lambda message: None)
    inventory = load_inventory(Path(inventory_path))
    base = load_baseline(Path(baseline)) if baseline is not None else None
    out_dir = Path(out_dir)
    # Before any board: an unwritable --out must not be mistaken for unreachable boards.
    make_dirs(out_dir, hint="Pick a writable --out")
    results: List[BoardResult] = []
    for board in inventory.boards:  # one after another: boards often share a link, and timings stay clean
        say("%s: validating on %s" % (board.name, board.target.describe()))
        result = _validate_board(board, inventory, base, out_dir, say)
        say("%s: %s" % (board.name, result.verdict))
        results.append(result)
    counts = {verdict: sum(1 for r in results if r.verdict == verdict) for verdict in ("pass", "fail", "unreachable")}
    report = FleetReport(
        **header("fleet"),
        inventory=str(inventory.path),
        baseline=str(baseline) if baseline is not None else None,
        boards=results,
        counts=counts,
        passed=counts["pass"] == len(results),
    )
    path = out_dir / REPORT_NAME
    report.report_path = str(path)
    write_json_atomic(str(path), to_jsonable(report))
    return report


# --- presentation (shared by scripts/field_validate.py and `edgepipe fleet validate`) ----------------


__all__ = [
    "BoardResult",
    "FleetReport",
    "Inventory",
    "ModelVerdict",
    "judge_model",
    "load_baseline",
    "load_inventory",
    "validate_fleet",
]
