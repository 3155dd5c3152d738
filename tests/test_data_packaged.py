"""Real data that ships with a package: scikit-learn's digits and MNIST-1D."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from flooding.config import RunConfig
from flooding.data import DATASETS, load_data, packaged

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def mnist1d_root(tmp_path_factory):
    """A data root where MNIST-1D was generated once, with the global RNG draws that
    followed the generation. A tenth of the samples keeps the generator's Python loop short;
    the arguments are otherwise the defaults (checked below)."""
    root = tmp_path_factory.mktemp("data")
    np.random.seed(123)
    random.seed(123)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(packaged.MNIST1D_ARGS, "num_samples", 500)
        bundle = load_data(RunConfig(dataset="mnist1d", label_noise=0.1), root, CPU)
    return root, bundle, np.random.rand(), random.random()


def test_mnist1d_shapes_and_noise(mnist1d_root):
    _, bundle, _, _ = mnist1d_root
    # 500 samples: MNIST-1D's 80/20 train/test split, then our 80/20 train/validation split.
    assert bundle.x_train.shape == (320, 40)
    assert bundle.x_val.shape == (80, 40)
    assert bundle.x_test.shape == (100, 40)
    assert (bundle.input_shape, bundle.num_classes, bundle.augmentation) == ((40,), 10, "none")
    assert int((bundle.y_train != bundle.y_train_clean).sum()) == 32
    assert int((bundle.y_val != bundle.y_val_clean).sum()) == 8
    assert len(bundle.y_test.unique()) == 10
    assert abs(bundle.x_train.std().item() - 1) < 0.1  # the generator standardises


def test_mnist1d_generation_leaves_the_global_rng_alone(mnist1d_root):
    _, _, numpy_draw, python_draw = mnist1d_root
    np.random.seed(123)
    random.seed(123)
    assert (numpy_draw, python_draw) == (np.random.rand(), random.random())


def test_mnist1d_is_read_back_from_the_cache(mnist1d_root, monkeypatch):
    root, bundle, _, _ = mnist1d_root
    monkeypatch.setitem(packaged.MNIST1D_ARGS, "num_samples", 500)
    assert len(list((root / "mnist1d").glob("mnist1d-*.npz"))) == 1
    assert not list((root / "mnist1d").glob("*.tmp"))

    def fail():
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(packaged, "_generate_mnist1d", fail)
    again = load_data(RunConfig(dataset="mnist1d", label_noise=0.1), root, CPU)
    for key in ("x_train", "y_train", "y_train_clean", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(bundle, key), getattr(again, key)), key


def test_mnist1d_arguments_are_the_packages_defaults():
    from mnist1d.data import get_dataset_args

    defaults = get_dataset_args(as_dict=True)
    del defaults["url"]
    assert defaults == packaged.MNIST1D_ARGS
    # The registry's sizes (used by config validation) follow from them.
    n_train = round(defaults["num_samples"] * defaults["train_split"])
    assert (DATASETS["mnist1d"].train_size, DATASETS["mnist1d"].test_size) == (n_train, 1000)


def test_digits_split_and_normalisation(tmp_path):
    bundle = load_data(RunConfig(dataset="digits", label_noise=0.25), tmp_path, CPU)
    assert bundle.x_train.shape == (1150, 1, 8, 8)
    assert bundle.x_val.shape == (288, 1, 8, 8)
    assert bundle.x_test.shape == (359, 1, 8, 8)
    assert (DATASETS["digits"].train_size, DATASETS["digits"].test_size) == (1150 + 288, 359)
    assert (bundle.input_shape, bundle.num_classes, bundle.augmentation) == ((1, 8, 8), 10, "crop")
    assert int((bundle.y_train != bundle.y_train_clean).sum()) == round(0.25 * 1150)
    assert int((bundle.y_val != bundle.y_val_clean).sum()) == round(0.25 * 288)
    pool = torch.cat([bundle.x_train, bundle.x_val])
    assert abs(pool.mean().item()) < 0.05
    assert abs(pool.std().item() - 1) < 0.05


def test_digits_test_set_is_shared_by_all_seeds_and_subsets(tmp_path):
    first = load_data(RunConfig(dataset="digits"), tmp_path, CPU)
    other = load_data(RunConfig(dataset="digits", seed=7, train_size=300), tmp_path, CPU)
    assert torch.equal(first.x_test, other.x_test)
    assert torch.equal(first.y_test, other.y_test)
    assert (len(other.y_train), len(other.y_val)) == (240, 60)
    assert not torch.equal(first.x_val[:60], other.x_val)


def test_digits_read_without_scikit_learn_equal_its_load_digits() -> None:
    from sklearn.datasets import load_digits as sklearn_load_digits

    from flooding.data.packaged import read_digits

    images, labels = read_digits()
    bunch = sklearn_load_digits()
    assert images.dtype == np.uint8 and images.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(images[:, 0], bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)
