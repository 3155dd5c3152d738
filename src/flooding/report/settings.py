"""Which run options a table shows, and how a reader would write their values.

A block of the report (one dataset and architecture) shows, for its rows, the options that
vary in a column each and the options that are the same in one caption line; options that
do not apply to the block (the spiral's noise for digits, MLP widths for a ResNet, momentum
for Adam) are left out of both. Computed once here for every table and figure caption.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from flooding.config import RunConfig, regulariser_fields
from flooding.data.registry import DATASETS
from flooding.report.stats import BLOCK_COLUMNS, SETTING_COLUMNS

# The options RQ3 asks about (the grid's regulariser axes), always a column of the main table.
RQ3_COLUMNS = tuple(f.name for f in regulariser_fields())
SIZE_COLUMNS = ("train_size", "test_size")


def _images(row: pd.Series) -> bool:
    spec = DATASETS.get(str(row["dataset"]))
    return spec is None or spec.images


# option -> does it apply to this row's dataset and model?
APPLIES: dict[str, Callable[[pd.Series], bool]] = {
    "gaussians_mean": lambda row: row["dataset"] == "gaussians",
    "spiral_noise": lambda row: row["dataset"] == "spiral",
    "mlp_depth": lambda row: row["arch"] == "mlp",
    "mlp_width": lambda row: row["arch"] == "mlp",
    "mlp_batchnorm": lambda row: row["arch"] == "mlp",
    "momentum": lambda row: row["optimizer"] == "sgd",
} | {f.name: _images for f in regulariser_fields() if f.metadata["axis"].images_only}


def plural(n: int, noun: str) -> str:
    """ "1 setting", "2 settings"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# How the report names a column: a grid axis's declared label, else its name with spaces.
LABELS = {
    f.name: f.metadata["axis"].label
    for f in dataclasses.fields(RunConfig)
    if f.metadata["axis"] is not None and f.metadata["axis"].label
}


def label(column: str) -> str:
    return LABELS.get(column) or column.replace("_", " ")


def sizes(dataset: str, train_size: int, test_size: int, val_fraction: float) -> tuple[int, ...]:
    """(training, validation, test) sample counts a run of `dataset` used; () if unknown.

    0 stands for the dataset's default size, resolved and split as the data loader does.
    """
    spec = DATASETS.get(dataset)
    if spec is None:
        return ()
    pool = int(train_size) or spec.train_size
    n_val = round(val_fraction * pool)
    return pool - n_val, n_val, int(test_size) or spec.test_size


def value(v: object, column: str = "", dataset: str = "") -> str:
    """A config value as a reader would write it; a size of 0 as the size it stands for."""
    if column in SIZE_COLUMNS and v == 0:
        spec = DATASETS.get(dataset)
        if spec is None:
            return "0 (the dataset's own size)"
        return str(spec.train_size if column == "train_size" else spec.test_size)
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:g}"
    return str(v)


def applies(frame: pd.DataFrame, column: str) -> bool:
    """Whether the option matters for at least one row of `frame`."""
    rule = APPLIES.get(column)
    return rule is None or any(rule(row) for _, row in frame.iterrows())


def _inner(frame: pd.DataFrame, skip: tuple[str, ...]) -> list[str]:
    # One row per block is enough to decide what applies: it depends on dataset, arch and
    # optimizer only, which the first rows of each combination carry.
    sample = frame.drop_duplicates(["dataset", "arch", "optimizer"])
    return [c for c in SETTING_COLUMNS if c not in skip and applies(sample, c)]


def varying(
    frame: pd.DataFrame, skip: tuple[str, ...] = (*BLOCK_COLUMNS, *RQ3_COLUMNS)
) -> list[str]:
    """Options (outside `skip`) that take more than one value in `frame` and apply to it."""
    return [c for c in _inner(frame, skip) if frame[c].nunique(dropna=False) > 1]


def fixed(frame: pd.DataFrame, skip: tuple[str, ...] = (*BLOCK_COLUMNS, *RQ3_COLUMNS)) -> str:
    """The options that are the same in every row of `frame` and apply, as one line."""
    same = [c for c in _inner(frame, skip) if frame[c].nunique(dropna=False) == 1]
    first = frame.iloc[0]
    return ", ".join(f"{label(c)} {value(first[c], c, str(first['dataset']))}" for c in same)


def describe(row: pd.Series, columns: list[str]) -> str:
    """`columns` of one row as "label value, ..."."""
    dataset = str(row["dataset"]) if "dataset" in row else ""
    return ", ".join(f"{label(c)} {value(row[c], c, dataset)}" for c in columns)
