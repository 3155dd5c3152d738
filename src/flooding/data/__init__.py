"""Datasets as tensors on the training device: `load_data(cfg, data_root, device)`.

Importing this package does not import torch (the registry of names is torch-free); the
loaders import it when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flooding.data.registry import (
    DATASETS,
    DatasetDownloadError,
    DatasetMissingError,
    DatasetSpec,
)
from flooding.validation import ConfigError, resolve_size, split_sizes

if TYPE_CHECKING:
    import torch

    from flooding.config import RunConfig

__all__ = [
    "DATASETS",
    "DataBundle",
    "DatasetDownloadError",
    "DatasetMissingError",
    "DatasetSpec",
    "download_dataset",
    "load_data",
]


# eq=False: a generated __eq__ would compare tensors, which have no single truth value.
@dataclass(frozen=True, eq=False)
class DataBundle:
    """One run's data, on the device. x: float32, normalised; y: int64.

    y_train and y_val carry the label noise, the *_clean fields the true labels; the test
    labels are always clean.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    y_train_clean: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    y_val_clean: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]  # (C, H, W) for images, (D,) for vectors
    augmentation: str  # "none", "crop" or "crop_flip"
    bayes_error: float | None  # known in closed form for the two Gaussians only
    name: str


def load_data(cfg: RunConfig, data_root: str | Path, device: torch.device) -> DataBundle:
    """Generate or read cfg.dataset, subset, split, add label noise, move to the device.

    Everything random is drawn from generators seeded by cfg.seed (see sampling.py), so the
    same config gives the same tensors on any device.
    """
    from flooding.data import sampling, synthetic

    spec = DATASETS.get(cfg.dataset)
    if spec is None:
        raise ConfigError("dataset", cfg.dataset, ", ".join(DATASETS))
    root = Path(data_root)
    if spec.kind == "synthetic":
        n_pool = resolve_size("train_size", cfg.train_size, spec.train_size, None, spec.name)
        n_test = resolve_size("test_size", cfg.test_size, spec.test_size, None, spec.name)
        n_train, n_val = split_sizes(n_pool, cfg.val_fraction, cfg.train_size)
        x_pool, y_pool, x_test, y_test = synthetic.generate(
            spec.name, n_pool, n_test, cfg.seed, cfg.gaussians_mean, cfg.spiral_noise
        )
    else:
        x_pool, y_pool, x_test_all, y_test_all = _read_real(spec, root)
        n_pool = resolve_size("train_size", cfg.train_size, 0, len(y_pool), spec.name)
        n_test = resolve_size("test_size", cfg.test_size, 0, len(y_test_all), spec.name)
        n_train, n_val = split_sizes(n_pool, cfg.val_fraction, cfg.train_size)
        test_index = sampling.fixed_subset(len(y_test_all), n_test, f"{spec.name}/test")
        x_test, y_test = x_test_all[test_index], y_test_all[test_index]

    train_index, val_index = sampling.split_indices(len(y_pool), n_train, n_val, cfg.seed)
    y_train_clean, y_val_clean = y_pool[train_index], y_pool[val_index]

    def with_noise(labels: torch.Tensor, split: str) -> torch.Tensor:
        # One generator per split: the validation noise does not depend on the training size.
        gen = sampling.generator(cfg.seed, f"noise/{split}")
        return sampling.flip_labels(labels, cfg.label_noise, spec.num_classes, gen)

    bayes_error = None
    if spec.name == "gaussians":
        bayes_error = synthetic.gaussians_bayes_error(cfg.gaussians_mean)
    x_train = _inputs_on_device(x_pool[train_index], spec, device)
    return DataBundle(
        x_train=x_train,
        y_train=with_noise(y_train_clean, "train").to(device),
        y_train_clean=y_train_clean.to(device),
        x_val=_inputs_on_device(x_pool[val_index], spec, device),
        y_val=with_noise(y_val_clean, "val").to(device),
        y_val_clean=y_val_clean.to(device),
        x_test=_inputs_on_device(x_test, spec, device),
        y_test=y_test.to(device),
        num_classes=spec.num_classes,
        input_shape=tuple(x_train.shape[1:]),
        augmentation=spec.augmentation,
        bayes_error=bayes_error,
        name=spec.name,
    )


def download_dataset(name: str, root: str | Path) -> None:
    """Fetch a torchvision dataset into root (needs internet; run it on a login node)."""
    from flooding.data.torchvision_data import download

    download(name, Path(root))


def _read_real(spec: DatasetSpec, root: Path) -> tuple[torch.Tensor, ...]:
    from flooding.data import packaged, torchvision_data

    if spec.name == "digits":
        arrays = packaged.load_digits()
    elif spec.name == "mnist1d":
        arrays = packaged.load_mnist1d(root)
    else:
        arrays = torchvision_data.load(spec, root)
    for labels in (arrays[1], arrays[3]):
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < spec.num_classes:
            raise ValueError(
                f"{spec.name} under {root}: labels outside 0..{spec.num_classes - 1}; "
                f"the files are not {spec.name}'s"
            )
    return arrays


def _inputs_on_device(x: torch.Tensor, spec: DatasetSpec, device: torch.device) -> torch.Tensor:
    """Move once, then convert and normalise on the device (uint8 is 4x less to copy)."""
    import torch

    x = x.to(device).float()
    if spec.images:
        mean = torch.tensor(spec.mean, device=device).view(-1, 1, 1)
        std = torch.tensor(spec.std, device=device).view(-1, 1, 1)
        x.div_(spec.pixel_max).sub_(mean).div_(std)
    return x.contiguous()
