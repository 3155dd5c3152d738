"""The workflow's config files, its JSON Schema and its conda environment, checked statically."""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.utils import update_config

from flooding.config import RunConfig, validate
from flooding.data.registry import DATASETS
from flooding.schema import (
    GRID_AXES,
    WorkflowConfigError,
    merge_configs,
    validate_workflow_config,
    workflow_schema,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = workflow_schema(SCHEMA_PATH)
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A subschema with its local $ref merged in (the reference's keys first)."""
    if "$ref" not in node:
        return node
    target: Any = SCHEMA
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}


def properties(node: dict[str, Any], where: str = "config") -> Iterator[tuple[str, dict]]:
    """Every key the schema accepts, with its (unresolved) subschema, depth first."""
    node = resolve(node)
    for name, sub in node.get("properties", {}).items():
        yield f"{where}.{name}", sub
        yield from properties(sub, f"{where}.{name}")
    if "items" in node:
        yield from properties(node["items"], f"{where}[]")


def filled(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the Snakefile sees it: schema-validated, defaults filled in."""
    config = copy.deepcopy(config)
    validate_workflow_config(config, SCHEMA_PATH)
    return config


def test_every_key_has_a_description_and_a_default() -> None:
    keys = list(properties(SCHEMA))
    assert len(keys) > 60
    for where, sub in keys:
        assert "default" in sub, f"{where} has no default"  # where validate() fills it in
        assert resolve(sub).get("description"), f"{where} has no description"
    assert SCHEMA["additionalProperties"] is False
    objects = [resolve(sub) for _, sub in keys if "object" in str(resolve(sub).get("type"))]
    assert objects and all(o.get("additionalProperties") is False for o in objects)


def test_training_keys_and_defaults_are_the_engines() -> None:
    training = SCHEMA["$defs"]["training"]["properties"]
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name not in GRID_AXES}
    assert {name: sub["default"] for name, sub in training.items()} == defaults
    overrides = SCHEMA["$defs"]["training_override"]["properties"]
    assert list(overrides) == list(training)
    assert all(sub["default"] is None for sub in overrides.values())
    resources = SCHEMA["$defs"]["resources"]["properties"]
    assert list(SCHEMA["$defs"]["resources_override"]["properties"]) == list(resources)


# Values at and beyond each declared bound: the schema (at `snakemake -n`) and the engine
# (`flooding train`) must agree on every one, since both read the same constraint.
BOUNDARY_VALUES = {
    "val_fraction": [0.0, 0.05, 0.5, 1.0],
    "momentum": [-0.1, 0.0, 0.99, 1.0],
    "lr": [-1.0, 0.0, 1e-6],
    "mlp_width": [0, 1],
    "mlp_depth": [-1, 0],
    "epochs": [0, 1],
    "train_size": [-1, 0, 500],
    "optimizer": ["sgd", "adagrad"],
    "lr_schedule": ["step", "linear"],
}


@pytest.mark.parametrize("name", sorted(BOUNDARY_VALUES))
@pytest.mark.parametrize("level", ["training", "override"])
def test_schema_and_engine_accept_the_same_values(name: str, level: str) -> None:
    for value in BOUNDARY_VALUES[name]:
        if level == "training":
            config: dict[str, Any] = {"training": {name: value}}
        else:
            config = {"archs": [{"name": "mlp", "training": {name: value}}]}
        try:
            filled(config)
            schema_ok = True
        except WorkflowConfigError:
            schema_ok = False
        try:
            validate(dataclasses.replace(RunConfig(), **{name: value}))
            engine_ok = True
        except ValueError:
            engine_ok = False
        assert schema_ok == engine_ok, (name, value, level)


def test_errors_name_the_key() -> None:
    with pytest.raises(WorkflowConfigError, match=r"config key datasets\[0\]\.training\.lr: "):
        filled({"datasets": [{"name": "spiral", "training": {"lr": 0}}]})


def test_dataset_names_are_the_registrys() -> None:
    names = SCHEMA["$defs"]["dataset"]["properties"]["name"]["enum"]
    assert sorted(names) == sorted(DATASETS)


DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def snakemake_merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """The layers merged by Snakemake's own function, as `--configfile` merges them."""
    merged: dict[str, Any] = {}
    for layer in layers:
        update_config(merged, copy.deepcopy(layer))
    return merged


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid_over_the_default(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    assert merge_configs(DEFAULT, config) == snakemake_merged(DEFAULT, config)
    filled(merge_configs(DEFAULT, config))


def restated(config: Any, default: Any, where: str = "") -> list[str]:
    """Keys of `config` whose value is the same as the default config's."""
    if not (isinstance(config, dict) and isinstance(default, dict)):
        return [where] if config == default else []
    return [
        key
        for name, value in config.items()
        if name in default
        for key in restated(value, default[name], f"{where}.{name}".lstrip("."))
    ]


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem != "config"], ids=lambda p: p.stem)
def test_shipped_configs_state_only_what_differs(path: Path) -> None:
    assert restated(yaml.safe_load(path.read_text()), DEFAULT) == []


def test_one_training_key_changes_exactly_that_key() -> None:
    from flooding.grid import expand_grid

    before = expand_grid(filled(merge_configs(DEFAULT)))
    after = expand_grid(filled(merge_configs(DEFAULT, {"training": {"batch_size": 64}})))
    assert list(after.by_path) == list(before.by_path)
    for path, run in after.by_path.items():
        old = before.by_path[path].config.to_dict()
        new = run.config.to_dict()
        assert {k for k in new if new[k] != old[k]} == {"batch_size"}, path
        assert new["batch_size"] == 64


def test_merging_goes_to_every_depth_and_lists_replace() -> None:
    base = {"a": {"b": {"c": 1, "d": 2}, "e": [1, 2]}, "f": 3}
    over = {"a": {"b": {"c": 9}, "e": [7]}}
    expected = {"a": {"b": {"c": 9, "d": 2}, "e": [7]}, "f": 3}
    assert merge_configs(base, over) == expected == snakemake_merged(base, over)
    assert base["a"]["b"]["c"] == 1  # the layers are not changed


def pyproject_requirements() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(_split(spec) for spec in project["dependencies"])


def _split(spec: str) -> tuple[str, str]:
    name, bound = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", spec.strip()).groups()  # type: ignore[union-attr]
    return name.lower().replace("_", "-"), bound.replace(" ", "")


def test_conda_environment_names_the_pyproject_dependencies() -> None:
    env = yaml.safe_load((ROOT / "envs" / "flooding.yaml").read_text())
    conda_names = {"pytorch": "torch"}  # conda-forge's name -> the PyPI name
    listed: dict[str, str] = {}
    for entry in env["dependencies"]:
        specs = entry["pip"] if isinstance(entry, dict) else [entry]
        for spec in specs:
            name, bound = _split(spec)
            if name not in ("python", "pip"):
                listed[conda_names.get(name, name)] = bound
    assert listed == pyproject_requirements()
