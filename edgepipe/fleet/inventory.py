"""Reading fleet files: the inventory (boards, models, expectations) and a baseline (a previous report).

Both are checked completely before any board is touched: a wrong type, an unknown key, a NaN or
Infinity anywhere, a number out of range is an InventoryError (exit 2) naming the file and the place.
The format is described in `edgepipe/fleet/__init__.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..deploy import parse_target
from ..errors import EdgepipeError, InventoryError
from ..runtime.options import BACKENDS, MAX_RUNS, RunOptions
from ..runtime.report import sha256_file

DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5
MAX_EVAL_LIMIT = 10_000_000
DEFAULT_BOARD_TIMEOUT_S = 1800.0  # one board, all of its deploy; a big model on a slow board takes minutes
MAX_BOARD_TIMEOUT_S = 7 * 24 * 3600.0
MAX_INVENTORY_BYTES = 64 << 20  # an inventory or report is small; do not read a 2 GB file whole
TOP_KEYS = {"boards", "models", "eval", "data_dir", "runs", "warmup", "timeout_s", "expect", "comment"}
BOARD_KEYS = {"name", "to", "identity", "known_hosts", "python", "remote_dir", "backend", "device", "timeout_s",
              "expect", "comment"}  # fmt: skip
EVAL_KEYS = {"spec", "limit"}
EXPECT_KEYS = {"backend", "min_top1", "max_p50_ms", "max_top1_drop_pp", "max_p50_ratio"}
_BOARD_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # also a file name under OUT/boards/


@dataclass
class Board:
    name: str
    to: str  # as written, relative local: folders resolved
    target: Any  # LocalTarget | SshTarget
    options: RunOptions  # backend and device from the board, runs and warmup from the inventory
    expect: Dict[str, Any]  # the shared expectations with this board's overrides applied
    timeout_s: float
    settings: Dict[str, Any]  # what the board was given (for the resume fingerprint)


@dataclass
class Inventory:
    path: Path
    sha256: str  # of the file's bytes: shards of one inventory carry the same one
    models: List[Path]
    boards: List[Board]
    eval_spec: Optional[str]
    limit: Optional[int]
    data_dir: Optional[Path]
    runs: int
    warmup: int
    expect: Dict[str, Any]

    @cached_property
    def model_sha256(self) -> List[str]:
        """Hashed when first asked (resume, results), not by every board's worker that reads the inventory."""
        return [sha256_file(m) for m in self.models]

    def fingerprint(self, board: Board) -> str:
        """What a board's measurements depend on; a saved result with another fingerprint is not resumed."""
        what = {"models": self.model_sha256, "eval": self.eval_spec, "limit": self.limit,
                "data_dir": str(self.data_dir), "runs": self.runs, "warmup": self.warmup,
                "board": board.settings}  # fmt: skip
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode("utf-8")).hexdigest()


def _refuse_constant(name: str) -> Any:
    raise ValueError("%s is not a JSON number (write a finite number)" % name)


def read_json(path: Path, what: str) -> Any:
    """Strict JSON from a file: NaN / Infinity refused, size bounded; InventoryError otherwise."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INVENTORY_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError("%s %s does not exist" % (what, path), hint="Check the path") from None
    except OSError as exc:
        raise InventoryError("cannot read %s %s: %s" % (what, path, exc.strerror or exc)) from None
    if len(data) > MAX_INVENTORY_BYTES:
        raise InventoryError("%s %s is larger than %d MiB" % (what, path, MAX_INVENTORY_BYTES >> 20),
                             hint="Pass the fleet JSON file itself")  # fmt: skip
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise InventoryError("%s %s is not UTF-8 text: %s" % (what, path, exc)) from None
    except (ValueError, RecursionError) as exc:
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


def _plain(number: float) -> str:
    return "%d" % number if number == int(number) else "%s" % number


def _number(value: Any, where: str, path: Path, minimum: float = 0.0, maximum: float = math.inf,
            integer: bool = False) -> Any:  # fmt: skip
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    # An int is compared as it is: math.isfinite(10**400) would raise OverflowError.
    finite = ok and (isinstance(value, int) or math.isfinite(value))
    if isinstance(value, bool) or not finite or not minimum <= value <= maximum:
        kind = "an integer" if integer else "a finite number"
        limits = ">= %s" % _plain(minimum)
        if maximum != math.inf:
            limits = "from %s to %s" % (_plain(minimum), _plain(maximum))
        raise InventoryError("%s: %s must be %s %s, not %r" % (path, where, kind, limits, value))
    return value


def _string(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise InventoryError("%s: %s must be a non-empty string, not %r" % (path, where, value))
    return value


def _expect(value: Any, where: str, path: Path) -> Dict[str, Any]:
    expect = dict(_check_keys(value, EXPECT_KEYS, where, path))
    if "backend" in expect and expect["backend"] not in ("edgetpu", "cpu"):
        raise InventoryError("%s: %s.backend must be \"edgetpu\" or \"cpu\", not %r" % (path, where, expect["backend"]))
    for key in sorted(EXPECT_KEYS - {"backend", "min_top1"}):
        if key in expect:
            _number(expect[key], "%s.%s" % (where, key), path)
    if "min_top1" in expect:
        # A fraction: 40 (meaning 40 %) would make every board fail, so it is refused, not judged.
        _number(expect["min_top1"], "%s.min_top1 (a fraction: 0.4 = 40 %%)" % where, path, maximum=1.0)
    return expect


def _relative(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _board(
    value: Any, index: int, shared_expect: Dict[str, Any], base: Path, path: Path, runs: int, warmup: int,
    timeout_s: float,
) -> Board:  # fmt: skip
    where = "boards[%d]" % index
    entry = _check_keys(value, BOARD_KEYS, where, path)
    for key in ("name", "to"):
        if key not in entry:
            raise InventoryError("%s: %s has no %r" % (path, where, key), hint="Every board needs \"name\" and \"to\"")
    name = _string(entry["name"], where + ".name", path)
    if not _BOARD_NAME.match(name) or name in (".", ".."):
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
    if "timeout_s" in entry:
        timeout_s = _number(entry["timeout_s"], where + " timeout_s", path, minimum=1, maximum=MAX_BOARD_TIMEOUT_S)
    settings = {"to": to, "backend": backend, **{k: str(v) for k, v in options.items()}}
    try:
        run = RunOptions(backend=backend, device=options.pop("device", None), runs=runs, warmup=warmup)
        target = parse_target(to, **options)
    except EdgepipeError as exc:
        raise InventoryError("%s: %s: %s" % (path, where, exc.one_line())) from None
    expect = dict(shared_expect)
    expect.update(_expect(entry.get("expect", {}), where + " expect", path))
    return Board(name=name, to=to, target=target, options=run, expect=expect, timeout_s=float(timeout_s),
                 settings=settings)  # fmt: skip


def load_inventory(path: Path) -> Inventory:
    """Read and check an inventory file; InventoryError (exit 2) names the first problem."""
    path = Path(path)
    raw = _check_keys(read_json(path, "inventory"), TOP_KEYS, "the inventory", path)
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
            limit = _number(evaluation["limit"], "eval.limit", path, minimum=1, maximum=MAX_EVAL_LIMIT, integer=True)
    data_dir = _relative(base, _string(raw["data_dir"], "data_dir", path)) if "data_dir" in raw else None
    runs = _number(raw.get("runs", DEFAULT_RUNS), "runs", path, minimum=1, maximum=MAX_RUNS, integer=True)
    warmup = _number(raw.get("warmup", DEFAULT_WARMUP), "warmup", path, maximum=MAX_RUNS, integer=True)
    timeout_s = _number(raw.get("timeout_s", DEFAULT_BOARD_TIMEOUT_S), "timeout_s", path, minimum=1,
                        maximum=MAX_BOARD_TIMEOUT_S)  # fmt: skip
    expect = _expect(raw.get("expect", {}), "expect", path)
    boards = [_board(b, i, expect, base, path, runs, warmup, timeout_s) for i, b in enumerate(raw["boards"])]
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
    return Inventory(path=path, sha256=sha256_file(path), models=models, boards=boards, eval_spec=eval_spec,
                     limit=limit, data_dir=data_dir, runs=runs, warmup=warmup, expect=expect)  # fmt: skip


# --- the baseline: a previous fleet report -------------------------------------------------------------

Baseline = Dict[Tuple[str, str], Dict[str, Any]]  # (board, model) -> {"backend", "p50_ms", "top1"}


def _optional_number(value: Any, where: str, path: Path, maximum: float = math.inf) -> Optional[float]:
    if value is None:
        return None
    return float(_number(value, where, path, maximum=maximum))


def load_baseline(path: Path) -> Baseline:
    """A previous fleet report → {(board, model): its summary}; every value it compares with is checked."""
    path = Path(path)
    raw = read_json(path, "baseline")
    hint = "Pass a fleet_report.json written by a previous run"
    if not isinstance(raw, dict) or raw.get("kind") != "fleet" or not isinstance(raw.get("boards"), list):
        raise InventoryError("baseline %s is not a fleet report" % path, hint=hint)
    where_file = Path("baseline %s" % path)
    summaries: Baseline = {}
    for i, board in enumerate(raw["boards"]):
        where = "boards[%d]" % i
        if not isinstance(board, dict):
            raise InventoryError("%s: %s must be a JSON object, not %s" % (where_file, where, type(board).__name__),
                                 hint=hint)  # fmt: skip
        name = _string(board.get("name"), where + ".name", where_file)
        models = board.get("models") or []
        if not isinstance(models, list):
            raise InventoryError("%s: %s.models must be a list, not %s" % (where_file, where, type(models).__name__))
        for j, model in enumerate(models):
            at = "%s.models[%d]" % (where, j)
            if not isinstance(model, dict) or not isinstance(model.get("summary"), dict):
                raise InventoryError("%s: %s must be an object with a \"summary\" object" % (where_file, at),
                                     hint=hint)  # fmt: skip
            model_name = _string(model.get("model"), at + ".model", where_file)
            summary = model["summary"]
            backend = summary.get("backend")
            if backend is not None and not isinstance(backend, str):
                raise InventoryError("%s: %s.summary.backend must be a string, not %r" % (where_file, at, backend))
            summaries[(name, model_name)] = {
                "backend": backend,
                "p50_ms": _optional_number(summary.get("p50_ms"), at + ".summary.p50_ms", where_file),
                "top1": _optional_number(summary.get("top1"), at + ".summary.top1", where_file, maximum=1.0),
            }
    return summaries


# --- shards --------------------------------------------------------------------------------------------


def parse_shard(text: str) -> Tuple[int, int]:
    """`K/N` → (K, N) with 1 <= K <= N; InventoryError (exit 2) otherwise."""
    match = re.match(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise InventoryError("--shard %r is not K/N with 1 <= K <= N" % text,
                             hint="E.g. --shard 2/4 for the second of four shards")  # fmt: skip
    return int(match.group(1)), int(match.group(2))


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) a board belongs to: a stable hash of its name, so adding or reordering boards
    moves no other board to another shard."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % count + 1


__all__ = ["Baseline", "Board", "Inventory", "load_baseline", "load_inventory", "parse_shard", "read_json", "shard_of"]
