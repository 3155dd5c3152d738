"""One run of the benchmark as a typed, frozen config, plus its hash and validation.

Every field has a default and a one-line help text; the command line (`flooding train`)
gets one option per field from this class, so the defaults live here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

# Architectures built by flooding.models without asking timm whether it knows the name.
KNOWN_ARCHS = ("mlp", "resnet_tiny", "resnet18", "resnet34", "resnet50")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("none", "cosine", "step")
FLOOD_METHODS = ("flood", "iflood")


class ConfigError(ValueError):
    """An impossible or unknown config value; the message names field, value and what works."""

    def __init__(self, field: str, value: Any, accepted: str) -> None:
        self.field = field
        self.value = value
        self.accepted = accepted
        super().__init__(f"{field}: invalid value {value!r}; accepted: {accepted}")


@dataclass(frozen=True)
class RunConfig:
    """One point of the benchmark grid. Runs differing only in flood_level are paired."""

    dataset: str = field(
        default="spiral",
        metadata={"help": "dataset name (synthetic, packaged or torchvision-format)"},
    )
    train_size: int = field(
        default=0,
        metadata={"help": "samples for train+validation before the split; 0 = dataset default"},
    )
    test_size: int = field(default=0, metadata={"help": "test samples; 0 = dataset default"})
    val_fraction: float = field(
        default=0.2, metadata={"help": "fraction of train_size held out for validation"}
    )
    label_noise: float = field(
        default=0.0,
        metadata={"help": "fraction of train and validation labels flipped to another class"},
    )
    gaussians_mean: float = field(
        default=1.0, metadata={"help": "two Gaussians: the second class has mean m*1"}
    )
    spiral_noise: float = field(
        default=0.3, metadata={"help": "spiral: std of the Gaussian noise added to x"}
    )
    arch: str = field(
        default="mlp",
        metadata={"help": "mlp, resnet_tiny, resnet18, resnet34, resnet50 or a timm model name"},
    )
    mlp_depth: int = field(default=4, metadata={"help": "MLP: number of hidden layers"})
    mlp_width: int = field(default=500, metadata={"help": "MLP: units per hidden layer"})
    mlp_batchnorm: bool = field(
        default=True,
        metadata={"help": "MLP: Linear(no bias)->BatchNorm->ReLU; off: Linear(bias)->ReLU"},
    )
    optimizer: str = field(default="sgd", metadata={"help": "sgd or adam"})
    lr: float = field(default=0.01, metadata={"help": "learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum (ignored by adam)"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 weight decay"})
    lr_schedule: str = field(
        default="none",
        metadata={"help": "none, cosine, or step (x0.1 at 50% and 75% of the epochs)"},
    )
    epochs: int = field(default=200, metadata={"help": "training epochs"})
    batch_size: int = field(
        default=200,
        metadata={
            "help": "mini-batch size; one larger than the training split means full-batch "
            "training, as with PyTorch's DataLoader (run.json records the size used)"
        },
    )
    augment: bool = field(
        default=False,
        metadata={"help": "random crop (and flip for CIFAR) on the device; images only"},
    )
    flood_method: str = field(
        default="flood",
        metadata={"help": "flood (mini-batch mean, the paper) or iflood (per sample)"},
    )
    flood_level: float = field(
        default=0.0, metadata={"help": "flood level b; 0 = ordinary training"}
    )
    seed: int = field(
        default=0, metadata={"help": "seed for data, split, noise, init and batch order"}
    )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build a config from plain values (YAML, JSON), checking names and types."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name not in fields:
                raise ConfigError(name, value, "no such field; the fields are " + ", ".join(fields))
            kwargs[name] = _coerce(name, value, _field_type(fields[name]))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Field values in declaration order; plain Python types only."""
        return dataclasses.asdict(self)


def _field_type(f: dataclasses.Field[Any]) -> type:
    # Annotations are strings under `from __future__ import annotations`.
    return {"str": str, "int": int, "float": float, "bool": bool}[str(f.type)]


def _coerce(name: str, value: Any, kind: type) -> Any:
    """Accept a value of the field's type; ints for float fields are widened (YAML `0`)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(name, value, "true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(name, value, "an integer")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(name, value, "a number")
    if isinstance(value, str):
        return value
    raise ConfigError(name, value, "a string")


def config_hash(cfg: RunConfig) -> str:
    """Stable identity of a run: sha256 of the canonical JSON of to_dict(), 16 hex chars."""
    canonical = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _choices(options: tuple[str, ...] | list[str]) -> str:
    return ", ".join(options)


def _check_arch(arch: str) -> None:
    if arch in KNOWN_ARCHS:
        return
    import timm  # only when a name outside the built-in list is asked for

    if not timm.is_model(arch):
        raise ConfigError("arch", arch, _choices(KNOWN_ARCHS) + " or a timm model name")


def validate(cfg: RunConfig) -> None:
    """Reject impossible configs before any data is loaded or any training starts."""
    from flooding.data.registry import DATASETS  # the data package owns the dataset list

    if cfg.dataset not in DATASETS:
        raise ConfigError("dataset", cfg.dataset, _choices(sorted(DATASETS)))
    spec = DATASETS[cfg.dataset]
    for name in ("train_size", "test_size"):
        if getattr(cfg, name) < 0:
            raise ConfigError(name, getattr(cfg, name), "0 (dataset default) or a positive size")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError("val_fraction", cfg.val_fraction, "a number with 0 < value < 1")
    if not 0.0 <= cfg.label_noise < 1.0:
        raise ConfigError("label_noise", cfg.label_noise, "a number with 0 <= value < 1")
    if not math.isfinite(cfg.gaussians_mean):
        raise ConfigError("gaussians_mean", cfg.gaussians_mean, "a finite number")
    if not (math.isfinite(cfg.spiral_noise) and cfg.spiral_noise >= 0):
        raise ConfigError("spiral_noise", cfg.spiral_noise, "a finite number >= 0")
    _check_arch(cfg.arch)
    if cfg.arch != "mlp" and not spec.images:
        raise ConfigError("arch", cfg.arch, f"mlp for {cfg.dataset} (vectors; ResNets need images)")
    if cfg.mlp_depth < 0:
        raise ConfigError("mlp_depth", cfg.mlp_depth, "an integer >= 0")
    if cfg.mlp_width < 1:
        raise ConfigError("mlp_width", cfg.mlp_width, "an integer >= 1")
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError("optimizer", cfg.optimizer, _choices(OPTIMIZERS))
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ConfigError("lr", cfg.lr, "a finite number > 0")
    if not 0.0 <= cfg.momentum < 1.0:
        raise ConfigError("momentum", cfg.momentum, "a number with 0 <= value < 1")
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise ConfigError("weight_decay", cfg.weight_decay, "a finite number >= 0")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ConfigError("lr_schedule", cfg.lr_schedule, _choices(LR_SCHEDULES))
    if cfg.epochs < 1:
        raise ConfigError("epochs", cfg.epochs, "an integer >= 1")
    if cfg.batch_size < 1:
        raise ConfigError("batch_size", cfg.batch_size, "an integer >= 1")
    if cfg.batch_size == 1 and (cfg.arch != "mlp" or cfg.mlp_batchnorm):
        raise ConfigError("batch_size", 1, ">= 2 with batch norm (or use --no-mlp-batchnorm)")
    if cfg.augment and not spec.images:
        with_images = sorted(name for name, s in DATASETS.items() if s.images)
        raise ConfigError(
            "augment",
            cfg.augment,
            f"false for {cfg.dataset} (vectors); true only for " + _choices(with_images),
        )
    if cfg.flood_method not in FLOOD_METHODS:
        raise ConfigError("flood_method", cfg.flood_method, _choices(FLOOD_METHODS))
    if not (math.isfinite(cfg.flood_level) and cfg.flood_level >= 0):
        raise ConfigError("flood_level", cfg.flood_level, "a finite number >= 0")
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError("seed", cfg.seed, "an integer with 0 <= seed < 2**63")
    if spec.kind != "synthetic":
        # Real data: the default is the whole official set, which is also the maximum.
        for name, available in (("train_size", spec.train_size), ("test_size", spec.test_size)):
            if getattr(cfg, name) > available:
                raise ConfigError(
                    name, getattr(cfg, name), f"0 or at most {available} for {cfg.dataset}"
                )
    validate_split_sizes(cfg, cfg.train_size or spec.train_size)


def split_sizes(train_size: int, val_fraction: float) -> tuple[int, int]:
    """(train, validation) sample counts for a train+validation pool of train_size."""
    n_val = round(val_fraction * train_size)
    return train_size - n_val, n_val


def checked_split_sizes(cfg: RunConfig, pool: int) -> tuple[int, int]:
    """(n_train, n_val) of a train+validation pool of `pool` samples, both non-empty."""
    n_train, n_val = split_sizes(pool, cfg.val_fraction)
    if n_train < 1 or n_val < 1:
        raise ConfigError(
            "train_size",
            cfg.train_size,
            f"a size whose split by val_fraction={cfg.val_fraction} leaves both the training "
            f"and the validation split non-empty ({pool} samples give {n_train} and {n_val})",
        )
    return n_train, n_val


def validate_split_sizes(cfg: RunConfig, pool: int) -> None:
    """Both splits non-empty. A batch larger than the training split is accepted: it is
    full-batch training (`effective_batch_size`).

    `pool` is the train+validation size: train_size, or the dataset's default when it is 0.
    """
    checked_split_sizes(cfg, pool)


def effective_batch_size(batch_size: int, n_train: int) -> int:
    """The size of the mini-batches actually trained on: batch_size, or the whole training
    split when that is smaller (the authors' sinusoid demo: 100 points, batch size 200)."""
    return min(batch_size, n_train)


def validate_data(cfg: RunConfig, data: Any) -> None:
    """Errors only visible once the data is loaded (a flooding.data.DataBundle), raised
    before any training."""
    n_train, n_val, n_test = len(data.y_train), len(data.y_val), len(data.y_test)
    if n_train < 2 or n_val < 1:
        raise ConfigError(
            "train_size",
            cfg.train_size,
            f"a size leaving >= 2 training and >= 1 validation samples (got {n_train} and {n_val})",
        )
    if n_test < 1:
        raise ConfigError("test_size", cfg.test_size, "a size leaving >= 1 test sample")
    if cfg.augment and data.augmentation == "none":
        raise ConfigError("augment", cfg.augment, f"false for {data.name} (no augmentation)")
