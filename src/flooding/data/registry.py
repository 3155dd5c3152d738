"""The accepted dataset names and what the rest of the project needs to know about each.

This module imports nothing heavy (no torch, no torchvision), so the command line's
`--help`, config validation and the Snakemake workflow can read it cheaply.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: where it comes from, its shape, its default sizes and its augmentation."""

    name: str
    # "synthetic" (generated from the run seed), "packaged" (ships with an installed
    # package, no download) or "torchvision" (read from the data root, fetched once with
    # `flooding download NAME --root DIR`).
    kind: str
    # Images (C, H, W) can be augmented; vectors (D,) cannot.
    images: bool
    input_shape: tuple[int, ...]
    num_classes: int
    # Default train+validation pool and test sizes (RunConfig's train_size/test_size = 0).
    # For real data these are the whole official sets and also the maximum; synthetic
    # data can be generated at any size.
    train_size: int
    test_size: int
    # "none", "crop" (random crop with padding) or "crop_flip" (crop and horizontal flip).
    augmentation: str
    description: str
    # Per-channel statistics of the pixels scaled to [0, 1], fixed per dataset (the usual
    # values over each official training set), so every run normalises identically.
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    # Largest raw pixel value: 255 for 8-bit images, 16 for scikit-learn's digits.
    pixel_max: float = 255.0
    # Class in torchvision.datasets that reads and downloads the files (kind "torchvision").
    torchvision_class: str | None = None

    @property
    def downloadable(self) -> bool:
        return self.kind == "torchvision"


_SPECS = (
    DatasetSpec(
        name="gaussians",
        kind="synthetic",
        images=False,
        input_shape=(10,),
        num_classes=2,
        train_size=1000,
        test_size=20000,
        augmentation="none",
        description="two Gaussians N(0, I) and N(m·1, I) in 10-D; Bayes error known",
    ),
    DatasetSpec(
        name="sinusoid",
        kind="synthetic",
        images=False,
        input_shape=(2,),
        num_classes=2,
        train_size=1000,
        test_size=20000,
        augmentation="none",
        description="x uniform in a disk of radius 2, y = sign(1.5·x1 + sin(1.5·x2))",
    ),
    DatasetSpec(
        name="spiral",
        kind="synthetic",
        images=False,
        input_shape=(2,),
        num_classes=2,
        train_size=1000,
        test_size=20000,
        augmentation="none",
        description="two interleaved spiral arms with Gaussian noise on x",
    ),
    DatasetSpec(
        name="digits",
        kind="packaged",
        images=True,
        input_shape=(1, 8, 8),
        num_classes=10,
        train_size=1438,
        test_size=359,
        augmentation="crop",
        description="scikit-learn's 8x8 handwritten digits; a fixed 20% is the test set",
        mean=(0.3053,),
        std=(0.3760,),
        pixel_max=16.0,
    ),
    DatasetSpec(
        name="mnist1d",
        kind="packaged",
        images=False,
        input_shape=(40,),
        num_classes=10,
        train_size=4000,
        test_size=1000,
        augmentation="none",
        description="MNIST-1D, generated locally by the mnist1d package with its defaults",
    ),
    DatasetSpec(
        name="mnist",
        kind="torchvision",
        images=True,
        input_shape=(1, 28, 28),
        num_classes=10,
        train_size=60000,
        test_size=10000,
        augmentation="crop",
        description="MNIST handwritten digits",
        mean=(0.1307,),
        std=(0.3081,),
        torchvision_class="MNIST",
    ),
    DatasetSpec(
        name="fashion_mnist",
        kind="torchvision",
        images=True,
        input_shape=(1, 28, 28),
        num_classes=10,
        train_size=60000,
        test_size=10000,
        augmentation="crop",
        description="Fashion-MNIST clothing images",
        mean=(0.2860,),
        std=(0.3530,),
        torchvision_class="FashionMNIST",
    ),
    DatasetSpec(
        name="kmnist",
        kind="torchvision",
        images=True,
        input_shape=(1, 28, 28),
        num_classes=10,
        train_size=60000,
        test_size=10000,
        augmentation="crop",
        description="Kuzushiji-MNIST cursive Japanese characters",
        mean=(0.1918,),
        std=(0.3483,),
        torchvision_class="KMNIST",
    ),
    DatasetSpec(
        name="cifar10",
        kind="torchvision",
        images=True,
        input_shape=(3, 32, 32),
        num_classes=10,
        train_size=50000,
        test_size=10000,
        augmentation="crop_flip",
        description="CIFAR-10 colour images, 10 classes",
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        torchvision_class="CIFAR10",
    ),
    DatasetSpec(
        name="cifar100",
        kind="torchvision",
        images=True,
        input_shape=(3, 32, 32),
        num_classes=100,
        train_size=50000,
        test_size=10000,
        augmentation="crop_flip",
        description="CIFAR-100 colour images, 100 fine classes",
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        torchvision_class="CIFAR100",
    ),
    DatasetSpec(
        name="svhn",
        kind="torchvision",
        images=True,
        input_shape=(3, 32, 32),
        num_classes=10,
        train_size=73257,
        test_size=26032,
        augmentation="crop",
        description="SVHN house-number digits (train and test splits, not 'extra')",
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        torchvision_class="SVHN",
    ),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


class DatasetMissingError(FileNotFoundError):
    """A torchvision dataset's files are not under the data root; says how to fetch them."""

    def __init__(self, name: str, root: str, missing: list[str]) -> None:
        self.name = name
        self.root = root
        self.missing = missing
        super().__init__(
            f"dataset {name} not found under {root} (missing {', '.join(missing)}); "
            f"fetch it once with: {download_command(name, root)}"
        )


class DatasetDownloadError(ConnectionError):
    """A download that could not reach its host; says which files to place by hand."""

    def __init__(self, name: str, root: str, hosts: list[str], reason: str, files: str) -> None:
        super().__init__(
            f"cannot download {name}: {', '.join(hosts)} not reachable ({reason}); on a machine "
            f"with internet fetch {files}, then run {download_command(name, root)} again "
            "(it checks their md5 and unpacks archives)"
        )


def download_command(name: str, root: str) -> str:
    return f"flooding download {name} --root {shlex.quote(root)}"
