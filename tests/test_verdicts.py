"""The answers section: each comparison's category and each claim's verdict, on small
hand-made result sets whose answer is known, and the rules as docs/report.md states them."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_results import CONFIG_DEFAULTS

from flooding.report import answers, build_report, claims, combinations, diagnostics, verdicts
from flooding.report.analysis import Analysis

SEEDS = range(5)
EPOCHS = 4
FLOODED = 0.1


def results(
    cells: list[dict], levels: tuple[float, ...] = (FLOODED,), epochs: int = EPOCHS
) -> tuple:
    """(metrics, summary) of a grid with a b = 0 and flooded runs per cell and seed.

    A cell sets `label_noise`, `weight_decay`, the b = 0 test accuracy `base` and the
    flooded run's `gain` over it. Seeds differ by a point at b = 0 (the seed spread) and
    their gains by a tenth of a point, so a gain of two points is significant and a gain of
    0 is not. Validation prefers the largest level, so it is chosen for every seed.
    """
    rows = []
    for cell in cells:
        for seed in SEEDS:
            base = cell["base"] + seed / 100
            config = {
                **CONFIG_DEFAULTS,
                "dataset": "gaussians",
                "label_noise": cell.get("label_noise", 0.0),
                "weight_decay": cell.get("weight_decay", 0.0),
                "seed": seed,
                "epochs": epochs,
            }
            rows.append({**config, "acc": base})
            for level in levels:
                gain = cell["gain"] + (seed - 2) / 1000
                rows.append({**config, "flood_level": level, "acc": base + gain})
    summary = pd.DataFrame(rows).assign(
        status="completed", epochs_completed=epochs, bayes_error=0.24
    )
    summary["run_dir"] = [f"run{i}" for i in range(len(summary))]
    summary["best_epoch"] = epochs
    for prefix in ("final", "best"):
        summary[f"{prefix}_val_acc"] = summary["flood_level"]
        summary[f"{prefix}_test_acc"] = summary["acc"]
        summary[f"{prefix}_train_acc"] = 0.9
    steps = np.arange(epochs + 1)
    metrics = pd.DataFrame(
        {
            "run_dir": np.repeat(summary["run_dir"].to_numpy(), len(steps)),
            "epoch": np.tile(steps, len(summary)),
        }
    )
    level = metrics["run_dir"].map(summary.set_index("run_dir")["flood_level"])
    metrics["train_loss"] = 0.69 * np.exp(-metrics["epoch"])
    metrics["batch_loss"] = metrics["train_loss"]
    metrics["test_loss"] = 0.7 - 0.05 * metrics["epoch"]  # falls throughout
    metrics["grad_norm"] = 1.0
    metrics["flooded_frac"] = np.where(metrics["epoch"] == 0, math.nan, 0.3 * (level > 0))
    metrics["epoch_seconds"] = 0.1
    return metrics, summary


def check(metrics: pd.DataFrame, summary: pd.DataFrame, claim: str) -> claims.Check:
    analysis = Analysis.of(metrics, summary, None)
    found = [c for answer in claims.answers(analysis) for c in answer.checks if c.claim == claim]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(
    ("gains", "verdict"),
    [
        ((0.02, 0.0), verdicts.SUPPORTS),
        ((-0.02, 0.0), verdicts.CONTRADICTS),
        ((0.02, -0.02), verdicts.INCONCLUSIVE),  # significant both ways
        ((0.0, 0.0), verdicts.INCONCLUSIVE),  # nothing significant
    ],
)
def test_rq1_verdict_follows_the_significant_comparisons(gains, verdict):
    cells = [{"label_noise": 0.1 * i, "base": 0.8, "gain": gain} for i, gain in enumerate(gains)]
    assert check(*results(cells), "C1").verdict == verdict


def test_rq1_is_not_tested_without_a_p_value():
    metrics, summary = results([{"base": 0.8, "gain": 0.02}])
    two_seeds = summary["seed"] < 2
    assert check(metrics, summary[two_seeds], "C1").verdict == verdicts.NOT_TESTED


@pytest.mark.parametrize(
    ("cells", "verdict", "best"),
    [
        # Weight decay 0.1 is better without flooding; flooding adds two points to it.
        (
            [
                {"weight_decay": 0.0, "base": 0.80, "gain": 0.0},
                {"weight_decay": 0.1, "base": 0.84, "gain": 0.02},
            ],
            verdicts.SUPPORTS,
            "flooding + weight decay 0.1",
        ),
        # The best option without flooding (weight decay 0.1, 85 %) beats every flooded one:
        # flooding costs two points there and adds one to the weaker option.
        (
            [
                {"weight_decay": 0.0, "base": 0.80, "gain": 0.01},
                {"weight_decay": 0.1, "base": 0.85, "gain": -0.02},
            ],
            verdicts.CONTRADICTS,
            "weight decay 0.1",
        ),
        (
            [
                {"weight_decay": 0.0, "base": 0.80, "gain": 0.0},
                {"weight_decay": 0.1, "base": 0.84, "gain": 0.0},
            ],
            verdicts.INCONCLUSIVE,
            None,
        ),
    ],
)
def test_rq3_verdict_compares_the_best_options_with_and_without_flooding(cells, verdict, best):
    metrics, summary = results(cells)
    assert check(metrics, summary, "C3").verdict == verdict
    analysis = Analysis.of(metrics, summary, None)
    (row,) = analysis.options.itertuples()
    assert row.plain == "weight decay 0.1" or row.plain == "early stopping + weight decay 0.1"
    if best is not None:
        assert row.best.endswith(best.split(" + ", 1)[-1]) and row.best.startswith(best[:8])


def test_rq3_option_names_say_only_what_the_grid_varies():
    option = {"flooded": True, "early_stopping": True, "weight_decay": 0.1, "augment": True}
    assert combinations.option_name(option, []) == "flooding + early stopping"
    assert (
        combinations.option_name(option, ["weight_decay", "augment"])
        == "flooding + early stopping + weight decay 0.1 + augmentation"
    )
    plain = {**option, "flooded": False, "early_stopping": False}
    assert combinations.option_name(plain, []) == "ordinary"
    assert combinations.option_name(plain, ["weight_decay"]) == "weight decay 0.1"


def test_categories_in_their_order():
    assert verdicts.category(0.001, 0.02, (0.1, 0.1, 0.1)) == verdicts.GAIN
    assert verdicts.category(0.001, -0.02, (0.1, 0.1, 0.1)) == verdicts.LOSS
    assert verdicts.category(0.2, 0.02, (0.1, 0.1, 0.1)) == verdicts.NO_EVIDENCE
    assert verdicts.category(None, 0.02, (0.1, 0.1)) == verdicts.NO_EVIDENCE
    # Three of five seeds chose b = 0: the result is mostly ordinary training again.
    assert verdicts.category(0.001, 0.02, (0, 0, 0, 0.1, 0.1)) == verdicts.B0_MOSTLY
    assert verdicts.category(0.001, 0.02, (0, 0, 0.1, 0.1)) == verdicts.GAIN


def test_headline_counts_categories_and_names_the_baseline_of_each_gain():
    cells = [
        {"weight_decay": 0.0, "base": 0.80, "gain": 0.03},
        {"weight_decay": 0.1, "base": 0.84, "gain": 0.0},
    ]
    analysis = Analysis.of(*results(cells), None)
    text = " ".join(analysis.headline())
    # Against b = 0: weight decay 0 gains with early stopping on and off; 0.1 does not.
    assert "4 comparisons" in text and "significant gain: 2, significant loss: 0" in text
    assert "over ordinary training with early stopping off" in text
    # Against the best without flooding (weight decay 0.1, 84 %): 83 % is no gain.
    assert "1 group of settings" in text and "no evidence: 1" in text


def test_most_seeds_choosing_b0_is_its_own_category(tmp_path):
    metrics, summary = results([{"base": 0.8, "gain": 0.02}])
    # Validation prefers b = 0 for seeds 0, 1 and 2.
    prefers_b0 = (summary["flood_level"] == 0) & (summary["seed"] < 3)
    for prefix in ("final", "best"):
        summary.loc[prefers_b0, f"{prefix}_val_acc"] = 1.0
    shows = check(metrics, summary, "C1").shows
    assert "2 where most seeds chose b = 0" in shows and "0 significant gains" in shows


def test_rq2_trend_of_the_chosen_level_with_noise():
    # The chosen b is 0.1 at noise 0 and 0.3 at noise 0.2: validation prefers the level
    # nearest 0.1 + noise, with a little per-seed wobble in the levels offered.
    cells = [{"label_noise": n, "base": 0.8, "gain": 0.0} for n in (0.0, 0.2)]
    metrics, summary = results(cells, levels=(0.1, 0.3))
    target = 0.1 + summary["label_noise"]
    for prefix in ("final", "best"):
        summary[f"{prefix}_val_acc"] = -((summary["flood_level"] - target) ** 2)
    flip = (summary["seed"] == 4) & (summary["label_noise"] == 0.2)
    summary.loc[flip & (summary["flood_level"] == 0.1), "final_val_acc"] = 1.0
    assert check(metrics, summary, "C2").verdict == verdicts.SUPPORTS


def test_the_rules_in_docs_are_the_rules_in_the_code():
    docs = Path(__file__).resolve().parents[1] / "docs" / "report.md"
    text = re.sub(r"\s+", " ", docs.read_text(encoding="utf-8"))
    for name, rule in (*verdicts.CATEGORY_RULES, *verdicts.VERDICT_RULES):
        assert f"{name}: {rule}" in text, name


def test_levels_that_did_nothing_are_flagged_and_never_chosen():
    metrics, summary = results([{"base": 0.8, "gain": 0.02}], levels=(0.05, 0.1, 0.8))
    # Validation would pick 0.05, which never flooded, and else 0.8, above ln 2 and above
    # the b = 0 runs' untrained loss (0.69).
    for prefix in ("final", "best"):
        summary.loc[summary["flood_level"] == 0.05, f"{prefix}_val_acc"] = 2.0
    never = summary.loc[summary["flood_level"] == 0.05, "run_dir"]
    metrics.loc[metrics["run_dir"].isin(never), "flooded_frac"] = 0.0
    analysis = Analysis.of(metrics, summary, None)
    idle = analysis.idle.set_index("flood_level")
    assert idle["reason"].to_dict() == {
        0.05: diagnostics.NEVER_ENGAGED,
        0.8: diagnostics.AT_UNTRAINED_LOSS,
    }
    assert idle.loc[0.8, "untrained_loss"] == pytest.approx(0.69)
    assert set(analysis.chosen["flood_level"]) == {0.1}
    assert all(levels == (0.1,) * 5 for levels in analysis.comparison["chosen_levels"])
    assert any("left out of the choice of b" in s for s in analysis.headline())


def test_the_untrained_loss_is_ln_c_when_the_runs_start_higher():
    metrics, summary = results([{"base": 0.8, "gain": 0.02}], levels=(0.1, 0.7))
    metrics["train_loss"] = 0.9 * np.exp(-metrics["epoch"])  # starts above ln 2
    idle = Analysis.of(metrics, summary, None).idle
    assert list(idle["flood_level"]) == [0.7]
    assert idle["untrained_loss"].iloc[0] == pytest.approx(math.log(2))


# Falls, rises by 60 % over four epochs, falls again to the end: a double descent.
DOUBLE_DESCENT = [1.0, 0.6, 0.5, 0.5, 0.7, 0.8, 0.8, 0.6, 0.45, 0.4, 0.38, 0.37, 0.36]


def with_double_descent(at_b0: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two noise levels; at noise 0 (not the setting the figures draw first) the flooded
    runs' test loss descends twice, and with `at_b0` the b = 0 runs' as well."""
    cells = [{"label_noise": n, "base": 0.8, "gain": 0.0} for n in (0.0, 0.2)]
    metrics, summary = results(cells, epochs=len(DOUBLE_DESCENT) - 1)
    setting = summary[summary["label_noise"] == 0.0]
    shaped = setting if at_b0 else setting[setting["flood_level"] > 0]
    rows = metrics["run_dir"].isin(shaped["run_dir"])
    metrics.loc[rows, "test_loss"] = np.array(DOUBLE_DESCENT)[metrics.loc[rows, "epoch"]]
    return metrics, summary


def test_a_double_descent_is_plotted_marked_and_counted(tmp_path):
    metrics, summary = with_double_descent(at_b0=False)
    assert check(metrics, summary, "C4").verdict == verdicts.SUPPORTS
    text = build_report(metrics, summary, tmp_path / "report.html").read_text(encoding="utf-8")
    # The figures: the plainest setting at the highest noise, and the one with the finding.
    assert "the test loss of 1 other setting where the detector found a double descent." in text
    grid = re.search(
        r'<img src="data:image/svg\+xml;base64,([^"]*)"[^>]*alt="Test loss where', text
    )
    assert grid is not None
    svg = base64.b64decode(grid.group(1)).decode("utf-8")
    assert ">label noise 0<" in svg  # its panel is titled with the setting
    assert "gaussians / mlp: the test loss of every other setting" in text
    assert "yes: epochs 2 → 5 → 12" in text


def test_one_detection_at_b0_and_the_validated_b_is_reported_once(tmp_path):
    metrics, summary = with_double_descent(at_b0=True)
    assert check(metrics, summary, "C4").verdict == verdicts.INCONCLUSIVE
    text = build_report(metrics, summary, tmp_path / "report.html").read_text(encoding="utf-8")
    assert text.count("yes: epochs 2 → 5 → 12") == 1
    assert "the same detection as at b = 0 (one detection)" in text
    assert "▼: the turns it found" in text


@pytest.mark.parametrize(
    ("change", "verdict"), [(-0.2, verdicts.SUPPORTS), (0.2, verdicts.CONTRADICTS)]
)
def test_flatness_verdict_says_when_flooded_runs_end_sharper(change, verdict):
    metrics, summary = results([{"base": 0.8, "gain": 0.0}])
    flooded = summary["flood_level"] > 0
    summary["sharpness"] = 0.5 + (change + 0.001 * summary["seed"] ** 2) * flooded
    found = check(metrics, summary, "C5")
    assert found.verdict == verdict
    assert ("the opposite of the paper's argument" in found.shows) == (change > 0)
    assert "relative size 0.05" in found.shows and "nats" in found.shows


def test_past_the_drawn_limit_a_detection_is_named_in_the_table(tmp_path, monkeypatch):
    monkeypatch.setattr(answers, "DESCENTS_DRAWN", 0)
    metrics, summary = with_double_descent(at_b0=False)
    text = build_report(metrics, summary, tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'alt="Test loss where' not in text
    assert "the table lists 1 more setting with a detection (smaller rises) not drawn" in text
    assert "yes: epochs 2 → 5 → 12" in text
