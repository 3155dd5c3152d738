"""Checks of single values, declared once and used twice: by the engine and by the schema.

A `RunConfig` field names its constraint (`Range` or `Choice`) in its metadata. The engine
checks a config with `Constraint.check`, and the workflow's JSON Schema is generated from
`Constraint.schema`, so a range is written in one place only. Size checks that need the
data set's size (`resolve_size`, `split_sizes`) live here too, for the config check before
loading and the loaders after it.

This is a leaf module: it imports nothing from flooding, so `config` and `data` can both
import it without importing each other.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """An impossible or unknown config value; the message names field, value and what works."""

    def __init__(self, field: str, value: Any, accepted: str) -> None:
        self.field = field
        self.value = value
        self.accepted = accepted
        super().__init__(f"{field}: invalid value {value!r}; accepted: {accepted}")


# The field types a RunConfig may use. Annotations are strings under
# `from __future__ import annotations`, so this maps their text to the type.
FIELD_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def field_type(f: dataclasses.Field[Any]) -> type:
    """The Python type of a dataclass field declared with one of FIELD_TYPES."""
    return FIELD_TYPES[str(f.type)]


def coerce(name: str, value: Any, kind: type) -> Any:
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


@dataclass(frozen=True)
class Range:
    """A finite number (or an integer) within optional bounds."""

    integer: bool = False
    minimum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    # Wording of the accepted values where the bounds alone would not say what they mean.
    text: str | None = None

    def accepted(self) -> str:
        if self.text is not None:
            return self.text
        kind = "an integer" if self.integer else "a number"
        if self.minimum is not None:
            lower: tuple[str, float] | None = (">=", self.minimum)
        elif self.exclusive_minimum is not None:
            lower = (">", self.exclusive_minimum)
        else:
            lower = None
        if lower is not None and self.exclusive_maximum is not None:
            below = "<=" if lower[0] == ">=" else "<"
            return (
                f"{kind} with {_number(lower[1])} {below} value < {_number(self.exclusive_maximum)}"
            )
        finite = kind if self.integer else "a finite number"
        return finite if lower is None else f"{finite} {lower[0]} {_number(lower[1])}"

    def check(self, field: str, value: float) -> None:
        ok = math.isfinite(value)
        ok = ok and (self.minimum is None or value >= self.minimum)
        ok = ok and (self.exclusive_minimum is None or value > self.exclusive_minimum)
        ok = ok and (self.exclusive_maximum is None or value < self.exclusive_maximum)
        if not ok:
            raise ConfigError(field, value, self.accepted())

    def schema(self) -> dict[str, Any]:
        """JSON Schema keywords (draft 2020-12); finiteness is the engine's check alone."""
        keywords: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        for key, bound in (
            ("minimum", self.minimum),
            ("exclusiveMinimum", self.exclusive_minimum),
            ("exclusiveMaximum", self.exclusive_maximum),
        ):
            if bound is not None:
                keywords[key] = bound
        return keywords


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of names."""

    options: tuple[str, ...]

    def accepted(self) -> str:
        return ", ".join(self.options)

    def check(self, field: str, value: str) -> None:
        if value not in self.options:
            raise ConfigError(field, value, self.accepted())

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.options)}


Constraint = Range | Choice


def _number(value: float | None) -> str:
    return repr(value) if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def resolve_size(
    field: str, requested: int, default: int, available: int | None, dataset: str
) -> int:
    """The requested sample count, 0 meaning the default.

    `available` is how many samples a real data set holds (None: generated, any size); it
    is also the default for real data.
    """
    if requested < 0 or (available is not None and requested > available):
        limit = f", at most {available} for {dataset}" if available is not None else ""
        raise ConfigError(field, requested, f"0 (the dataset default) or a positive size{limit}")
    if requested > 0:
        return requested
    size = default if available is None else available
    if size < 1:
        raise ConfigError(field, requested, f"a positive size ({dataset} has no samples)")
    return size


def split_sizes(pool: int, val_fraction: float, train_size: int) -> tuple[int, int]:
    """(train, validation) sample counts of a train+validation pool, both non-empty.

    `train_size` is the field as configured (0 = the dataset default), for the message.
    """
    n_val = round(val_fraction * pool)
    n_train = pool - n_val
    if n_train < 1 or n_val < 1:
        raise ConfigError(
            "train_size",
            train_size,
            f"a size whose split by val_fraction={val_fraction} leaves both the training "
            f"and the validation split non-empty ({pool} samples give {n_train} and {n_val})",
        )
    return n_train, n_val
