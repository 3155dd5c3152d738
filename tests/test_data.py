"""Synthetic data, splits, label noise, sizes and the dataset registry."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import scipy.stats
import torch

from flooding.config import ConfigError, RunConfig
from flooding.data import DATASETS, DataBundle, load_data
from flooding.data.sampling import flip_labels, generator

CPU = torch.device("cpu")
SYNTHETIC = ("gaussians", "sinusoid", "spiral")


def load(tmp_path, **fields) -> DataBundle:
    return load_data(RunConfig(**fields), tmp_path, CPU)


def tensors(bundle: DataBundle) -> dict[str, torch.Tensor]:
    return {k: v for k, v in vars(bundle).items() if isinstance(v, torch.Tensor)}


def test_registry_and_package_import_without_torch():
    code = (
        "import sys, flooding.data, flooding.data.registry; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_registry_specs_are_consistent(name):
    spec = DATASETS[name]
    assert spec.name == name
    assert spec.kind in ("synthetic", "packaged", "torchvision")
    assert spec.downloadable == (spec.torchvision_class is not None)
    if spec.images:
        channels = spec.input_shape[0]
        assert len(spec.input_shape) == 3
        assert len(spec.mean) == len(spec.std) == channels
        expected = "crop_flip" if name.startswith("cifar") else "crop"
        assert spec.augmentation == expected
    else:
        assert len(spec.input_shape) == 1
        assert spec.augmentation == "none"


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_defaults(tmp_path, name):
    bundle = load(tmp_path, dataset=name)
    dim = 10 if name == "gaussians" else 2
    assert bundle.x_train.shape == (800, dim)
    assert bundle.x_val.shape == (200, dim)
    assert bundle.x_test.shape == (20000, dim)
    assert bundle.input_shape == (dim,)
    assert (bundle.num_classes, bundle.augmentation, bundle.name) == (2, "none", name)
    for key, value in tensors(bundle).items():
        assert value.dtype == (torch.float32 if key.startswith("x") else torch.int64)
        assert value.device == CPU
    assert bundle.y_test.bincount().tolist() == [10000, 10000]
    pool = torch.cat([bundle.y_train_clean, bundle.y_val_clean])
    assert pool.bincount().tolist() == [500, 500]
    assert torch.equal(bundle.y_train, bundle.y_train_clean)  # no noise by default


def test_sinusoid_follows_its_rule_inside_the_disk(tmp_path):
    bundle = load(tmp_path, dataset="sinusoid", test_size=2000)
    x = bundle.x_test
    assert x.norm(dim=1).max() <= 2.0
    rule = (1.5 * x[:, 0] + torch.sin(1.5 * x[:, 1]) > 0).long()
    assert torch.equal(rule, bundle.y_test)
    # Uniform in the disk: a quarter of the area lies within radius 1.
    assert abs((x.norm(dim=1) < 1).float().mean().item() - 0.25) < 0.04


def test_spiral_arms_without_noise(tmp_path):
    bundle = load(tmp_path, dataset="spiral", spiral_noise=0.0, test_size=200)
    radius = bundle.x_test.norm(dim=1)
    a = torch.linspace(0, 4 * math.pi, 100)
    torch.testing.assert_close(radius[bundle.y_test == 1], a)
    torch.testing.assert_close(radius[bundle.y_test == 0], a + math.pi)
    noisy = load(tmp_path, dataset="spiral", spiral_noise=0.3, test_size=200)
    residual = noisy.x_test - bundle.x_test
    assert abs(residual.std().item() - 0.3) < 0.05


@pytest.mark.parametrize("mean", [1.0, 0.4])
def test_gaussians_bayes_error_matches_scipy_and_the_data(tmp_path, mean):
    bundle = load(tmp_path, dataset="gaussians", gaussians_mean=mean)
    expected = scipy.stats.norm.cdf(-mean * math.sqrt(10) / 2)
    assert bundle.bayes_error == pytest.approx(expected, rel=1e-12)
    # The Bayes rule (threshold the coordinate sum halfway) reaches that error on the test set.
    predicted = (bundle.x_test.sum(dim=1) > 10 * mean / 2).long()
    error = (predicted != bundle.y_test).float().mean().item()
    assert error == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("name", ["sinusoid", "spiral"])
def test_bayes_error_unknown_elsewhere(tmp_path, name):
    assert load(tmp_path, dataset=name).bayes_error is None


@pytest.mark.parametrize(
    ("name", "noise", "train_size"),
    [("gaussians", 0.1, 1000), ("spiral", 0.37, 333), ("sinusoid", 0.5, 101), ("spiral", 0.0, 50)],
)
def test_label_noise_flips_exact_counts(tmp_path, name, noise, train_size):
    bundle = load(tmp_path, dataset=name, label_noise=noise, train_size=train_size)
    for noisy, clean in (
        (bundle.y_train, bundle.y_train_clean),
        (bundle.y_val, bundle.y_val_clean),
    ):
        assert int((noisy != clean).sum()) == round(noise * len(clean))
    assert len(bundle.y_train) + len(bundle.y_val) == train_size


def test_flip_labels_picks_another_class_uniformly():
    labels = torch.arange(10).repeat(3000)
    noisy = flip_labels(labels, 0.5, 10, generator(0, "test"))
    flipped = noisy != labels
    assert int(flipped.sum()) == 15000
    shift = (noisy[flipped] - labels[flipped]) % 10
    counts = shift.bincount(minlength=10)
    assert counts[0] == 0
    # 15000 flips over 9 classes: about 1667 each (std ~ 38).
    assert ((counts[1:] - 15000 / 9).abs() < 200).all()


@pytest.mark.parametrize("name", SYNTHETIC)
def test_same_seed_same_tensors_other_seed_other_tensors(tmp_path, name):
    first = tensors(load(tmp_path, dataset=name, label_noise=0.2, test_size=500))
    again = tensors(load(tmp_path, dataset=name, label_noise=0.2, test_size=500))
    other = tensors(load(tmp_path, dataset=name, label_noise=0.2, test_size=500, seed=1))
    for key in first:
        assert torch.equal(first[key], again[key]), key
    for key in ("x_train", "x_val", "x_test"):
        assert not torch.equal(first[key], other[key]), key
    assert not torch.equal(
        first["y_train"] != first["y_train_clean"], other["y_train"] != other["y_train_clean"]
    )


def test_noise_level_does_not_move_inputs_or_split(tmp_path):
    clean = load(tmp_path, dataset="gaussians", test_size=100)
    noisy = load(tmp_path, dataset="gaussians", test_size=100, label_noise=0.3)
    for key in ("x_train", "x_val", "x_test", "y_train_clean", "y_val_clean", "y_test"):
        assert torch.equal(getattr(clean, key), getattr(noisy, key)), key


def test_test_set_does_not_depend_on_train_size(tmp_path):
    small = load(tmp_path, dataset="sinusoid", train_size=100, test_size=300)
    large = load(tmp_path, dataset="sinusoid", train_size=1000, test_size=300)
    assert torch.equal(small.x_test, large.x_test)


def test_validation_fraction(tmp_path):
    bundle = load(tmp_path, dataset="spiral", train_size=500, val_fraction=0.3, test_size=10)
    assert (len(bundle.y_train), len(bundle.y_val)) == (350, 150)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"dataset": "spiral", "train_size": 2}, "train_size"),  # 0.2 * 2 rounds to 0
        ({"dataset": "spiral", "train_size": -5}, "train_size"),
        ({"dataset": "spiral", "test_size": -1}, "test_size"),
        ({"dataset": "digits", "train_size": 5000}, "train_size"),
        ({"dataset": "digits", "test_size": 400}, "test_size"),
        ({"dataset": "imagenet"}, "dataset"),
    ],
)
def test_impossible_sizes_and_names_fail_naming_the_field(tmp_path, fields, field):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **fields)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: invalid value")


def test_too_large_train_size_says_how_many_exist(tmp_path):
    with pytest.raises(ConfigError, match="at most 1438 for digits"):
        load(tmp_path, dataset="digits", train_size=1439)
