"""The workflow config's JSON Schema: the YAML file plus what `RunConfig` already says.

`workflow/schemas/config.schema.yaml` describes the grid (datasets, archs, regularisers,
flood levels, seeds, resources). Its training settings, their overrides and the dataset
names are not written there: they are generated here from `RunConfig` and the data
registry, so a new field, default, help text or range needs one edit, in config.py.

`validate_workflow_config` checks a config against the assembled schema and fills in the
defaults, as the Snakefile needs it; it raises `WorkflowConfigError` naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from flooding.config import RunConfig
from flooding.data.registry import DATASETS
from flooding.validation import field_type

# RunConfig fields that the grid sets (axes of the grid); all others are training settings.
GRID_AXES = (
    "dataset",
    "label_noise",
    "arch",
    "weight_decay",
    "augment",
    "flood_method",
    "flood_level",
    "seed",
)
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


class WorkflowConfigError(ValueError):
    """A workflow config the schema rejects; the message names the key and the reason."""


def training_fields() -> list[dataclasses.Field[Any]]:
    """The RunConfig fields a config sets under `training:`, in declaration order."""
    return [f for f in dataclasses.fields(RunConfig) if f.name not in GRID_AXES]


def _sentence(text: str) -> str:
    return text + "."


def training_schema(*, overrides: bool) -> dict[str, Any]:
    """The `training` block; with overrides=True, the same keys with null (= inherit)."""
    properties: dict[str, Any] = {}
    for f in training_fields():
        check = f.metadata["check"]
        keywords = check.schema() if check is not None else {}
        if "enum" not in keywords:
            keywords.setdefault("type", _JSON_TYPES[field_type(f)])
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


def workflow_schema(path: str | Path) -> dict[str, Any]:
    """The schema file at `path` with the generated training blocks and dataset names."""
    schema = yaml.safe_load(Path(path).read_text())
    defs = schema["$defs"]
    defs["training"] = training_schema(overrides=False)
    defs["training_override"] = training_schema(overrides=True)
    defs["dataset"]["properties"]["name"]["enum"] = sorted(DATASETS)
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
