"""The sections answering RQ2 (choosing b) and RQ4 (curves, double descent, flatness)."""

from __future__ import annotations

import pandas as pd

from flooding.methods import METHODS
from flooding.report import answer_tables, claims, diagnostics, plots, reference, searched, stats
from flooding.report.analysis import SHARPNESS_MEANING, Analysis
from flooding.report.parts import Part, Section, figure
from flooding.report.settings import describe, plural
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
    if not plot:
        intro.append(
            "One label-noise level only: no figure against noise; the table gives the chosen b."
        )
    else:
        figures.append(
            figure(
                plot,
                "Mean chosen b against label noise (blue, the colour of the validated b on "
                "this page); solid: early stopping off, dashed: on; dotted grey: the "
                "reference loss, in nats.",
            )
        )
    figures.append(
        figure(
            plots.accuracy_vs_level_plot(a.runs),
            "Final validation accuracy (dashed, on noisy labels) and test accuracy (solid, "
            "clean labels) against b, mean over seeds and the other settings; a colour per "
            "label noise, darker for more noise.",
        )
    )
    table = answer_tables.chosen_level_table(a.chosen, a.refs)
    parts = [Part(paragraphs=intro, tables=[table], figures=figures)]
    return Section("rq2", "RQ2", title, [*parts, *_search_parts(a)])


def _search_parts(a: Analysis) -> list[Part]:
    """The searches' rounds, and b predicted without a search against the validated b."""
    parts = []
    if not a.search.empty:
        parts.append(
            Part(
                "The search for b",
                anchor="search",
                paragraphs=[
                    "Where the config says levels: auto (or gives a search), the workflow "
                    "chose the levels round by round (docs/search.md): round 0 is b = 0, "
                    "round 1 tries the predicted b and levels spread on both sides of it, "
                    "from the lowest training loss the b = 0 runs reached up to the "
                    "untrained loss, and each later round refines around the level with "
                    "the best mean final validation accuracy over seeds. A search that "
                    "stopped at the upper end (its best level the highest tried, the "
                    "untrained loss just above) is the one edge left to warn of; the other "
                    "stops are its rules ending."
                ],
                tables=[answer_tables.search_table(a.search, a.summary)],
            )
        )
    if not a.predictions.empty:
        parts.append(
            Part(
                "Can b be predicted without a search?",
                anchor="predicted",
                paragraphs=[
                    "From the b = 0 runs alone, b is predicted as their mean training loss at "
                    "the epoch of their best validation accuracy (where ordinary training "
                    "stopped gaining), kept below the untrained loss; the reference loss of "
                    "the label noise is the paper-style alternative. Each is scored by the "
                    "mean final test accuracy of the tried level nearest to it, against the "
                    "validated b's.",
                    *searched.prediction_sentences(a.predictions),
                ],
                tables=[answer_tables.prediction_table(a.predictions, a.summary)],
            )
        )
    return parts


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


# The most settings drawn for their double descent, besides each block's plainest.
DESCENTS_DRAWN = 12


def curves(a: Analysis) -> Section:
    title = "RQ4: learning curves, double descent, flatness, gradient norm"
    found = a.descents[a.descents["found"].astype(bool)]
    # Settings with a detection, the largest rise first; beyond DESCENTS_DRAWN the table
    # holds them (a large grid can find dozens, and each panel costs a quarter second).
    detected = found.sort_values("rise", ascending=False).drop_duplicates(
        list(stats.SETTING_COLUMNS)
    )
    drawn = stats.curve_runs(a.kept, also=detected.head(DESCENTS_DRAWN))
    left_out = max(0, len(detected) - DESCENTS_DRAWN)
    if drawn.empty:
        return Section("rq4", "RQ4", title, [Part(paragraphs=["No completed runs."])])
    columns = ["run_dir", "epoch", *plots.CURVE_METRICS]
    rows = a.metrics.loc[a.metrics["run_dir"].isin(drawn["run_dir"]), columns]
    rows = rows.merge(drawn[["run_dir", *stats.SETTING_COLUMNS, "line"]], on="run_dir")
    figures = []
    extra: dict[tuple, list[plots.DescentPanel]] = {}
    keys = list(stats.SETTING_COLUMNS)
    for key, block in rows.groupby(keys, sort=True, dropna=False):
        setting = dict(zip(keys, key, strict=True))
        lines = drawn[_matches(drawn, setting)]
        block_of = (a.summary["dataset"] == setting["dataset"]) & (
            a.summary["arch"] == setting["arch"]
        )
        grid = a.summary[block_of]
        described = describe(pd.Series(setting), varying_settings(grid, skip=stats.BLOCK_COLUMNS))
        name = f"{setting['dataset']} / {setting['arch']}" + (
            f" ({described})" if described else ""
        )
        turns = _turns(a.descents[_matches(a.descents, setting)], lines)
        caption = (
            f"{name}: mean over seeds, band from the lowest to the highest seed; black: b = 0, "
            "blue: the validated b, vermilion: the largest b (lighter shades: a second "
            "method); dotted lines mark b."
        )
        if turns:
            caption += (
                " ▼ on the test loss: the first minimum, peak and second minimum the detector "
                f"found on {' and '.join(sorted(turns))} (see the double-descent table)."
            )
        # The block's plainest setting gets every panel; the settings drawn for their
        # double descent share one image per block, their test loss only.
        if bool(lines["plain"].iloc[0]):
            figures.append(figure(plots.curves_plot(block, lines, name, turns), caption))
        else:
            short = described or name
            extra.setdefault((setting["dataset"], setting["arch"]), []).append(
                plots.DescentPanel(block, lines, short, turns)
            )
    for (dataset, arch), panels in sorted(extra.items()):
        caption = (
            f"{dataset} / {arch}: the test loss of every other setting where the detector "
            "found a double descent, a small panel each; black: b = 0, blue: the validated b; "
            "▼: the turns it found (see the double-descent table)."
        )
        figures.append(figure([plots.descent_grid(panels, f"{dataset} / {arch}")], caption))
    plain = int(drawn.drop_duplicates(keys)["plain"].sum())
    more = sum(len(panels) for panels in extra.values())
    intro = [
        f"Per dataset and architecture the setting with the fewest other regularisers at the "
        f"highest label noise ({plain} figures)"
        + (
            f", and the test loss of {plural(more, 'other setting')} where the detector found "
            "a double descent"
            if more
            else ""
        )
        + (
            f"; the table lists {plural(left_out, 'more setting')} with a detection (smaller "
            "rises) not drawn, as a large grid can find dozens"
            if left_out
            else ""
        )
        + "."
        + " Each shows ordinary training (b = 0) against flooding at the level b > 0 with the "
        "best mean final validation accuracy (the validated b) and at the largest b of the "
        "grid. With flooding the training loss (evaluation pass, labels trained on) and the "
        "mini-batch loss hover at b instead of falling to zero. " + _flooded_fraction(a)
    ]
    if found.empty:
        intro.append(
            "The detector found no double descent in any setting, at b = 0 or at the validated b."
        )
    detector = (
        "Double descent, per setting: the detector looks at the mean test-loss curve over seeds, "
        "smoothed by a running median over three epochs so that a one-epoch spike is no peak, "
        f"for a minimum, a rise of at least {100 * diagnostics.TURN:g} % above it and a fall of "
        f"at least {100 * diagnostics.TURN:g} % below the peak that lasts to the last epoch, for "
        "b = 0 and for the validated b. Where both show the same turns, the flooded runs "
        "trained as b = 0 did and the table says it is one detection."
    )
    descent = Part(
        "Double descent",
        anchor="rq4-descent",
        paragraphs=[detector],
        tables=[answer_tables.descent_table(a.descents)],
    )
    return Section(
        "rq4", "RQ4", title, [Part(paragraphs=intro, figures=figures), descent, _flatness(a)]
    )


def _matches(frame: pd.DataFrame, setting: dict) -> pd.Series:
    chosen = pd.Series(True, index=frame.index)
    for column, wanted in setting.items():
        chosen &= frame[column] == wanted
    return chosen


def _turns(descents: pd.DataFrame, lines: pd.DataFrame) -> dict[str, tuple[int, int, int]]:
    """The detector's turns (from its table, never recomputed) for each drawn line it
    tested: b = 0 and the validated b of each method."""
    turns = {}
    for _, line in lines.drop_duplicates("line").iterrows():
        if line["role"] not in (plots.B0, plots.VALIDATED):
            continue
        rows = descents[descents["flood_level"] == line["flood_level"]]
        if line["role"] == plots.VALIDATED:
            rows = rows[rows["flood_method"] == line["flood_method"]]
        rows = rows[rows["found"].astype(bool)]
        if len(rows):
            r = rows.iloc[0]
            turns[line["line"]] = (
                int(r["first_minimum"]),
                int(r["peak"]),
                int(r["second_minimum"]),
            )
    return turns


def _flooded_fraction(a: Analysis) -> str:
    methods = set(a.kept.loc[a.kept["flood_level"] > 0, "flood_method"])
    units = {
        m.name: f"samples ({m.name}{', below its own level b_i' if m.auxiliary else ''})"
        if m.per_sample
        else f"mini-batches ({m.name})"
        for m in METHODS.values()
    }
    shares = " or ".join(units.get(m, m) for m in sorted(methods))
    if not shares:
        return ""
    return (
        f"The flooded fraction is the share of {shares} whose loss was below b, so that "
        "the update climbed."
    )


def _flatness(a: Analysis) -> Part:
    if a.sharpness is None:
        return Part(
            "Flatness",
            anchor="rq4-flatness",
            paragraphs=[
                "Not measured: the summary has no sharpness column. The engine's flatness "
                f"measure ({SHARPNESS_MEANING}) fills it when it is switched on."
            ],
        )
    check = claims.flatness(a)
    text = (
        f"Sharpness: {SHARPNESS_MEANING}. The b chosen per seed by final validation accuracy "
        "against b = 0, paired over seeds; Holm over these rows."
    )
    verdict = f"Verdict on the paper's claim of flatter minima: {check.verdict}. {check.shows}"
    return Part(
        "Flatness",
        anchor="rq4-flatness",
        paragraphs=[text, verdict],
        tables=[answer_tables.sharpness_table(a.sharpness)],
    )
