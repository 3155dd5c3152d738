"""The report's answer to "how should b be chosen?" with a search: the rounds each search
tried, the edge warnings it leaves, and b predicted from the b = 0 runs alone
(flooding.report.searched)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_verdicts import results

from flooding.report import build_report, diagnostics, searched, stats
from flooding.report.analysis import Analysis
from flooding.search import TABLE_COLUMNS, UNCHANGED, UPPER_END


def grid(levels=(0.1, 0.3, 0.5)):
    """Two seeds' worth of a Gaussians grid whose validation peaks at b = 0.3 and whose
    b = 0 runs end their best epoch at a training loss of 0.32 (predicted b)."""
    metrics, summary = results([{"base": 0.8, "gain": 0.02}], levels=levels)
    peak = {0.0: 0.7, 0.1: 0.75, 0.3: 0.9, 0.5: 0.8}
    for prefix in ("final", "best"):
        summary[f"{prefix}_val_acc"] = summary["flood_level"].map(peak)
    summary["final_test_acc"] = summary["flood_level"].map(
        {0.0: 0.8, 0.1: 0.81, 0.3: 0.85, 0.5: 0.82}
    )
    summary["best_train_loss"] = 0.32
    return metrics, summary


def search_table(summary: pd.DataFrame, stop: str) -> pd.DataFrame:
    setting = summary[summary["flood_level"] == 0].iloc[0]
    rows = [
        {
            **{c: setting[c] for c in stats.SETTING_COLUMNS},
            "search": "s",
            "flood_method": "flood",
            "round": r,
            "flood_level": b,
            "mean_val_acc": 0.8,
            "chosen_level": 0.3,
            "stop_reason": stop,
            "predicted_level": 0.32,
            "untrained_loss": 0.69,
        }
        for r, b in ((0, 0.0), (1, 0.1), (1, 0.3), (1, 0.5))
    ]
    return pd.DataFrame(rows, columns=[*stats.SETTING_COLUMNS, *TABLE_COLUMNS])


def test_predicted_b_is_scored_at_the_nearest_tried_level_beside_the_validated_b() -> None:
    metrics, summary = grid()
    analysis = Analysis.of(metrics, summary, None)
    (row,) = analysis.predictions.to_dict("records")
    assert row["predicted_level"] == 0.32 and row["predicted_tried"] == 0.3
    assert row["predicted_test"] == pytest.approx(0.85)
    assert row["validated_level"] == 0.3 and row["validated_test"] == pytest.approx(0.85)
    # The Gaussians' reference loss at no noise is the Bayes-error one, below 0.69.
    assert 0 < row["reference_level"] < math.log(2)
    assert not row["searched"]
    sentences = searched.prediction_sentences(analysis.predictions)
    assert "on average 0.00 points below" in sentences[0]
    assert sentences[-1].startswith("In 1 of 1 the predicted b came within 0.5 points")


def test_a_prediction_far_from_the_best_reports_its_shortfall() -> None:
    metrics, summary = grid()
    summary["best_train_loss"] = 0.6  # nearest tried level: 0.5, 3 points short
    (sentence, *_) = searched.prediction_sentences(Analysis.of(metrics, summary, None).predictions)
    assert "3.00 points below" in sentence and "largest shortfall 3.00 points" in sentence


def test_a_searched_setting_warns_of_an_edge_only_at_the_upper_end() -> None:
    metrics, summary = grid(levels=(0.1, 0.3))
    for prefix in ("final", "best"):  # validation now peaks at the top level, 0.3
        summary[f"{prefix}_val_acc"] = summary["flood_level"]
    plain = Analysis.of(metrics, summary, None)
    assert not plain.edges.empty, "a fixed grid warns of its edge"
    quiet = Analysis.of(metrics, summary, None, search=search_table(summary, UNCHANGED))
    assert quiet.edges.empty, "a search that ended by its rules does not"
    bound = Analysis.of(metrics, summary, None, search=search_table(summary, UPPER_END))
    assert bound.edges.equals(plain.edges), "one that hit the untrained loss does"
    assert searched.hard_bounds(search_table(summary, UPPER_END))["flood_method"].tolist() == [
        "flood"
    ]


def test_the_report_shows_each_search_round_by_round(tmp_path) -> None:
    metrics, summary = grid()
    out = build_report(
        metrics, summary, tmp_path / "r.html", search=search_table(summary, UPPER_END)
    )
    text = out.read_text(encoding="utf-8")
    assert "The search for b" in text
    assert "0: 0 (80.0) · 1: 0.1 (80.0), 0.3 (80.0), 0.5 (80.0)" in text
    assert '<td class="warn">upper end</td>' in text
    assert "Can b be predicted without a search?" in text
    without = build_report(metrics, summary, tmp_path / "n.html").read_text(encoding="utf-8")
    assert "The search for b" not in without


def test_idle_levels_use_the_searchs_upper_end() -> None:
    metrics, summary = grid(levels=(0.1, 0.7))
    metrics["train_loss"] = 0.67 * (metrics["epoch"] == 0) + 0.1  # starts at 0.77 > ln 2
    idle = diagnostics.idle_levels(metrics, summary)
    assert idle["flood_level"].tolist() == [0.7]
    assert idle["untrained_loss"].iloc[0] == pytest.approx(math.log(2))


def test_no_edge_advice_for_a_method_without_a_flood_level() -> None:
    edges = pd.DataFrame(
        {"flood_method": ["flood", "adaflood"], "advice": ["add b = 0.4", "add b = 1, 1.5"]}
    )
    empty = pd.DataFrame(columns=[*stats.SETTING_COLUMNS, *TABLE_COLUMNS])
    kept = searched.without_searched_edges(edges, empty)
    assert kept["flood_method"].tolist() == ["flood"]
