"""RunConfig: defaults, dict round trip, hash, and every rejected value."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import pytest

from flooding.config import ConfigError, RunConfig, config_hash, validate
from flooding.validation import split_sizes

# The defaults the rest of the project relies on (the shared contract's table).
CONTRACT_DEFAULTS = {
    "dataset": "spiral",
    "train_size": 0,
    "test_size": 0,
    "val_fraction": 0.2,
    "label_noise": 0.0,
    "gaussians_mean": 1.0,
    "spiral_noise": 0.3,
    "arch": "mlp",
    "mlp_depth": 4,
    "mlp_width": 500,
    "mlp_batchnorm": True,
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "lr_schedule": "none",
    "epochs": 200,
    "batch_size": 200,
    "augment": False,
    "label_smoothing": 0.0,
    "flood_method": "flood",
    "flood_level": 0.0,
    # AdaFlood's, as in its reference code (BorealisAI/adaflood) with two folds.
    "adaflood_gamma": 0.5,
    "adaflood_alpha": 1.0,
    "adaflood_beta": 0.0,
    "adaflood_folds": 2,
    "adaflood_aux_epochs": 0,
    "seed": 0,
    "sharpness_directions": 8,
}


def test_defaults_and_field_order_match_the_contract():
    assert RunConfig().to_dict() == CONTRACT_DEFAULTS
    assert list(RunConfig().to_dict()) == list(CONTRACT_DEFAULTS)


def test_every_field_has_a_help_text():
    for f in dataclasses.fields(RunConfig):
        assert f.metadata["help"].strip(), f.name


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().seed = 1  # type: ignore[misc]


def test_from_dict_round_trip_and_widens_ints_for_floats():
    cfg = RunConfig.from_dict({"dataset": "gaussians", "flood_level": 0, "lr": 1})
    assert cfg.flood_level == 0.0 and isinstance(cfg.flood_level, float)
    assert isinstance(cfg.lr, float)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("values", "field", "accepted"),
    [
        ({"no_such_field": 1}, "no_such_field", "no such field"),
        ({"epochs": 2.5}, "epochs", "an integer"),
        ({"epochs": True}, "epochs", "an integer"),
        ({"augment": "yes"}, "augment", "true or false"),
        ({"lr": "fast"}, "lr", "a number"),
        ({"dataset": 3}, "dataset", "a string"),
    ],
)
def test_from_dict_rejects_unknown_fields_and_wrong_types(values, field, accepted):
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(values)
    ((_, value),) = values.items()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: invalid value {value!r}; accepted: ")
    assert accepted in str(caught.value)


def test_hash_is_sha256_of_canonical_json_and_tracks_every_field():
    cfg = RunConfig()
    canonical = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
    assert config_hash(cfg) == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert config_hash(RunConfig.from_dict(cfg.to_dict())) == config_hash(cfg)
    assert config_hash(dataclasses.replace(cfg, flood_level=0.01)) != config_hash(cfg)
    # An int given for a float field hashes like the float: YAML `0` and `0.0` are one run.
    assert config_hash(RunConfig.from_dict({"flood_level": 0})) == config_hash(cfg)


def test_split_sizes():
    assert split_sizes(1000, 0.2, 0) == (800, 200)
    assert split_sizes(7, 0.5, 7) == (3, 4)


@pytest.mark.parametrize(
    "cfg",
    [
        RunConfig(),
        RunConfig(dataset="gaussians", label_noise=0.4, flood_method="iflood", flood_level=0.3),
        RunConfig(dataset="cifar10", arch="resnet18", augment=True, lr_schedule="cosine"),
        RunConfig(dataset="digits", arch="resnet_tiny", optimizer="adam", batch_size=1000),
        RunConfig(dataset="spiral", train_size=10, batch_size=8),
        RunConfig(batch_size=1, mlp_batchnorm=False),
    ],
)
def test_valid_configs_pass(cfg):
    validate(cfg)


def test_timm_model_names_are_accepted():
    validate(RunConfig(dataset="cifar10", arch="resnet26d"))


INVALID = [
    ("dataset", "imagenet", "spiral"),
    ("arch", "resnet9000", "resnet18"),
    ("train_size", -1, "positive"),
    ("test_size", -5, "positive"),
    ("val_fraction", 0.0, "0 < value < 1"),
    ("val_fraction", 1.0, "0 < value < 1"),
    ("label_noise", 1.0, "0 <= value < 1"),
    ("label_noise", -0.1, "0 <= value < 1"),
    ("gaussians_mean", math.inf, "finite"),
    ("spiral_noise", -0.1, ">= 0"),
    ("mlp_depth", -1, ">= 0"),
    ("mlp_width", 0, ">= 1"),
    ("optimizer", "rmsprop", "sgd, adam"),
    ("lr", 0.0, "> 0"),
    ("lr", math.nan, "> 0"),
    ("momentum", 1.0, "0 <= value < 1"),
    ("weight_decay", -1e-4, ">= 0"),
    ("lr_schedule", "linear", "none, cosine, step"),
    ("epochs", 0, ">= 1"),
    ("batch_size", 0, ">= 1"),
    ("flood_method", "sflood", "flood, iflood, adaflood"),
    ("adaflood_gamma", 1.0, "< 1"),
    ("adaflood_folds", 1, ">= 2"),
    ("flood_level", -0.1, ">= 0"),
    ("flood_level", math.nan, ">= 0"),
    ("seed", -1, "0 <= seed"),
]


@pytest.mark.parametrize(("field", "value", "accepted"), INVALID)
def test_invalid_values_name_field_value_and_accepted(field, value, accepted):
    with pytest.raises(ConfigError) as caught:
        validate(dataclasses.replace(RunConfig(), **{field: value}))
    assert caught.value.field == field
    message = str(caught.value)
    assert message.startswith(f"{field}: invalid value {value!r}; accepted: ")
    assert accepted in message


@pytest.mark.parametrize(
    ("changes", "field", "accepted"),
    [
        # Augmentation needs images; the spiral is 2-D vectors.
        ({"augment": True}, "augment", "cifar10"),
        # ResNets need images too.
        ({"arch": "resnet18"}, "arch", "mlp for spiral"),
        # Batch norm cannot normalise a batch of one sample.
        ({"batch_size": 1}, "batch_size", ">= 2 with batch norm"),
        # Empty validation split: round(0.2 * 2) = 0.
        ({"train_size": 2}, "train_size", "non-empty"),
        # Real data: no more samples than the official sets hold.
        ({"dataset": "mnist", "train_size": 60001}, "train_size", "at most 60000"),
        ({"dataset": "svhn", "test_size": 30000}, "test_size", "at most 26032"),
    ],
)
def test_impossible_combinations_fail_before_training(changes, field, accepted):
    with pytest.raises(ConfigError) as caught:
        validate(dataclasses.replace(RunConfig(), **changes))
    assert caught.value.field == field
    assert accepted in str(caught.value)
