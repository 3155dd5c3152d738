"""The flooding methods side by side (RQ1), and AdaFlood's per-sample levels.

`methods_table`: per setting, each method's test accuracy with its level chosen by
validation (the rows of stats.compare), next to b = 0, the best in bold, so that a reader
sees which method wins where. `level_means` and `levels_plot`: the levels b_i that
AdaFlood's held-out losses give the training samples (results/aux_losses.parquet), split by
clean and flipped labels, at each gamma the grid ran (docs/adaflood.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from flooding.methods import METHODS
from flooding.report import plots, settings
from flooding.report.tables import Cell, Row, Table, accuracy, cells

# What one gathered loss belongs to: the setting columns that the report names a panel by.
AUX_KEYS = ("dataset", "label_noise", "arch")


def methods_table(comparison: pd.DataFrame) -> Table:
    """Each method's mean test accuracy (b, or gamma, chosen per seed by validation) per
    setting and early-stopping choice, with b = 0; the best of each row in bold."""
    methods = [m for m in METHODS if m in set(comparison["flood_method"])]
    shown = ["dataset", "arch", *settings.varying(comparison, skip=("dataset", "arch"))]
    head = [[Cell(settings.label(c)) for c in shown] + cells("early stopping", "b = 0", *methods)]
    body: list[Row] = []
    for key, rows in comparison.groupby([*shown, "early_stopping"], sort=True):
        first = rows.iloc[0]
        n = int(first["n_pairs"])
        means = {"b = 0": (first["baseline_mean"], first["baseline_std"])}
        for _, r in rows.iterrows():
            if r["has_flooding"]:
                means[r["flood_method"]] = (r["flooded_mean"], r["flooded_std"])
        scored = {k: v[0] for k, v in means.items() if not math.isnan(v[0])}
        best = max(scored, key=scored.get) if scored else None
        dataset = str(first["dataset"])
        row = [Cell(settings.value(v, c, dataset)) for c, v in zip(shown, key[:-1], strict=True)]
        row.append(Cell("on" if key[-1] else "off"))
        for name in ("b = 0", *methods):
            if name not in means:
                row.append(Cell("n/a", css="muted"))
                continue
            text = accuracy(*means[name], n)
            row.append(Cell(text, css="better" if name == best else ""))
        body.append(row)
    caption = (
        "Test accuracy (%) of each method with its level chosen per seed by validation (b for "
        "flood and iflood, gamma for adaflood), mean ± standard deviation over the paired "
        "seeds; the best of each row in bold. The tests are in the table above."
    )
    return Table(head, body, css="results", caption=caption)


def _levels(loss: np.ndarray, gamma: float, alpha: float, beta: float) -> np.ndarray:
    # flooding.flood.adaflood_levels, in numpy: the report does not import torch.
    return -np.log((1 - gamma) * np.exp(-(alpha * loss + beta)) + gamma)


def sample_levels(aux: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Each training sample's level at each (gamma, alpha, beta) of the adaflood runs of
    its dataset, noise and architecture: the held-out rows with `gamma`, `level` and
    `flipped` (label trained on != clean label)."""
    if aux.empty:
        return pd.DataFrame(columns=[*AUX_KEYS, "gamma", "level", "flipped"])
    ada = summary[summary["flood_method"] == "adaflood"]
    params = ada[[*AUX_KEYS, "adaflood_gamma", "adaflood_alpha", "adaflood_beta"]]
    frames = []
    for values, group in params.drop_duplicates().groupby(
        ["adaflood_gamma", "adaflood_alpha", "adaflood_beta"]
    ):
        gamma, alpha, beta = values
        rows = aux.merge(group[list(AUX_KEYS)], on=list(AUX_KEYS))
        level = _levels(rows["loss"].to_numpy(), gamma, alpha, beta)
        frames.append(rows.assign(gamma=gamma, level=level))
    if not frames:
        return pd.DataFrame(columns=[*AUX_KEYS, "gamma", "level", "flipped"])
    levels = pd.concat(frames, ignore_index=True)
    return levels.assign(flipped=levels["label"] != levels["clean_label"])


def level_means(levels: pd.DataFrame) -> pd.DataFrame:
    """Mean level of clean and of flipped samples per setting and gamma, with counts."""
    keys = [*AUX_KEYS, "gamma"]
    grouped = levels.groupby([*keys, "flipped"])["level"].agg(["mean", "size"]).reset_index()
    return grouped.pivot_table(index=keys, columns="flipped", values=["mean", "size"])


def levels_plot(levels: pd.DataFrame) -> list[plots.Plot]:
    """A panel per dataset, noise and architecture: the levels' distribution at each gamma,
    clean samples beside flipped ones."""
    panels = []
    clean, flipped = "#009E73", "#D55E00"  # Okabe-Ito colours no other role uses
    with plots._style():
        for key, group in levels.groupby(list(AUX_KEYS), sort=True):
            fig, ax = plots._panel()
            gammas = sorted(group["gamma"].unique())
            texts = []
            for i, gamma in enumerate(gammas):
                at = group[group["gamma"] == gamma]
                for offset, is_flipped, colour in ((-0.18, False, clean), (0.18, True, flipped)):
                    values = at.loc[at["flipped"] == is_flipped, "level"].to_numpy()
                    if len(values) == 0:
                        continue
                    box = ax.boxplot(
                        values,
                        positions=[i + offset],
                        widths=0.3,
                        showfliers=False,
                        patch_artist=True,
                        medianprops={"color": "black"},
                    )
                    box["boxes"][0].set_facecolor(colour)
                    ax.plot([i + offset], [values.mean()], "o", color="white", mec="black")
                    kind = "flipped" if is_flipped else "clean"
                    texts.append(f"gamma {gamma:g} {kind} mean {values.mean():.3f}")
            ax.set_xticks(range(len(gammas)), [f"γ {g:g}" for g in gammas])
            ax.set_ylabel("level b_i (nats)")
            dataset, noise, arch = key
            ax.set_title(plots._plain(f"{dataset}, noise {noise:g}, {arch}"), fontsize=10)
            ax.legend(
                handles=[
                    Patch(color=clean, label="clean label"),
                    Patch(color=flipped, label="flipped label"),
                ],
                fontsize=8,
                loc="upper right",
            )
            alt = f"AdaFlood levels, {dataset}, noise {noise:g}, {arch}: " + "; ".join(texts)
            panels.append(plots._render(fig, alt))
    return panels


def levels_table(levels: pd.DataFrame) -> Table:
    """The figure's means: clean against flipped samples, per setting and gamma."""
    means = level_means(levels)
    head = [
        cells("dataset", "label noise", "arch", "gamma", "clean: mean b_i", "flipped: mean b_i")
    ]
    body = []
    for key, row in means.iterrows():
        dataset, noise, arch, gamma = key
        texts = []
        for is_flipped in (False, True):
            mean = row.get(("mean", is_flipped), math.nan)
            size = row.get(("size", is_flipped), math.nan)
            texts.append("n/a" if pd.isna(mean) else f"{mean:.3f} ({int(size)} samples)")
        body.append(cells(str(dataset), f"{noise:g}", str(arch), f"{gamma:g}", *texts))
    return Table(head, body, css="results")
