"""`edgepipe deploy` against real components: the real device-side runner, real Coral models, and a
real OpenSSH server (`/usr/sbin/sshd`) started on 127.0.0.1 for this session — not a replay.

The "board" of the SSH tests is this machine: the remote Python is this venv's, passed with --python.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

import numpy as np
import pytest
from conftest import free_port
from PIL import Image

from edgepipe.deploy import LocalTarget, build_bundle, deploy
from edgepipe.errors import DeployError
from edgepipe.runtime.options import RunOptions

COMPILED = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
TWIN = "mobilenet_v1_0.25_128_quant.tflite"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "edgepipe.cli", "deploy", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def compiled(coral_data: Path) -> Path:
    return coral_data / COMPILED


# --- local target -----------------------------------------------------------------------------


def direct_top1_hits(
    interpreter: str, model: Path, samples: Path, crop: Callable[[Any], Any], classes: Optional[Set[int]] = None
) -> int:
    """Top-1 hits of `model` over the images in samples/labels.csv (all, or those of `classes`: one image
    per class there), by PIL and the interpreter module directly (neither edgepipe's loader nor its
    runner); output index - 1 = class_index (Coral's 1001 labels, line 0 "background")."""
    runner = importlib.import_module(interpreter).Interpreter(model_path=str(model))
    runner.allocate_tensors()
    (given,), (taken,) = runner.get_input_details(), runner.get_output_details()
    hits = 0
    with (samples / "labels.csv").open() as rows:
        for row in csv.DictReader(rows):
            if classes is not None and int(row["class_index"]) not in classes:
                continue
            image = crop(Image.open(samples / "images" / row["filename"]).convert("RGB"))
            runner.set_tensor(given["index"], np.asarray(image, dtype=np.uint8)[None])
            runner.invoke()
            hits += int(np.argmax(runner.get_tensor(taken["index"])[0])) - 1 == int(row["class_index"])
    return hits


def square_crop_128(image: Any) -> Any:
    """The MANIFEST's preprocessing: the central square, bilinear-resized to 128x128."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    return image.resize((128, 128), Image.BILINEAR, box=(left, top, left + side, top + side))


def imagenet_eval_crop_128(image: Any) -> Any:
    """TF-Slim's ImageNet evaluation crop: shorter side bilinear-resized to round(128 / 0.875) = 146,
    then the central 128x128."""
    w, h = image.size
    scale = 146 / min(w, h)
    new_w, new_h = max(128, round(w * scale)), max(128, round(h * scale))
    left, top = (new_w - 128) // 2, (new_h - 128) // 2
    return image.resize((new_w, new_h), Image.BILINEAR).crop((left, top, left + 128, top + 128))


def test_local_deploy_compiled_mobilenet_runs_twin_on_cpu_and_evaluates(
    compiled: Path, datasets_dir: Path, tmp_path: Path
) -> None:
    samples = datasets_dir / "imagenet-samples"
    out = tmp_path / "out"
    proc = run_cli(
        str(compiled), "--to", "local:%s" % (tmp_path / "board"), "--runs", "5", "--warmup", "1",
        "--eval", "images:%s" % samples, "--out", str(out), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert json.loads((out / "results.json").read_text()) == report  # the file is the printed report
    assert report["target"] == "local:%s" % (tmp_path / "board")
    assert report["remote"]["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert report["remote"]["runtime"]["name"]  # a TFLite runtime, found by the remote doctor
    (result,) = report["results"]
    assert result["model"] == COMPILED
    summary = result["summary"]
    assert summary["backend"] == "cpu"
    assert TWIN in summary["fallback_reason"] and "libedgetpu" in summary["fallback_reason"]
    assert "ran on the CPU" in proc.stderr or "twin" in proc.stderr  # said so, on stderr
    assert result["bench"]["kind"] == "bench" and result["bench"]["runs"] == 5
    assert summary["p50_ms"] == result["bench"]["latency_ms"]["p50"] > 0
    evaluation = result["eval"]
    assert evaluation["n"] == summary["n"] == 250
    assert summary["top1"] == evaluation["top1"]
    # The expected top-1 comes from a separate path: the same runtime module, called directly on the
    # same 250 JPEGs, preprocessed here with PIL. That path is first anchored to an independent figure:
    # with the MANIFEST's own preprocessing (central square) it gives the MANIFEST's 45.2 % (113/250).
    twin = compiled.parent / TWIN
    runtime = report["remote"]["runtime"]["name"]
    assert runtime in ("ai_edge_litert", "tflite_runtime")  # installed here; tensorflow would be a third path
    interpreter = runtime + ".interpreter"
    assert direct_top1_hits(interpreter, twin, samples, square_crop_128) == 113
    assert evaluation["top1"] == direct_top1_hits(interpreter, twin, samples, imagenet_eval_crop_128) / 250
    assert report["bundle"]["data"]["data_128x128.npz"]["image_size"] == [128, 128]
    assert not report["kept"] and not Path(report["remote_dir"]).exists()
    assert list((tmp_path / "board").iterdir()) == []


def test_bundle_holds_runtime_stub_twin_and_a_manifest_of_sha256s(compiled: Path, tmp_path: Path) -> None:
    bundle = build_bundle([compiled], tmp_path / "b", options=RunOptions(runs=3, warmup=0, backend="cpu"))
    root = bundle.path
    assert (root / "models" / COMPILED).read_bytes() == compiled.read_bytes()
    assert (root / "models" / TWIN).read_bytes() == (compiled.parent / TWIN).read_bytes()
    assert (root / "edgepipe" / "runtime" / "__main__.py").is_file()
    assert not list(root.rglob("__pycache__"))
    stub = (root / "edgepipe" / "__init__.py").read_text()
    assert "__version__" in stub and "import" not in stub  # no host package pulled in on the board
    assert not (root / "edgepipe" / "cli.py").exists() and not (root / "edgepipe" / "deploy").exists()
    raw = (root / "manifest.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == bundle.sha256
    manifest = json.loads(raw)
    files = [p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json"]
    on_disk = sorted(p.relative_to(root).as_posix() for p in files)
    assert sorted(manifest["files"]) == on_disk
    for rel, entry in manifest["files"].items():
        data = (root / rel).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (model,) = manifest["models"]
    assert model["twin"] == "models/" + TWIN and model["data"] is None
    assert model["commands"]["bench"] == [
        "{python}", "-m", "edgepipe.runtime", "bench", "models/" + COMPILED, "--backend", "cpu",
        "--runs", "3", "--warmup", "0",
    ]  # fmt: skip
    # The bundle runs on its own: a fresh interpreter that sees only the bundle (not the repository).
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run(
        [sys.executable, "-c", "import edgepipe, edgepipe.runtime.runner, sys; print(edgepipe.__file__);"
         "print(sorted(m for m in sys.modules if m.startswith(('typer', 'rich', 'tensorflow'))))"],
        cwd=str(root), env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(root / "edgepipe" / "__init__.py"), "[]"]


class TamperingTarget(LocalTarget):
    """A real local target whose copy gets one byte flipped after the upload, as a bad link or card would."""

    def put(self, bundle: Path) -> str:
        remote = super().put(bundle)
        victim = Path(remote) / "models" / TWIN
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
        return remote


def test_sha256_mismatch_after_upload_is_refused_and_nothing_is_written(compiled: Path, tmp_path: Path) -> None:
    target = TamperingTarget(tmp_path / "board")
    with pytest.raises(DeployError) as info:
        deploy([compiled], target, RunOptions(runs=2, warmup=0), out_dir=tmp_path / "out")
    assert info.value.exit_code == 50
    assert "sha256 mismatch" in info.value.one_line() and "models/%s" % TWIN in info.value.one_line()
    assert not (tmp_path / "out").exists()
    assert list((tmp_path / "board").iterdir()) == []  # removed even on failure


@pytest.mark.parametrize(
    "args, words",
    [
        (["--python", "/nonexistent/python3"], ["/nonexistent/python3", "--python"]),
        (["--backend", "edgetpu"], ["bench of %s failed" % COMPILED, "NoEdgeTpuError", "libedgetpu"]),
    ],
    ids=["python-missing", "remote-command-fails"],
)
def test_local_errors_are_one_line_exit_50(compiled: Path, tmp_path: Path, args: List[str], words: List[str]) -> None:
    proc = run_cli(str(compiled), "--to", "local:%s" % (tmp_path / "board"), "--runs", "2", "--out",
                   str(tmp_path / "out"), *args)  # fmt: skip
    assert proc.returncode == 50, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    for word in words:
        assert word in errors[0]
    assert not (tmp_path / "out").exists()


def test_remote_python_without_numpy_or_tflite_is_named_with_packages_to_install(
    compiled: Path, tmp_path: Path
) -> None:
    # A board's bare Python: a fresh venv of this interpreter, with no packages (not the system python3,
    # which may or may not have a runtime installed).
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    bare = str(venv / "bin" / "python")
    assert subprocess.run([bare, "-c", "import numpy"], capture_output=True).returncode == 1
    proc = run_cli(str(compiled), "--to", "local:%s" % (tmp_path / "board"), "--python", bare, "--out",
                   str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 50, proc.stderr
    assert "no TFLite runtime" in proc.stderr and "tflite-runtime" in proc.stderr


# --- a real sshd on 127.0.0.1 -----------------------------------------------------------------


def ssh_args(sshd: Dict[str, object], key: str = "key") -> List[str]:
    return ["--identity", str(sshd[key]), "--known-hosts", str(sshd["known_hosts"]), "--python", sys.executable]


def test_real_sshd_deploy_bench_matches_local_in_shape_and_cleans_up(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path
) -> None:
    remote_base = tmp_path / "remote"
    remote_base.mkdir()
    runs = ["--runs", "5", "--warmup", "1", "--json"]
    over_ssh = run_cli(str(compiled), "--to", str(sshd["url"]), *ssh_args(sshd), "--remote-dir", str(remote_base),
                       "--out", str(tmp_path / "ssh"), *runs)  # fmt: skip
    assert over_ssh.returncode == 0, over_ssh.stderr[-2000:]
    local = run_cli(str(compiled), "--to", "local:%s" % (tmp_path / "local"), "--out", str(tmp_path / "loc"), *runs)
    assert local.returncode == 0, local.stderr[-2000:]
    ssh_report, local_report = json.loads(over_ssh.stdout), json.loads(local.stdout)
    assert ssh_report["target"] == sshd["url"]
    assert ssh_report["remote"]["interpreter"] == sys.executable
    assert ssh_report["bundle"]["sha256"] == local_report["bundle"]["sha256"]  # same bundle, either transport

    def shape(value: object) -> object:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(v) for v in value[:1]]
        return type(value).__name__ if value is not None else None

    (ssh_result,), (local_result,) = ssh_report["results"], local_report["results"]
    assert shape(ssh_result["bench"]) == shape(local_result["bench"])
    assert ssh_result["summary"]["backend"] == local_result["summary"]["backend"] == "cpu"
    assert TWIN in ssh_result["summary"]["fallback_reason"]
    assert ssh_result["bench"]["runs"] == 5 and ssh_result["summary"]["p50_ms"] > 0
    assert ssh_report["remote_dir"].startswith(str(remote_base))
    assert not Path(ssh_report["remote_dir"]).exists() and list(remote_base.iterdir()) == []


def test_real_sshd_keep_leaves_the_verified_bundle(sshd: Dict[str, object], compiled: Path, tmp_path: Path) -> None:
    remote_base = tmp_path / "remote"
    proc = run_cli(str(compiled), "--to", str(sshd["url"]), *ssh_args(sshd), "--remote-dir", str(remote_base),
                   "--runs", "2", "--warmup", "0", "--keep", "--out", str(tmp_path / "out"), "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    kept = Path(report["remote_dir"])
    assert report["kept"] and kept.parent == remote_base
    assert hashlib.sha256((kept / "manifest.json").read_bytes()).hexdigest() == report["bundle"]["sha256"]
    assert (kept / "models" / COMPILED).read_bytes() == compiled.read_bytes()


@pytest.mark.parametrize(
    "case, words",
    [
        ("wrong-port", ["refused"]),
        ("wrong-key", ["authentication failed", "--identity"]),
        ("python-missing", ["/nonexistent/python3", "--python"]),
        ("upload-fails", ["upload to", "failed"]),
    ],
)
def test_real_sshd_errors_are_one_line_exit_50(
    sshd: Dict[str, object], compiled: Path, tmp_path: Path, case: str, words: List[str]
) -> None:
    url, args = str(sshd["url"]), ssh_args(sshd)
    if case == "wrong-port":
        url = "ssh://%s@127.0.0.1:%d" % (sshd["user"], free_port())
    elif case == "wrong-key":
        args = ssh_args(sshd, key="stranger_key")
    elif case == "python-missing":
        args = args[:-1] + ["/nonexistent/python3"]
    remote_dir = "/proc/edgepipe-cannot-write-here" if case == "upload-fails" else str(tmp_path / "remote")
    proc = run_cli(str(compiled), "--to", url, *args, "--remote-dir", remote_dir, "--runs", "2",
                   "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 50, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert url.split("@")[-1] in errors[0] or case == "python-missing"
    assert not (tmp_path / "out").exists()
