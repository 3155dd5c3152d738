"""The report's sections as data for the page template: what each question's answer shows.

Everything is computed once, in Analysis.of(), and each section reads from it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from flooding.report import answer_tables, diagnostics, findings, plots, reference, stats, tables
from flooding.report.changes import Changes, changes
from flooding.report.inference import ALPHA, MIN_SEEDS
from flooding.report.settings import RQ3_COLUMNS, describe
from flooding.report.settings import varying as varying_settings
from flooding.report.tables import Table

SHARPNESS = "sharpness"


@dataclass(frozen=True)
class Figure:
    src: str  # a data: URL
    width: int
    height: int
    alt: str
    caption: str


@dataclass(frozen=True)
class Part:
    """A run of content in a section: optional heading, paragraphs, facts, tables, figures."""

    heading: str = ""
    paragraphs: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    anchor: str
    short: str  # its name in the contents line
    title: str
    parts: list[Part]


def figure(plot: plots.Plot, caption: str) -> Figure:
    data = base64.b64encode(plot.png).decode("ascii")
    return Figure(f"data:image/png;base64,{data}", plot.width, plot.height, plot.alt, caption)


@dataclass(frozen=True)
class Analysis:
    metrics: pd.DataFrame
    summary: pd.DataFrame
    comparison: pd.DataFrame  # stats.compare()
    chosen: pd.DataFrame  # stats.chosen_levels(), both early-stopping choices
    runs: pd.DataFrame  # stats.by_method() of the completed runs
    edges: pd.DataFrame  # diagnostics.edge_of_grid()
    unfinished: pd.DataFrame  # diagnostics.unfinished_training()
    refs: pd.DataFrame  # reference.references()
    descents: pd.DataFrame  # diagnostics.descent_table()
    sharpness: pd.DataFrame | None  # stats.compare_measure() where measured
    changes: Changes | None

    @classmethod
    def of(cls, metrics: pd.DataFrame, summary: pd.DataFrame, previous: pd.DataFrame | None):
        chosen = pd.concat(
            [stats.chosen_levels(summary, early_stopping=s) for s in (False, True)],
            ignore_index=True,
        )
        runs = stats.by_method(stats.completed(summary))
        measured = SHARPNESS in summary and summary[SHARPNESS].notna().any()
        return cls(
            metrics=metrics,
            summary=summary,
            comparison=stats.compare(summary),
            chosen=chosen,
            runs=runs,
            edges=diagnostics.edge_of_grid(runs, chosen),
            unfinished=diagnostics.unfinished_training(summary),
            refs=reference.references(summary),
            descents=diagnostics.descent_table(metrics, runs),
            sharpness=stats.compare_measure(summary, SHARPNESS) if measured else None,
            changes=None if previous is None else changes(previous, summary),
        )

    def headline(self) -> list[str]:
        return [
            *findings.headline(self.comparison, self.chosen),
            *findings.warnings(self.edges, self.unfinished, self.descents),
        ]


def sections(a: Analysis, built_at: datetime) -> list[Section]:
    shown = [
        _overview(a, built_at),
        _changes(a.changes) if a.changes is not None else None,
        _main(a),
        _grid(a),
        _levels(a),
        _curves(a),
        _method(),
    ]
    return [s for s in shown if s is not None]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _overview(a: Analysis, built_at: datetime) -> Section:
    c = findings.counts(a.metrics, a.summary)
    status = ", ".join(f"{n} {s}" for s, n in c.by_status)
    ran = [
        f"{_count(c.runs, 'run')} ({status}) over {_count(c.datasets, 'dataset')} and "
        f"{_count(c.architectures, 'architecture')}: {_count(c.settings, 'setting')} "
        f"(combinations of data, model and training options), "
        f"{_count(c.flood_levels, 'flood level')} b > 0 "
        f"(methods: {', '.join(c.methods) or 'none'}) plus b = 0, and {_count(c.seeds, 'seed')}.",
        f"Training time recorded: {c.training_hours:.2f} hours in total.",
    ]
    facts = findings.environment(a.summary)
    facts.append(("report built", f"{built_at:%Y-%m-%d %H:%M} UTC from the aggregated tables"))
    if not any(k == "device" for k, _ in facts):
        facts.append(("device, versions", "not recorded in the aggregated tables"))
    unfinished = a.summary[a.summary["status"] != "completed"]
    if unfinished.empty:
        problems = Part("Runs that did not complete", [f"All {len(a.summary)} runs completed."])
    else:
        problems = Part(
            "Runs that did not complete",
            [
                f"{_count(len(unfinished), 'run')} did not complete; they are left out of every "
                "statistic below (a b = 0 run missing for a seed removes that seed from its "
                "comparison)."
            ],
            tables=[tables.unfinished_table(a.summary)],
        )
    missing = stats.missing_seeds(a.summary)
    if missing.empty:
        gaps = Part(
            "Missing seeds", ["Every setting and flood level has a completed run for every seed."]
        )
    else:
        gaps = Part(
            "Missing seeds",
            [
                "Combinations of setting, method and b without a completed run for every seed: "
                f"{len(missing)}. Their comparisons use fewer seeds (the seeds column says how "
                "many)."
            ],
            tables=[tables.missing_table(missing, a.summary)],
        )
    parts = [Part("What was run", ran), Part("When and where", facts=facts), problems, gaps]
    return Section("overview", "what was run", "Overview", parts)


def _changes(ch: Changes) -> Section:
    counts = (
        f"Since the earlier summary: {_count(len(ch.added), 'run')} added, "
        f"{len(ch.removed)} removed, {len(ch.retrained)} retrained (same run path, another "
        f"config hash, finish time or status). Comparisons with another answer than before "
        f"(better, worse or no significant difference, Holm-adjusted): {len(ch.flipped)}."
    )
    parts = [Part(paragraphs=[counts])]
    if len(ch.added) + len(ch.removed) + len(ch.retrained):
        shown = answer_tables.CHANGED_RUNS_SHOWN
        parts.append(
            Part(
                "Runs",
                [f"At most {shown} of each kind."],
                tables=[answer_tables.changed_runs_table(ch)],
            )
        )
    if len(ch.flipped):
        parts.append(Part("Answers that changed", tables=[answer_tables.flipped_table(ch.flipped)]))
    return Section("changes", "what changed", "What changed since the earlier report", parts)


def _main(a: Analysis) -> Section:
    intro = (
        "RQ1 (does flooding improve test accuracy?) and RQ3 (how does it combine with early "
        "stopping, weight decay and augmentation?). Test accuracy in percent, mean ± standard "
        "deviation over the paired seeds. b = 0 is ordinary training; with flooding, b is "
        "chosen per seed by validation accuracy from the grid's levels (b = 0 included), at "
        "the best epoch with early stopping on and at the last epoch with it off. Δ is the mean "
        "paired difference with its 95 % t interval; p is the two-sided paired t-test over "
        f"seeds and Holm p the same adjusted across all {_count(_tests(a.comparison), 'test')} "
        f"of this table (* Holm p < {ALPHA:g}). With fewer than {MIN_SEEDS} seeds no p value "
        "is given. 'Seeds for 80 % power' is how many seeds the test would need to detect the "
        "observed difference, taking the observed spread as the truth. The best mean of each "
        "row is in bold; ⚠ marks a b chosen on the grid's edge; hover for details."
    )
    title = "RQ1 and RQ3: flooding and other regularisers"
    if a.comparison.empty:
        return Section(
            "rq1",
            "RQ1 and RQ3",
            title,
            [Part(paragraphs=[intro, "No completed b = 0 run to compare with."])],
        )
    parts = [Part(paragraphs=[intro])]
    for (dataset, arch), block in a.comparison.groupby(list(stats.BLOCK_COLUMNS), sort=True):
        edges = a.edges[(a.edges["dataset"] == dataset) & (a.edges["arch"] == arch)]
        parts.append(Part(f"{dataset} / {arch}", tables=[tables.main_table(block, edges)]))
    return Section("rq1", "RQ1 and RQ3", title, parts)


def _tests(comparison: pd.DataFrame) -> int:
    return int(pd.to_numeric(comparison["p_holm"], errors="coerce").notna().sum())


def _grid(a: Analysis) -> Section:
    parts = []
    if a.edges.empty:
        parts.append(
            Part(
                "Edge of the grid",
                ["No chosen b sits on the grid's largest or smallest level b > 0."],
            )
        )
    else:
        seeds = a.summary.groupby(list(stats.BLOCK_COLUMNS))["seed"].nunique()
        parts.append(
            Part(
                "Edge of the grid",
                [
                    "Where validation picks the largest level, a larger b might do better still; "
                    "where it picks the smallest b > 0, a smaller one might. The chosen b is then "
                    "a bound, not an estimate, and RQ2's trend is unreliable for that cell."
                ],
                tables=[answer_tables.edge_table(a.edges, seeds)],
            )
        )
    if a.unfinished.empty:
        parts.append(
            Part(
                "Training length",
                ["No completed run had its best validation accuracy at its last epoch."],
            )
        )
    else:
        parts.append(
            Part(
                "Training length",
                [
                    "These runs reached their best validation accuracy at their last epoch: they "
                    "were still improving, so early stopping had nothing to stop. Train longer."
                ],
                tables=[answer_tables.training_table(a.unfinished)],
            )
        )
    return Section("grid", "grid warnings", "Is the grid wide and long enough?", parts)


def _levels(a: Analysis) -> Section:
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


def _curves(a: Analysis) -> Section:
    title = "RQ4: learning curves, double descent, flatness, gradient norm"
    drawn = stats.curve_runs(a.summary)
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
        "Double descent, per setting: the detector looks at the mean test-loss curve over seeds "
        f"for a minimum, a rise of at least {100 * diagnostics.TURN:g} % above it and a fall of "
        f"at least {100 * diagnostics.TURN:g} % below the peak, for b = 0 and for the b with the "
        "best mean validation accuracy."
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


def _method() -> Section:
    texts = [
        "Everything on this page is computed from the aggregated results (metrics.parquet, one "
        "row per run and epoch; summary.parquet, one row per run) by the command flooding "
        "report, so it can be rebuilt from copied results.",
        "A setting is every run option except the flood level, the flooding method and the "
        "seed. Runs of one setting with the same seed share data, initialisation and batch "
        "order, so flooded and ordinary runs are compared seed by seed.",
        "Early stopping picks, per run, the epoch (from 1) with the highest validation accuracy, "
        "the earliest on ties. The flood level is chosen per seed as the one with the highest "
        "validation accuracy, the smallest b on ties; the b = 0 run is the baseline of every "
        "flooding method. Only completed runs count; the others are listed at the top.",
        f"No p value is given with fewer than {MIN_SEEDS} paired seeds (the t-test's spread "
        "would rest on a single degree of freedom), or when every seed shows the same "
        "difference; the table then says n/a. Holm's correction controls the chance of any "
        f"false positive among the table's tests at {ALPHA:g}. Options that do not apply to a "
        "dataset or model (the spiral's noise, MLP sizes, momentum with Adam) are not listed; "
        f"{' and '.join(RQ3_COLUMNS)} are always columns of the main table where they apply.",
    ]
    return Section(
        "method", "how it is computed", "How the numbers are computed", [Part(paragraphs=texts)]
    )
