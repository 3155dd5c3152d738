"""Warnings about the grid and the double-descent detector.

- Edge of the grid: a b chosen at the grid's largest level may be short of the best one,
  and a b chosen at the smallest level b > 0 may be above it; the cell is flagged and the
  levels to add are named (the grid's last step continued upwards, half the smallest level
  downwards).
- Too few epochs: a run whose best validation accuracy is at its last epoch was still
  improving, so early stopping had nothing to stop.
- Double descent (RQ4): on a mean test-loss curve, a minimum, then a rise of at least
  TURN of that minimum, then a fall of at least TURN of the peak that lasts: the curve
  ends at least that far below the peak. A wiggle on a curve that keeps climbing (as an
  overfitting b = 0 run's does) is no second descent. Relative changes, so the same
  threshold serves every loss scale; 5 % is well above the epoch-to-epoch noise of a mean
  over seeds, and well below the rises the paper shows. The curve is first smoothed by a
  running median over three epochs, so a one-epoch spike (one bad step of one seed lifts
  the mean for an epoch) is no peak, while a rise that lasts two epochs or more is kept.
- Levels that did nothing: a flood level whose runs never flooded (flooded fraction 0 at
  every epoch of every run) trained exactly as b = 0 did, and a level at or above the
  untrained loss (ln C, or the b = 0 runs' loss before the first step if lower) pushes
  the loss up from the start instead of holding it at b. Neither is a candidate for the
  choice of b (idle_levels()).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flooding.data.registry import DATASETS
from flooding.report.stats import SETTING_COLUMNS, completed, validated_levels
from flooding.search import untrained_loss

TURN = 0.05
NEVER_ENGAGED = "never engaged"
AT_UNTRAINED_LOSS = "at or above the untrained loss"


@dataclass(frozen=True)
class DoubleDescent:
    """The turns of a test-loss curve: epochs of the first minimum, the peak, the second."""

    first_minimum: int
    peak: int
    second_minimum: int
    rise: float  # peak / first minimum - 1
    fall: float  # 1 - loss at the last epoch / peak: how far the second descent lasts


def double_descent(
    epochs: np.ndarray, loss: np.ndarray, turn: float = TURN
) -> DoubleDescent | None:
    """The largest rise-then-fall of `loss` over `epochs` that passes `turn`, or None.

    NaN epochs are skipped, and the rest is smoothed by `running_median`. Every epoch is
    then a candidate peak: its rise is measured from the lowest loss before it, its fall
    to the loss at the last epoch (a second descent that lasts); the candidate with the
    largest rise among those passing both thresholds is returned, with the lowest point
    after it as the second minimum. Rise and fall are those of the smoothed curve.
    """
    keep = ~np.isnan(loss)
    epochs, loss = np.asarray(epochs)[keep], np.asarray(loss, dtype=float)[keep]
    if len(loss) < 3:
        return None
    loss = running_median(loss)
    before = np.minimum.accumulate(loss)[:-2]  # lowest up to each epoch, peaks at 1..n-2
    peaks = loss[1:-1]
    rise = peaks / before - 1.0
    fall = 1.0 - loss[-1] / peaks
    passing = (rise >= turn) & (fall >= turn)
    if not passing.any():
        return None
    index = int(np.argmax(np.where(passing, rise, -np.inf))) + 1
    first = int(np.argmin(loss[:index]))
    second = index + 1 + int(np.argmin(loss[index + 1 :]))
    return DoubleDescent(
        int(epochs[first]),
        int(epochs[index]),
        int(epochs[second]),
        float(rise[index - 1]),
        float(fall[index - 1]),
    )


def running_median(values: np.ndarray) -> np.ndarray:
    """Each inner value replaced by the median of itself and its two neighbours.

    The first and last values stay as they are: a median over two would be their mean,
    which would carry a spike at the second-to-last epoch into the last one.
    """
    smoothed = values.copy()
    smoothed[1:-1] = np.median(np.stack([values[:-2], values[1:-1], values[2:]]), axis=0)
    return smoothed


def edge_of_grid(runs: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """Per setting, method and early-stopping choice: the seeds whose b is on an edge.

    `runs` from stats.by_method(), `chosen` from stats.chosen_levels(). Columns: the
    setting columns, `flood_method`, `early_stopping`, `at_top`, `at_bottom` (seed counts,
    only rows with one of them > 0) and `advice` (the levels to add).
    """
    keys = [*SETTING_COLUMNS, "flood_method"]
    flooded = runs[runs["flood_level"] > 0]
    grid = flooded.groupby(keys, dropna=False)["flood_level"].agg(lambda s: sorted(set(s)))
    grid = grid.rename("levels").reset_index()
    marked = chosen.merge(grid, on=keys)
    top = [
        b == levels[-1] for b, levels in zip(marked["flood_level"], marked["levels"], strict=True)
    ]
    bottom = [
        len(levels) > 1 and b == levels[0]
        for b, levels in zip(marked["flood_level"], marked["levels"], strict=True)
    ]
    marked = marked.assign(at_top=top, at_bottom=bottom)
    cells = marked.groupby([*keys, "early_stopping"], dropna=False, as_index=False).agg(
        at_top=("at_top", "sum"), at_bottom=("at_bottom", "sum"), levels=("levels", "first")
    )
    cells = cells[(cells["at_top"] > 0) | (cells["at_bottom"] > 0)]
    advice = [
        _advice(levels, bool(t), bool(b))
        for levels, t, b in zip(cells["levels"], cells["at_top"], cells["at_bottom"], strict=True)
    ]
    return cells.assign(advice=advice).drop(columns="levels").reset_index(drop=True)


def _advice(levels: list[float], top: bool, bottom: bool) -> str:
    parts = []
    if top:
        step = levels[-1] - levels[-2] if len(levels) > 1 else levels[-1]
        above = [levels[-1] + step, levels[-1] + 2 * step]
        parts.append("add b = " + ", ".join(f"{v:.3g}" for v in above) + " above the grid")
    if bottom:
        parts.append(f"add b = {levels[0] / 2:.3g} between 0 and the smallest level")
    return "; ".join(parts)


def unfinished_training(summary: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and architecture: completed runs whose best epoch is their last one.

    Columns: `dataset`, `arch`, `at_last` (runs), `runs` (completed runs), `epochs` (the
    largest epoch count among those runs). Only blocks with at_last > 0.
    """
    done = summary[summary["status"] == "completed"]
    last = done["best_epoch"].astype("Float64") == done["epochs_completed"]
    rows = done.assign(at_last=last.fillna(False).astype(bool))
    table = rows.groupby(["dataset", "arch"], as_index=False).agg(
        at_last=("at_last", "sum"), runs=("at_last", "size"), epochs=("epochs", "max")
    )
    return table[table["at_last"] > 0].reset_index(drop=True)


def descent_table(metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The detector on every setting and method, for b = 0 and for the validated b.

    `runs` from stats.by_method(); the validated b is the level with the best mean final
    validation accuracy over seeds (stats.validated_levels()), so that one mean curve
    stands for it. Columns: the setting columns, `flood_method`, `flood_level` (0 or the
    validated b), then the DoubleDescent fields (NaN where none was found) and `found`.
    """
    keys = [*SETTING_COLUMNS, "flood_method"]
    best = validated_levels(runs[runs["flood_level"] > 0])
    base = runs[runs["flood_level"] == 0].merge(best[keys].drop_duplicates(), on=keys)
    drawn = pd.concat([base, runs.merge(best, on=[*keys, "flood_level"])], ignore_index=True)
    line_keys = [*keys, "flood_level"]
    lines = drawn[[*line_keys, "run_dir"]]
    drawn_metrics = metrics.loc[
        metrics["run_dir"].isin(lines["run_dir"]), ["run_dir", "epoch", "test_loss"]
    ]
    curves = drawn_metrics.merge(lines, on="run_dir")
    means = curves.groupby([*line_keys, "epoch"], dropna=False)["test_loss"].mean()
    rows = []
    for key, curve in means.groupby(level=list(range(len(line_keys))), dropna=False):
        epochs = curve.index.get_level_values("epoch").to_numpy()
        found = double_descent(epochs, curve.to_numpy(dtype=float))
        record = dict(zip(line_keys, key, strict=True))
        if found is None:
            rows.append({**record, "found": False})
        else:
            rows.append({**record, "found": True, **found.__dict__})
    columns = [*line_keys, "found", *DoubleDescent.__dataclass_fields__]
    return pd.DataFrame(rows, columns=columns)


def idle_levels(metrics: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Flood levels b > 0 that cannot have done what flooding does, per setting and method.

    Never engaged: every completed run of the level has a flooded fraction of 0 at every
    epoch that recorded one. At or above the untrained loss: b >= the lower of ln C and the
    mean training loss of the setting's b = 0 runs at epoch 0 (before the first step).
    Columns: the setting columns, `flood_method`, `flood_level`, `reason` (the first that
    applies), `untrained_loss`, `runs`.
    """
    keys = [*SETTING_COLUMNS, "flood_method", "flood_level"]
    done = completed(summary)
    flooded = done[done["flood_level"] > 0]
    columns = [*keys, "reason", "untrained_loss", "runs"]
    if flooded.empty:
        return pd.DataFrame(columns=columns)
    recorded = metrics.dropna(subset=["flooded_frac"]).groupby("run_dir")["flooded_frac"].max()
    engaged = flooded["run_dir"].map(recorded)  # NaN: nothing recorded, no evidence either way
    start = metrics.loc[metrics["epoch"] == 0, ["run_dir", "train_loss"]]
    base = done[done["flood_level"] == 0].merge(start, on="run_dir")
    starts = base.groupby(list(SETTING_COLUMNS), dropna=False)["train_loss"].agg(list)
    levels = (
        flooded.assign(engaged=engaged)
        .groupby(keys, dropna=False, as_index=False)
        .agg(peak=("engaged", "max"), runs=("run_dir", "size"))
    )
    rows = []
    for record in levels.to_dict("records"):
        setting = tuple(record[c] for c in SETTING_COLUMNS)
        spec = DATASETS.get(str(record["dataset"]))
        losses = starts[setting] if setting in starts.index else []
        # The search's upper end, for a dataset of the registry; else the runs' start.
        if spec is not None:
            ceiling = untrained_loss(spec.num_classes, losses)
        else:
            ceiling = float(np.nanmean(losses)) if losses else np.nan
        if record["peak"] == 0:
            reason = NEVER_ENGAGED
        elif record["flood_level"] >= ceiling:
            reason = AT_UNTRAINED_LOSS
        else:
            continue
        rows.append(
            {
                **{k: record[k] for k in keys},
                "reason": reason,
                "untrained_loss": ceiling,
                "runs": record["runs"],
            }
        )
    return pd.DataFrame(rows, columns=columns)
