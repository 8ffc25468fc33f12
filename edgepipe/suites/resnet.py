"""The ResNet suite: two residual networks, float vs int8 vs (on a device) Edge TPU, beside their references.

- `resnet8`: the MLPerf Tiny reference ResNet-8 (third-party, published numbers) on the CIFAR-10 JPEG
  test set. Offline-verifiable: the float model scores 75.48 % top-1 there (the dataset's MANIFEST),
  and MLPerf's own int8 conversion is measured beside ours when it lies next to the .h5. The registry
  has only CIFAR-10's test set, so calibration takes a seeded part of it and the evaluation leaves
  that part out (the report says so).
- `resnet50`: keras.applications ResNet-50 at 224x224 with Keras' own "caffe" preprocessing, on an
  ImageNet-style folder. Weights: a local file, `imagenet` (Keras downloads them once; only when
  asked), or `random`, labelled latency-only. With none given, Keras's cached ImageNet weights are used
  when present, else ResNet-50 is skipped: the suite downloads nothing unless asked.

Each model runs on its own: one that fails is recorded in `failures` (and the command exits with its
code) while the others' results are still measured and written to results.json.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..convert import convert_model
from ..data import find_data_dir, load_dataset
from ..data.sampling import balanced_indices, describe_sample
from ..errors import DatasetError, EdgepipeError, InputNotFoundError, ModelFormatError
from ..runtime.options import RunOptions
from ..runtime.report import make_dirs, replacing, to_jsonable
from .common import (
    SuiteReport,
    Variant,
    VariantResult,
    compile_if_possible,
    failure_entry,
    finish_report,
    int8_figures,
    measure_variants,
    reference_block,
    suite_progress,
)

MODELS = ("resnet8", "resnet50")
RESNET8_FILE = Path("mlperf-tiny-resnet8") / "pretrainedResnet.h5"
RESNET8_MLPERF_INT8 = "pretrainedResnet_quant.tflite"
RESNET50_SIZE = 224
RESNET50_KERAS_WEIGHTS = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"  # the name Keras caches them under
DEFAULT_OPTIONS = RunOptions(runs=50, warmup=5)

# MLPerf Tiny's published figures for the reference ResNet-8 (github.com/mlcommons/tiny, in
# benchmark/training/image_classification/Logs/: testing_log.txt and tflite_testing_log.txt):
# its Keras float model 90.0 % and its int8 TFLite 88.5 % on the benchmark's 200 performance samples
# (original CIFAR-10 pixels); the size ratio is that of MLPerf's own published files (98,496 / 318,144
# bytes). MLPerf publishes no float-vs-int8 speed-up for it.
MLPERF_RESNET8 = {"float_top1": 0.900, "int8_top1": 0.885, "int8_minus_float_top1_pp": -1.5, "int8_size_ratio": 0.3096}
MLPERF_REFERENCE = "MLPerf Tiny's published ResNet-8 figures"
MLPERF_NOTES = [
    "MLPerf's top-1 is on its 200 performance samples of the original CIFAR-10 pixels; on this JPEG copy its own "
    "float model scores 75.48 % and its int8 model 75.42 % (datasets/cifar10 MANIFEST): compare with those",
    "MLPerf Tiny's quality target for this task: 85 % top-1; size ratio: MLPerf's own int8 .tflite ÷ its float one",
]
# ResNet-50: Keras's published ImageNet-validation top-1 for its weights (74.9 %) and TensorFlow's
# post-training quantization guide for full-integer models ("4x smaller, 3x+ speedup").
RESNET50_PUBLISHED = {"float_top1": 0.749, "int8_size_ratio": 0.25, "int8_speedup": "3× or more"}
RESNET50_REFERENCE = "Keras (ImageNet val top-1) and TensorFlow's post-training quantization guide"
RESNET50_NOTES = [
    "top-1 here is on the sample folder, not ImageNet's validation set: a sanity check, not comparable to 74.9 %",
    "TensorFlow's guide gives full-integer quantization as 4× smaller and 3× or more faster (CPU, Edge TPU)",
]


def find_resnet8(explicit: Optional[Path], data_dir: Optional[Path]) -> Optional[Path]:
    """The ResNet-8 .h5: `--resnet8`, else $EDGEPIPE_MODELS/…, else <data dir>/../models/…."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise InputNotFoundError(
                "ResNet-8 model not found: %s" % explicit, hint="Give the MLPerf Tiny pretrainedResnet.h5"
            )
        return Path(explicit)
    roots = []
    if os.environ.get("EDGEPIPE_MODELS"):
        roots.append(Path(os.environ["EDGEPIPE_MODELS"]))
    located = find_data_dir(data_dir)
    if located is not None:
        roots.append(located.parent / "models")
    for root in roots:
        if (root / RESNET8_FILE).is_file():
            return root / RESNET8_FILE
    return None


def keras_cached_resnet50_weights() -> Optional[Path]:
    """ResNet-50's ImageNet weights where Keras keeps its downloads ($KERAS_HOME, ~/.keras, /tmp/.keras)."""
    homes = [os.environ["KERAS_HOME"]] if os.environ.get("KERAS_HOME") else ["~/.keras", "/tmp/.keras"]
    for home in homes:
        candidate = Path(home).expanduser() / "models" / RESNET50_KERAS_WEIGHTS
        if candidate.is_file():
            return candidate
    return None


def _build_resnet50(weights: str, path: Path) -> Dict[str, Any]:
    from ..models import quiet_tensorflow

    quiet_tensorflow()
    import keras

    if weights not in ("imagenet", "random") and not Path(weights).is_file():
        raise InputNotFoundError(
            "ResNet-50 weights file not found: %s" % weights, hint="Use imagenet, random or a file"
        )
    try:
        model = keras.applications.ResNet50(
            weights=None if weights == "random" else weights, input_shape=(RESNET50_SIZE, RESNET50_SIZE, 3)
        )
    except Exception as exc:  # download refused, wrong file: Keras raises many kinds
        raise ModelFormatError(
            "cannot build ResNet-50 with weights %r: %s" % (weights, " ".join(str(exc).split())[:200]),
            hint="Offline, pass --weights FILE (%s) or --weights random" % RESNET50_KERAS_WEIGHTS,
        ) from None
    with replacing(path, suffix=path.suffix) as tmp:  # a failed or interrupted save leaves no half file
        model.save(tmp)
    return {"model": str(path), "weights": weights, "parameters": int(model.count_params())}


def _convert_pair(
    source: Path,
    out_dir: Path,
    stem: str,
    calib: str,
    calib_samples: int,
    preprocess: str,
    seed: int,
    data_dir: Optional[Path],
) -> Dict[str, Any]:
    reports = {}
    for target, suffix in (("float", "float"), ("edgetpu", "edgetpu_int8")):
        report = convert_model(
            source,
            out_dir / ("%s_%s.tflite" % (stem, suffix)),
            target=target,
            calib=calib if target == "edgetpu" else None,
            calib_samples=calib_samples,
            seed=seed,
            preprocess=preprocess,
            data_dir=data_dir,
            quiet=True,
        )
        reports[target] = to_jsonable(report)
    return reports


class _Run:
    """What the models of one suite run add to: results, steps, data, warnings, comparisons, references."""

    def __init__(self, out_dir: Path, options: RunOptions, progress: Any, seed: int, compiler: Optional[str]) -> None:
        self.out_dir, self.options, self.progress, self.seed, self.compiler = out_dir, options, progress, seed, compiler
        self.results: List[VariantResult] = []
        self.steps: Dict[str, Any] = {}
        self.data: Dict[str, Any] = {}
        self.warnings: List[str] = []
        self.comparisons: Dict[str, Any] = {}
        self.references: List[Dict[str, Any]] = []

    def done(self, task: int) -> None:
        self.progress.update(task, total=1, completed=1)


def run_resnet_suite(
    out_dir: Path,
    *,
    models: Optional[List[str]] = None,
    data_dir: Optional[Path] = None,
    resnet8: Optional[Path] = None,
    weights: Optional[str] = None,
    images: Optional[Path] = None,
    options: RunOptions = DEFAULT_OPTIONS,
    limit: Optional[int] = None,
    calib_samples: int = 200,
    seed: int = 0,
    compiler: Optional[str] = None,
    quiet: bool = False,
) -> SuiteReport:
    """Run the suite; write `out_dir/results.json` (always, with what finished) and return the report."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    models = list(models or MODELS)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise DatasetError("unknown model %r" % unknown[0], hint="Use %s" % " or ".join(MODELS))
    make_dirs(out_dir, hint="Choose another --out")
    failures: List[Dict[str, Any]] = []

    with suite_progress(quiet) as progress:
        run = _Run(out_dir, options, progress, seed, compiler)
        for model in models:
            try:
                if model == "resnet8":
                    _resnet8(run, resnet8, data_dir, limit, calib_samples)
                else:
                    _resnet50(run, weights, images, data_dir, limit, calib_samples)
            except EdgepipeError as exc:  # one model's failure never loses the others' results
                failures.append(failure_entry(model, exc))  # printed, and the exit code, by the command
            except Exception as exc:  # a library's own exception, or a bug: still keep the others (exit 1)
                detail = " ".join(str(exc).split())[:300]
                failures.append({"model": model, "error": "%s: %s" % (type(exc).__name__, detail), "exit_code": 1})
                run.steps.setdefault(model, {})["status"] = "failed"

    return finish_report(
        "resnet", out_dir, started, run.results, run.data, run.steps, run.comparisons, run.warnings,
        references=run.references, failures=failures,
    )  # fmt: skip


def _resnet8(run: _Run, resnet8: Optional[Path], data_dir: Optional[Path], limit: Optional[int], calib: int) -> None:
    source = find_resnet8(resnet8, data_dir)
    if source is None:
        run.warnings.append(
            "resnet8 skipped: pretrainedResnet.h5 not found (give --resnet8 PATH or set EDGEPIPE_MODELS)"
        )
        return
    run.steps["resnet8"] = {"source": str(source)}
    everything = load_dataset("cifar10", split="test", data_dir=data_dir)
    # CIFAR-10's registry entry is the test set only: calibrate on a seeded part of it, evaluate on the rest.
    order = np.random.default_rng(run.seed).permutation(len(everything))
    calib_index, rest = np.sort(order[:calib]), np.sort(order[calib:])
    calib_path = run.out_dir / "resnet8_calibration.npy"
    with replacing(calib_path, suffix=".npy") as tmp:  # raw 0-255 pixels: what the model takes
        np.save(tmp, everything.images[calib_index].astype(np.float32))
    test = replace(everything, images=everything.images[rest], labels=everything.labels[rest])
    sampling = "all %d images not used for calibration" % len(test)
    if limit is not None and limit < len(test):
        index = balanced_indices(test.labels, limit, run.seed)
        sampling = describe_sample(test.labels[index], test.labels, run.seed) + " of those not used for calibration"
        test = replace(test, images=test.images[index], labels=test.labels[index])
    run.data["resnet8"] = {
        "dataset": "cifar10",
        "source": test.source,
        "count": len(test),
        "calibration": "%d CIFAR-10 test images (seeded, seed %d), left out of the evaluation" % (calib, run.seed),
        "sampling": sampling,
    }
    task = run.progress.add_task("ResNet-8: converting float and edgetpu-int8", total=None)
    conv = _convert_pair(source, run.out_dir, "resnet8", "npy:%s" % calib_path, calib, "raw", run.seed, data_dir)
    run.done(task)
    compiled = compile_if_possible(Path(conv["edgetpu"]["out"]), run.out_dir, run.compiler)
    run.steps["resnet8"].update(convert=conv, compile=compiled)
    variants: List[Variant] = [
        ("resnet8-float", Path(conv["float"]["out"]), True),
        ("resnet8-edgetpu-int8", Path(conv["edgetpu"]["out"]), True),
    ]
    mlperf = source.parent / RESNET8_MLPERF_INT8
    if mlperf.is_file():
        variants.append(("resnet8-mlperf-int8 (reference)", mlperf, True))
    if compiled.get("model"):
        variants.append(("resnet8-edgetpu-compiled", Path(compiled["model"]), False))
    else:
        run.warnings.append("resnet8: no compiled variant: %s" % compiled["reason"])
    rows = measure_variants(variants, run.options, run.progress, test=test, preset="raw", dataset=run.data["resnet8"])
    run.results += rows
    measured = int8_figures(rows[0], rows[1])
    for key in ("int8_minus_float_top1_pp", "int8_size_ratio", "int8_speedup"):
        run.comparisons["resnet8_" + key] = measured[key]
    run.references.append(reference_block("ResNet-8", MLPERF_REFERENCE, measured, MLPERF_RESNET8, MLPERF_NOTES))
    run.steps["resnet8"]["status"] = "measured"


def _resnet50(
    run: _Run,
    weights: Optional[str],
    images: Optional[Path],
    data_dir: Optional[Path],
    limit: Optional[int],
    calib_samples: int,
) -> None:
    if weights is None:
        cached = keras_cached_resnet50_weights()
        if cached is None:
            run.warnings.append(
                "resnet50 skipped: no weights given and none in Keras's cache; nothing is downloaded unless asked: "
                "--weights imagenet (Keras downloads about 100 MB), --weights FILE, or --weights random (latency only)"
            )
            run.steps["resnet50"] = {"status": "skipped", "reason": "no weights given, none cached"}
            return
        weights = str(cached)
    if images is None:
        located = find_data_dir(data_dir)
        if located is not None and (located / "imagenet-samples").is_dir():
            images = located / "imagenet-samples"
    if images is None:
        raise InputNotFoundError(
            "no ImageNet-style image folder for ResNet-50",
            hint="Pass --images DIR (class sub-folders, or labels.csv), or put imagenet-samples/ in the data dir",
        )
    spec = "images:%s" % images
    task = run.progress.add_task("ResNet-50: building (weights: %s)" % weights, total=None)
    keras_path = run.out_dir / "resnet50.keras"
    built = _build_resnet50(weights, keras_path)
    run.done(task)
    task = run.progress.add_task("ResNet-50: converting float and edgetpu-int8", total=None)
    conv = _convert_pair(keras_path, run.out_dir, "resnet50", spec, calib_samples, "caffe", run.seed, data_dir)
    run.done(task)
    compiled = compile_if_possible(Path(conv["edgetpu"]["out"]), run.out_dir, run.compiler)
    run.steps["resnet50"] = {"build": built, "convert": conv, "compile": compiled}
    latency_only = weights == "random"
    test = None
    if not latency_only:
        size = (RESNET50_SIZE, RESNET50_SIZE)
        test = load_dataset(spec, data_dir=data_dir, image_size=size, limit=limit, seed=run.seed)
        run.data["resnet50"] = {
            "dataset": spec,
            "source": test.source,
            "count": len(test),
            "sampling": test.sampling or "all %d images" % len(test),
            "calibration": "%d images of the same folder (seeded): calibration and evaluation overlap" % calib_samples,
        }
    else:
        run.warnings.append("resnet50 uses random weights: latency only, no accuracy")
    variants: List[Variant] = [
        ("resnet50-float", Path(conv["float"]["out"]), True),
        ("resnet50-edgetpu-int8", Path(conv["edgetpu"]["out"]), True),
    ]
    if compiled.get("model"):
        variants.append(("resnet50-edgetpu-compiled", Path(compiled["model"]), False))
    else:
        run.warnings.append("resnet50: no compiled variant: %s" % compiled["reason"])
    rows = measure_variants(
        variants, run.options, run.progress, test=test, preset="caffe", dataset=run.data.get("resnet50")
    )
    if latency_only:
        for row in rows:
            row.notes.append("random weights: latency only")
    run.results += rows
    measured = int8_figures(rows[0], rows[1])
    for key in ("int8_minus_float_top1_pp", "int8_size_ratio", "int8_speedup"):
        run.comparisons["resnet50_" + key] = measured[key]
    notes = RESNET50_NOTES if not latency_only else ["random weights: sizes and speed only"] + RESNET50_NOTES[1:]
    run.references.append(reference_block("ResNet-50", RESNET50_REFERENCE, measured, RESNET50_PUBLISHED, notes))
    run.steps["resnet50"]["status"] = "measured"


__all__ = ["MODELS", "find_resnet8", "keras_cached_resnet50_weights", "run_resnet_suite"]
