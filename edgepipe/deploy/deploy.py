"""`deploy(models, target)`: bundle, check the target, upload, verify, run the device-side runner, collect.

The steps, each failing with one DeployError line (exit 50) that names the target and the fix:
1. the target's Python runs and is >= 3.7;
2. the bundle goes up (a fresh directory), and its files' sha256s are checked there against the manifest;
3. `python -m edgepipe.runtime doctor` from the bundle: a TFLite runtime is importable, Edge TPUs seen;
4. the manifest's commands (bench, and eval when a data shard exists) per model; their JSON is kept as is;
5. the remote directory is removed (unless keep), and OUT/results.json is written atomically.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Type

from .. import __version__
from ..errors import DeployError, RemoteCommandError
from ..runtime.options import RunOptions
from ..runtime.report import ResultHeader, header, read_error_envelope, to_jsonable, write_json_atomic
from .bundle import PYTHON_PLACEHOLDER, VERIFY_SNIPPET, Bundle, build_bundle
from .transport import LocalTarget, SshTarget, Target, last_error_line

MIN_PYTHON = (3, 7)
RUNTIME_PACKAGES = "`pip install tflite-runtime` (or `pip install ai-edge-litert` on Python 3.9+)"
# Prints "3.7.3" on any Python (2 or 3): a too-old interpreter must still answer, not fail to parse.
VERSION_SNIPPET = "import sys; sys.stdout.write('%d.%d.%d' % tuple(sys.version_info[:3]))"


@dataclass
class ModelResult:
    model: str  # the file name in the bundle
    source: str  # the host path it came from
    summary: Dict[str, Any]  # backend, fallback_reason, latency p50 (ms), top1
    bench: Optional[Dict[str, Any]] = None  # the runtime's JSON, as it printed it
    eval: Optional[Dict[str, Any]] = None


@dataclass
class DeployReport(ResultHeader):
    target: str
    remote_dir: str
    kept: bool
    remote: Dict[str, Any]  # python, platform, runtime, libedgetpu, devices, edgetpu_ready (from doctor)
    bundle: Dict[str, Any]  # sha256, files, bytes, data shards
    results: List[ModelResult]
    timings_s: Dict[str, float]
    results_path: Optional[str] = None
    edgepipe_version: str = __version__


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


def check_python(target: Target) -> str:
    """The target's Python version, or DeployError when it is missing or older than 3.7."""
    rc, stdout, stderr = target.run([target.interpreter, "-c", VERSION_SNIPPET], timeout=120)
    if rc in (126, 127) or (rc != 0 and ("not found" in stderr or "No such file" in stderr)):
        raise DeployError(
            "no Python at %s on %s (%s)" % (target.interpreter, target.describe(), last_error_line(stderr)),
            hint="Install python3 (3.7+) there, or name the interpreter with --python PATH",
        )
    if rc != 0:
        raise DeployError(
            "%s -c failed on %s (exit %d): %s" % (target.interpreter, target.describe(), rc, last_error_line(stderr))
        )
    version = stdout.strip()
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        what = (target.interpreter, target.describe(), version)
        raise DeployError("%s on %s printed %r, not a Python version" % what) from None
    if parts < MIN_PYTHON:
        raise DeployError(
            "%s on %s is Python %s; the device-side runner needs 3.7 or newer"
            % (target.interpreter, target.describe(), version),
            hint="Install python3 >= 3.7 there and pass it with --python PATH",
        )
    return version


def _verify(target: Target, remote: str, bundle: Bundle) -> None:
    rc, stdout, stderr = target.run([target.interpreter, "-c", VERIFY_SNIPPET], cwd=remote, timeout=300)
    if rc != 0:
        raise _remote_failure("checking the uploaded files' sha256", target, rc, stdout, stderr)
    result = _parse_json(stdout, "the sha256 check", target)
    bad = result.get("bad") or []
    if bad or result.get("manifest_sha256") != bundle.sha256:
        what = ", ".join("%s (%s)" % (rel, why) for rel, why in bad[:3]) or "manifest.json differs"
        raise DeployError(
            "sha256 mismatch after upload to %s:%s: %s%s"
            % (target.describe(), remote, what, " and %d more" % (len(bad) - 3) if len(bad) > 3 else ""),
            hint="The copy was corrupted or changed during upload; run deploy again and check the target's storage",
        )


def _doctor(target: Target, remote: str) -> Dict[str, Any]:
    argv = [target.interpreter, "-m", "edgepipe.runtime", "doctor"]
    rc, stdout, stderr = target.run(argv, cwd=remote, timeout=300)
    if rc != 0:
        raise _remote_failure("edgepipe.runtime doctor", target, rc, stdout, stderr)
    report = _parse_json(stdout, "edgepipe.runtime doctor", target)
    if not report.get("runtime"):
        errors = "; ".join(
            "%s: %s" % (r.get("name"), r.get("error")) for r in report.get("runtimes") or [] if not r.get("found")
        )
        raise DeployError(
            "no TFLite runtime on %s for %s (%s)" % (target.describe(), target.interpreter, errors or "none found"),
            hint="Install one there: %s; on a Coral board also libedgetpu1-std" % RUNTIME_PACKAGES,
        )
    return report


def _summary(bench: Optional[Dict[str, Any]], evaluation: Optional[Dict[str, Any]]) -> Dict[str, Any]:
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
) -> DeployReport:
    """Put `models` on `target`, run the device-side bench (and eval) there as `options` say, return the results."""
    say = progress or (lambda message: None)
    timings = _Timings()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgepipe-bundle-") as tmp:
        say("building the bundle")
        with timings.step("bundle"):
            bundle = build_bundle(
                [Path(m) for m in models],
                Path(tmp) / "bundle",
                eval_spec=eval_spec,
                limit=limit,
                data_dir=data_dir,
                options=options,
            )

        say("checking Python on %s" % target.describe())
        with timings.step("check_python"):
            python_version = check_python(target)

        say("uploading %d files (%d bytes)" % (len(bundle.files), bundle.total_bytes))
        with timings.step("upload"):
            remote = target.put(bundle.path)
        try:
            with timings.step("verify"):
                _verify(target, remote, bundle)

            say("edgepipe.runtime doctor on %s" % target.describe())
            with timings.step("doctor"):
                doctor = _doctor(target, remote)

            results: List[ModelResult] = []
            with timings.step("run"):
                for model in bundle.models:
                    outputs: Dict[str, Optional[Dict[str, Any]]] = {"bench": None, "eval": None}
                    for name, argv in model.commands.items():
                        say("%s %s" % (name, model.name))
                        argv = [target.interpreter if a == PYTHON_PLACEHOLDER else a for a in argv]
                        rc, stdout, stderr = target.run(argv, cwd=remote)
                        if rc != 0:
                            what = "%s of %s" % (name, model.name)
                            raise _remote_failure(what, target, rc, stdout, stderr, RemoteCommandError)
                        outputs[name] = _parse_json(stdout, "%s of %s" % (name, model.name), target)
                    results.append(
                        ModelResult(
                            model=model.name,
                            source=model.source,
                            summary=_summary(outputs["bench"], outputs["eval"]),
                            bench=outputs["bench"],
                            eval=outputs["eval"],
                        )
                    )
        finally:
            if not keep:
                with timings.step("remove"):
                    target.remove(remote)

    timings["total"] = time.perf_counter() - started
    report = DeployReport(
        **header("deploy"),
        target=target.describe(),
        remote_dir=remote,
        kept=keep,
        remote={
            "python": python_version,
            "interpreter": target.interpreter,
            "platform": doctor.get("platform"),
            "runtime": doctor.get("runtime"),
            "libedgetpu": doctor.get("libedgetpu"),
            "devices": doctor.get("devices") or [],
            "edgetpu_ready": doctor.get("edgetpu_ready"),
            "problems": doctor.get("problems") or [],
        },
        bundle={
            "sha256": bundle.sha256,
            "files": len(bundle.files),
            "bytes": bundle.total_bytes,
            "data": bundle.data,
        },
        results=results,
        timings_s={k: round(v, 4) for k, v in timings.items()},
    )
    if out_dir is not None:
        path = Path(out_dir) / "results.json"
        report.results_path = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeployError("cannot create %s: %s" % (path.parent, exc), hint="Pick a writable --out") from None
        write_json_atomic(str(path), to_jsonable(report))
    return report


__all__ = ["DeployReport", "LocalTarget", "ModelResult", "SshTarget", "check_python", "deploy"]
