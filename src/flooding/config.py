"""One run of the benchmark as a typed, frozen config, plus its hash and validation.

Every field has a default, a one-line help text and, where its values are limited, a
constraint (flooding.validation). The command line (`flooding train`) gets one option per
field from this class, and the workflow's JSON Schema gets its training settings from it
(flooding.schema), so defaults, help texts and ranges live here and nowhere else.

RunConfig is the source rather than the schema because the engine must run, and check its
input, without Snakemake or a YAML file; the schema is the derived view.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from flooding.archs import ARCHS, describe_archs, family
from flooding.data.registry import DATASETS
from flooding.methods import METHODS, describe_methods, method_fields
from flooding.validation import (
    Choice,
    ConfigError,
    Constraint,
    Range,
    coerce,
    field_type,
    resolve_size,
    split_sizes,
)

__all__ = ["ConfigError", "GridAxis", "RunConfig", "config_hash", "validate", "validate_data"]


@dataclass(frozen=True)
class GridAxis:
    """How a RunConfig field is an axis of the workflow's grid.

    `block` is the config entry that lists its values: "datasets" and "archs" (entries
    with their own settings), "flood" (methods and levels), "seeds", or "regularisers".
    Regulariser axes are generic: declaring one on a field is all it takes for the schema's
    `regularisers` block, the grid's product, the run path, packing (`pack: {by: [name]}`)
    and the report's RQ3 columns to know it.
    """

    block: str
    # Regularisers: the run path shows the value after this key ("wd0.0005"), and
    # leaves it out at the field's default unless always_in_path (so that a new axis
    # keeps the paths of the runs that do not use it).
    path_key: str = ""
    always_in_path: bool = False
    # Applies only to datasets of images (a vector dataset keeps only the default value).
    images_only: bool = False
    # How the report names it, where the field's name with spaces would not read well.
    label: str = ""


def setting(
    default: Any,
    help: str,
    check: Constraint | None = None,
    *,
    axis: GridAxis | None = None,
    data: bool = False,
) -> Any:
    """A RunConfig field: its default, its help text, the constraint on its values, the
    grid axis it is (if any), and whether loading the data reads it (`data`: runs equal in
    every such field share one loaded copy of the data, flooding.pack)."""
    return field(
        default=default, metadata={"help": help, "check": check, "axis": axis, "data": data}
    )


@dataclass(frozen=True)
class RunConfig:
    """One point of the benchmark grid. Runs differing only in flood_level are paired."""

    dataset: str = setting(
        "spiral",
        "dataset name (synthetic, packaged or torchvision-format)",
        Choice(tuple(sorted(DATASETS))),
        axis=GridAxis("datasets"),
        data=True,
    )
    train_size: int = setting(
        0,
        "samples for train+validation before the split; 0 = dataset default",
        Range(integer=True, minimum=0, text="0 (dataset default) or a positive size"),
        data=True,
    )
    test_size: int = setting(
        0,
        "test samples; 0 = dataset default",
        Range(integer=True, minimum=0, text="0 (dataset default) or a positive size"),
        data=True,
    )
    val_fraction: float = setting(
        0.2,
        "fraction of train_size held out for validation",
        Range(exclusive_minimum=0, exclusive_maximum=1),
        data=True,
    )
    label_noise: float = setting(
        0.0,
        "fraction of train and validation labels flipped to another class",
        Range(minimum=0, exclusive_maximum=1),
        axis=GridAxis("datasets"),
        data=True,
    )
    gaussians_mean: float = setting(
        1.0, "two Gaussians: the second class has mean m*1", Range(), data=True
    )
    spiral_noise: float = setting(
        0.3, "spiral: std of the Gaussian noise added to x", Range(minimum=0), data=True
    )
    arch: str = setting("mlp", describe_archs(), axis=GridAxis("archs"))
    mlp_depth: int = setting(4, "MLP: number of hidden layers", Range(integer=True, minimum=0))
    mlp_width: int = setting(500, "MLP: units per hidden layer", Range(integer=True, minimum=1))
    mlp_batchnorm: bool = setting(
        True, "MLP: Linear(no bias)->BatchNorm->ReLU; off: Linear(bias)->ReLU"
    )
    optimizer: str = setting("sgd", "sgd or adam", Choice(("sgd", "adam")))
    lr: float = setting(0.01, "learning rate", Range(exclusive_minimum=0))
    momentum: float = setting(
        0.9, "SGD momentum (ignored by adam)", Range(minimum=0, exclusive_maximum=1)
    )
    weight_decay: float = setting(
        0.0,
        "L2 weight decay",
        Range(minimum=0),
        axis=GridAxis("regularisers", path_key="wd", always_in_path=True),
    )
    lr_schedule: str = setting(
        "none",
        "none, cosine, or step (x0.1 at 50% and 75% of the epochs)",
        Choice(("none", "cosine", "step")),
    )
    epochs: int = setting(200, "training epochs", Range(integer=True, minimum=1))
    batch_size: int = setting(
        200,
        "mini-batch size; one larger than the training split means full-batch training, as "
        "with PyTorch's DataLoader (run.json records the size used)",
        Range(integer=True, minimum=1),
    )
    augment: bool = setting(
        False,
        "random crop (and flip for CIFAR) on the device; images only",
        axis=GridAxis(
            "regularisers",
            path_key="aug",
            always_in_path=True,
            images_only=True,
            label="augmentation",
        ),
    )
    label_smoothing: float = setting(
        0.0,
        "label smoothing of the training loss (the flood applies to the smoothed loss; "
        "evaluation scores plain cross-entropy)",
        Range(minimum=0, exclusive_maximum=1),
        axis=GridAxis("regularisers", path_key="ls"),
    )
    flood_method: str = setting(
        "flood", describe_methods(), Choice(tuple(METHODS)), axis=GridAxis("flood")
    )
    flood_level: float = setting(
        0.0, "flood level b; 0 = ordinary training", Range(minimum=0), axis=GridAxis("flood")
    )
    adaflood_gamma: float = setting(
        0.5,
        "adaflood: gamma of the per-sample level -log((1-gamma)*exp(-(alpha*l+beta))+gamma) "
        "(l: the sample's held-out auxiliary loss); the value the grid varies for adaflood",
        Range(minimum=0, exclusive_maximum=1),
        axis=GridAxis("flood"),
    )
    adaflood_alpha: float = setting(
        1.0, "adaflood: alpha, the scale of the auxiliary loss", Range()
    )
    adaflood_beta: float = setting(0.0, "adaflood: beta, the shift of the auxiliary loss", Range())
    adaflood_folds: int = setting(
        2,
        "adaflood: folds of the training split, one auxiliary model each (trained on the "
        "other folds, scoring its own)",
        Range(integer=True, minimum=2),
    )
    adaflood_aux_epochs: int = setting(
        0,
        "adaflood: epochs of the auxiliary models; 0 = the run's epochs",
        Range(integer=True, minimum=0),
    )
    seed: int = setting(
        0,
        "seed for data, split, noise, init and batch order",
        Range(
            integer=True,
            minimum=0,
            exclusive_maximum=2**63,
            text="an integer with 0 <= seed < 2**63",
        ),
        axis=GridAxis("seeds"),
        data=True,
    )
    sharpness_directions: int = setting(
        8,
        "flatness at the end of a completed run: mean training-loss increase over this many "
        "random filter-normalised weight perturbations (Li et al. 2018); 0 = off",
        Range(integer=True, minimum=0),
    )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build a config from plain values (YAML, JSON), checking names and types."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name not in fields:
                raise ConfigError(name, value, "no such field; the fields are " + ", ".join(fields))
            kwargs[name] = coerce(name, value, field_type(fields[name]))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Field values in declaration order; plain Python types only."""
        return dataclasses.asdict(self)


def axis_fields(block: str | None = None) -> list[dataclasses.Field[Any]]:
    """The RunConfig fields that are grid axes (of one config block, if given)."""
    return [
        f
        for f in dataclasses.fields(RunConfig)
        if f.metadata["axis"] is not None and block in (None, f.metadata["axis"].block)
    ]


def regulariser_fields() -> list[dataclasses.Field[Any]]:
    """The regulariser axes, in declaration order (the schema's `regularisers` block)."""
    return axis_fields("regularisers")


def pack_axes() -> dict[str, tuple[str, ...]]:
    """What a pack may group over (the config's `pack: {by: [...]}`): runs differing only
    in these fields can share a job. The flood method and level go together, with the
    fields a method alone reads (AdaFlood's)."""
    flood = [f.name for f in axis_fields("flood")]
    axes = {"flood": tuple(dict.fromkeys([*flood, *method_fields()]))}
    axes["seed"] = tuple(f.name for f in axis_fields("seeds"))
    axes |= {f.name: (f.name,) for f in regulariser_fields()}
    return axes


def data_fields() -> tuple[str, ...]:
    """The fields that loading the data reads: runs equal in them share the loaded data."""
    return tuple(f.name for f in dataclasses.fields(RunConfig) if f.metadata["data"])


def config_hash(cfg: RunConfig) -> str:
    """Stable identity of a run: sha256 of the canonical JSON of to_dict(), 16 hex chars."""
    canonical = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _check_arch(arch: str) -> None:
    if arch in ARCHS:
        return
    import timm  # only when a name outside the registry is asked for

    if not timm.is_model(arch):
        raise ConfigError("arch", arch, describe_archs())


def validate(cfg: RunConfig) -> None:
    """Reject impossible configs before any data is loaded or any training starts."""
    for f in dataclasses.fields(cfg):
        check = f.metadata["check"]
        if check is not None:
            check.check(f.name, getattr(cfg, f.name))
    spec = DATASETS[cfg.dataset]
    _check_arch(cfg.arch)
    if family(cfg.arch) != "mlp" and not spec.images:
        raise ConfigError("arch", cfg.arch, f"mlp for {cfg.dataset} (vectors; ResNets need images)")
    if cfg.batch_size == 1 and (family(cfg.arch) != "mlp" or cfg.mlp_batchnorm):
        raise ConfigError("batch_size", 1, ">= 2 with batch norm (or use --no-mlp-batchnorm)")
    for f in axis_fields():
        value = getattr(cfg, f.name)
        if f.metadata["axis"].images_only and value != f.default and not spec.images:
            with_images = sorted(name for name, s in DATASETS.items() if s.images)
            raise ConfigError(
                f.name,
                value,
                f"{json.dumps(f.default)} for {cfg.dataset} (vectors); other values only for "
                + ", ".join(with_images),
            )
    # Real data: the default is the whole official set, which is also the maximum.
    available = None if spec.kind == "synthetic" else spec.train_size
    pool = resolve_size("train_size", cfg.train_size, spec.train_size, available, spec.name)
    available = None if spec.kind == "synthetic" else spec.test_size
    resolve_size("test_size", cfg.test_size, spec.test_size, available, spec.name)
    n_train, _ = split_sizes(pool, cfg.val_fraction, cfg.train_size)  # both splits non-empty
    if METHODS[cfg.flood_method].auxiliary and cfg.adaflood_folds > n_train // 2:
        # Each fold's model trains on the others: every fold needs two samples at least.
        raise ConfigError(
            "adaflood_folds",
            cfg.adaflood_folds,
            f"2 to {n_train // 2} (the training split of {cfg.dataset} holds {n_train} samples)",
        )


def effective_batch_size(batch_size: int, n_train: int) -> int:
    """The size of the mini-batches actually trained on: batch_size, or the whole training
    split when that is smaller (the authors' sinusoid demo: 100 points, batch size 200)."""
    return min(batch_size, n_train)


def validate_data(cfg: RunConfig, data: Any) -> None:
    """What only the loaded data (a flooding.data.DataBundle) shows, before any training.

    The split sizes were checked when the data was loaded (flooding.validation).
    """
    if cfg.augment and data.augmentation == "none":
        raise ConfigError("augment", cfg.augment, f"false for {data.name} (no augmentation)")
