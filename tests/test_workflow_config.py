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
from snakemake.utils import update_config, validate

from flooding.config import RunConfig
from flooding.data.registry import DATASETS

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
# RunConfig fields that the grid sets; all the others are training settings.
AXES = {
    "dataset",
    "label_noise",
    "arch",
    "weight_decay",
    "augment",
    "flood_method",
    "flood_level",
    "seed",
}
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
    validate(config, str(SCHEMA_PATH))
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
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name not in AXES}
    assert {name: sub["default"] for name, sub in training.items()} == defaults
    overrides = SCHEMA["$defs"]["training_override"]["properties"]
    assert list(overrides) == list(training)
    for name, sub in overrides.items():
        # Same constraints, plus null (= inherit) as the default.
        assert sub["default"] is None
        plain = {k: v for k, v in training[name].items() if k != "default"}
        if "enum" in sub:
            assert sub["enum"] == [*plain["enum"], None], name
        else:
            assert sub["type"] == [plain["type"], "null"], name
        rest = {k: v for k, v in sub.items() if k not in ("default", "type", "enum")}
        assert rest == {k: v for k, v in plain.items() if k not in ("type", "enum")}, name
    resources = SCHEMA["$defs"]["resources"]["properties"]
    assert list(SCHEMA["$defs"]["resources_override"]["properties"]) == list(resources)


def test_dataset_names_are_the_registrys() -> None:
    names = SCHEMA["$defs"]["dataset"]["properties"]["name"]["enum"]
    assert sorted(names) == sorted(DATASETS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid_and_complete(path: Path) -> None:
    # Snakemake merges a --configfile over config/config.yaml, mapping by mapping; a config
    # that sets every key the default sets therefore means the same with or without it.
    config = yaml.safe_load(path.read_text())
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    merged = copy.deepcopy(default)
    update_config(merged, copy.deepcopy(config))
    assert filled(merged) == filled(config)


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
