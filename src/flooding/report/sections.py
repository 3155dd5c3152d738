"""The report's sections as data for the page template, in page order.

Each reads from the Analysis (computed once); RQ2 and RQ4 are in flooding.report.answers.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from flooding.report import (
    accounting,
    answer_tables,
    answers,
    claims,
    cluster,
    findings,
    methods_compared,
    stats,
    tables,
    verdicts,
)
from flooding.report.analysis import Analysis
from flooding.report.changes import Changes
from flooding.report.inference import ALPHA, MIN_SEEDS
from flooding.report.parts import Part, Section, figure


def sections(a: Analysis, built_at: datetime) -> list[Section]:
    shown = [
        _answers(a),
        _overview(a, built_at),
        _changes(a.changes) if a.changes is not None else None,
        _main(a),
        _combinations(a),
        _grid(a),
        answers.levels(a),
        answers.curves(a),
        cluster.section(a.efficiency) if a.efficiency is not None else None,
        _method(a),
    ]
    return [s for s in shown if s is not None]


def _answers(a: Analysis) -> Section:
    intro = (
        "Each of the paper's claims checked on this grid, with a verdict by the rules under "
        "'How the numbers are computed': supports (a significant effect in the claimed "
        "direction and none against), contradicts (the reverse), inconclusive (neither, or "
        "both), not tested (the grid cannot check it)."
    )
    parts = [Part("In numbers", paragraphs=a.headline())]
    return Section(
        "answers", "answers", "Answers", parts, intro=[intro], answers=tuple(claims.answers(a))
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _overview(a: Analysis, built_at: datetime) -> Section:
    c = findings.counts(a.metrics, a.summary)
    status = ", ".join(f"{n} {s}" for s, n in c.by_status)
    ran = [
        f"{_count(c.runs, 'run')} ({status}) over {_count(c.datasets, 'dataset')} and "
        f"{_count(c.architectures, 'architecture')}, in {_count(c.settings, 'setting')} "
        "(combinations of data, model and training options); per dataset and architecture:",
    ]
    run_table = accounting.accounting_table(a.metrics, a.summary)
    hours = f"Training time recorded: {c.training_hours:.2f} hours in total."
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
    parts = [
        Part("What was run", ran, tables=[run_table]),
        Part(paragraphs=[hours]),
        Part("When and where", facts=facts),
        problems,
        gaps,
    ]
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
        "RQ1: does flooding improve test accuracy over the same training without it? Test "
        "accuracy in percent, mean ± standard deviation over the paired seeds. b = 0 is "
        "ordinary training; with flooding, b is chosen per seed by validation accuracy from "
        "the grid's levels (b = 0 included), at the best epoch with early stopping on and at "
        "the last epoch with it off. Δ is the mean paired difference with its 95 % t "
        "interval; p is the two-sided paired t-test over seeds and Holm p the same adjusted "
        f"across the {_count(_tests(a.comparison), 'test')} of these tables "
        f"(* Holm p < {ALPHA:g}). With fewer than {MIN_SEEDS} seeds no p value is given. "
        "'Seeds for 80 % power' is how many seeds the test would need to detect the observed "
        "difference, taking the observed spread as the truth. The best mean of each row is in "
        "bold; ⚠ marks a b chosen on the grid's edge (see the notes under each table)."
    )
    title = "RQ1: flooding against ordinary training"
    if a.comparison.empty:
        return Section(
            "rq1",
            "RQ1",
            title,
            [Part(paragraphs=[intro, "No completed b = 0 run to compare with."])],
        )
    parts = [Part(paragraphs=[intro])]
    for (dataset, arch), block in a.comparison.groupby(list(stats.BLOCK_COLUMNS), sort=True):
        edges = a.edges[(a.edges["dataset"] == dataset) & (a.edges["arch"] == arch)]
        parts.append(Part(f"{dataset} / {arch}", tables=[tables.main_table(block, edges)]))
    if a.comparison["flood_method"].nunique() > 1:
        table = methods_compared.methods_table(a.comparison)
        parts.append(Part("The methods side by side", tables=[table]))
    if not a.levels.empty:
        parts.append(_adaflood_levels(a.levels))
    return Section("rq1", "RQ1", title, parts)


def _adaflood_levels(levels: pd.DataFrame) -> Part:
    text = (
        "AdaFlood gives each training sample its own level b_i from the loss that an "
        "auxiliary model which never trained on it assigns it (docs/adaflood.md). Its claim: "
        "samples whose label was flipped get high levels. Below, the levels of the training "
        "samples of every seed at each gamma the grid ran, clean labels beside flipped ones "
        "(boxes: quartiles; dots: means)."
    )
    panels = methods_compared.levels_plot(levels)
    caption = "AdaFlood's per-sample levels, clean against flipped labels."
    return Part(
        "AdaFlood's levels: clean against flipped labels",
        paragraphs=[text],
        tables=[methods_compared.levels_table(levels)],
        figures=[figure(panels, caption)],
    )


def _combinations(a: Analysis) -> Section:
    title = "RQ3: flooding with early stopping and other regularisers"
    if a.options.empty:
        text = "No setting has options both with and without flooding."
        return Section("rq3", "RQ3", title, [Part(paragraphs=[text])])
    intro = (
        "For each group of settings that differ only in the regularisers the grid varies, the "
        "options are every combination of those regularisers with early stopping on or off, "
        "without flooding (b = 0) or with it (b chosen per seed by validation). The best "
        "option on each side is the one with the highest mean test accuracy over seeds, in "
        "bold the better of the two. Δ is the best with flooding minus the best without, "
        "paired over seeds, with Holm's correction over this table's rows; the answer is its "
        "category (see 'How the numbers are computed'). The last column is the RQ1 table's "
        "comparison for flooding added to the best option without it: same regularisers, "
        "same early stopping."
    )
    table = answer_tables.options_table(a.options)
    return Section("rq3", "RQ3", title, [Part(paragraphs=[intro], tables=[table])])


def _tests(comparison: pd.DataFrame) -> int:
    return int(pd.to_numeric(comparison["p_holm"], errors="coerce").notna().sum())


def _grid(a: Analysis) -> Section:
    parts = []
    if a.idle.empty:
        parts.append(
            Part(
                "Levels that did nothing",
                ["Every flood level b > 0 engaged and sat below the untrained loss."],
            )
        )
    else:
        parts.append(
            Part(
                "Levels that did nothing",
                [
                    "A level whose runs never flooded (flooded fraction 0 at every epoch) "
                    "trained exactly as b = 0; a level at or above the untrained loss (ln C, "
                    "or the b = 0 runs' training loss before the first step if lower) pushes "
                    "the loss up from the start. These levels are left out of the choice of b "
                    "and of every table and figure below them."
                ],
                tables=[answer_tables.idle_table(a.idle, a.summary)],
            )
        )
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
                tables=[answer_tables.edge_table(a.edges, seeds, a.summary)],
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


def _method(a: Analysis) -> Section:
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
        "flooding method. Levels that never engaged or sat at or above the untrained loss "
        "(listed under the grid warnings) are not candidates. Only completed runs count; the "
        "others are listed at the top.",
        "Training with label noise is chaotic: the same configuration on another float path "
        "(other thread counts, another pack of runs, another device) drifts to results about "
        "as far apart as two seeds, a few points of test accuracy after some tens of epochs. "
        "A single run is reproducible only along its own float path, so this report compares "
        "seeds, never single runs, and says where the spread between seeds is as large as an "
        "effect.",
        f"No p value is given with fewer than {MIN_SEEDS} paired seeds (the t-test's spread "
        "would rest on a single degree of freedom), or when every seed shows the same "
        "difference; the table then says n/a. Holm's correction controls the chance of any "
        f"false positive among a table's tests at {ALPHA:g}. Options that do not apply to a "
        "dataset or model are not listed.",
        "Each comparison falls in one category, checked in this order: "
        + "; ".join(f"{name}: {rule}" for name, rule in verdicts.CATEGORY_RULES)
        + ".",
        "Each claim of the paper gets a verdict: "
        + "; ".join(f"{name}: {rule}" for name, rule in verdicts.VERDICT_RULES)
        + ".",
    ]
    return Section(
        "method", "how it is computed", "How the numbers are computed", [Part(paragraphs=texts)]
    )
