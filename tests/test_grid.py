"""The grid: a workflow config expanded into runs (configs, paths, resources, downloads)."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_workflow_config import filled  # the config as the Snakefile sees it

from flooding.cli import train_parser
from flooding.config import RunConfig
from flooding.grid import (
    GridError,
    expand_grid,
    flood_settings,
    format_number,
    run_path,
)
from flooding.jobs import Resources, train_arguments

ROOT = Path(__file__).resolve().parents[1]


def small(**top: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "training": {"train_size": 100, "batch_size": 20, "epochs": 2},
        "archs": [{"name": "mlp"}],
        "datasets": [{"name": "spiral"}],
    }
    base.update(top)
    return filled(base)


def test_format_number_is_short_and_round_trips() -> None:
    assert [format_number(x) for x in (0.0, 1.0, 0.05, 0.0005, 5e-05, 0.1 + 0.2)] == [
        "0",
        "1",
        "0.05",
        "0.0005",
        "5e-05",
        "0.30000000000000004",
    ]


def test_run_path_reads_as_the_config() -> None:
    cfg = RunConfig(label_noise=0.2, weight_decay=0.0005, flood_level=0.05, seed=1)
    assert run_path(cfg, "spiral", "mlp") == "spiral-noise0.2/mlp/wd0.0005-aug0/flood0.05/seed1"
    cfg = RunConfig(dataset="digits", augment=True, flood_method="iflood", flood_level=0.1)
    assert run_path(cfg, "digits", "net") == "digits-noise0/net/wd0-aug1/iflood0.1/seed0"


def test_level_zero_is_one_run_shared_by_all_methods() -> None:
    assert flood_settings(["flood", "iflood"], [0.0, 0.1, 0.2]) == [
        ("flood", 0.0),
        ("flood", 0.1),
        ("flood", 0.2),
        ("iflood", 0.1),
        ("iflood", 0.2),
    ]
    assert flood_settings(["iflood"], [0.1]) == [("iflood", 0.1)]


def test_train_arguments_parse_back_to_the_same_config() -> None:
    cfg = RunConfig(
        dataset="digits", augment=True, mlp_batchnorm=False, lr=1e-05, lr_schedule="step"
    )
    args = train_parser().parse_args([*shlex.split(shlex.join(train_arguments(cfg))), "--out", "x"])
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert RunConfig.from_dict({n: getattr(args, n) for n in names}) == cfg
    assert "--no-mlp-batchnorm" in train_arguments(cfg)


def test_full_product_with_augment_only_for_images() -> None:
    config = small(
        archs=[{"name": "mlp"}, {"name": "resnet_tiny"}],
        datasets=[
            {"name": "spiral", "label_noise": [0.0, 0.1], "archs": ["mlp"]},
            {"name": "digits", "training": {"train_size": 0}},
        ],
        regularisers={"weight_decay": [0.0, 0.001], "augment": [False, True]},
        flood={"methods": ["flood", "iflood"], "levels": [0.0, 0.05]},
        seeds=[0, 1],
    )
    grid = expand_grid(config)
    # spiral: 2 noise x 1 arch x 2 wd x 1 augment (vectors) x 3 flood x 2 seeds = 24
    # digits: 1 noise x 2 archs x 2 wd x 2 augment x 3 flood x 2 seeds = 48
    assert len(grid.runs) == 72
    assert len(set(grid.paths)) == 72
    spiral = [r for r in grid.runs if r.config.dataset == "spiral"]
    assert len(spiral) == 24
    assert not any(r.config.augment for r in spiral)
    assert {r.config.arch for r in grid.runs if r.config.dataset == "digits"} == {
        "mlp",
        "resnet_tiny",
    }
    run = grid.by_path["digits-noise0/resnet_tiny/wd0.001-aug1/iflood0.05/seed1"]
    assert run.config == RunConfig(
        dataset="digits",
        train_size=0,
        batch_size=20,
        epochs=2,
        arch="resnet_tiny",
        weight_decay=0.001,
        augment=True,
        flood_method="iflood",
        flood_level=0.05,
        seed=1,
    )
    assert grid.downloads == []
    assert grid.shared_resources == Resources(threads=1, mem_mb=2000, runtime=30, gpu=0)


def test_settings_layer_global_then_arch_then_dataset() -> None:
    config = small(
        training={"epochs": 5, "lr": 0.1, "batch_size": 10, "train_size": 100},
        resources={"threads": 2, "mem_mb": 1000},
        archs=[
            {"name": "mlp", "training": {"lr": 0.2, "epochs": 6}, "resources": {"mem_mb": 3000}},
            {"name": "mlp", "label": "wide", "training": {"mlp_width": 1000}},
        ],
        datasets=[
            {"name": "spiral", "training": {"epochs": 7}, "resources": {"threads": 4}},
            {"name": "sinusoid"},
        ],
    )
    grid = expand_grid(config)
    by = {(r.config.dataset, r.path.split("/")[1]): r for r in grid.runs}
    spiral_mlp, sinusoid_mlp = by["spiral", "mlp"], by["sinusoid", "mlp"]
    assert (spiral_mlp.config.lr, spiral_mlp.config.epochs) == (0.2, 7)
    assert (sinusoid_mlp.config.lr, sinusoid_mlp.config.epochs) == (0.2, 6)
    wide = by["sinusoid", "wide"]
    assert (wide.config.arch, wide.config.mlp_width, wide.config.lr) == ("mlp", 1000, 0.1)
    assert (spiral_mlp.resources.threads, spiral_mlp.resources.mem_mb) == (4, 3000)
    assert (wide.resources.threads, wide.resources.mem_mb) == (2, 1000)
    assert wide.resources.runtime == 30 and wide.resources.gpu == 0  # schema defaults
    assert grid.shared_resources is None


def test_dataset_overrides_regularisers_and_flood() -> None:
    config = small(
        datasets=[
            {
                "name": "digits",
                "training": {"train_size": 0},
                "regularisers": {"augment": [True]},
                "flood": {"levels": [0.3]},
            },
            {"name": "spiral"},
        ],
        regularisers={"weight_decay": [0.0, 0.1], "augment": [False]},
        flood={"methods": ["flood"], "levels": [0.0, 0.1]},
    )
    grid = expand_grid(config)
    digits = [r for r in grid.runs if r.config.dataset == "digits"]
    assert {(r.config.weight_decay, r.config.augment, r.config.flood_level) for r in digits} == {
        (0.0, True, 0.3),
        (0.1, True, 0.3),
    }
    assert len(grid.runs) == 2 + 4


def test_one_dataset_in_two_entries_with_different_archs() -> None:
    config = small(
        archs=[{"name": "mlp"}, {"name": "resnet_tiny"}],
        datasets=[
            {"name": "digits", "archs": ["mlp"]},
            {"name": "digits", "archs": ["resnet_tiny"], "regularisers": {"augment": [True]}},
        ],
        regularisers={"weight_decay": [0.0], "augment": [False, True]},
    )
    paths = expand_grid(config).paths
    assert paths == [
        "digits-noise0/mlp/wd0-aug0/flood0/seed0",
        "digits-noise0/mlp/wd0-aug1/flood0/seed0",
        "digits-noise0/resnet_tiny/wd0-aug1/flood0/seed0",
    ]


def test_torchvision_datasets_are_downloads_once_each() -> None:
    config = small(
        datasets=[
            {"name": "cifar10", "label_noise": [0.0, 0.1]},
            {"name": "mnist"},
            {"name": "cifar10", "label": "cifar10-long", "training": {"epochs": 9}},
            {"name": "spiral"},
        ],
    )
    grid = expand_grid(config)
    assert grid.downloads == ["cifar10", "mnist"]
    assert grid.by_path["cifar10-long-noise0/mlp/wd0-aug0/flood0/seed0"].download == "cifar10"
    assert grid.by_path["spiral-noise0/mlp/wd0-aug0/flood0/seed0"].download is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"datasets": [{"name": "spiral"}, {"name": "spiral"}]},
            "datasets[1] (spiral): run spiral-noise0/mlp/wd0-aug0/flood0/seed0 also comes from "
            "datasets[0]",
        ),
        (
            {"archs": [{"name": "mlp"}, {"name": "mlp"}]},
            "archs[1] (mlp): label 'mlp' is used twice",
        ),
        (
            {"datasets": [{"name": "spiral", "archs": ["resnet18"]}]},
            "datasets[0] (spiral).archs: ['resnet18'] not among archs ['mlp']",
        ),
        (
            {"datasets": [{"name": "spiral", "regularisers": {"augment": [True]}}]},
            "datasets[0] (spiral).regularisers.augment: only true, but spiral has no images",
        ),
        (
            {"datasets": [{"name": "spiral", "training": {"train_size": 2}}]},
            "datasets[0] (spiral), run spiral-noise0/mlp/wd0-aug0/flood0/seed0: train_size: "
            "invalid value 2",
        ),
        (
            {"archs": [{"name": "no_such_net_at_all"}]},
            "arch: invalid value 'no_such_net_at_all'",
        ),
    ],
)
def test_impossible_grids_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(GridError) as error:
        expand_grid(small(**change))
    assert message in str(error.value)


def test_the_shipped_configs_expand() -> None:
    sizes = {}
    for name in ("config", "paper", "ci"):
        config = filled(yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()))
        sizes[name] = len(expand_grid(config).runs)
    # The default's runs are packed, so it affords more of them than one job per run did;
    # the bound keeps `make report` within minutes on two cores.
    assert sizes["ci"] < 10 < sizes["config"] <= 250 < sizes["paper"]


def test_packs_group_runs_differing_only_in_the_packed_axes() -> None:
    config = small(
        flood={"methods": ["flood"], "levels": [0.0, 0.1, 0.2]},
        seeds=[0, 1],
        pack={"by": ["flood"], "max_runs": 2},
    )
    grid = expand_grid(config)
    # Per seed: three flood settings in packs of at most two; the odd one out is single.
    assert [[run.path for run in pack.runs] for pack in grid.packs] == [
        [f"spiral-noise0/mlp/wd0-aug0/flood{b}/seed{s}" for b in (0, 0.1)] for s in (0, 1)
    ]
    assert grid.singles == [f"spiral-noise0/mlp/wd0-aug0/flood0.2/seed{s}" for s in (0, 1)]
    pack = grid.packs[0]
    assert pack.name.startswith("spiral-noise0/mlp/wd0-aug0/seed0/pack-")
    assert grid.packs_by_name[pack.name] is pack
    assert pack.resources.runtime == 2 * grid.runs[0].resources.runtime
    spec = json.loads(pack.spec)
    assert [RunConfig.from_dict(r["config"]) for r in spec["runs"]] == [r.config for r in pack.runs]
    assert spec["runs"][0]["out"] == f"results/runs/{pack.runs[0].path}"


def test_a_changed_member_set_is_another_pack_and_the_default_packs_nothing() -> None:
    base = {"flood": {"methods": ["flood"], "levels": [0.0, 0.1]}, "pack": {"by": ["flood"]}}
    assert expand_grid(small(**base)).packs == ()  # max_runs defaults to one run a job
    base["pack"]["max_runs"] = 8
    names = {expand_grid(small(**base)).packs[0].name}
    base["flood"]["levels"] = [0.0, 0.1, 0.2]
    names.add(expand_grid(small(**base)).packs[0].name)
    base["training"] = {"train_size": 100, "batch_size": 20, "epochs": 3}
    names.add(expand_grid(small(**base)).packs[0].name)
    assert len(names) == 3


def test_a_dataset_entry_overrides_the_packing() -> None:
    config = small(
        datasets=[{"name": "spiral"}, {"name": "gaussians", "pack": {"by": []}}],
        flood={"methods": ["flood"], "levels": [0.0, 0.1]},
        seeds=[0, 1],
        pack={"by": ["flood", "seed"], "max_runs": 32},
    )
    grid = expand_grid(config)
    assert [len(pack.runs) for pack in grid.packs] == [4]
    assert all(path.startswith("gaussians") for path in grid.singles)
