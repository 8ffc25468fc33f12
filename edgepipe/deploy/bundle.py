"""A deploy bundle: everything a board needs to run `python -m edgepipe.runtime`, in one folder.

Layout (all paths relative to the bundle root, which becomes the working directory on the target):

    edgepipe/__init__.py      stub: the version only, so no host-only package is imported on the board
    edgepipe/runtime/...      the device-side package, copied as it is
    models/NAME.tflite        the models (a compiled *_edgetpu.tflite brings its uncompiled twin, when
                              it exists beside it, so `--backend auto` can fall back to the CPU)
    data_HxW.npz              optional evaluation shard per model input size (arrays images, labels,
                              class_names), images already resized the way `edgepipe eval` does it
    manifest.json             version, every file's sha256 and size, the commands to run

The bundle never interprets a model beyond its input size (needed to size the data shard).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .. import __version__
from ..errors import DeployError, InputNotFoundError
from ..runtime.options import RunOptions
from ..runtime.report import sha256_file, to_jsonable, write_bytes_atomic
from ..runtime.session import twin_path
from ..runtime.tflite_reader import read_model

if TYPE_CHECKING:
    import numpy as np

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
PYTHON_PLACEHOLDER = "{python}"  # the first element of each manifest command; the target's interpreter
RUNTIME_SOURCE = Path(__file__).resolve().parents[1] / "runtime"
_STUB_INIT = '"""edgepipe device-side bundle (the host package is not installed here)."""\n\n__version__ = "%s"\n'


@dataclass
class BundleModel:
    name: str  # file name inside models/
    source: str  # where it came from on the host
    twin: Optional[str]  # models/... of the uncompiled twin shipped with it, if any
    data: Optional[str]  # data shard for its input size, if evaluating
    commands: Dict[str, List[str]]  # "bench" / "eval" → argv, first element PYTHON_PLACEHOLDER


@dataclass
class Bundle:
    path: Path
    sha256: str  # of manifest.json, which lists every file's sha256: one number for the whole bundle
    files: Dict[str, Dict[str, Any]]  # relative path → {"sha256", "size"}
    models: List[BundleModel] = field(default_factory=list)
    data: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # shard → {"spec", "count", "image_size"}

    @property
    def total_bytes(self) -> int:
        return sum(int(f["size"]) for f in self.files.values())


def _copy_runtime(dest: Path) -> None:
    package = dest / "edgepipe"
    shutil.copytree(RUNTIME_SOURCE, package / "runtime", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (package / "__init__.py").write_text(_STUB_INIT % __version__, encoding="utf-8")


def _input_size(model_path: Path) -> Tuple[int, int]:
    """(height, width) of the first input, read from the flatbuffer (a compiled model keeps its I/O tensors)."""
    shape = [int(d) for d in read_model(str(model_path)).input_tensors()[0].shape]
    if len(shape) not in (3, 4):
        raise DeployError(
            "%s has input shape %s, not an image (N, H, W[, C]), so --eval cannot build a data shard for it"
            % (model_path, shape),
            hint="Deploy it without --eval",
        )
    return shape[1], shape[2]


def _data_shard(spec: str, limit: Optional[int], data_dir: Optional[Path], size: Tuple[int, int]) -> bytes:
    """The .npz the device-side `eval --data` reads, loaded and resized as `edgepipe eval` does."""
    import numpy as np  # here, not at the top: a deploy without --eval starts faster without it

    from ..data import load_dataset_for_input

    ds = load_dataset_for_input(spec, size, data_dir=data_dir, limit=limit)
    if ds.labels is None:
        raise DeployError(
            "dataset %s has no labels, so it cannot be evaluated on the target" % ds.name,
            hint="Use mnist, cifar10 or images:DIR (class folders or labels.csv)",
        )
    arrays: Dict[str, np.ndarray] = {"images": ds.images, "labels": np.asarray(ds.labels, dtype=np.int64)}
    if ds.class_names:
        arrays["class_names"] = np.asarray(ds.class_names, dtype=str)
    return _npz_bytes(arrays)


def _npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    """An .npz as np.savez writes it, but byte-identical for identical arrays (a fixed zip time stamp), so
    a bundle's sha256 names its content. Stored, not compressed: the board's CPU is slower than the link."""
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buffer.getvalue()


def _commands(model_file: str, data_file: Optional[str], options: RunOptions) -> Dict[str, List[str]]:
    base = [PYTHON_PLACEHOLDER, "-m", "edgepipe.runtime"]
    commands = {"bench": base + ["bench", model_file] + options.to_argv("bench")}
    if data_file:
        commands["eval"] = base + ["eval", model_file, "--data", data_file] + options.to_argv("eval")
    return commands


def build_bundle(
    models: List[Path],
    dest: Path,
    *,
    eval_spec: Optional[str] = None,
    limit: Optional[int] = None,
    data_dir: Optional[Path] = None,
    options: Optional[RunOptions] = None,
) -> Bundle:
    """Fill the empty (or new) folder `dest` with a bundle for `models`; returns what it holds.

    Build once, deploy to many targets (`deploy_bundle`): `Bundle.sha256` names the content (models, data
    shards, device package, commands), so two builds of the same inputs have the same sha256. Every model
    is read first (missing: exit 3, not a TFLite model: exit 4). On any failure, Ctrl-C included, `dest`
    is left as it was (removed when this call made it).
    """
    if not models:
        raise DeployError("no model to deploy", hint="Name at least one .tflite file")
    options = options or RunOptions()
    if options.cpu_model is not None:  # a host path means nothing on the target; twins travel beside their model
        raise DeployError(
            "a CPU model (%s) cannot be deployed as a run option" % options.cpu_model,
            hint="Put the uncompiled twin beside the compiled model (same name without _edgetpu); it is shipped too",
        )
    paths = [Path(m) for m in models]
    for model in paths:
        if not model.is_file():
            raise InputNotFoundError("model not found: %s" % model, hint="Check the path")
        read_model(str(model))  # ModelFormatError (exit 4) names a file that is no TFLite model, before any upload
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise DeployError("bundle folder %s is not empty" % dest)
    try:
        return _fill(paths, dest, eval_spec, limit, data_dir, options)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in list(dest.iterdir()):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        raise


def _fill(
    models: List[Path],
    dest: Path,
    eval_spec: Optional[str],
    limit: Optional[int],
    data_dir: Optional[Path],
    options: RunOptions,
) -> Bundle:
    _copy_runtime(dest)
    (dest / "models").mkdir()
    shards: Dict[Tuple[int, int], str] = {}
    data_info: Dict[str, Dict[str, Any]] = {}
    bundle_models: List[BundleModel] = []
    taken: Dict[str, str] = {}
    for model in models:
        to_copy = [model]
        twin = twin_path(str(model))
        if twin is not None and Path(twin).is_file():
            to_copy.append(Path(twin))
        for path in to_copy:
            previous = taken.get(path.name)
            if previous is not None and previous != str(path.resolve()):
                raise DeployError(
                    "two different models are both named %s (%s and %s)" % (path.name, previous, path.resolve()),
                    hint="Rename one; a bundle keeps models in one folder",
                )
            if previous is None:
                shutil.copyfile(path, dest / "models" / path.name)
                taken[path.name] = str(path.resolve())
        data_file = None
        if eval_spec:
            size = _input_size(model)
            if size not in shards:
                shards[size] = "data_%dx%d.npz" % size
                (dest / shards[size]).write_bytes(_data_shard(eval_spec, limit, data_dir, size))
                data_info[shards[size]] = {"spec": eval_spec, "limit": limit, "image_size": list(size)}
            data_file = shards[size]
        model_file = "models/" + model.name
        bundle_models.append(
            BundleModel(
                name=model.name,
                source=str(model.resolve()),
                twin="models/" + to_copy[1].name if len(to_copy) > 1 else None,
                data=data_file,
                commands=_commands(model_file, data_file, options),
            )
        )

    files: Dict[str, Dict[str, Any]] = {}
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        rel = path.relative_to(dest).as_posix()
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "edgepipe_version": __version__,
        "python_placeholder": PYTHON_PLACEHOLDER,
        "files": files,
        "models": [
            {"name": m.name, "source": m.source, "twin": m.twin, "data": m.data, "commands": m.commands}
            for m in bundle_models
        ],
        "data": data_info,
        "run_options": to_jsonable(options),
    }
    payload = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    write_bytes_atomic(os.fspath(dest / MANIFEST_NAME), payload)
    return Bundle(
        path=dest,
        sha256=hashlib.sha256(payload).hexdigest(),
        files=files,
        models=bundle_models,
        data=data_info,
    )


def load_bundle(path: Path) -> Bundle:
    """A bundle `build_bundle` made earlier (maybe in another process), read back from its manifest.

    Its files are not re-hashed here: the target checks them against the manifest after the upload.
    """
    manifest_path = Path(path) / MANIFEST_NAME
    try:
        payload = manifest_path.read_bytes()
        manifest = json.loads(payload.decode("utf-8"))
        models = [
            BundleModel(name=m["name"], source=m["source"], twin=m.get("twin"), data=m.get("data"),
                        commands={k: list(v) for k, v in m["commands"].items()})  # fmt: skip
            for m in manifest["models"]
        ]
        files = dict(manifest["files"])
    except OSError as exc:
        raise InputNotFoundError("no bundle at %s: %s" % (path, exc.strerror or exc), hint="Build it first") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DeployError("%s is not a bundle manifest (%s)" % (manifest_path, exc)) from None
    return Bundle(path=Path(path), sha256=hashlib.sha256(payload).hexdigest(), files=files, models=models,
                  data=dict(manifest.get("data") or {}))  # fmt: skip


# Runs on the target with only the standard library of Python 2.7/3.x, from the bundle root: lists the
# files whose size or sha256 differ from the manifest (missing files count). Prints JSON; exits
# VERIFY_FAILED when a file is bad or manifest.json's sha256 is not argv[1] (when given), so a command
# chained after it runs only on a verified bundle.
VERIFY_FAILED = 3
VERIFY_SNIPPET = (
    "import hashlib, json, os, sys\n"
    "raw = open('manifest.json', 'rb').read()\n"
    "m = json.loads(raw.decode('utf-8'))\n"
    "bad = []\n"
    "for rel, want in sorted(m['files'].items()):\n"
    "    if not os.path.isfile(rel):\n"
    "        bad.append([rel, 'missing']); continue\n"
    "    h = hashlib.sha256()\n"
    "    with open(rel, 'rb') as f:\n"
    "        for block in iter(lambda: f.read(1 << 20), b''):\n"
    "            h.update(block)\n"
    "    if h.hexdigest() != want['sha256']:\n"
    "        bad.append([rel, 'sha256 %s, expected %s' % (h.hexdigest(), want['sha256'])])\n"
    "out = {'checked': len(m['files']), 'bad': bad, 'manifest_sha256': hashlib.sha256(raw).hexdigest()}\n"
    "sys.stdout.write(json.dumps(out) + '\\n')\n"
    "want = sys.argv[1] if len(sys.argv) > 1 else out['manifest_sha256']\n"
    "sys.exit(3 if bad or out['manifest_sha256'] != want else 0)\n"  # 3: VERIFY_FAILED
)
