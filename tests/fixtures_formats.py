"""Tiny datasets written in the real on-disk formats that torchvision reads.

Each writer puts files where `torchvision.datasets.<Class>(root)` looks for them and returns
what it wrote in canonical form: uint8 images (N, C, H, W) and int64 labels 0..C-1, so a
test can compare what a loader reads against it. Images and labels are random (from
`seed`); only the formats are real.

- MNIST, Fashion-MNIST, KMNIST: uncompressed IDX files in ROOT/<ClassName>/raw/.
- CIFAR-10/100: Python 2 pickles in ROOT/cifar-10-batches-py/ or ROOT/cifar-100-python/.
- SVHN: MATLAB v5 files ROOT/train_32x32.mat and ROOT/test_32x32.mat.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

MNIST_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}
IMAGE_DATASETS = (*MNIST_FOLDERS, "cifar10", "cifar100", "svhn")


def write_dataset(
    name: str, root: str | Path, n_train: int = 50, n_test: int = 20, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write any of IMAGE_DATASETS under root; returns x_train, y_train, x_test, y_test."""
    root = Path(root)
    if name in MNIST_FOLDERS:
        return write_mnist_family(name, root, n_train, n_test, seed)
    if name in ("cifar10", "cifar100"):
        return write_cifar(name, root, n_train, n_test, seed)
    if name == "svhn":
        return write_svhn(root, n_train, n_test, seed)
    raise ValueError(f"no fixture writer for {name!r}; accepted: {', '.join(IMAGE_DATASETS)}")


def random_images(
    shape: tuple[int, int, int], n_train: int, n_test: int, num_classes: int, seed: int
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, num_classes, n_train, dtype=np.int64),
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": rng.integers(0, num_classes, n_test, dtype=np.int64),
    }


# --- MNIST family: IDX ---------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: two zero bytes, type 0x08 (unsigned byte), the number of dimensions,
    then each dimension as a big-endian uint32, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def write_mnist_family(
    name: str, root: Path, n_train: int, n_test: int, seed: int
) -> dict[str, np.ndarray]:
    data = random_images((1, 28, 28), n_train, n_test, 10, seed)
    raw = root / MNIST_FOLDERS[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, split in (("train", "train"), ("t10k", "test")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", data[f"x_{split}"][:, 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", data[f"y_{split}"])
    return data


# --- CIFAR: Python 2 pickles ---------------------------------------------------------------


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the CIFAR batches (protocol 2).

    Byte strings become Python 2 `str` (which `pickle.load(f, encoding="latin1")` turns
    into `str`, as torchvision relies on) and NumPy's reconstructor is named by its NumPy 1
    module, numpy.core.multiarray. The pure-Python pickler is the one whose opcodes can be
    overridden.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file: Any) -> None:
        super().__init__(file, protocol=2)

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def write_python2_pickle(path: Path, obj: Any) -> None:
    with path.open("wb") as f:
        Python2Pickler(f).dump(obj)


def _cifar_batch(
    label_key: bytes, images: np.ndarray, labels: np.ndarray, batch_label: bytes
) -> dict[bytes, Any]:
    batch: dict[bytes, Any] = {
        b"batch_label": batch_label,
        label_key: [int(label) for label in labels],
        # Rows of 3072 bytes: the red, green then blue 32x32 planes.
        b"data": images.reshape(len(images), 3 * 32 * 32),
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(images))],
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [int(label) // 5 for label in labels]
    return batch


def write_cifar(
    name: str, root: Path, n_train: int, n_test: int, seed: int
) -> dict[str, np.ndarray]:
    num_classes = 10 if name == "cifar10" else 100
    data = random_images((3, 32, 32), n_train, n_test, num_classes, seed)
    names = [f"class_{i}".encode() for i in range(num_classes)]
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        # Five training batches, as in the real archive (sizes here need not be equal).
        parts = np.array_split(np.arange(n_train), 5)
        for i, part in enumerate(parts, start=1):
            batch_label = f"training batch {i} of 5".encode()
            batch = _cifar_batch(
                b"labels", data["x_train"][part], data["y_train"][part], batch_label
            )
            write_python2_pickle(folder / f"data_batch_{i}", batch)
        test = _cifar_batch(b"labels", data["x_test"], data["y_test"], b"testing batch 1 of 1")
        write_python2_pickle(folder / "test_batch", test)
        meta = {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}
        write_python2_pickle(folder / "batches.meta", meta)
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        for split, batch_label in (("train", b"training batch 1 of 1"), ("test", b"testing")):
            batch = _cifar_batch(
                b"fine_labels", data[f"x_{split}"], data[f"y_{split}"], batch_label
            )
            write_python2_pickle(folder / split, batch)
        coarse = [f"superclass_{i}".encode() for i in range(20)]
        write_python2_pickle(
            folder / "meta", {b"fine_label_names": names, b"coarse_label_names": coarse}
        )
    return data


# --- SVHN: MATLAB .mat -----------------------------------------------------------------------


def write_svhn(root: Path, n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    data = random_images((3, 32, 32), n_train, n_test, 10, seed)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        images, labels = data[f"x_{split}"], data[f"y_{split}"]
        # MATLAB layout (H, W, C, N); the digit 0 is stored as label 10.
        mat = {
            "X": np.ascontiguousarray(np.transpose(images, (2, 3, 1, 0))),
            "y": np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1),
        }
        scipy.io.savemat(root / f"{split}_32x32.mat", mat)
    return data
