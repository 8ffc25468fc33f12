"""deploy's check of an uploaded bundle (issue 13): a file missing on the target, and a manifest.json that
is not the one built here (yet self-consistent with the files beside it), must both stop the deploy.

Real components: the bundle built from Google's compiled MobileNet, a real local target (a folder and
this interpreter), the real sha256 check run on the target as deploy runs it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgepipe.deploy import LocalTarget, build_bundle, deploy
from edgepipe.deploy.bundle import VERIFY_FAILED, VERIFY_SNIPPET
from edgepipe.errors import DeployError
from edgepipe.runtime.options import RunOptions

COMPILED = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
TWIN = "mobilenet_v1_0.25_128_quant.tflite"
OPTIONS = RunOptions(runs=2, warmup=0, backend="cpu")


@pytest.fixture(scope="module")
def compiled(coral_data: Path) -> Path:
    return coral_data / COMPILED


class LosingTarget(LocalTarget):
    """A real local target that loses the compiled model after the upload (a full card, an interrupted copy)."""

    def put(self, bundle: Path) -> str:
        remote = super().put(bundle)
        (Path(remote) / "models" / COMPILED).unlink()
        return remote


class SwappingTarget(LocalTarget):
    """A real local target whose copy is another bundle's: the twin changed and manifest.json rewritten to
    match it, so every file agrees with the manifest beside it; only the manifest's own sha256 differs."""

    def put(self, bundle: Path) -> str:
        remote = Path(super().put(bundle))
        victim = remote / "models" / TWIN
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
        manifest = json.loads((remote / "manifest.json").read_text())
        manifest["files"]["models/" + TWIN] = {"sha256": hashlib.sha256(bytes(data)).hexdigest(), "size": len(data)}
        (remote / "manifest.json").write_text(json.dumps(manifest))
        return str(remote)


def test_a_file_missing_after_upload_is_refused_by_name(compiled: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError) as info:
        deploy([compiled], LosingTarget(tmp_path / "board"), OPTIONS, out_dir=tmp_path / "out")
    line = info.value.one_line()
    assert info.value.exit_code == 50
    assert "sha256 mismatch" in line and "models/%s (missing)" % COMPILED in line, line
    assert not (tmp_path / "out").exists()


def test_a_self_consistent_but_different_manifest_is_refused(compiled: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError) as info:
        deploy([compiled], SwappingTarget(tmp_path / "board"), OPTIONS, out_dir=tmp_path / "out")
    line = info.value.one_line()
    assert info.value.exit_code == 50
    assert "sha256 mismatch" in line and "manifest.json differs" in line, line
    assert not (tmp_path / "out").exists()


def _verify(root: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", VERIFY_SNIPPET, *argv], cwd=str(root), capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_target_check_counts_a_missing_file_and_compares_the_manifest_hash(compiled: Path, tmp_path: Path) -> None:
    """The snippet the target runs, on its own: good bundle 0; a missing file or another manifest hash 3."""
    bundle = build_bundle([compiled], tmp_path / "bundle", options=OPTIONS)
    good = _verify(bundle.path, bundle.sha256)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["bad"] == [] and json.loads(good.stdout)["manifest_sha256"] == bundle.sha256

    other = _verify(bundle.path, "0" * 64)  # the files are fine; the manifest is not the one deploy built
    assert other.returncode == VERIFY_FAILED and json.loads(other.stdout)["bad"] == []

    (bundle.path / "models" / TWIN).unlink()
    lost = _verify(bundle.path, bundle.sha256)
    assert lost.returncode == VERIFY_FAILED
    assert json.loads(lost.stdout)["bad"] == [["models/" + TWIN, "missing"]]
