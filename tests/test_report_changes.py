"""What changed since an earlier summary: runs added, removed, retrained; answers flipped."""

from __future__ import annotations

import pandas as pd
from fixtures_results import FakeGrid, make_results, write_results

from flooding.report import changes, main

GRID = FakeGrid(datasets=("gaussians",), label_noises=(0.0, 0.2), seeds=(0, 1, 2), epochs=8)


def test_added_removed_and_retrained_runs_are_told_apart():
    _, old = make_results(GRID)
    new = old.copy()
    removed = new["run_dir"].iloc[0]
    new = new[new["run_dir"] != removed]
    retrained = new["run_dir"].iloc[0]
    new.loc[new["run_dir"] == retrained, "config_hash"] = "0" * 16
    added = new.iloc[[1]].assign(run_dir="results/runs/new-run")
    new = pd.concat([new, added], ignore_index=True)
    found = changes.changes(old, new)
    assert found.added["run_dir"].tolist() == ["results/runs/new-run"]
    assert found.removed["run_dir"].tolist() == [removed]
    assert found.retrained["run_dir"].tolist() == [retrained]


def test_a_comparison_whose_answer_changes_is_listed():
    _, old = make_results(GRID)
    new = old.copy()
    # Flooding becomes clearly better at noise 0.2: every flooded test accuracy +5 points.
    lift = (new["label_noise"] == 0.2) & (new["flood_level"] > 0)
    for column in ("final_test_acc", "best_test_acc"):
        new.loc[lift, column] += 0.05 + 0.001 * new.loc[lift, "seed"]
    found = changes.changes(old, new)
    assert len(found.flipped) > 0
    assert set(found.flipped["label_noise"]) == {0.2}
    assert set(found.flipped["after"]) == {"better"}
    assert set(found.flipped["before"]) == {"no significant difference"}


def test_answer_needs_a_holm_adjusted_p_below_alpha():
    assert changes.answer(0.01, 0.02) == "better"
    assert changes.answer(0.01, -0.02) == "worse"
    assert changes.answer(0.2, 0.02) == "no significant difference"
    assert changes.answer(None, 0.02) == "no significant difference"


def test_cli_previous_compares_with_the_kept_summary_then_keeps_this_one(tmp_path):
    metrics, old = make_results(GRID)
    metrics_path, summary_path = write_results(metrics, old, tmp_path / "results")
    kept = tmp_path / "results" / "summary.previous.parquet"
    out = tmp_path / "report.html"
    argv = ["--metrics", str(metrics_path), "--summary", str(summary_path), "--out", str(out)]
    assert main([*argv, "--previous", str(kept)]) == 0
    assert "What changed since the earlier report" not in out.read_text(encoding="utf-8")
    assert pd.read_parquet(kept).equals(pd.read_parquet(summary_path))
    new = old[old["seed"] != 2]
    new.to_parquet(summary_path, index=False)
    assert main([*argv, "--previous", str(kept)]) == 0
    text = out.read_text(encoding="utf-8")
    removed = int((old["seed"] == 2).sum())
    assert "What changed since the earlier report" in text
    assert f"0 runs added, {removed} removed, 0 retrained" in text
    assert len(pd.read_parquet(kept)) == len(new)
    # --compare names the earlier summary explicitly and keeps nothing.
    old.to_parquet(tmp_path / "old.parquet", index=False)
    assert main([*argv, "--compare", str(tmp_path / "old.parquet")]) == 0
    assert f"{removed} removed" in out.read_text(encoding="utf-8")


def test_runs_of_idle_levels_still_count_as_retrained_not_removed():
    """A level the report leaves out of its answers (one that never flooded) is still run:
    retrained, its runs count as retrained, never as removed."""
    _, old = make_results(GRID)
    level = old[old["flood_level"] > 0].iloc[0]
    keys = [*changes.stats.SETTING_COLUMNS, "flood_method", "flood_level"]
    idle = pd.DataFrame([level[keys]])
    at_level = (old[keys] == level[keys]).all(axis=1)
    new = old.copy()
    new.loc[at_level, "config_hash"] = "0" * 16
    found = changes.changes(old, new, idle)
    assert found.removed.empty and found.added.empty
    assert sorted(found.retrained["run_dir"]) == sorted(old.loc[at_level, "run_dir"])


def test_the_report_counts_a_retrained_idle_level_as_retrained():
    """End to end through the report's analysis: the level 0.02 never flooded, so the
    answers leave it out, yet its retrained runs are counted as retrained."""
    from flooding.report.analysis import Analysis

    metrics, old = make_results(GRID)
    never = metrics["run_dir"].isin(old.loc[old["flood_level"] == 0.02, "run_dir"])
    metrics.loc[never, "flooded_frac"] = 0.0
    new = old.copy()
    at_level = new["flood_level"] == 0.02
    new.loc[at_level, "config_hash"] = "0" * 16
    analysis = Analysis.of(metrics, new, old)
    assert not analysis.idle.empty
    assert analysis.changes.removed.empty
    assert len(analysis.changes.retrained) == int(at_level.sum())
