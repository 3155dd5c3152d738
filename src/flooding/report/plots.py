"""The report's figures, as PNG bytes to embed in the page.

Every figure is drawn from data aggregated in pandas first (means, min and max over seeds),
never from raw rows, so that a grid of millions of metric rows plots in seconds. Figures
are built with matplotlib's object API (no pyplot state, no display needed) in a seaborn
style.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

DPI = 80
PANEL = (3.6, 2.7)  # inches per subplot
# Figures with a legend are at least this wide, so that the legend has room.
MIN_WIDTH = 7.2
LEGEND_INCH_PER_CHAR = 0.075  # "small" legend text at DPI
MAX_COLUMNS = 4
CURVE_PANELS = (
    ("train_loss", "training loss (solid) and mini-batch loss (dashed)"),
    ("test_loss", "test loss"),
    ("grad_norm", "gradient norm"),
    ("flooded_frac", "flooded fraction"),
)
CURVE_METRICS = ("train_loss", "batch_loss", "test_loss", "grad_norm", "flooded_frac")


@dataclass(frozen=True)
class Plot:
    png: bytes
    alt: str  # plain text; the page escapes it
    width: int
    height: int


def _plain(text: object) -> str:
    # A "$" in a dataset name would start matplotlib's mathtext.
    return str(text).replace("$", r"\$")


def _grid(n: int, columns: int = MAX_COLUMNS) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(columns, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(PANEL[0] * ncols, PANEL[1] * nrows), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for unused in axes[n:]:
        unused.set_visible(False)
    return fig, axes[:n]


def _render(fig: Figure, alt: str) -> Plot:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    width, height = (round(v) for v in fig.get_size_inches() * DPI)
    return Plot(buffer.getvalue(), alt, width, height)


def _log_if_wide(ax: Axes, values: pd.Series) -> None:
    """Log scale when the positive values span more than a factor of 20."""
    positive = values[values > 0]
    all_positive = len(positive) > 0 and len(positive) == len(values.dropna())
    if all_positive and positive.max() / positive.min() > 20:
        ax.set_yscale("log")


def _palette(labels: list[str]) -> dict[str, tuple[float, float, float]]:
    colours = sns.color_palette("colorblind", max(len(labels), 1))
    return dict(zip(labels, colours, strict=False))


def _legend(fig: Figure, colours: dict, styles: dict[str, str]) -> None:
    """One legend under the panels: a colour per group, a line style per meaning."""
    handles = [Line2D([], [], color=c, marker="o", markersize=4) for c in colours.values()]
    handles += [Line2D([], [], color="0.3", linestyle=s) for s in styles.values()]
    labels = [_plain(k) for k in (*colours, *styles)]
    # As many columns as the figure's width holds at the longest label, so none is clipped.
    longest = max(len(label) for label in labels)
    fits = int(fig.get_figwidth() / (LEGEND_INCH_PER_CHAR * longest + 0.6))
    ncols = max(1, min(4, len(labels), fits))
    # Room for the legend's rows, so that many groups never squeeze the panels away.
    fig.set_figheight(fig.get_figheight() + 0.25 * math.ceil(len(labels) / ncols))
    fig.legend(
        handles, labels, loc="outside lower center", ncols=ncols, fontsize="small", frameon=False
    )


def chosen_level_plot(chosen: pd.DataFrame, refs: pd.DataFrame) -> Plot | None:
    """RQ2: the chosen b against label noise, one panel per method, a line per block,
    with the reference loss of the Bayes-optimal predictor dotted in the block's colour.

    `chosen` has one row per setting, method, seed and early-stopping choice; `refs` one per
    dataset and label noise (reference.references()). None with a single noise level,
    where a line against noise would be one point; the table says the same.
    """
    if chosen["label_noise"].nunique() < 2:
        return None
    keys = ["flood_method", "dataset", "arch", "early_stopping", "label_noise"]
    means = chosen.groupby(keys, as_index=False)["flood_level"].mean()
    methods = sorted(means["flood_method"].unique())
    blocks = sorted({f"{d} / {a}" for d, a in zip(means["dataset"], means["arch"], strict=True)})
    colours = _palette(blocks)
    styles = {
        "early stopping off": "-",
        "early stopping on": "--",
        "reference loss (nats)": ":",
    }
    lookup = refs.groupby(["dataset", "label_noise"])["reference"].first()
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(methods), columns=2)
        fig.set_figwidth(max(fig.get_figwidth(), MIN_WIDTH))
        for ax, method in zip(axes, methods, strict=True):
            shown = means[means["flood_method"] == method]
            for (dataset, arch, stop), line in shown.groupby(["dataset", "arch", "early_stopping"]):
                ax.plot(
                    line["label_noise"],
                    line["flood_level"],
                    marker="o",
                    markersize=4,
                    linestyle="--" if stop else "-",
                    color=colours[f"{dataset} / {arch}"],
                )
            for (dataset, arch), line in shown.groupby(["dataset", "arch"]):
                noise = sorted(line["label_noise"].unique())
                values = [lookup.get((dataset, n), np.nan) for n in noise]
                ax.plot(noise, values, ":", color=colours[f"{dataset} / {arch}"])
            ax.set(xlabel="label noise", ylabel="chosen b (mean)", title=_plain(method))
        _legend(fig, colours, styles)
    return _render(fig, "Chosen flood level and reference loss against label noise")


def accuracy_vs_level_plot(runs: pd.DataFrame) -> Plot:
    """RQ2: final validation (dashed) and test (solid) accuracy against b, per block.

    `runs` come from stats.by_method(); means over seeds and the other settings.
    """
    keys = ["dataset", "arch", "flood_method", "label_noise", "flood_level"]
    means = runs.groupby(keys, as_index=False)[["final_val_acc", "final_test_acc"]].mean()
    panels = list(means.groupby(["dataset", "arch", "flood_method"], sort=True))
    noises = sorted(means["label_noise"].unique())
    colours = _palette([f"label noise {n:g}" for n in noises])
    styles = {"test (clean labels)": "-", "validation (noisy labels)": "--"}
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(panels))
        for ax, ((dataset, arch, method), panel) in zip(axes, panels, strict=True):
            for noise, line in panel.groupby("label_noise"):
                colour = colours[f"label noise {noise:g}"]
                ax.plot(
                    line["flood_level"],
                    100 * line["final_test_acc"],
                    "-o",
                    color=colour,
                    markersize=3,
                )
                ax.plot(line["flood_level"], 100 * line["final_val_acc"], "--", color=colour)
            ax.set(
                xlabel="flood level b",
                ylabel="accuracy (%)",
                title=_plain(f"{dataset} / {arch} / {method}"),
            )
        _legend(fig, colours, styles)
    return _render(fig, "Validation and test accuracy against the flood level")


def curves_plot(
    curves: pd.DataFrame,
    levels: dict[str, float],
    title: str,
    turns: dict[str, tuple[int, int, int]] | None = None,
) -> Plot:
    """RQ4: learning curves of one setting, a line per `line` label (mean, min-max band).

    `curves` holds the metrics of the drawn runs with a `line` column; `levels` maps each
    line to its flood level, drawn as a dotted reference on the training-loss panel;
    `turns` maps a line with a double descent to the epochs of its turns, marked on the
    test-loss panel.
    """
    turns = turns or {}
    summary = curves.groupby(["line", "epoch"])[list(CURVE_METRICS)].agg(["mean", "min", "max"])
    drawn = set(summary.index.get_level_values("line"))
    lines = sorted(drawn, key=lambda label: (levels[label] > 0, label))
    colours = _palette(lines)
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(CURVE_PANELS))
        for ax, (metric, label) in zip(axes, CURVE_PANELS, strict=True):
            for line in lines:
                _band(ax, summary.loc[line], metric, colours[line], _plain(line))
                if metric == "train_loss":
                    _band(ax, summary.loc[line], "batch_loss", colours[line], None, "--")
                    if levels[line] > 0:
                        ax.axhline(levels[line], color=colours[line], linestyle=":", linewidth=1)
                if metric == "test_loss" and line in turns:
                    mean = summary.loc[line][(metric, "mean")]
                    epochs = [e for e in turns[line] if e in mean.index]
                    ax.plot(epochs, mean.loc[epochs], "v", color=colours[line], markersize=7)
            shown = summary.xs("mean", axis=1, level=1)[metric]
            if metric in ("train_loss", "test_loss", "grad_norm"):
                _log_if_wide(ax, shown)
            ax.set(xlabel="epoch", title=label)
        if axes[0].get_legend_handles_labels()[0]:
            axes[0].legend(fontsize="small")
        fig.suptitle(_plain(title))
    return _render(fig, f"Learning curves: {title}")


def _band(
    ax: Axes,
    data: pd.DataFrame,
    metric: str,
    colour: tuple[float, float, float],
    label: str | None,
    style: str = "-",
) -> None:
    """The mean over seeds as a line, the range from the lowest to the highest as a band."""
    epochs = data.index.to_numpy()
    mean = data[(metric, "mean")].to_numpy(dtype=float)
    if np.isnan(mean).all():
        return
    ax.plot(epochs, mean, style, color=colour, label=label, linewidth=1.5)
    ax.fill_between(
        epochs, data[(metric, "min")], data[(metric, "max")], color=colour, alpha=0.15, linewidth=0
    )
