"""Which images a `limit` keeps: a seeded sample with every class as equally represented as it can be.

Datasets such as the CIFAR-10 JPEG set are stored class by class, so "the first N" would be one class
(a wrong preprocessing then scores 100 % on the airplanes it sees); a plain random sample leaves the
per-class counts to chance. The sample is drawn from the labels alone, before any image is decoded.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np


def balanced_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of `n` samples: the same count from each class (a class with too few gives all
    it has and the others make up the difference); which ones, and which classes get the remainder, is
    seeded. All indices when n >= len(labels)."""
    labels = np.asarray(labels).reshape(-1)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    take: Dict[int, int] = {c: 0 for c in pools}
    remaining = n
    while remaining > 0:
        open_classes = [c for c in pools if take[c] < len(pools[c])]
        share = remaining // len(open_classes)
        if share == 0:  # fewer left than classes: seeded classes get one more each
            for c in rng.choice(open_classes, size=remaining, replace=False):
                take[int(c)] += 1
            break
        for c in open_classes:
            add = min(share, len(pools[c]) - take[c])
            take[c] += add
            remaining -= add
    return np.sort(np.concatenate([pools[c][: take[c]] for c in pools]))


def describe_sample(sample_labels: np.ndarray, all_labels: np.ndarray, seed: int) -> str:
    """How a sample was drawn, in words: "seeded class-balanced sample: 1000 of 10000 images, 100 per
    class (10 classes, seed 0)"."""
    counts = np.bincount(np.asarray(sample_labels, dtype=np.int64))
    counts = counts[counts > 0]
    classes = int(np.unique(np.asarray(all_labels)).size)
    low, high = (int(counts.min()), int(counts.max())) if counts.size else (0, 0)
    per = "%d" % low if low == high else "%d to %d" % (low, high)
    if counts.size < classes:
        per, which = "%s from each of %d of the %d classes" % (per, counts.size, classes), ""
    else:
        per, which = per + " per class", " (%d classes" % classes
    return "seeded class-balanced sample: %d of %d images, %s%s%sseed %d)" % (
        len(sample_labels),
        len(all_labels),
        per,
        which,
        ", " if which else " (",
        seed,
    )


def first_n_note(n: int, total: int) -> Tuple[int, str]:
    """For unlabelled data (npy): the first n, said so."""
    kept = min(n, total)
    return kept, "the first %d of %d samples (no labels to balance on)" % (kept, total)
