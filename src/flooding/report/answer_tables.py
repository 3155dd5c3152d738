"""The tables of RQ2, RQ4, the grid warnings and the changes since an earlier summary."""

from __future__ import annotations

import math

import pandas as pd

from flooding.report import settings
from flooding.report.changes import Changes
from flooding.report.settings import describe, value
from flooding.report.stats import SETTING_COLUMNS
from flooding.report.tables import (
    Cell,
    Row,
    Table,
    accuracy,
    category_cell,
    cells,
    levels_text,
    needed,
    p_cell,
)
from flooding.search import UPPER_END

CHANGED_RUNS_SHOWN = 50

# The first columns of a table with a row per setting and method.
ROW_KEYS = ("dataset", "arch", "setting", "method")


def chosen_level_table(chosen: pd.DataFrame, refs: pd.DataFrame) -> Table:
    """RQ2: chosen b per dataset, architecture, method and label noise, with the reference."""
    keys = ["dataset", "arch", "flood_method", "label_noise"]
    lookup = refs.groupby(["dataset", "label_noise"])[["bayes_error", "reference", "kind"]].first()
    head = [
        cells(
            "dataset",
            "arch",
            "method",
            "label noise",
            "Bayes error (clean)",
            "reference loss (nats)",
            "chosen b, early stopping off",
            "chosen b, early stopping on",
            "settings × seeds",
        )
    ]
    body: list[Row] = []
    for key, rows in chosen.groupby(keys, sort=True):
        ref = lookup.loc[(key[0], key[3])] if (key[0], key[3]) in lookup.index else None
        error = math.nan if ref is None else float(ref["bayes_error"])
        row = cells(value(key[0]), value(key[1]), value(key[2]), value(float(key[3])))
        row.append(Cell("not recorded", css="muted") if math.isnan(error) else Cell(f"{error:.4f}"))
        if ref is None or math.isnan(ref["reference"]):
            row.append(Cell("unknown", css="muted"))
        else:
            row.append(Cell(f"{ref['reference']:.3f} ({ref['kind']})"))
        for stop in (False, True):
            row.append(Cell(_spread(rows.loc[rows["early_stopping"] == stop, "flood_level"])))
        row.append(Cell(str(int((~rows["early_stopping"].astype(bool)).sum()))))
        body.append(row)
    return Table(head, body)


def _spread(levels: pd.Series) -> str:
    if levels.empty:
        return "n/a"
    text = f"{levels.mean():.3g}"
    if len(levels) > 1:
        # Rounded first: identical levels must read 0, not a floating-point residue.
        spread = round(float(levels.std(ddof=1)), 9)
        text += f" ± {spread:.2g} (range {levels.min():g}–{levels.max():g})"
    return text


def _grid_varying(summary: pd.DataFrame, dataset: object, arch: object) -> list[str]:
    """What varies between the settings of a dataset and architecture in the whole grid: a
    table that lists only some of them must still say which one each row is."""
    grid = summary[(summary["dataset"] == dataset) & (summary["arch"] == arch)]
    return settings.varying(grid, skip=("dataset", "arch"))


def edge_table(edges: pd.DataFrame, seeds: pd.Series, summary: pd.DataFrame) -> Table:
    """Cells whose chosen b sits on the grid's edge for some seeds, and what to add."""
    head = [cells("dataset", "arch", "setting", "method", "early stopping", "seeds at edge", "add")]
    body: list[Row] = []
    for (dataset, arch), block in edges.groupby(["dataset", "arch"], sort=True):
        shown = _grid_varying(summary, dataset, arch)
        for _, r in block.iterrows():
            total = int(seeds.get((dataset, arch), 0))
            at = int(r["at_top"] + r["at_bottom"])
            body.append(
                cells(
                    value(dataset),
                    value(arch),
                    Cell(describe(r, shown) or "the only one", css="setting"),
                    value(r["flood_method"]),
                    "on" if r["early_stopping"] else "off",
                    Cell(f"{at} of {total} seeds", css="warn"),
                    r["advice"],
                )
            )
    return Table(head, body)


def training_table(unfinished: pd.DataFrame) -> Table:
    head = [cells("dataset", "arch", "runs best at their last epoch", "epochs")]
    body = [
        cells(
            value(r["dataset"]),
            value(r["arch"]),
            Cell(f"{r['at_last']} of {r['runs']}", css="warn"),
            str(r["epochs"]),
        )
        for _, r in unfinished.iterrows()
    ]
    return Table(head, body)


def descent_table(descents: pd.DataFrame) -> Table:
    """RQ4: the detector's verdict per setting and method, b = 0 beside the validated b."""
    keys = [*SETTING_COLUMNS, "flood_method"]
    head = [
        cells(
            *ROW_KEYS,
            "double descent at b = 0",
            "validated b",
            "double descent at validated b",
        )
    ]
    base = descents[descents["flood_level"] == 0].drop(columns="flood_level")
    flooded = descents[descents["flood_level"] > 0]
    # NaN keys (none today) would not match; every setting column is filled by RunConfig.
    pairs = flooded.merge(base, on=keys, how="left", suffixes=("", "_base"))
    body: list[Row] = []
    for _, block in pairs.groupby(["dataset", "arch"], sort=True):
        # Only what differs between the block's rows: the rest is the block's caption.
        shown = settings.varying(block, skip=("dataset", "arch"))
        for _, r in block.sort_values(keys).iterrows():
            body.append(
                cells(
                    value(r["dataset"]),
                    value(r["arch"]),
                    Cell(describe(r, shown) or "the only one", css="setting"),
                    value(r["flood_method"]),
                    _verdict(r, "_base"),
                    f"{r['flood_level']:g}",
                    _same_detection(r) or _verdict(r, ""),
                )
            )
    return Table(head, body)


def _same_detection(r: pd.Series) -> Cell | None:
    """A detection at the validated b with b = 0's very turns: the flooded runs trained as
    b = 0 did, so it is one detection, reported once."""
    turns = ("first_minimum", "peak", "second_minimum", "rise", "fall")
    if not (bool(r["found"]) and pd.notna(r["found_base"]) and bool(r["found_base"])):
        return None
    if all(r[t] == r[f"{t}_base"] for t in turns):
        return Cell("the same detection as at b = 0 (one detection)", css="muted")
    return None


def _verdict(r: pd.Series, suffix: str) -> Cell:
    """The detector's verdict from the columns of `r` ending in `suffix`."""
    found = r[f"found{suffix}"]
    if pd.isna(found):
        return Cell("no run", css="muted")
    if not found:
        return Cell("no")
    turns = (r[f"{name}{suffix}"] for name in ("first_minimum", "peak", "second_minimum"))
    return Cell(
        "yes: epochs "
        + " → ".join(str(int(e)) for e in turns)
        + f" (+{100 * r[f'rise{suffix}']:.0f} %, −{100 * r[f'fall{suffix}']:.0f} %)",
        css="better",
    )


def sharpness_table(comparison: pd.DataFrame) -> Table:
    """RQ4: flatness at b = 0 against the chosen b (rows of stats.compare on `sharpness`)."""
    head = [
        cells(
            *ROW_KEYS,
            "seeds",
            "sharpness at b = 0 (nats)",
            "at the chosen b (nats)",
            "Δ (nats) [95 % interval]",
            "p / Holm p",
            "seeds for 80 % power",
        )
    ]
    body: list[Row] = []
    rows = comparison[comparison["has_flooding"]]
    for _, r in rows.iterrows():
        block = rows[(rows["dataset"] == r["dataset"]) & (rows["arch"] == r["arch"])]
        shown = settings.varying(block, skip=("dataset", "arch"))
        body.append(
            cells(
                value(r["dataset"]),
                value(r["arch"]),
                describe(r, [c for c in shown if c != "early_stopping"]) or "the only one",
                value(r["flood_method"]),
                str(int(r["n_pairs"])),
                f"{r['baseline_mean']:.3g}",
                f"{r['flooded_mean']:.3g}",
                Cell(_plain_difference(r)),
                p_cell(r["p_value"], r["p_holm"], r["test_note"]),
                needed(r),
            )
        )
    return Table(head, body)


def _plain_difference(r: pd.Series) -> str:
    text = f"{r['mean_difference']:+.3g}"
    if not pd.isna(r["ci_low"]):
        text += f" [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]"
    return text


def changed_runs_table(changes: Changes) -> Table:
    """Runs added, removed and retrained, the first CHANGED_RUNS_SHOWN of each."""
    head = [cells("change", "dataset", "arch", "method", "b", "seed", "status", "run")]
    body: list[Row] = []
    for name, rows in (
        ("added", changes.added),
        ("removed", changes.removed),
        ("retrained", changes.retrained),
    ):
        for _, r in rows.head(CHANGED_RUNS_SHOWN).iterrows():
            body.append(
                cells(
                    name,
                    value(r["dataset"]),
                    value(r["arch"]),
                    value(r["flood_method"]),
                    value(float(r["flood_level"])),
                    value(int(r["seed"])),
                    value(r["status"]),
                    value(r["run_dir"]),
                )
            )
    return Table(head, body)


def flipped_table(flipped: pd.DataFrame) -> Table:
    head = [cells("dataset", "arch", "setting", "method", "early stopping", "before", "now")]
    shown = settings.varying(flipped, skip=("dataset", "arch")) if len(flipped) else []
    body = [
        cells(
            value(r["dataset"]),
            value(r["arch"]),
            Cell(describe(r, shown) or "the only one", css="setting"),
            value(r["flood_method"]),
            "on" if r["early_stopping"] else "off",
            r["before"],
            Cell(r["after"], css="warn"),
        )
        for _, r in flipped.iterrows()
    ]
    return Table(head, body)


def _interval_points(difference: float, low: float, high: float) -> str:
    text = f"{100 * difference:+.2f}"
    if not pd.isna(low):
        text += f" [{100 * low:+.2f}, {100 * high:+.2f}]"
    return text


def options_table(options: pd.DataFrame) -> Table:
    """RQ3: per group of settings and method, the best option without and with flooding."""
    head = [
        cells(
            *ROW_KEYS,
            "best without flooding: test acc. (%)",
            "best with flooding: test acc. (%)",
            "Δ (points) [95 % interval]",
            "p / Holm p",
            "answer",
            "flooding added to the best without: Δ (points)",
        )
    ]
    body: list[Row] = []
    for (dataset, arch), block in options.groupby(["dataset", "arch"], sort=True):
        shown = settings.varying(block, skip=("dataset", "arch", *settings.RQ3_COLUMNS))
        for _, r in block.iterrows():
            n = int(r["n_pairs"])
            added = (
                Cell("no flooded runs", css="muted")
                if r["added_category"] == ""
                else Cell(
                    _interval_points(r["added_difference"], r["added_ci_low"], r["added_ci_high"])
                    + f" ({r['added_category']})",
                    css=category_cell(r["added_category"]).css,
                )
            )
            body.append(
                cells(
                    value(dataset),
                    value(arch),
                    Cell(describe(r, shown) or "the only one", css="setting"),
                    value(r["flood_method"]),
                    Cell(
                        f"{r['plain']}: {accuracy(r['plain_mean'], r['plain_std'], n)}",
                        css="better" if r["best"] == r["plain"] else "",
                    ),
                    Cell(
                        f"{r['flooding']}: {accuracy(r['flooding_mean'], r['flooding_std'], n)}"
                        f" (b: {levels_text(r['chosen_levels'])})",
                        css="better" if r["best"] == r["flooding"] else "",
                    ),
                    Cell(_interval_points(r["mean_difference"], r["ci_low"], r["ci_high"])),
                    p_cell(r["p_value"], r["p_holm"], r["test_note"]),
                    category_cell(r["category"]),
                    added,
                )
            )
    return Table(head, body, css="results")


def idle_table(idle: pd.DataFrame, summary: pd.DataFrame) -> Table:
    """Flood levels left out of the choice of b, and why."""
    head = [cells(*ROW_KEYS, "b", "why left out", "untrained loss (nats)", "runs")]
    body: list[Row] = []
    for (dataset, arch), block in idle.groupby(["dataset", "arch"], sort=True):
        shown = _grid_varying(summary, dataset, arch)
        for _, r in block.iterrows():
            body.append(
                cells(
                    value(dataset),
                    value(arch),
                    Cell(describe(r, shown) or "the only one", css="setting"),
                    value(r["flood_method"]),
                    f"{r['flood_level']:g}",
                    Cell(r["reason"], css="warn"),
                    "n/a" if math.isnan(r["untrained_loss"]) else f"{r['untrained_loss']:.3f}",
                    str(int(r["runs"])),
                )
            )
    return Table(head, body)


def _setting_cell(r: pd.Series, summary: pd.DataFrame) -> Cell:
    """Which setting of its dataset and architecture a row is, in words."""
    shown = _grid_varying(summary, r["dataset"], r["arch"])
    return Cell(describe(r, shown) or "the only one", css="setting")


def search_table(search: pd.DataFrame, summary: pd.DataFrame) -> Table:
    """RQ2: each search's rounds, the levels each tried with their mean final validation
    accuracy over seeds, the b it chose and why it stopped."""
    head = [
        cells(
            *ROW_KEYS,
            "levels tried by round: b (mean val. acc. %)",
            "best b (0 included)",
            "stopped",
        )
    ]
    body: list[Row] = []
    keys = [*SETTING_COLUMNS, "flood_method"]
    for key, block in search.groupby(keys, sort=True, dropna=False):
        r = pd.Series(dict(zip(keys, key, strict=True)))
        rounds = []
        for round_, levels in block.sort_values("flood_level").groupby("round", sort=True):
            tried = ", ".join(
                f"{b:g} ({100 * acc:.1f})"
                for b, acc in zip(levels["flood_level"], levels["mean_val_acc"], strict=True)
            )
            rounds.append(f"{round_}: {tried}")
        last = block.iloc[0]
        hard = last["stop_reason"] == UPPER_END
        body.append(
            cells(
                value(r["dataset"]),
                value(r["arch"]),
                _setting_cell(r, summary),
                value(r["flood_method"]),
                " · ".join(rounds),
                f"{last['chosen_level']:g}",
                Cell(last["stop_reason"] or "running", css="warn" if hard else ""),
            )
        )
    return Table(head, body)


def prediction_table(predictions: pd.DataFrame, summary: pd.DataFrame) -> Table:
    """RQ2: b predicted from the b = 0 runs and the reference loss beside the validated b,
    each with the mean final test accuracy of the tried level nearest to it."""
    head = [
        cells(
            *ROW_KEYS,
            "predicted b (nearest tried): test %",
            "reference loss (nearest tried): test %",
            "validated b: test %",
            "levels from",
        )
    ]
    body: list[Row] = []

    def scored(level: float, tried: float, test: float) -> str:
        if math.isnan(level):
            return "unknown"
        near = "" if math.isclose(level, tried) else f" ({tried:g})"
        return f"{level:.3g}{near}: {100 * test:.2f}"

    for _, r in predictions.iterrows():
        body.append(
            cells(
                value(r["dataset"]),
                value(r["arch"]),
                _setting_cell(r, summary),
                value(r["flood_method"]),
                scored(r["predicted_level"], r["predicted_tried"], r["predicted_test"]),
                scored(r["reference_level"], r["reference_tried"], r["reference_test"]),
                f"{r['validated_level']:g}: {100 * r['validated_test']:.2f}",
                "search" if r["searched"] else "the config's list",
            )
        )
    return Table(head, body)
