"""The sections answering RQ2 (choosing b) and RQ4 (curves, double descent, flatness)."""

from __future__ import annotations

import pandas as pd

from flooding.report import answer_tables, diagnostics, plots, reference, stats
from flooding.report.analysis import Analysis
from flooding.report.parts import Part, Section, figure
from flooding.report.settings import describe
from flooding.report.settings import varying as varying_settings


def levels(a: Analysis) -> Section:
    title = "RQ2: choosing the flood level"
    if a.chosen.empty:
        return Section(
            "rq2", "RQ2", title, [Part(paragraphs=["No setting has completed flooded runs."])]
        )
    intro = [
        "The flood level chosen by validation accuracy for each seed, summarised over seeds and "
        "the other settings, against label noise, beside the reference loss: the expected "
        "cross-entropy of the Bayes-optimal predictor on the noisy training labels, the level "
        "below which the training loss can only fall by fitting noise. For the two Gaussians it "
        "is computed exactly from the Bayes error and the noise rate; for other datasets, taken "
        "as noise-free before the flips, it is the entropy of the symmetric flips, "
        "H(p) + p·log(C−1) for C classes (a lower bound, exact if the clean problem is "
        "separable)."
    ]
    intro += _tracking(a)
    figures = []
    plot = plots.chosen_level_plot(a.chosen, a.refs)
    if plot is None:
        intro.append(
            "One label-noise level only: no figure against noise; the table gives the chosen b."
        )
    else:
        figures.append(
            figure(
                plot,
                "Mean chosen b against label noise; solid: early stopping off, dashed: on; "
                "dotted: the reference loss.",
            )
        )
    figures.append(
        figure(
            plots.accuracy_vs_level_plot(a.runs),
            "Final validation accuracy (dashed, on noisy labels) and test accuracy (solid, "
            "clean labels) against b, mean over seeds and the other settings.",
        )
    )
    table = answer_tables.chosen_level_table(a.chosen, a.refs)
    return Section("rq2", "RQ2", title, [Part(paragraphs=intro, tables=[table], figures=figures)])


def _tracking(a: Analysis) -> list[str]:
    off = a.chosen[~a.chosen["early_stopping"].astype(bool)]
    refs = a.refs.groupby(["dataset", "label_noise"])["reference"].first()
    edged = set(zip(a.edges["dataset"], a.edges["arch"], a.edges["flood_method"], strict=True))
    sentences = []
    for (dataset, arch, method), block in off.groupby(
        ["dataset", "arch", "flood_method"], sort=True
    ):
        means = block.groupby("label_noise")["flood_level"].mean().sort_index()
        values = pd.Series([refs.get((dataset, n), float("nan")) for n in means.index])
        name = f"{dataset} / {arch} / {method}"
        if values.isna().any():
            sentences.append(f"{name}: no reference loss is known for this dataset.")
            continue
        text = reference.tracking_sentence(
            name, pd.Series(means.index), means.reset_index(drop=True), values
        )
        if (dataset, arch, method) in edged:
            text += (
                " Some of these choices sit on the grid's edge (see the warnings), so the "
                "trend is a bound."
            )
        sentences.append(text)
    return sentences


def curves(a: Analysis) -> Section:
    title = "RQ4: learning curves, double descent, flatness, gradient norm"
    drawn = stats.curve_runs(a.kept)
    if drawn.empty:
        return Section("rq4", "RQ4", title, [Part(paragraphs=["No completed runs."])])
    columns = ["run_dir", "epoch", *plots.CURVE_METRICS]
    rows = a.metrics.loc[a.metrics["run_dir"].isin(drawn["run_dir"]), columns]
    rows = rows.merge(drawn[["run_dir", "dataset", "arch", "line", "flood_level"]], on="run_dir")
    figures = []
    for (dataset, arch), block in rows.groupby(["dataset", "arch"], sort=True):
        picked = drawn[(drawn["dataset"] == dataset) & (drawn["arch"] == arch)]
        grid = a.summary[(a.summary["dataset"] == dataset) & (a.summary["arch"] == arch)]
        setting = describe(picked.iloc[0], varying_settings(grid, skip=stats.BLOCK_COLUMNS))
        levels = dict(zip(picked["line"], picked["flood_level"], strict=False))
        turns = {}
        for line, curve in block.groupby("line"):
            mean = curve.groupby("epoch")["test_loss"].mean()
            found = diagnostics.double_descent(mean.index.to_numpy(), mean.to_numpy(dtype=float))
            if found is not None:
                turns[line] = (found.first_minimum, found.peak, found.second_minimum)
        name = f"{dataset} / {arch}" + (f" ({setting})" if setting else "")
        figures.append(
            figure(
                plots.curves_plot(block, levels, name, turns),
                f"{name}: mean over seeds, band from the lowest to the highest seed; dotted "
                "lines mark b; ▼ on the test loss marks the turns of a double descent.",
            )
        )
    intro = (
        "Per dataset and architecture, at the highest label noise (where the double descent "
        "shows), the setting with the fewest other regularisers: ordinary training (b = 0) "
        "against flooding at the level b > 0 with the best mean final validation accuracy and "
        "at the largest b of the grid. With flooding the training loss (evaluation pass, labels "
        "trained on) and the mini-batch loss hover at b instead of falling to zero. The flooded "
        "fraction is the share of mini-batches (flood) or samples (iflood) whose loss was "
        "below b, so that the update climbed."
    )
    detector = (
        "Double descent, per setting: the detector looks at the mean test-loss curve over seeds, "
        "smoothed by a running median over three epochs so that a one-epoch spike is no peak, "
        f"for a minimum, a rise of at least {100 * diagnostics.TURN:g} % above it and a fall of "
        f"at least {100 * diagnostics.TURN:g} % below the peak that lasts to the last epoch, for "
        "b = 0 and for the b with the best mean validation accuracy."
    )
    descent = Part("Double descent", [detector], tables=[answer_tables.descent_table(a.descents)])
    return Section(
        "rq4", "RQ4", title, [Part(paragraphs=[intro], figures=figures), descent, _flatness(a)]
    )


def _flatness(a: Analysis) -> Part:
    if a.sharpness is None:
        return Part(
            "Flatness",
            [
                "Not measured: the summary has no sharpness column. The engine's flatness "
                "measure (mean training-loss increase under random filter-normalised weight "
                "perturbations, Li et al. 2018) fills it when it is switched on."
            ],
        )
    text = (
        "Sharpness: the mean increase of the training loss under random filter-normalised "
        "weight perturbations (Li et al. 2018) at the end of training; lower is flatter. The b "
        "chosen per seed by final validation accuracy against b = 0, paired over seeds; Holm "
        "over these rows."
    )
    return Part("Flatness", [text], tables=[answer_tables.sharpness_table(a.sharpness)])
