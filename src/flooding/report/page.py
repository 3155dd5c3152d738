"""The report page: one self-contained HTML file, assembled from the tables and figures.

Nothing is loaded from anywhere: the style sheet is inline, figures are base64 PNG data
URLs, there is no script, and a Content-Security-Policy forbids every other source so
that a browser refuses (and reports) anything that would reach the network.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime

import pandas as pd

from flooding.report import findings, plots, stats, tables

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1400px; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
.lead { font-size: 1.1rem; background: #f3f6fa; padding: 0.8rem 1rem; border-radius: 6px; }
table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.better { font-weight: bold; background: #e6f4ea; }
td.significant { font-weight: bold; }
td.up { color: #1a7f37; } td.down { color: #c62828; }
td.warn { background: #fff4e5; } td.muted { color: #777; }
td.error { font-family: ui-monospace, monospace; white-space: pre-wrap; max-width: 40rem; }
figure { margin: 1rem 0 2rem; } figcaption { color: #555; font-size: 0.9rem; }
img { max-width: 100%; height: auto; }
.note { color: #555; font-size: 0.9rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dt { font-weight: bold; }
"""


CONTENTS = (
    '<nav class="note">Contents: <a href="#overview">what was run</a> · '
    '<a href="#rq1">RQ1 and RQ3, the main table</a> · <a href="#rq2">RQ2, choosing b</a> · '
    '<a href="#rq4">RQ4, learning curves</a> · <a href="#method">how it is computed</a></nav>'
)


def _e(text: object) -> str:
    return html.escape(str(text))


def _figure(plot: plots.Plot, caption: str) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" width="{plot.width}" '
        f'height="{plot.height}" alt="{_e(plot.alt)}"><figcaption>{_e(caption)}</figcaption>'
        "</figure>"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _paragraphs(*texts: str) -> str:
    return "".join(f"<p>{_e(t)}</p>" for t in texts)


def render(metrics: pd.DataFrame, summary: pd.DataFrame, title: str, built_at: datetime) -> str:
    comparison = stats.compare(summary)
    chosen = pd.concat(
        [stats.chosen_levels(summary, early_stopping=s) for s in (False, True)],
        ignore_index=True,
    )
    sections = [
        _overview(metrics, summary, comparison, chosen, built_at),
        _main_section(comparison),
        _level_section(chosen, summary),
        _curve_section(metrics, summary),
        _method_section(),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n{CONTENTS}\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def _overview(
    metrics: pd.DataFrame,
    summary: pd.DataFrame,
    comparison: pd.DataFrame,
    chosen: pd.DataFrame,
    built_at: datetime,
) -> str:
    c = findings.counts(metrics, summary)
    status = ", ".join(f"{n} {s}" for s, n in c.by_status)
    methods = ", ".join(c.methods) or "none"
    ran = [
        f"{_count(c.runs, 'run')} ({status}) over {_count(c.datasets, 'dataset')} and "
        f"{_count(c.architectures, 'architecture')}: {_count(c.settings, 'setting')} "
        f"(combinations of data, model and training options), "
        f"{_count(c.flood_levels, 'flood level')} b > 0 (methods: {methods}) plus b = 0, "
        f"and {_count(c.seeds, 'seed')}.",
        f"Training time recorded: {c.training_hours:.2f} hours in total.",
    ]
    facts = findings.environment(summary)
    facts.append(("report built", f"{built_at:%Y-%m-%d %H:%M} UTC from the aggregated tables"))
    where = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    if not any(k == "device" for k, _ in facts):
        where += "<dt>device, versions</dt><dd>not recorded in the aggregated tables</dd>"
    unfinished = summary[summary["status"] != "completed"]
    if unfinished.empty:
        problems = _paragraphs(f"All {len(summary)} runs completed.")
    else:
        problems = _paragraphs(
            f"{_count(len(unfinished), 'run')} did not complete; they are left out of every "
            "statistic below (a b = 0 run missing for a seed removes that seed from its "
            "comparison)."
        ) + tables.unfinished_table(summary)
    missing = stats.missing_seeds(summary)
    if missing.empty:
        gaps = _paragraphs("Every setting and flood level has a completed run for every seed.")
    else:
        gaps = _paragraphs(
            f"Combinations of setting, method and b without a completed run for every seed: "
            f"{len(missing)}. Their comparisons use fewer seeds (the seeds column says how many)."
        ) + tables.missing_table(missing, summary)
    return (
        '<section id="overview">\n'
        + f'<div class="lead">{_paragraphs(*findings.headline(comparison, chosen))}</div>\n'
        + "<h2>What was run</h2>"
        + _paragraphs(*ran)
        + f"<h2>When and where</h2><dl>{where}</dl>"
        + "<h2>Runs that did not complete</h2>"
        + problems
        + "<h2>Missing seeds</h2>"
        + gaps
        + "</section>"
    )


def _main_section(comparison: pd.DataFrame) -> str:
    intro = _paragraphs(
        "RQ1 (does flooding improve test accuracy?) and RQ3 (how does it combine with early "
        "stopping, weight decay and augmentation?). Test accuracy in percent, mean ± standard "
        "deviation over the paired seeds. b = 0 is ordinary training; with flooding, b is "
        "chosen per seed by validation accuracy from the grid's levels (b = 0 included), at "
        "the best epoch with early stopping on and at the last epoch with it off. "
        "Δ is the mean paired difference, p the two-sided paired t-test over seeds "
        f"(* p < {stats.ALPHA:g}, no correction for multiple comparisons). The best mean of "
        "each row is in bold; hover over n/a for the reason."
    )
    if comparison.empty:
        return '<section id="rq1"><h2>RQ1 and RQ3: flooding and other regularisers</h2>' + (
            intro + _paragraphs("No completed b = 0 run to compare with.") + "</section>"
        )
    blocks = []
    for (dataset, arch), block in comparison.groupby(list(stats.BLOCK_COLUMNS), sort=True):
        blocks.append(
            f"<h3>{_e(dataset)} / {_e(arch)}</h3>"
            + f'<p class="note">Same in every row: {_e(tables.fixed_settings(block))}</p>'
            + tables.main_table(block, stats.ALPHA)
        )
    return (
        '<section id="rq1"><h2>RQ1 and RQ3: flooding and other regularisers</h2>'
        + intro
        + "\n".join(blocks)
        + "</section>"
    )


def _level_section(chosen: pd.DataFrame, summary: pd.DataFrame) -> str:
    head = '<section id="rq2"><h2>RQ2: choosing the flood level</h2>'
    if chosen.empty:
        return head + _paragraphs("No setting has completed flooded runs.") + "</section>"
    runs = stats.by_method(stats.completed(summary))
    return (
        head
        + _paragraphs(
            "The flood level chosen by validation accuracy for each seed, summarised over "
            "seeds and the other settings, against label noise. The Bayes error is that of "
            "the clean problem where the dataset defines it (two Gaussians)."
        )
        + tables.chosen_level_table(chosen, summary)
        + _figure(
            plots.chosen_level_plot(chosen),
            "Mean chosen b against label noise; solid: early stopping off, dashed: on.",
        )
        + _figure(
            plots.accuracy_vs_level_plot(runs),
            "Final validation accuracy (dashed, on noisy labels) and test accuracy (solid, "
            "clean labels) against b, mean over seeds and the other settings.",
        )
        + "</section>"
    )


def _curve_section(metrics: pd.DataFrame, summary: pd.DataFrame) -> str:
    head = '<section id="rq4"><h2>RQ4: learning curves, double descent, gradient norm</h2>'
    drawn = stats.curve_runs(summary)
    if drawn.empty:
        return head + _paragraphs("No completed runs.") + "</section>"
    columns = ["run_dir", "epoch", *plots.CURVE_METRICS]
    rows = metrics.loc[metrics["run_dir"].isin(drawn["run_dir"]), columns]
    rows = rows.merge(drawn[["run_dir", "dataset", "arch", "line", "flood_level"]], on="run_dir")
    figures = []
    for (dataset, arch), block in rows.groupby(["dataset", "arch"], sort=True):
        picked = drawn[(drawn["dataset"] == dataset) & (drawn["arch"] == arch)]
        grid = summary[(summary["dataset"] == dataset) & (summary["arch"] == arch)]
        shown = tables.varying(grid, [*tables.RQ3_COLUMNS, *_other_settings()])
        setting = ", ".join(f"{tables.label(c)} {tables.value(picked[c].iloc[0])}" for c in shown)
        levels = dict(zip(picked["line"], picked["flood_level"], strict=False))
        title = f"{dataset} / {arch}" + (f" ({setting})" if setting else "")
        figures.append(
            _figure(
                plots.curves_plot(block, levels, title),
                f"{title}: mean over seeds, band from the lowest to the highest seed; "
                "dotted lines mark b.",
            )
        )
    return (
        head
        + _paragraphs(
            "Per dataset and architecture, at the highest label noise (where the double "
            "descent shows), the setting with the fewest other regularisers: "
            "ordinary training (b = 0) against flooding at the level b > 0 with the best mean "
            "final validation accuracy and at the largest b of the grid, where the flood is "
            "strongest. With flooding the training loss (evaluation pass, "
            "labels trained on) and the mini-batch loss hover at b instead of falling to "
            "zero; the test loss may fall, rise and fall again (double descent). The "
            "flooded fraction is the share of mini-batches (flood) or samples (iflood) "
            "whose loss was below b, so that the update climbed."
        )
        + "\n".join(figures)
        + "</section>"
    )


def _other_settings() -> list[str]:
    skip = (*stats.BLOCK_COLUMNS, *tables.RQ3_COLUMNS)
    return [c for c in stats.SETTING_COLUMNS if c not in skip]


def _method_section() -> str:
    return (
        '<section id="method"><h2>How the numbers are computed</h2>'
        + _paragraphs(
            "Everything on this page is computed from the aggregated results (metrics.parquet, "
            "one row per run and epoch; summary.parquet, one row per run) by the command "
            "flooding report, so it can be rebuilt from copied results.",
            "A setting is every run option except the flood level, the flooding method and the "
            "seed. Runs of one setting with the same seed share data, initialisation and batch "
            "order, so flooded and ordinary runs are compared seed by seed.",
            "Early stopping picks, per run, the epoch (from 1) with the highest validation "
            "accuracy, the earliest on ties. The flood level is chosen per seed as the one with "
            "the highest validation accuracy, the smallest b on ties; the b = 0 run is the "
            "baseline of every flooding method. Only completed runs count; the others are "
            "listed at the top.",
            "The paired t-test is undefined with fewer than two paired seeds, or when every "
            "seed shows the same difference; the table then says n/a.",
        )
        + "</section>"
    )
