"""The paper's benchmarks, read from a data root in torchvision's own on-disk layout.

`flooding download NAME --root DIR` runs torchvision's downloader, which verifies each
file's md5; loading never touches the network. The MNIST family is read by the torchvision
classes themselves. CIFAR and SVHN are read here, from the file names those classes
declare, because their constructors re-check the md5 of the official files on every load,
which rules out the small files in the same formats that the tests write; the two readers
below do what torchvision's do (unpickle the batches, `scipy.io.loadmat` the .mat files).

Every loader returns CPU tensors (x_train, y_train, x_test, y_test): uint8 images
(N, C, H, W) and int64 labels.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch

from flooding.data.registry import (
    DATASETS,
    DatasetDownloadError,
    DatasetMissingError,
    DatasetSpec,
)
from flooding.validation import ConfigError

Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def load(spec: DatasetSpec, root: Path) -> Arrays:
    cls = _torchvision_class(spec)
    if spec.name == "svhn":
        return _load_svhn(spec, cls, root)
    if spec.name.startswith("cifar"):
        return _load_cifar(spec, cls, root)
    return _load_mnist_family(spec, cls, root)


def download(name: str, root: Path) -> None:
    """Fetch the training and test files of a torchvision dataset into root.

    Files already under root with the right md5 are not fetched again, so when the host
    cannot be reached the error names the files to place there by hand.
    """
    spec = DATASETS.get(name)
    if spec is None or not spec.downloadable:
        downloadable = [n for n, s in DATASETS.items() if s.downloadable]
        others = [n for n, s in DATASETS.items() if not s.downloadable]
        raise ConfigError(
            "dataset",
            name,
            ", ".join(downloadable) + " (" + ", ".join(others) + " need no download)",
        )
    cls = _torchvision_class(spec)
    root.mkdir(parents=True, exist_ok=True)
    try:
        if spec.name == "svhn":
            for split in ("train", "test"):
                cls(root=str(root), split=split, download=True)
        else:
            for train in (True, False):
                cls(root=str(root), train=train, download=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; MNIST raises RuntimeError
        urls, places = _sources(cls, root)
        hosts = list(dict.fromkeys(urlsplit(url).netloc for url in urls))
        reason = str(getattr(exc, "reason", exc)).strip().splitlines()[-1]
        raise DatasetDownloadError(spec.name, str(root), hosts, reason, places) from exc


def _sources(cls: Any, root: Path) -> tuple[list[str], str]:
    """Every URL the downloader may try, and which files go where, in words."""
    if hasattr(cls, "mirrors"):  # the MNIST family: each file from the first mirror that answers
        names = [name for name, _ in cls.resources]
        urls = [mirror + name for mirror in cls.mirrors for name in names]
        return urls, f"{', '.join(names)} from {cls.mirrors[0]} into {root / cls.__name__ / 'raw'}"
    if hasattr(cls, "split_list"):  # SVHN: one .mat file a split
        urls = [cls.split_list[split][0] for split in ("train", "test")]
    else:  # CIFAR: one archive
        urls = [cls.url]
    return urls, f"{', '.join(urls)} into {root}"


def _torchvision_class(spec: DatasetSpec) -> Any:
    import torchvision.datasets

    return getattr(torchvision.datasets, str(spec.torchvision_class))


def _require(spec: DatasetSpec, root: Path, paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetMissingError(spec.name, str(root), missing)


def _load_mnist_family(spec: DatasetSpec, cls: Any, root: Path) -> Arrays:
    # torchvision reads the uncompressed IDX files from ROOT/<ClassName>/raw/.
    raw = root / cls.__name__ / "raw"
    _require(spec, root, [raw / Path(archive).stem for archive, _ in cls.resources])
    train = cls(root=str(root), train=True, download=False)
    test = cls(root=str(root), train=False, download=False)
    return (
        train.data.unsqueeze(1).contiguous(),
        train.targets.long(),
        test.data.unsqueeze(1).contiguous(),
        test.targets.long(),
    )


def _load_cifar(spec: DatasetSpec, cls: Any, root: Path) -> Arrays:
    folder = root / cls.base_folder
    train_files = [folder / name for name, _ in cls.train_list]
    test_files = [folder / name for name, _ in cls.test_list]
    _require(spec, root, train_files + test_files)
    return (*_read_cifar_batches(train_files), *_read_cifar_batches(test_files))


def _read_cifar_batches(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for path in paths:
        with path.open("rb") as f:
            # latin1: the batches were pickled by Python 2, as torchvision also assumes.
            entry = _ArrayUnpickler(f, encoding="latin1").load()
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        # CIFAR-10 names its labels "labels"; CIFAR-100 "fine_labels" (and "coarse_labels").
        labels.append(np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of lists and NumPy arrays only: a pickle can otherwise run code."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),  # arrays pickled by NumPy 1
            ("numpy._core.multiarray", "_reconstruct"),  # arrays pickled by NumPy 2
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: CIFAR batches hold only NumPy arrays"
            )
        return super().find_class(module, name)


def _load_svhn(spec: DatasetSpec, cls: Any, root: Path) -> Arrays:
    # torchvision keeps SVHN's .mat files directly in the root.
    paths = [root / cls.split_list[split][1] for split in ("train", "test")]
    _require(spec, root, paths)
    return (*_read_svhn_mat(paths[0]), *_read_svhn_mat(paths[1]))


def _read_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    import scipy.io

    mat = scipy.io.loadmat(path)
    # X is (H, W, C, N) as MATLAB stores it; the digit 0 carries the label 10.
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
    labels = mat["y"].astype(np.int64).reshape(-1) % 10
    return torch.from_numpy(images), torch.from_numpy(labels)
