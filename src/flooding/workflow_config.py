"""The workflow's config and profile as Snakemake sees them, read without Snakemake.

`flooding plan` must expand the same grid the workflow runs: the Snakefile's
`configfile:` (config/config.yaml) with each `--configfile` merged over it as Snakemake
merges them, checked against the workflow's schema, expanded by flooding.grid, with the
resources flooding.learned learns from results/; and the SLURM profile's settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flooding.grid import Grid, GridError, expand_grid
from flooding.learned import learn_resources

# As the Snakefile reads them: its `configfile:` and its schema; and the profile.
WORKFLOW_CONFIG = Path("config/config.yaml")
SCHEMA = Path("workflow/schemas/config.schema.yaml")
PROFILE = Path("slurm/config.yaml")


class InputError(ValueError):
    """A config or profile that cannot be read; the message names the file or key."""


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise InputError(f"{what} {path}: no such file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InputError(f"{what} {path}: not YAML ({str(error).splitlines()[0]})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(f"{what} {path}: not a YAML mapping")
    return values


def load_config(configfiles: Sequence[Path], root: Path) -> dict[str, Any]:
    """The config the workflow would see from root with these --configfile's: validated,
    defaults filled in."""
    from flooding.schema import WorkflowConfigError, merge_configs, validate_workflow_config

    config = read_yaml_mapping(root / WORKFLOW_CONFIG, "workflow config")
    for path in configfiles:
        config = merge_configs(config, read_yaml_mapping(path, "--configfile"))
    try:
        validate_workflow_config(config, root / SCHEMA)
    except WorkflowConfigError as error:
        raise InputError(str(error)) from None
    return config


def load_grid(config: Mapping[str, Any], results: Path) -> Grid:
    """The grid the workflow would run, with the resources it would learn from results/."""
    try:
        return learn_resources(expand_grid(config), results)
    except GridError as error:
        raise InputError(str(error)) from None


def profile_setting(root: Path, name: str, default: int) -> int:
    """A submitit-* setting of the repository's SLURM profile, or the plugin's default."""
    path = root / PROFILE
    if not path.is_file():
        return default
    return int(read_yaml_mapping(path, "profile").get(f"submitit-{name}", default))


def profile_partition(root: Path) -> str | None:
    """The partition the SLURM profile submits to (its default-resources'
    slurm_partition, a mapping or a list of name=value), or None: the cluster's default."""
    path = root / PROFILE
    if not path.is_file():
        return None
    defaults = read_yaml_mapping(path, "profile").get("default-resources") or {}
    if isinstance(defaults, list):
        defaults = dict(str(item).split("=", 1) for item in defaults if "=" in str(item))
    partition = defaults.get("slurm_partition")
    return None if partition is None else str(partition).strip("'\"")
