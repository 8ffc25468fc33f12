"""The ResNet suite: two residual networks, float vs int8 vs (on a device) Edge TPU.

- `resnet8`: the MLPerf Tiny reference ResNet-8 (third-party, published numbers) on the CIFAR-10 JPEG
  test set. Offline-verifiable: the float model scores 75.48 % top-1 there (the dataset's MANIFEST),
  and MLPerf's own int8 conversion is measured beside ours when it lies next to the .h5.
- `resnet50`: keras.applications ResNet-50 at 224x224 with Keras' own "caffe" preprocessing, on an
  ImageNet-style folder. Weights: `imagenet` (Keras downloads them once, so online or pre-cached), a
  local weights file, or `random`, which is labelled latency-only: its accuracy would mean nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..convert import convert_model
from ..data import find_data_dir, load_dataset
from ..errors import DatasetError, InputNotFoundError, ModelFormatError
from ..runtime.options import RunOptions
from ..runtime.report import make_dirs, replacing, to_jsonable
from .common import (
    SuiteReport,
    Variant,
    VariantResult,
    compile_if_possible,
    finish_report,
    measure_variants,
    suite_progress,
)

MODELS = ("resnet8", "resnet50")
RESNET8_FILE = Path("mlperf-tiny-resnet8") / "pretrainedResnet.h5"
RESNET8_MLPERF_INT8 = "pretrainedResnet_quant.tflite"
RESNET50_SIZE = 224
DEFAULT_OPTIONS = RunOptions(runs=50, warmup=5)


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
            hint="Offline, pass --weights FILE (resnet50_weights_tf_dim_ordering_tf_kernels.h5) or --weights random",
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


def run_resnet_suite(
    out_dir: Path,
    *,
    models: Optional[List[str]] = None,
    data_dir: Optional[Path] = None,
    resnet8: Optional[Path] = None,
    weights: str = "imagenet",
    images: Optional[Path] = None,
    options: RunOptions = DEFAULT_OPTIONS,
    limit: Optional[int] = None,
    calib_samples: int = 200,
    seed: int = 0,
    compiler: Optional[str] = None,
    quiet: bool = False,
) -> SuiteReport:
    started = time.monotonic()
    out_dir = Path(out_dir)
    models = list(models or MODELS)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise DatasetError("unknown model %r" % unknown[0], hint="Use %s" % " or ".join(MODELS))
    make_dirs(out_dir, hint="Choose another --out")
    results: List[VariantResult] = []
    steps: Dict[str, Any] = {}
    data: Dict[str, Any] = {}
    warnings: List[str] = []
    comparisons: Dict[str, Any] = {}

    with suite_progress(quiet) as progress:
        if "resnet8" in models:
            source = find_resnet8(resnet8, data_dir)
            if source is None:
                warnings.append(
                    "resnet8 skipped: pretrainedResnet.h5 not found (give --resnet8 PATH or set EDGEPIPE_MODELS)"
                )
            else:
                task = progress.add_task("ResNet-8: converting float and edgetpu-int8", total=None)
                conv = _convert_pair(source, out_dir, "resnet8", "cifar10", calib_samples, "raw", seed, data_dir)
                progress.update(task, total=1, completed=1)
                test = load_dataset("cifar10", split="test", data_dir=data_dir, limit=None)
                if limit is not None:
                    from ..data import select_samples

                    test = select_samples(test, limit, seed)  # cifar10 is stored class by class
                data["resnet8"] = {"dataset": "cifar10", "source": test.source, "count": len(test)}
                compiled = compile_if_possible(Path(conv["edgetpu"]["out"]), out_dir, compiler)
                steps["resnet8"] = {"source": str(source), "convert": conv, "compile": compiled}
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
                    warnings.append("resnet8: no compiled variant: %s" % compiled["reason"])
                results += measure_variants(
                    variants, options, progress, test=test, preset="raw", dataset=data["resnet8"]
                )
                by = {r.variant: r for r in results}
                comparisons["resnet8_int8_minus_float_top1_pp"] = round(
                    (by["resnet8-edgetpu-int8"].top1 - by["resnet8-float"].top1) * 100, 3
                )

        if "resnet50" in models:
            results += _resnet50(
                out_dir, weights, images, data_dir, options, limit, calib_samples, seed, compiler, progress, steps,
                data, warnings, comparisons,
            )  # fmt: skip

    return finish_report("resnet", out_dir, started, results, data, steps, comparisons, warnings)


def _resnet50(
    out_dir: Path,
    weights: str,
    images: Optional[Path],
    data_dir: Optional[Path],
    options: RunOptions,
    limit: Optional[int],
    calib_samples: int,
    seed: int,
    compiler: Optional[str],
    progress: Any,
    steps: Dict[str, Any],
    data: Dict[str, Any],
    warnings: List[str],
    comparisons: Dict[str, Any],
) -> List[VariantResult]:
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
    task = progress.add_task("ResNet-50: building (weights: %s)" % weights, total=None)
    keras_path = out_dir / "resnet50.keras"
    built = _build_resnet50(weights, keras_path)
    progress.update(task, total=1, completed=1)
    task = progress.add_task("ResNet-50: converting float and edgetpu-int8", total=None)
    conv = _convert_pair(keras_path, out_dir, "resnet50", spec, calib_samples, "caffe", seed, data_dir)
    progress.update(task, total=1, completed=1)
    compiled = compile_if_possible(Path(conv["edgetpu"]["out"]), out_dir, compiler)
    steps["resnet50"] = {"build": built, "convert": conv, "compile": compiled}
    latency_only = weights == "random"
    test = None
    if not latency_only:
        test = load_dataset(spec, data_dir=data_dir, image_size=(RESNET50_SIZE, RESNET50_SIZE), limit=limit)
        data["resnet50"] = {"dataset": spec, "source": test.source, "count": len(test)}
    else:
        warnings.append("resnet50 uses random weights: latency only, no accuracy")
    variants: List[Variant] = [
        ("resnet50-float", Path(conv["float"]["out"]), True),
        ("resnet50-edgetpu-int8", Path(conv["edgetpu"]["out"]), True),
    ]
    if compiled.get("model"):
        variants.append(("resnet50-edgetpu-compiled", Path(compiled["model"]), False))
    else:
        warnings.append("resnet50: no compiled variant: %s" % compiled["reason"])
    rows = measure_variants(variants, options, progress, test=test, preset="caffe", dataset=data.get("resnet50"))
    if latency_only:
        for row in rows:
            row.notes.append("random weights: latency only")
    if not latency_only:
        comparisons["resnet50_int8_minus_float_top1_pp"] = round((rows[1].top1 - rows[0].top1) * 100, 3)
    return rows


__all__ = ["MODELS", "find_resnet8", "run_resnet_suite"]
