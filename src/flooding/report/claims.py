"""The answers at the top of the report: each of the paper's claims checked on this grid.

One entry per research question; each holds the claims of the paper that bear on it (C1
to C6, worded as in the project's summary of the paper), what this grid shows, computed
from the Analysis, and a verdict by the rules of flooding.report.verdicts, with a link to
the table or figure that holds the evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flooding.report import settings, verdicts
from flooding.report.analysis import SHARPNESS_MEANING, Analysis
from flooding.report.settings import label, plural
from flooding.report.stats import SETTING_COLUMNS

# The paper's claims (Ishida et al. 2020), as the report checks them.
CLAIMS = {
    "C1": "on synthetic and benchmark data, flooding often improves test accuracy over the "
    "same training without flooding.",
    "C2": "the best flood level tends to rise with label noise, suggesting a link between b "
    "and the Bayes risk.",
    "C3": "combined with other regularisers (early stopping, weight decay, data augmentation) "
    "flooding usually adds a complementary gain.",
    "C4": "flooding can induce a double descent of the test loss over epochs.",
    "C5": "training with flooding tends to reach flatter loss landscapes.",
    "C6": "with b chosen by validation, memorisation (zero training error) can still happen.",
}
QUESTIONS = (
    ("RQ1", "Does a non-zero training loss improve test accuracy?", ("C1",)),
    ("RQ2", "How should b be chosen, and does it move with label noise?", ("C2", "C6")),
    ("RQ3", "How does flooding combine with other regularisers?", ("C3",)),
    ("RQ4", "Double descent and flatness?", ("C4", "C5")),
)
# A verdict's text lists at most this many rows; the tables hold the rest.
LISTED = 6
# Where the evidence of each claim is on the page (the anchors of sections and parts).
EVIDENCE = {
    "C1": ("rq1", "RQ1 tables"),
    "C2": ("rq2", "RQ2 table and figure"),
    "C3": ("rq3", "RQ3 table"),
    "C4": ("rq4-descent", "double-descent table and curves"),
    "C5": ("rq4-flatness", "flatness table"),
    "C6": ("rq2", "RQ2 section"),
}


@dataclass(frozen=True)
class Check:
    claim: str  # "C1"
    paper: str  # the claim, as the paper makes it
    shows: str  # what this grid shows
    verdict: str  # one of verdicts.VERDICTS
    anchor: str  # where the evidence is
    evidence: str  # the link's text


@dataclass(frozen=True)
class Answer:
    question: str
    title: str
    checks: tuple[Check, ...]


def answers(a: Analysis) -> list[Answer]:
    checks = {
        "C1": _c1(a),
        "C2": _c2(a),
        "C3": _c3(a),
        "C4": _c4(a),
        "C5": flatness(a),
        "C6": _c6(a),
    }
    return [
        Answer(question, title, tuple(checks[c] for c in claims))
        for question, title, claims in QUESTIONS
    ]


def _check(claim: str, shows: str, verdict: str) -> Check:
    anchor, evidence = EVIDENCE[claim]
    return Check(claim, CLAIMS[claim], shows, verdict, anchor, evidence)


def _points(value: float) -> str:
    return f"{100 * value:+.2f} points"


def counted(categories: list[str]) -> str:
    """ "2 significant gains, 0 significant losses, 5 no evidence, 1 b = 0 chosen by most seeds"."""
    names = {
        verdicts.GAIN: ("significant gain", "significant gains"),
        verdicts.LOSS: ("significant loss", "significant losses"),
        verdicts.NO_EVIDENCE: ("with no evidence either way", "with no evidence either way"),
        verdicts.B0_MOSTLY: (
            "where most seeds chose b = 0",
            "where most seeds chose b = 0",
        ),
    }
    parts = []
    for name in verdicts.CATEGORIES:
        n = categories.count(name)
        parts.append(f"{n} {names[name][0] if n == 1 else names[name][1]}")
    return ", ".join(parts)


def categories_of(rows: pd.DataFrame) -> list[str]:
    return [
        verdicts.category(p, d, levels)
        for p, d, levels in zip(
            rows["p_holm"], rows["mean_difference"], rows["chosen_levels"], strict=True
        )
    ]


def _tested(rows: pd.DataFrame) -> int:
    return int(pd.to_numeric(rows["p_holm"], errors="coerce").notna().sum())


def spread_note(rows: pd.DataFrame) -> str:
    """Where the seeds' spread is as large as the effect, say that more seeds would settle it."""
    spread = rows["baseline_std"].to_numpy(dtype=float)
    effect = rows["mean_difference"].abs().to_numpy(dtype=float)
    known = ~np.isnan(spread)
    noisy = int((spread[known] >= effect[known]).sum())
    if noisy == 0:
        return ""
    return (
        f" In {noisy} of {int(known.sum())} the spread between seeds (sd of the baseline) is "
        "at least the size of the effect: single runs are reproducible only along their float "
        "path, so only more seeds can settle these."
    )


def _setting(row: pd.Series) -> str:
    return f"{row['dataset']} / {row['arch']}, label noise {row['label_noise']:g}"


def _c1(a: Analysis) -> Check:
    rows = a.comparison[a.comparison["has_flooding"] & (a.comparison["n_pairs"] > 0)]
    if rows.empty:
        return _check("C1", "No setting has both b = 0 and flooded runs.", verdicts.NOT_TESTED)
    categories = categories_of(rows)
    verdict = verdicts.directional(categories, _tested(rows))
    shows = (
        f"Flooding (b chosen per seed by validation) against ordinary training (b = 0) with the "
        f"same early stopping, in {plural(len(rows), 'comparison')}: {counted(categories)}."
    )
    gains = rows[[c == verdicts.GAIN for c in categories]]
    if len(gains):
        best = gains.loc[gains["mean_difference"].idxmax()]
        stop = "on" if best["early_stopping"] else "off"
        shows += (
            f" Largest significant gain: {_points(best['mean_difference'])} over ordinary "
            f"training with early stopping {stop} ({_setting(best)})."
        )
    shows += spread_note(rows[[c != verdicts.GAIN and c != verdicts.LOSS for c in categories]])
    if len(a.options):
        shows += (
            " Against the best option without flooding instead (RQ3): "
            f"{counted(list(a.options['category']))}."
        )
    return _check("C1", shows, verdict)


def _c2(a: Analysis) -> Check:
    trend = a.trend
    if trend.empty:
        return _check(
            "C2",
            "No setting ran more than one label-noise level with flooding.",
            verdicts.NOT_TESTED,
        )
    categories = [
        verdicts.category(p, d, ())
        for p, d in zip(trend["p_holm"], trend["mean_difference"], strict=True)
    ]
    tested = int(pd.to_numeric(trend["p_holm"], errors="coerce").notna().sum())
    verdict = verdicts.directional(categories, tested)
    # Name each row by what tells it apart from the others of its dataset and architecture.
    shown = settings.varying(trend, skip=("dataset", "arch", "label_noise")) if len(trend) else []
    moves = "; ".join(
        f"{r['dataset']} / {r['arch']} / {r['flood_method']}"
        + (f" ({settings.describe(r, shown)})" if shown else "")
        + f": {r['mean_difference']:+.3g}"
        + ("" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]")
        + f" from noise {r['low']:g} to {r['high']:g}"
        for _, r in trend.head(LISTED).iterrows()
    )
    if len(trend) > LISTED:
        moves += f"; {len(trend) - LISTED} more in the RQ2 table"
    rises = categories.count(verdicts.GAIN)
    falls = categories.count(verdicts.LOSS)
    shows = (
        f"The b chosen by validation (early stopping off) at the highest label noise minus at "
        f"the lowest, paired by seed: {moves}. Significant rises: {rises}, falls: {falls} of "
        f"{len(trend)} (Holm)."
    )
    if len(a.edges):
        shows += " Some chosen b sit on the grid's edge, so these moves are bounds."
    return _check("C2", shows, verdict)


def _c3(a: Analysis) -> Check:
    options = a.options
    if options.empty:
        return _check(
            "C3", "No setting has options both with and without flooding.", verdicts.NOT_TESTED
        )
    categories = list(options["category"])
    verdict = verdicts.directional(categories, _tested(options))
    flooding_best = int((options["best"] == options["flooding"]).sum())
    shows = (
        f"In {plural(len(options), 'group')} of settings, the best option with flooding "
        f"against the best without it (of {_option_words(options)}): {counted(categories)}; "
        f"flooding's option had the higher mean in {flooding_best}."
    )
    added = options[options["added_category"] != ""]
    if len(added):
        shows += (
            " Flooding added to the best option without it (same regularisers and early "
            f"stopping): {counted(list(added['added_category']))}."
        )
    on = a.comparison[
        a.comparison["has_flooding"]
        & a.comparison["early_stopping"].astype(bool)
        & (a.comparison["n_pairs"] > 0)
    ]
    if len(on):
        shows += (
            f" Flooding on top of early stopping, against early stopping alone: "
            f"{counted(categories_of(on))}."
        )
    return _check("C3", shows, verdict)


def _option_words(options: pd.DataFrame) -> str:
    varied = sorted({c for v in options["varied"] for c in v})
    words = ["early stopping", *(label(c) for c in varied)]
    return ", ".join(words) + " on or off"


def _c4(a: Analysis) -> Check:
    d = a.descents
    flooded, base = d[d["flood_level"] > 0], d[d["flood_level"] == 0]
    if flooded.empty:
        return _check("C4", "No flooded learning curves.", verdicts.NOT_TESTED)
    keys = [*SETTING_COLUMNS, "flood_method"]
    pairs = flooded.merge(base, on=keys, how="left", suffixes=("", "_base"))
    found = pairs["found"].astype(bool)
    at_base = pairs["found_base"].fillna(False).astype(bool)
    only = int((found & ~at_base).sum())
    shared = int((found & at_base).sum())
    base_only = int((~found & at_base).sum())
    verdict = verdicts.existence(only, len(pairs))
    shows = (
        f"The detector looked at the mean test loss of {plural(len(pairs), 'setting')}, at "
        f"b = 0 and at the validated b: a double descent with flooding only in {only}, at "
        f"both in {shared}, at b = 0 only in {base_only}."
    )
    if only + shared + base_only == 0:
        shows += " No double descent was found anywhere."
    return _check("C4", shows, verdict)


def flatness(a: Analysis) -> Check:
    """C5, also stated under the flatness table."""
    table = a.sharpness
    if table is None:
        return _check("C5", "Not measured: the runs recorded no sharpness.", verdicts.NOT_TESTED)
    rows = table[table["has_flooding"] & (table["n_pairs"] > 0)]
    categories = categories_of(rows)
    verdict = verdicts.directional(categories, _tested(rows), claimed=verdicts.LOSS)
    flatter, sharper = categories.count(verdicts.LOSS), categories.count(verdicts.GAIN)
    shows = (
        f"Sharpness ({SHARPNESS_MEANING}) at the chosen b against b = 0, in "
        f"{plural(len(rows), 'setting')}: "
        f"significantly flatter in {flatter}, significantly sharper in {sharper}, "
        f"{categories.count(verdicts.NO_EVIDENCE)} with no evidence either way, "
        f"{categories.count(verdicts.B0_MOSTLY)} where most seeds chose b = 0."
    )
    sharper_means = int((rows["mean_difference"] > 0).sum())
    if sharper_means * 2 > len(rows):
        shows += (
            f" On average the flooded runs ended sharper in {sharper_means} of {len(rows)}, the "
            "opposite of the paper's argument"
            + (
                " and significantly so."
                if verdict == verdicts.CONTRADICTS
                else ", though not significantly."
            )
        )
    return _check("C5", shows, verdict)


def _c6(a: Analysis) -> Check:
    off = a.chosen[~a.chosen["early_stopping"].astype(bool) & (a.chosen["label_noise"] > 0)]
    flooded = off[off["flood_level"] > 0]
    if flooded.empty:
        return _check(
            "C6",
            "No seed chose b > 0 under label noise, so there is nothing to check.",
            verdicts.NOT_TESTED,
        )
    keys = [*SETTING_COLUMNS, "flood_method", "flood_level", "seed"]
    runs = a.runs[[*keys, "final_train_acc"]]
    final = flooded.merge(runs, on=keys)["final_train_acc"]
    memorised = int((final >= 1.0).sum())
    verdict = verdicts.existence(memorised, len(final))
    shows = (
        f"Of the {len(final)} seeds under label noise whose validated b was above 0 (early "
        f"stopping off), {memorised} ended with 100 % training accuracy on the noisy labels "
        "(every flipped label memorised)."
    )
    return _check("C6", shows, verdict)
