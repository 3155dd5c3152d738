"""The report's figures, as SVG panels to embed in the page.

Every figure is drawn from data aggregated in pandas first (means, min and max over seeds),
never from raw rows, so that a grid of millions of metric rows plots in seconds. Figures
are built with matplotlib's object API (no pyplot state, no display needed) in a seaborn
style.

A figure is a list of panels, one image each, so that the page can lay them out side by
side on a desktop and one per row on a phone, each at a readable size. SVG keeps text and
lines sharp at any zoom; text stays text (not paths), so the files stay small. Colours
have one meaning across the page (COLOURS): the same colour is always the same role.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

# Each panel's size: inches at PX_PER_INCH, so 450 x 320 px at its natural size.
PANEL = (4.5, 3.2)
PX_PER_INCH = 100
FONT_SIZE = 10  # points of the SVG, about 11 px at the natural size
MARGINS = {"left": 0.15, "right": 0.97, "bottom": 0.15, "top": 0.9}
CURVE_PANELS = (
    ("train_loss", "training loss (solid) and mini-batch loss (dashed)"),
    ("test_loss", "test loss"),
    ("grad_norm", "gradient norm"),
    ("flooded_frac", "flooded fraction"),
)
TEST_LOSS_PANEL = (("test_loss", "test loss"),)
CURVE_METRICS = ("train_loss", "batch_loss", "test_loss", "grad_norm", "flooded_frac")

# One colour per meaning on the whole page (Okabe-Ito, readable with colour blindness).
B0 = "b = 0"
VALIDATED = "validated b"
LARGEST = "largest b"
REFERENCE = "reference loss"
COLOURS = {
    B0: "#000000",
    VALIDATED: "#0072B2",
    LARGEST: "#D55E00",
    REFERENCE: "#999999",
}
# Label-noise levels, light to dark, in a hue no role above uses.
NOISE_PALETTE = "ch:s=.9,rot=-.4,light=.75,dark=.2"


@dataclass(frozen=True)
class Plot:
    svg: bytes
    alt: str  # plain text; the page escapes it
    width: int  # pixels at the natural size
    height: int


def _plain(text: object) -> str:
    # A "$" in a dataset name would start matplotlib's mathtext.
    return str(text).replace("$", r"\$")


def _panel() -> tuple[Figure, Axes]:
    # Fixed margins, not a layout engine: every panel has the same size and labels, and
    # measuring each text to lay it out would double the cost of a report of many panels.
    fig = Figure(figsize=PANEL, dpi=PX_PER_INCH)
    fig.subplots_adjust(**MARGINS)
    return fig, fig.subplots()


def _render(fig: Figure, alt: str) -> Plot:
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "flooding"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    width, height = (round(v) for v in fig.get_size_inches() * PX_PER_INCH)
    return Plot(buffer.getvalue(), alt, width, height)


def _style():
    return sns.axes_style("whitegrid", {"font.size": FONT_SIZE})


def _log_if_wide(ax: Axes, values: pd.Series) -> None:
    """Log scale when the positive values span more than a factor of 20."""
    positive = values[values > 0]
    all_positive = len(positive) > 0 and len(positive) == len(values.dropna())
    if all_positive and positive.max() / positive.min() > 20:
        ax.set_yscale("log")
        # Plain numbers (0.01, 0.1, 1): the default 10^-2 labels go through mathtext, the
        # slowest part of drawing a panel.
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def noise_colours(noises: list[float]) -> dict[float, tuple[float, float, float]]:
    colours = sns.color_palette(NOISE_PALETTE, max(len(noises), 1))
    return dict(zip(noises, colours, strict=False))


def chosen_level_plot(chosen: pd.DataFrame, refs: pd.DataFrame) -> list[Plot]:
    """RQ2: the mean chosen b against label noise, a panel per dataset and architecture
    (methods in shades of the validated b's colour), with the reference loss of the
    Bayes-optimal predictor.

    `chosen` has one row per setting, method, seed and early-stopping choice; `refs` one per
    dataset and label noise (reference.references()). Empty with a single noise level,
    where a line against noise would be one point; the table says the same.
    """
    if chosen["label_noise"].nunique() < 2:
        return []
    keys = ["dataset", "arch", "flood_method", "early_stopping", "label_noise"]
    means = chosen.groupby(keys, as_index=False)["flood_level"].mean()
    methods = sorted(means["flood_method"].unique())
    lookup = refs.groupby(["dataset", "label_noise"])["reference"].first()
    plots = []
    for (dataset, arch), block in means.groupby(keys[:2], sort=True):
        with _style():
            fig, ax = _panel()
            for (method, stop), line in block.groupby(["flood_method", "early_stopping"]):
                ax.plot(
                    line["label_noise"],
                    line["flood_level"],
                    "--o" if stop else "-o",
                    markersize=4,
                    color=line_colour(VALIDATED, methods.index(method)),
                    label=f"{method}, early stopping {'on' if stop else 'off'}",
                )
            noise = sorted(block["label_noise"].unique())
            values = [lookup.get((dataset, n), np.nan) for n in noise]
            ax.plot(noise, values, ":", color=COLOURS[REFERENCE], label="reference loss (nats)")
            ax.set(xlabel="label noise", ylabel="chosen b (mean over seeds)")
            ax.set_title(_plain(f"{dataset} / {arch}"))
            ax.legend(fontsize="small")
        plots.append(_render(fig, f"Chosen b against label noise: {dataset} / {arch}"))
    return plots


def accuracy_vs_level_plot(runs: pd.DataFrame) -> list[Plot]:
    """RQ2: final validation (dashed) and test (solid) accuracy against b, a panel per
    dataset, architecture and method, a colour per label noise.

    `runs` come from stats.by_method(); means over seeds and the other settings.
    """
    keys = ["dataset", "arch", "flood_method", "label_noise", "flood_level"]
    means = runs.groupby(keys, as_index=False)[["final_val_acc", "final_test_acc"]].mean()
    colours = noise_colours(sorted(means["label_noise"].unique()))
    plots = []
    for (dataset, arch, method), panel in means.groupby(keys[:3], sort=True):
        with _style():
            fig, ax = _panel()
            for noise, line in panel.groupby("label_noise"):
                colour = colours[noise]
                ax.plot(
                    line["flood_level"],
                    100 * line["final_test_acc"],
                    "-o",
                    color=colour,
                    markersize=3,
                    label=f"noise {noise:g}: test (clean)",
                )
                ax.plot(
                    line["flood_level"],
                    100 * line["final_val_acc"],
                    "--",
                    color=colour,
                    label=f"noise {noise:g}: validation (noisy)",
                )
            ax.set(xlabel="flood level b", ylabel="accuracy (%)")
            ax.set_title(_plain(f"{dataset} / {arch} / {method}"))
            ax.legend(fontsize="x-small", ncols=2 if len(colours) > 2 else 1)
        alt = f"Validation and test accuracy against b: {dataset} / {arch} / {method}"
        plots.append(_render(fig, alt))
    return plots


def line_colour(role: str, method_index: int) -> tuple[float, float, float]:
    """The role's colour; a second method's lines in a lighter shade of it."""
    base = np.array(matplotlib.colors.to_rgb(COLOURS[role]))
    lighter = base + (1.0 - base) * min(0.45 * method_index, 0.8)
    return tuple(float(v) for v in lighter)  # type: ignore[return-value]


def curves_plot(
    curves: pd.DataFrame,
    lines: pd.DataFrame,
    title: str,
    turns: dict[str, tuple[int, int, int]] | None = None,
    panels: tuple[tuple[str, str], ...] = CURVE_PANELS,
) -> list[Plot]:
    """RQ4: learning curves of one setting, a panel per metric, a line per `line` label
    (mean over seeds, band from the lowest to the highest seed).

    `curves` holds the metrics of the drawn runs with a `line` column; `lines` has one row
    per line: `line`, `role` (a key of COLOURS), `method_index`, `flood_level` (drawn as
    a dotted reference on the training-loss panel); `turns` maps a line with a double
    descent to the epochs of its turns, marked ▼ on the test-loss panel.
    """
    turns = turns or {}
    summary = curves.groupby(["line", "epoch"])[list(CURVE_METRICS)].agg(["mean", "min", "max"])
    drawn = set(summary.index.get_level_values("line"))
    order = lines[lines["line"].isin(drawn)].drop_duplicates("line")
    plots = []
    for index, (metric, label) in enumerate(panels):
        with _style():
            fig, ax = _panel()
            for _, line in order.iterrows():
                name = line["line"]
                colour = line_colour(line["role"], int(line["method_index"]))
                data = summary.loc[name]
                _band(ax, data, metric, colour, _plain(name))
                if metric == "train_loss":
                    _band(ax, data, "batch_loss", colour, None, "--")
                    if line["flood_level"] > 0:
                        ax.axhline(line["flood_level"], color=colour, linestyle=":", linewidth=1)
                if metric == "test_loss" and name in turns:
                    mean = data[(metric, "mean")]
                    epochs = [e for e in turns[name] if e in mean.index]
                    ax.plot(epochs, mean.loc[epochs], "v", color=colour, markersize=8)
            if metric in ("train_loss", "test_loss", "grad_norm"):
                _log_if_wide(ax, summary.xs("mean", axis=1, level=1)[metric])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set(xlabel="epoch")
            ax.set_title(_plain(label), fontsize="medium")
            if index == 0 and ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
        plots.append(_render(fig, f"{label}: {title}"))
    return plots


@dataclass(frozen=True)
class DescentPanel:
    """One small test-loss panel of descent_grid(): a setting's curves and turns."""

    curves: pd.DataFrame  # metrics of its drawn runs, with a `line` column
    lines: pd.DataFrame  # as for curves_plot()
    name: str
    turns: dict[str, tuple[int, int, int]]


def descent_grid(panels: list[DescentPanel], title: str) -> Plot:
    """RQ4: the test loss of several settings as small panels of one image, two a row,
    axes shared so that only the outer ones carry tick labels (text is most of the cost
    of drawing a panel, and a grid may find a double descent in dozens of settings).

    Per setting: b = 0 and each method's validated b (the lines the detector tested),
    mean over seeds with the range as a band, ▼ on the turns it found.
    """
    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    row_inches, margin_inches = 1.9, 0.9
    height = margin_inches + row_inches * nrows
    with _style():
        fig = Figure(figsize=(PANEL[0], height), dpi=PX_PER_INCH)
        fig.subplots_adjust(
            left=0.14,
            right=0.98,
            bottom=0.55 / height,
            top=1 - 0.35 / height,
            hspace=0.55,
            wspace=0.08,
        )
        axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
        for ax, panel in zip(axes, panels, strict=False):
            means = panel.curves.groupby(["line", "epoch"])["test_loss"].agg(["mean", "min", "max"])
            tested = panel.lines[panel.lines["role"].isin((B0, VALIDATED))]
            for _, line in tested.drop_duplicates("line").iterrows():
                if line["line"] not in means.index.get_level_values("line"):
                    continue
                data = means.loc[line["line"]]
                colour = line_colour(line["role"], int(line["method_index"]))
                ax.plot(data.index, data["mean"], color=colour, linewidth=1.2)
                ax.fill_between(
                    data.index, data["min"], data["max"], color=colour, alpha=0.15, linewidth=0
                )
                if line["line"] in panel.turns:
                    epochs = [e for e in panel.turns[line["line"]] if e in data.index]
                    ax.plot(epochs, data.loc[epochs, "mean"], "v", color=colour, markersize=6)
            ax.set_title(_plain(panel.name), fontsize="x-small")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
            ax.label_outer()
        for unused in axes[len(panels) :]:
            unused.set_visible(False)
        fig.supxlabel("epoch", fontsize="small")
        fig.supylabel("test loss", fontsize="small")
    return _render(fig, f"Test loss where a double descent was found: {title}")


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
