"""`deploy(models, target)`: check, bundle, upload + verify, run the device-side runner, collect.

Two entry points: `deploy` builds a bundle in a temporary folder and calls `deploy_bundle`; a caller that
sends one bundle to many targets (fleet) builds it once with `build_bundle` (or reopens it with
`load_bundle`) and calls `deploy_bundle` per target. The steps:
0. local checks, before anything touches the target: --out writable, the bundle's files, the SSH key;
1. one remote command: the target's Python (>= 3.7), then a fresh folder, the bundle unpacked into it,
   its files' sha256s checked against the manifest (`Target.deliver`); over SSH the first command of step 2
   rides in the same remote command, run only once that check passed (one round trip less);
2. the manifest's commands (bench, and eval when a data shard exists) per model; their JSON is kept as is;
   the last one also removes the folder (`Target.run_last`) unless --keep;
3. OUT/results.json is written atomically.
Over SSH all of it shares one connection. A failure is one DeployError line (exit 50): RemoteCommandError
when a device-side command failed, TransportError when the link did. One exception: a model whose command
failed with exit 23 (InferenceError, e.g. the TFLite runtime crashed with SIGSEGV on it) is that model's
failure, not the board's: it is recorded on its result (`ModelResult.error`, the signal named), its other
commands are skipped, the other models still run, and the report is returned; `DeployReport.raise_for_failures`
then raises it (the CLI exits 23 after showing and writing the report). Whatever ends a deploy (an error,
Ctrl-C, SIGTERM, a timeout) removes the remote folder and the local temporary bundle and stops the
children (runner, ssh); SIGTERM then exits 143, Ctrl-C 130.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional, Type

from .. import __version__
from ..errors import DeployError, OutputWriteError, RemoteCommandError, TransportError
from ..runtime.errors import InferenceError, Terminated
from ..runtime.options import RunOptions
from ..runtime.report import ResultHeader, header, read_error_envelope, to_jsonable, write_json_atomic
from .bundle import PYTHON_PLACEHOLDER, VERIFY_FAILED, VERIFY_SNIPPET, Bundle, build_bundle
from .transport import (
    DEFAULT_TIMEOUT_S,
    TOO_OLD,
    VERSION_SNIPPET,
    LocalTarget,
    Shipment,
    SshTarget,
    Target,
    last_error_line,
    shielded,
)

MIN_PYTHON = (3, 7)
RUNTIME_PACKAGES = "`pip install tflite-runtime` (or `pip install ai-edge-litert` on Python 3.9+)"
CHECK_TIMEOUT_S = 300.0  # Python check + upload + sha256 of the bundle


@dataclass
class ModelResult:
    model: str  # the file name in the bundle
    source: str  # the host path it came from
    summary: Dict[str, Any]  # backend, fallback_reason, latency p50 (ms), top1
    bench: Optional[Dict[str, Any]] = None  # the runtime's JSON, as it printed it
    eval: Optional[Dict[str, Any]] = None
    # Set when a command failed there with exit 23: step (bench/eval), type, message, hint, exit_code and the
    # signal when the TFLite runtime crashed ("SIGSEGV"); the model's later commands were not run.
    error: Optional[Dict[str, Any]] = None


@dataclass
class DeployReport(ResultHeader):
    target: str
    remote_dir: str
    kept: bool
    remote: Dict[str, Any]  # python, interpreter, platform, runtime, libedgetpu, devices, edgetpu_ready
    bundle: Dict[str, Any]  # sha256, files, bytes, data shards
    results: List[ModelResult]
    timings_s: Dict[str, float]
    ssh_connections: Optional[int] = None  # SSH connections this deploy opened (1); None: not over SSH
    results_path: Optional[str] = None
    edgepipe_version: str = __version__

    def raise_for_failures(self) -> None:
        """InferenceError (exit 23) naming the first model that failed on the target, if any (see the module doc)."""
        failed = [r for r in self.results if r.error]
        if not failed:
            return
        first = failed[0].error or {}
        others = "" if len(failed) == 1 else " (%d of %d models failed)" % (len(failed), len(self.results))
        where = "; the results are in %s" % self.results_path if self.results_path else ""
        raise InferenceError(
            "%s of %s failed on %s: %s%s%s" % (first["step"], failed[0].model, self.target, first["message"], others,
                                               where),
            hint=first.get("hint") or "",
        )  # fmt: skip


Progress = Callable[[str], None]


def _parse_json(stdout: str, what: str, target: Target) -> Dict[str, Any]:
    try:
        value = json.loads(stdout)
    except ValueError:
        raise DeployError(
            "%s on %s printed no JSON (got %r)" % (what, target.describe(), stdout.strip()[:200]),
            hint="Run it by hand there to see what else it prints",
        ) from None
    if not isinstance(value, dict):
        raise DeployError("%s on %s printed %s, not a JSON object" % (what, target.describe(), type(value).__name__))
    return value


def _remote_failure(
    what: str, target: Target, rc: int, stdout: str, stderr: str, error_class: Type[DeployError] = DeployError
) -> DeployError:
    """DeployError (or `error_class`) with the remote's own one-line error (its JSON error record, if any)."""
    line = last_error_line(stderr)
    error = read_error_envelope(stdout)
    if error is not None:
        line = "%s (%s, exit %s)" % (error.get("message"), error.get("type"), error.get("exit_code"))
        if error.get("hint"):
            line += ". %s" % error["hint"]
    return error_class("%s failed on %s (exit %d): %s" % (what, target.describe(), rc, " ".join(line.split())))


def _model_failure(step: str, rc: int, stdout: str) -> Optional[Dict[str, Any]]:
    """The error of a device-side command that failed on its model (exit 23 with its JSON error), else None."""
    error = read_error_envelope(stdout)
    if rc != InferenceError.exit_code or error is None or error.get("exit_code") != rc:
        return None
    message = " ".join(str(error.get("message")).split())
    return {"step": step, "type": error.get("type"), "message": message, "hint": error.get("hint"),
            "exit_code": rc, "signal": error.get("signal")}  # fmt: skip


def _python_version(target: Target, rc: int, stdout: str, stderr: str) -> str:
    """The target's Python version from VERSION_SNIPPET's answer, or DeployError (missing, too old)."""
    version = stdout.strip()
    if rc in (126, 127) or (rc != 0 and ("not found" in stderr or "No such file" in stderr)):
        raise DeployError(
            "no Python at %s on %s (%s)" % (target.interpreter, target.describe(), last_error_line(stderr)),
            hint="Install python3 (3.7+) there, or name the interpreter with --python PATH",
        )
    if rc == TOO_OLD and version:
        raise DeployError(
            "%s on %s is Python %s; the device-side runner needs 3.7 or newer"
            % (target.interpreter, target.describe(), version),
            hint="Install python3 >= 3.7 there and pass it with --python PATH",
        )
    if rc != 0:
        raise DeployError(
            "%s -c failed on %s (exit %d): %s" % (target.interpreter, target.describe(), rc, last_error_line(stderr))
        )
    try:
        tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        raise DeployError("%s on %s printed %r, not a Python version" % (target.interpreter, target.describe(),
                                                                         version)) from None  # fmt: skip
    return version


def check_python(target: Target) -> str:
    """The target's Python version, or DeployError when it is missing or older than 3.7."""
    rc, stdout, stderr = target.run([target.interpreter, "-c", VERSION_SNIPPET], timeout=120)
    return _python_version(target, rc, stdout, stderr)


def _check_verified(target: Target, remote: str, bundle: Bundle, result: Any) -> None:
    rc, stdout, stderr = result
    if rc not in (0, VERIFY_FAILED):
        raise _remote_failure("checking the uploaded files' sha256", target, rc, stdout, stderr)
    answer = _parse_json(stdout, "the sha256 check", target)
    bad = answer.get("bad") or []
    if bad or answer.get("manifest_sha256") != bundle.sha256 or rc != 0:
        what = ", ".join("%s (%s)" % (rel, why) for rel, why in bad[:3]) or "manifest.json differs"
        raise DeployError(
            "sha256 mismatch after upload to %s:%s: %s%s"
            % (target.describe(), remote, what, " and %d more" % (len(bad) - 3) if len(bad) > 3 else ""),
            hint="The copy was corrupted or changed during upload; run deploy again and check the target's storage",
        )


def _diagnose(target: Target, remote: str, failure: DeployError) -> DeployError:
    """After a failed command: `edgepipe.runtime doctor` there names a missing TFLite runtime; else `failure`."""
    try:
        rc, stdout, _ = target.run([target.interpreter, "-m", "edgepipe.runtime", "doctor"], cwd=remote, timeout=120)
        report = json.loads(stdout) if rc == 0 else None
    except (DeployError, ValueError):
        return failure
    if isinstance(report, dict) and not report.get("runtime"):
        errors = "; ".join(
            "%s: %s" % (r.get("name"), r.get("error")) for r in report.get("runtimes") or [] if not r.get("found")
        )
        return DeployError(
            "no TFLite runtime on %s for %s (%s)" % (target.describe(), target.interpreter, errors or "none found"),
            hint="Install one there: %s; on a Coral board also libedgetpu1-std" % RUNTIME_PACKAGES,
        )
    return failure


def _summary(
    bench: Optional[Dict[str, Any]], evaluation: Optional[Dict[str, Any]], error: Optional[Dict[str, Any]]
) -> Dict[str, Any]:
    first = bench or evaluation or {}
    latency = (bench or {}).get("latency_ms") or {}
    return {
        "backend": first.get("backend"),
        "device": first.get("device"),
        "fallback_reason": first.get("fallback_reason"),
        "backend_reason": first.get("backend_reason"),
        "p50_ms": latency.get("p50"),
        "top1": (evaluation or {}).get("top1"),
        "n": (evaluation or {}).get("n"),
        "error": error["message"] if error else None,  # the model failed there (fleet judges it failed)
    }


def _remote_info(python: str, interpreter: str, results: List[ModelResult]) -> Dict[str, Any]:
    """What the runs saw of the board (each result's `environment`): no separate doctor round trip."""
    outputs = [o for r in results for o in (r.bench, r.eval) if o]
    env: Dict[str, Any] = next((o.get("environment") for o in outputs if o.get("environment")), {}) or {}
    devices = [o["environment"]["device"] for o in outputs
               if (o.get("environment") or {}).get("device", {}).get("type") not in (None, "cpu")]  # fmt: skip
    on_tpu = any(o.get("backend") == "edgetpu" for o in outputs)
    fell_back = any(o.get("fallback_reason") for o in outputs)
    return {
        "python": python,
        "interpreter": interpreter,
        "platform": {k: env.get(k) for k in ("system", "release", "machine", "os", "hostname")} if env else None,
        "runtime": env.get("runtime"),
        "libedgetpu": env.get("libedgetpu"),
        "devices": [d for i, d in enumerate(devices) if d not in devices[:i]],
        "edgetpu_ready": True if on_tpu else (False if fell_back else None),  # None: no model asked for one
        "problems": sorted({o["fallback_reason"] for o in outputs if o.get("fallback_reason")}),
    }


class _Timings(Dict[str, float]):
    """Seconds per deploy step, by name."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = time.perf_counter() - start


class _Deadline:
    """`timeout_s` for the whole deploy, shared out as each remote call's own timeout."""

    def __init__(self, timeout_s: Optional[float], target: Target) -> None:
        self.end = None if timeout_s is None else time.monotonic() + timeout_s
        self.timeout_s, self.target = timeout_s, target

    def left(self, default: float) -> float:
        if self.end is None:
            return default
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise TransportError("%s: deploy did not finish within its timeout of %g s"
                                 % (self.target.describe(), self.timeout_s))  # fmt: skip
        return min(default, remaining)


def check_out_dir(out_dir: Path) -> None:
    """OutputWriteError (exit 5) now, before the board runs, if OUT/results.json could not be written later."""
    path = Path(out_dir)
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputWriteError("--out %s: %s is not a folder" % (out_dir, existing), hint="Pick another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputWriteError("--out %s: %s is not writable" % (out_dir, existing), hint="Pick a writable --out")
    if (path / "results.json").is_dir():
        raise OutputWriteError("--out %s: results.json there is a folder" % out_dir, hint="Pick another --out")


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM raises Terminated (as Ctrl-C raises KeyboardInterrupt), so `finally` blocks clean up.

    Only in the main thread, and only when nobody handles SIGTERM already (a caller's own handler wins).
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: Optional[FrameType]) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _ssh_connections(target: Target) -> Optional[int]:
    transport = getattr(target, "ssh", target)  # a labgrid place's SSH login
    return getattr(transport, "connections", None)


def deploy(
    models: List[Path],
    target: Target,
    options: Optional[RunOptions] = None,
    *,
    eval_spec: Optional[str] = None,
    limit: Optional[int] = None,
    data_dir: Optional[Path] = None,
    keep: bool = False,
    out_dir: Optional[Path] = None,
    progress: Optional[Progress] = None,
    timeout_s: Optional[float] = None,
) -> DeployReport:
    """Put `models` on `target`, run the device-side bench (and eval) there as `options` say, return the results.

    The bundle is built in a temporary folder, removed afterwards whatever happens. `timeout_s` bounds the
    whole deploy (TransportError when exceeded); see `deploy_bundle`.
    """
    say = progress or (lambda message: None)
    if out_dir is not None:
        check_out_dir(out_dir)
    with _signals_unwind(), tempfile.TemporaryDirectory(prefix="edgepipe-bundle-") as tmp:
        say("building the bundle")
        started = time.perf_counter()
        bundle = build_bundle([Path(m) for m in models], Path(tmp) / "bundle", eval_spec=eval_spec, limit=limit,
                              data_dir=data_dir, options=options)  # fmt: skip
        built_s = time.perf_counter() - started
        report = deploy_bundle(bundle, target, keep=keep, progress=progress, timeout_s=timeout_s)
    report.timings_s = {"bundle": round(built_s, 4), **report.timings_s}
    report.timings_s["total"] = round(time.perf_counter() - started, 4)
    if out_dir is not None:
        _write_results(report, out_dir)
    return report


def _write_results(report: DeployReport, out_dir: Path) -> None:
    path = Path(out_dir) / "results.json"
    report.results_path = str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError("cannot create %s: %s" % (path.parent, exc), hint="Pick a writable --out") from None
    write_json_atomic(str(path), to_jsonable(report))


def deploy_bundle(
    bundle: Bundle,
    target: Target,
    *,
    keep: bool = False,
    out_dir: Optional[Path] = None,
    progress: Optional[Progress] = None,
    timeout_s: Optional[float] = None,
) -> DeployReport:
    """Send a built `bundle` (build_bundle / load_bundle; left as it is) to `target`, run its commands, collect.

    `timeout_s`: the whole deploy's bound (each remote call gets what is left; TransportError beyond it).
    Over SSH the deploy uses one connection, closed at the end (report.ssh_connections counts them).
    A command that failed on its model (exit 23) is recorded on that model's result and the others run
    (`DeployReport.raise_for_failures` raises it afterwards). Raises RemoteCommandError when another
    device-side command failed, TransportError when the link failed
    (`retryable` says whether one more try can help), DeployError for anything else about the target.
    """
    say = progress or (lambda message: None)
    if out_dir is not None:
        check_out_dir(out_dir)
    deadline = _Deadline(timeout_s, target)
    timings = _Timings()
    started = time.perf_counter()
    remote: Optional[str] = None
    removed = False
    connections_before = _ssh_connections(target) or 0
    with _signals_unwind():
        try:
            say("uploading %d files (%d bytes) to %s" % (len(bundle.files), bundle.total_bytes, target.describe()))
            steps = [(model, name, [target.interpreter if a == PYTHON_PLACEHOLDER else a for a in argv])
                     for model in bundle.models for name, argv in model.commands.items()]  # fmt: skip
            with timings.step("upload"):
                check = [target.interpreter, "-c", VERSION_SNIPPET]
                verify = [target.interpreter, "-c", VERIFY_SNIPPET, bundle.sha256]
                # Over SSH the first command rides along (one round trip less); "upload" then includes it.
                first = steps[0][2] if steps else None
                shipment = Shipment(bundle.path, check, verify, first=first, first_last=len(steps) == 1 and not keep)
                delivery = target.deliver(shipment, timeout=deadline.left(CHECK_TIMEOUT_S + DEFAULT_TIMEOUT_S))
                remote = delivery.remote
                python_version = _python_version(target, *delivery.check)
                assert remote is not None and delivery.verify is not None  # the check passed
                _check_verified(target, remote, bundle, delivery.verify)

            results: List[ModelResult] = []
            with timings.step("run"):
                outputs: Dict[str, Optional[Dict[str, Any]]] = {}
                failure: Optional[Dict[str, Any]] = None  # this model's, once one of its commands failed on it
                for i, (model, name, argv) in enumerate(steps):
                    if failure is None:
                        say("%s %s" % (name, model.name))
                        last = i == len(steps) - 1 and not keep
                        if i == 0 and delivery.first is not None:
                            rc, stdout, stderr = delivery.first
                        else:
                            run = target.run_last if last else target.run
                            rc, stdout, stderr = run(argv, cwd=remote, timeout=deadline.left(DEFAULT_TIMEOUT_S))
                        removed = last and rc == 0
                        what = "%s of %s" % (name, model.name)
                        failure = _model_failure(name, rc, stdout) if rc != 0 else None
                        if failure is not None:
                            say("%s failed: %s" % (what, failure["message"]))
                        elif rc != 0:
                            raise _diagnose(target, remote, _remote_failure(what, target, rc, stdout, stderr,
                                                                             RemoteCommandError))  # fmt: skip
                        else:
                            outputs[name] = _parse_json(stdout, what, target)
                    if i == len(steps) - 1 or steps[i + 1][0] is not model:
                        bench, evaluation = outputs.get("bench"), outputs.get("eval")
                        results.append(ModelResult(model=model.name, source=model.source,
                                                   summary=_summary(bench, evaluation, failure), bench=bench,
                                                   eval=evaluation, error=failure))  # fmt: skip
                        outputs, failure = {}, None
            if not keep and not removed:  # the last command failed on its model (or was skipped): folder left
                with timings.step("remove"):
                    target.remove(remote)
                removed = True
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)  # Ctrl-C or SIGTERM: clean up even with --keep
            with shielded():
                if remote and not removed and (interrupted or not keep):
                    with timings.step("remove"):
                        target.remove(remote)
                target.disconnect()
            raise
        connections = _ssh_connections(target)
        connections = None if connections is None else connections - connections_before
        target.disconnect()

    timings["total"] = time.perf_counter() - started
    report = DeployReport(
        **header("deploy"),
        target=target.describe(),
        remote_dir=remote,
        kept=keep,
        remote=_remote_info(python_version, target.interpreter, results),
        bundle={
            "sha256": bundle.sha256,
            "files": len(bundle.files),
            "bytes": bundle.total_bytes,
            "data": bundle.data,
        },
        results=results,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        ssh_connections=connections,
    )
    if out_dir is not None:
        _write_results(report, out_dir)
    return report


__all__ = [
    "DeployReport",
    "LocalTarget",
    "ModelResult",
    "SshTarget",
    "check_out_dir",
    "check_python",
    "deploy",
    "deploy_bundle",
]
