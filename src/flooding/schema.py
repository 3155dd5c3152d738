"""The workflow config's JSON Schema: the YAML file plus what `RunConfig` already says.

`workflow/schemas/config.schema.yaml` describes the grid (datasets, archs, flood levels,
seeds, resources). What the code declares is not written there but generated here: the
training settings and their overrides and the regulariser axes from `RunConfig`, the
dataset names from the data registry, the flood methods and architectures from their
registries (flooding.methods, flooding.archs), the pack axes from the grid axes. A new
field, axis, method, default, help text or range needs one edit, where it is declared.

`validate_workflow_config` checks a config against the assembled schema and fills in the
defaults, as the Snakefile needs it; it raises `WorkflowConfigError` naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from flooding.archs import describe_archs
from flooding.config import RunConfig, axis_fields, pack_axes, regulariser_fields
from flooding.data.registry import DATASETS
from flooding.methods import METHODS, describe_methods
from flooding.search import SearchPlan
from flooding.validation import field_type

# RunConfig fields that the grid sets (axes of the grid); all others are training settings.
GRID_AXES = tuple(f.name for f in axis_fields())
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


class WorkflowConfigError(ValueError):
    """A workflow config the schema rejects; the message names the key and the reason."""


def training_fields() -> list[dataclasses.Field[Any]]:
    """The RunConfig fields a config sets under `training:`, in declaration order."""
    return [f for f in dataclasses.fields(RunConfig) if f.name not in GRID_AXES]


def _sentence(text: str) -> str:
    return text + "."


def _value_schema(f: dataclasses.Field[Any]) -> dict[str, Any]:
    """JSON Schema keywords of one value of a RunConfig field: its type and constraint."""
    check = f.metadata["check"]
    keywords = check.schema() if check is not None else {}
    if "enum" not in keywords:
        keywords.setdefault("type", _JSON_TYPES[field_type(f)])
    return keywords


def training_schema(*, overrides: bool) -> dict[str, Any]:
    """The `training` block; with overrides=True, the same keys with null (= inherit)."""
    properties: dict[str, Any] = {}
    for f in training_fields():
        keywords = _value_schema(f)
        if overrides:
            if "enum" in keywords:
                keywords["enum"] = [*keywords["enum"], None]
            else:
                keywords["type"] = [keywords["type"], "null"]
        keywords["description"] = _sentence(f.metadata["help"])
        keywords["default"] = None if overrides else f.default
        properties[f.name] = keywords
    what = "Overrides of the training settings (null = inherit)" if overrides else None
    return {
        "type": "object",
        "description": what or "Training settings (RunConfig fields that are not grid axes).",
        "additionalProperties": False,
        "properties": properties,
    }


def regularisers_schema(*, overrides: bool) -> dict[str, Any]:
    """The `regularisers` block: a list of values per regulariser axis (every combination
    is trained); with overrides=True, a dataset's lists, null = the global ones."""
    properties: dict[str, Any] = {}
    for f in regulariser_fields():
        properties[f.name] = {
            "type": ["array", "null"] if overrides else "array",
            "description": _sentence(f"Values of {f.name}: {f.metadata['help']}"),
            "minItems": 1,
            "uniqueItems": True,
            "items": _value_schema(f),
            "default": None if overrides else [f.default],
        }
    what = (
        "This dataset's regulariser combinations (null = the global ones)."
        if overrides
        else "Regulariser combinations: every value of each axis with every value of the others."
    )
    return {
        "type": "object",
        "description": what,
        "additionalProperties": False,
        "default": {},
        "properties": properties,
    }


def workflow_schema(path: str | Path) -> dict[str, Any]:
    """The schema file at `path` with the generated blocks: training settings, regulariser
    axes, and the names of datasets, methods, architectures and pack axes."""
    schema = yaml.safe_load(Path(path).read_text())
    defs = schema["$defs"]
    defs["training"] = training_schema(overrides=False)
    defs["training_override"] = training_schema(overrides=True)
    schema["properties"]["regularisers"] = regularisers_schema(overrides=False)
    defs["dataset"]["properties"]["regularisers"] = regularisers_schema(overrides=True)
    defs["dataset"]["properties"]["name"]["enum"] = sorted(DATASETS)
    defs["flood_search"]["properties"] = {
        f.name: {
            **f.metadata["check"].schema(),
            "description": _sentence(f.metadata["help"].capitalize()),
            "default": f.default,
        }
        for f in dataclasses.fields(SearchPlan)
    }
    defs["flood_methods"]["items"] = {"enum": list(METHODS)}
    defs["flood_methods"]["description"] = _sentence("Flood methods: " + describe_methods())
    defs["arch"]["properties"]["name"]["description"] = _sentence(describe_archs())
    axes = list(pack_axes())
    defs["pack_axes"]["items"] = {"enum": axes}
    defs["pack_axes"]["description"] = _sentence(
        "Axes a pack groups over (flood: method and level together): "
        + ", ".join(axes)
        + ". Runs differing only in these share a job"
    )
    return schema


def _fill_defaults(validator_class: Any) -> Any:
    """A validator class that also sets each missing property to its schema default."""
    from jsonschema import validators

    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator: Any, props: dict, instance: Any, schema: dict) -> Iterator[Any]:
        if isinstance(instance, MutableMapping):
            for name, sub in props.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return validators.extend(validator_class, {"properties": properties})


def merge_configs(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Configs layered as Snakemake layers `--configfile` over the Snakefile's
    `configfile:`: a mapping merges key by key at every depth, anything else (a list, a
    value) replaces. So a config states only what differs from config/config.yaml."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = merge_configs(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def key_path(parts: Any) -> str:
    """A JSON path as a config key: datasets[0].training.lr."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"


def validate_workflow_config(config: MutableMapping[str, Any], schema_path: str | Path) -> None:
    """Check `config` against the schema and fill in every default, in place."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = workflow_schema(schema_path)
    validator = _fill_defaults(Draft202012Validator)(schema)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        raise WorkflowConfigError(
            f"config key {key_path(error.absolute_path)}: {error.message}"
        ) from None
