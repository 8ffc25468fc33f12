"""First-hour friction (issue 14): a training framework's model given where a .tflite is expected."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from edgepipe.cli import app

SHARED = Path(__file__).resolve().parents[2] / "shared"


def test_inspect_a_keras_file_suggests_convert(tmp_path: Path) -> None:
    """The real MLPerf ResNet-8 .h5, also renamed .keras: exit 4 and the convert command to run."""
    h5 = SHARED / "models" / "mlperf-tiny-resnet8" / "pretrainedResnet.h5"
    keras = tmp_path / "model.keras"
    shutil.copyfile(h5, keras)
    for path in (h5, keras):
        result = CliRunner().invoke(app, ["inspect", str(path)])
        assert result.exit_code == 4, result.output
        assert "is a Keras HDF5 model, not a TFLite model" in result.stderr
        assert "edgepipe convert %s" % path in result.stderr
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    result = CliRunner().invoke(app, ["inspect", str(saved)])
    assert result.exit_code == 4 and "SavedModel" in result.stderr and "edgepipe convert" in result.stderr
