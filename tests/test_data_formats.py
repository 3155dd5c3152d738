"""torchvision-format datasets, from tiny files in the real formats (tests/fixtures_formats.py)."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from fixtures_formats import IMAGE_DATASETS, write_dataset, write_idx

from flooding import cli
from flooding.config import ConfigError, RunConfig
from flooding.data import DATASETS, DatasetMissingError, download_dataset, load_data

CPU = torch.device("cpu")


def as_uint8(x: torch.Tensor, name: str) -> np.ndarray:
    """Undo the normalisation: the pixels as they were written."""
    spec = DATASETS[name]
    mean = torch.tensor(spec.mean).view(-1, 1, 1)
    std = torch.tensor(spec.std).view(-1, 1, 1)
    return ((x * std + mean) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_load_fixture(tmp_path, name):
    written = write_dataset(name, tmp_path, n_train=50, n_test=20, seed=3)
    bundle = load_data(RunConfig(dataset=name, label_noise=0.3), tmp_path, CPU)
    spec = DATASETS[name]
    assert bundle.input_shape == spec.input_shape
    assert bundle.x_train.shape == (40, *spec.input_shape)
    assert bundle.x_val.shape == (10, *spec.input_shape)
    assert (bundle.num_classes, bundle.augmentation, bundle.name) == (
        spec.num_classes,
        spec.augmentation,
        name,
    )
    assert bundle.bayes_error is None
    assert bundle.x_train.dtype == torch.float32
    # The test set comes back in file order, clean, with the pixels in the right layout.
    np.testing.assert_array_equal(as_uint8(bundle.x_test, name), written["x_test"])
    np.testing.assert_array_equal(bundle.y_test.numpy(), written["y_test"])
    assert int((bundle.y_train != bundle.y_train_clean).sum()) == round(0.3 * 40)
    assert int((bundle.y_val != bundle.y_val_clean).sum()) == round(0.3 * 10)
    # Training and validation partition the training file, each image with its true label.
    label_of = {
        image.tobytes(): label
        for image, label in zip(written["x_train"], written["y_train"], strict=True)
    }
    seen = []
    for x, y in ((bundle.x_train, bundle.y_train_clean), (bundle.x_val, bundle.y_val_clean)):
        for image, label in zip(as_uint8(x, name), y.tolist(), strict=True):
            assert label_of[image.tobytes()] == label
            seen.append(image.tobytes())
    assert sorted(seen) == sorted(label_of)


def test_seeded_subset_and_determinism(tmp_path):
    write_dataset("cifar100", tmp_path, n_train=60, n_test=30)

    def bundle(seed):
        cfg = RunConfig(dataset="cifar100", train_size=20, test_size=10, seed=seed, label_noise=0.5)
        return load_data(cfg, tmp_path, CPU)

    first, again, other = bundle(0), bundle(0), bundle(1)
    assert first.x_train.shape[0] == 16 and first.x_val.shape[0] == 4
    for key in ("x_train", "y_train", "y_train_clean", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(first, key), getattr(again, key)), key
    assert not torch.equal(first.x_train, other.x_train)
    # The test subset is the same for every seed, so all runs are scored on the same images.
    assert torch.equal(first.x_test, other.x_test)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_readers_agree_with_torchvision(tmp_path, monkeypatch, name):
    """Our CIFAR/SVHN readers and torchvision's classes read the same arrays from the same files.

    torchvision checks the md5 of the official files; here its checksums are pointed at the
    fixture's files so that its own loading code runs on them.
    """
    write_dataset(name, tmp_path, n_train=10, n_test=7)
    cls = getattr(torchvision.datasets, DATASETS[name].torchvision_class)

    def md5(path: Path) -> str:
        return hashlib.md5(path.read_bytes()).hexdigest()

    if name == "svhn":
        split_list = {
            s: [url, file, md5(tmp_path / file)]
            for s, (url, file, _) in cls.split_list.items()
            if s != "extra"
        }
        monkeypatch.setattr(cls, "split_list", split_list)
        theirs = cls(str(tmp_path), split="test")
        images, labels = theirs.data, np.asarray(theirs.labels)
    else:
        folder = tmp_path / cls.base_folder
        monkeypatch.setattr(cls, "train_list", [[f, md5(folder / f)] for f, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[f, md5(folder / f)] for f, _ in cls.test_list])
        meta = {**cls.meta, "md5": md5(folder / cls.meta["filename"])}
        monkeypatch.setattr(cls, "meta", meta)
        theirs = cls(str(tmp_path), train=False)
        images, labels = theirs.data.transpose(0, 3, 1, 2), np.asarray(theirs.targets)
    ours = load_data(RunConfig(dataset=name, train_size=5), tmp_path, CPU)
    np.testing.assert_array_equal(as_uint8(ours.x_test, name), images)
    np.testing.assert_array_equal(ours.y_test.numpy(), labels)


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_missing_files_name_the_download_command(tmp_path, name):
    root = tmp_path / "empty root"
    with pytest.raises(DatasetMissingError) as caught:
        load_data(RunConfig(dataset=name), root, CPU)
    assert f"flooding download {name} --root '{root}'" in str(caught.value)


def test_one_missing_file_is_named(tmp_path):
    write_dataset("cifar10", tmp_path, n_train=10, n_test=5)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetMissingError, match="data_batch_3") as caught:
        load_data(RunConfig(dataset="cifar10"), tmp_path, CPU)
    assert caught.value.missing == [str(tmp_path / "cifar-10-batches-py" / "data_batch_3")]


def test_pickles_that_would_run_code_are_refused(tmp_path):
    write_dataset("cifar10", tmp_path, n_train=10, n_test=5)
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("wb") as f:
        pickle.dump({"data": shutil.rmtree, "labels": []}, f)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle shutil\.rmtree"):
        load_data(RunConfig(dataset="cifar10"), tmp_path, CPU)


def test_labels_outside_the_classes_are_rejected(tmp_path):
    write_dataset("mnist", tmp_path, n_train=10, n_test=5)
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.full(5, 10))
    with pytest.raises(ValueError, match=r"labels outside 0\.\.9"):
        load_data(RunConfig(dataset="mnist"), tmp_path, CPU)


@pytest.mark.parametrize("name", ["imagenet", "digits", "spiral"])
def test_download_refuses_names_it_cannot_fetch(tmp_path, name):
    with pytest.raises(ConfigError, match="need no download") as caught:
        download_dataset(name, tmp_path)
    assert caught.value.field == "dataset"
    assert "cifar10" in caught.value.accepted


@pytest.mark.parametrize("name", [n for n, s in DATASETS.items() if s.downloadable])
def test_download_calls_torchvision_with_download_true(tmp_path, monkeypatch, name):
    calls = []

    class Recorder:
        def __init__(self, root, **kwargs):
            calls.append((root, kwargs))

    class_name = DATASETS[name].torchvision_class
    monkeypatch.setattr(torchvision.datasets, class_name, Recorder)
    download_dataset(name, tmp_path / "data")
    root = str(tmp_path / "data")
    if name == "svhn":
        expected = [(root, {"split": s, "download": True}) for s in ("train", "test")]
    else:
        expected = [(root, {"train": t, "download": True}) for t in (True, False)]
    assert calls == expected
    assert (tmp_path / "data").is_dir()


def unreachable_url(port: int, name: str) -> str:
    return f"http://127.0.0.1:{port}/{name}"


@pytest.mark.parametrize("name", [n for n, s in DATASETS.items() if s.downloadable])
def test_a_download_without_network_fails_in_one_line_naming_what_to_place(
    tmp_path, monkeypatch, capsys, name
):
    # Every URL the downloader knows points at a local port nobody listens on: the
    # network is unreachable, and no request leaves the machine.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cls = getattr(torchvision.datasets, DATASETS[name].torchvision_class)
    if hasattr(cls, "mirrors"):
        monkeypatch.setattr(
            cls, "mirrors", [unreachable_url(port, "a/"), unreachable_url(port, "b/")]
        )
    elif hasattr(cls, "split_list"):
        moved = {k: [unreachable_url(port, v[1]), *v[1:]] for k, v in cls.split_list.items()}
        monkeypatch.setattr(cls, "split_list", moved)
    else:
        monkeypatch.setattr(cls, "url", unreachable_url(port, cls.filename))
    root = tmp_path / "data"

    assert cli.main(["download", name, "--root", str(root)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert f"cannot download {name}: 127.0.0.1:{port} not reachable (" in error
    if hasattr(cls, "mirrors"):
        names = ", ".join(file for file, _ in cls.resources)
        assert f"fetch {names} from {cls.mirrors[0]} into {root / cls.__name__ / 'raw'}" in error
    else:
        assert f" into {root}, then run flooding download {name} --root {root} again" in error
    assert "Traceback" not in error
