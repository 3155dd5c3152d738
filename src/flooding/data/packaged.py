"""Real data that needs no download: scikit-learn's 8x8 digits and MNIST-1D.

Both return CPU tensors (x_train, y_train, x_test, y_test): digits as uint8 images
(N, 1, 8, 8) with values 0..16, MNIST-1D as float32 vectors (N, 40), already
standardised by its generator.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import json
import random
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from flooding.atomic import atomic_write
from flooding.data.sampling import fixed_subset

DIGITS_TEST_FRACTION = 0.2
DIGITS_FILE = "datasets/data/digits.csv.gz"  # inside the sklearn package

# The mnist1d package's default generation arguments (without its download URL), written
# out so that the dataset is pinned by this code rather than by the package's defaults.
MNIST1D_ARGS = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}


def load_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1,797 digits with a fixed 20% test split (digits has no official one)."""
    images, labels = (torch.from_numpy(a) for a in read_digits())
    n = len(labels)
    is_test = torch.zeros(n, dtype=torch.bool)
    is_test[fixed_subset(n, round(DIGITS_TEST_FRACTION * n), "digits/test")] = True
    return images[~is_test], labels[~is_test], images[is_test], labels[is_test]


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 1, 8, 8), int64 labels) read from the file scikit-learn ships.

    The file is found without importing scikit-learn: the import takes seconds, longer
    than training an MLP on these 1,797 images.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-learn, whose package holds the digits, is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / DIGITS_FILE
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.uint8).reshape(-1, 1, 8, 8), table[:, -1]


def load_mnist1d(data_root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST-1D's official 4,000/1,000 split, generated once and cached under data_root.

    Generation runs a Python loop over 5,000 samples (about two seconds), so the arrays
    are kept in data_root/mnist1d/ as .npz, keyed by the arguments and package version.
    """
    key_source = json.dumps({"args": MNIST1D_ARGS, "mnist1d": version("mnist1d")}, sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    path = Path(data_root) / "mnist1d" / f"mnist1d-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as arrays:
            data = {name: arrays[name] for name in ("x", "y", "x_test", "y_test")}
    else:
        data = _generate_mnist1d()
        _write_npz_atomically(path, data)
    return (
        torch.from_numpy(data["x"].astype(np.float32)),
        torch.from_numpy(data["y"].astype(np.int64)),
        torch.from_numpy(data["x_test"].astype(np.float32)),
        torch.from_numpy(data["y_test"].astype(np.int64)),
    )


def _generate_mnist1d() -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset seeds and draws from the global NumPy and Python RNGs; put them back so
    # loading data never changes what the rest of the run draws.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        dataset = make_dataset(ObjectView(dict(MNIST1D_ARGS)))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {name: np.asarray(dataset[name]) for name in ("x", "y", "x_test", "y_test")}


def _write_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache atomically, so concurrent runs never read half a file.

    A data root that cannot be written to only costs regenerating next time.
    """

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)

    with contextlib.suppress(OSError):
        atomic_write(path, write)
