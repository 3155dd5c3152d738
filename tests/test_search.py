"""The search for b: its round rule on synthetic validation curves, its bounds, and how a
config asks for it (flooding.search, flooding.grid)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from test_workflow import shipped_grid

from flooding import cli
from flooding import search as S
from flooding.grid import GridError, expand_grid
from flooding.metrics import METRICS_FILE, RUN_FILE
from flooding.schema import WorkflowConfigError, validate_workflow_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def filled(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate_workflow_config(config, SCHEMA)
    return config


def gaussians(flood: dict, seeds=(0, 1), **entry) -> dict:
    return {
        "datasets": [{"name": "gaussians", "label_noise": [0.1], **entry}],
        "flood": flood,
        "seeds": list(seeds),
    }


# The round rule on curves: level -> mean validation accuracy, b = 0 included.


def test_a_peak_inside_is_bracketed_by_the_midpoints_to_its_neighbours() -> None:
    curve = {0.0: 0.80, 0.1: 0.82, 0.2: 0.85, 0.3: 0.83, 0.4: 0.81}
    refinement = S.refine(curve, upper=0.69, tolerance=0.01)
    assert refinement.best == 0.2
    assert refinement.levels == [0.15, 0.25]
    assert not refinement.at_upper_end


def test_a_peak_at_the_top_edge_steps_beyond_it_but_stays_below_the_upper_end() -> None:
    curve = {0.0: 0.80, 0.1: 0.82, 0.2: 0.85}
    assert S.refine(curve, upper=0.69, tolerance=0.01).levels == [0.15, 0.3]
    # Close under the upper end the step is cut to halfway there.
    curve = {0.0: 0.80, 0.3: 0.82, 0.6: 0.85}
    assert S.refine(curve, upper=0.69, tolerance=0.01).levels == [0.45, 0.645]


def test_a_peak_at_the_upper_end_is_a_hard_bound_with_nothing_above_it() -> None:
    curve = {0.0: 0.80, 0.5: 0.82, 0.68: 0.85}
    refinement = S.refine(curve, upper=0.69, tolerance=0.01)
    assert refinement.at_upper_end
    assert refinement.levels == [0.59]  # the side below is still refined


def test_a_peak_at_the_lowest_level_steps_below_it_but_stays_above_zero() -> None:
    curve = {0.0: 0.80, 0.5: 0.85, 0.55: 0.83, 0.6: 0.82}
    assert S.refine(curve, upper=0.69, tolerance=0.01).levels == [0.45, 0.525]
    # Far from its upper neighbour the step is cut to halfway to 0.
    curve = {0.0: 0.80, 0.2: 0.85, 0.6: 0.82}
    assert S.refine(curve, upper=0.69, tolerance=0.01).levels == [0.1, 0.4]


def test_b_zero_best_refines_towards_zero_only_from_above() -> None:
    curve = {0.0: 0.85, 0.2: 0.82, 0.4: 0.80}
    refinement = S.refine(curve, upper=0.69, tolerance=0.01)
    assert (refinement.best, refinement.levels) == (0.0, [0.1])


def test_ties_go_to_the_smallest_level_so_a_flat_curve_refines_next_to_zero() -> None:
    flat = {0.0: 0.8, 0.2: 0.8, 0.4: 0.8}
    assert S.refine(flat, upper=0.69, tolerance=0.01) == S.Refinement(0.0, [0.1], False)
    tie = {0.0: 0.7, 0.2: 0.8, 0.4: 0.8}
    assert S.choose_best(tie) == 0.2
    assert S.choose_best({0.0: math.nan, 0.3: 0.5}) == 0.3


def test_no_level_closer_than_the_tolerance_to_one_tried() -> None:
    curve = {0.0: 0.80, 0.1: 0.82, 0.115: 0.85, 0.13: 0.83}
    assert S.refine(curve, upper=0.69, tolerance=0.02).levels == []
    assert S.refine(curve, upper=0.69, tolerance=0.01).levels == [0.1075, 0.1225]


@pytest.mark.parametrize("seed", range(20))
def test_no_level_is_ever_at_or_above_the_upper_end(seed: int) -> None:
    import random

    rng = random.Random(seed)
    upper = rng.uniform(0.05, 2.5)
    predicted = rng.uniform(0, upper)
    lower = rng.uniform(0, predicted)
    tolerance = rng.choice([0.001, 0.01])
    levels = S.first_levels(predicted, lower, upper, rng.randint(1, 9), tolerance)
    assert levels and all(0 < b < upper for b in levels)
    assert S.round_level(predicted) in levels or S.round_level(predicted) == 0
    curve = {0.0: 0.5, **{b: rng.random() for b in levels}}
    for _ in range(4):
        new = S.refine(curve, upper, rng.choice([0.001, 0.01])).levels
        assert all(0 < b < upper for b in new)
        assert not set(new) & set(curve)
        curve |= {b: rng.random() for b in new}


def test_the_first_round_is_the_predicted_b_and_a_spread_over_both_sides_of_it() -> None:
    # Predicted b 0.3; the spread of 4 - 1 levels between 0.1 and 0.7, both excluded.
    assert S.first_levels(0.3, 0.1, 0.7, 4, tolerance=0.01) == [0.25, 0.3, 0.4, 0.55]
    # A spread level within the tolerance of the predicted b is left out: it stands for it.
    assert S.first_levels(0.39, 0.1, 0.7, 4, tolerance=0.02) == [0.25, 0.39, 0.55]
    assert S.first_levels(0.39, 0.1, 0.7, 4, tolerance=0.005) == [0.25, 0.39, 0.4, 0.55]
    # One level: the predicted b alone.
    assert S.first_levels(0.3, 0.1, 0.7, 1, tolerance=0.01) == [0.3]
    # A predicted b of 0 is the b = 0 run itself: the round has one level fewer.
    assert S.first_levels(0.0, 0.0, 0.5, 5, tolerance=0.01) == [0.1, 0.2, 0.3, 0.4]


def test_the_lower_end_is_the_lowest_training_loss_and_never_above_the_prediction() -> None:
    assert S.engaging_end([0.1, 0.2], predicted=0.4) == 0.15
    assert S.engaging_end([0.5, 0.6], predicted=0.4) == 0.4
    assert S.engaging_end([math.nan], predicted=0.4) == 0.0


def test_the_upper_end_is_ln_c_or_the_runs_loss_before_training_if_lower() -> None:
    assert S.untrained_loss(10, [3.0, 3.2]) == pytest.approx(math.log(10))
    assert S.untrained_loss(2, [0.60, 0.64]) == pytest.approx(0.62)
    assert S.untrained_loss(2, [math.nan]) == pytest.approx(math.log(2))
    assert S.predicted_level([0.30, 0.40], upper=0.69) == 0.35
    assert S.predicted_level([0.9, 1.0], upper=0.69) == 0.69
    with pytest.raises(S.SearchError):
        S.predicted_level([math.nan], upper=0.69)


def test_paired_means_leave_a_seed_out_of_every_level_where_one_run_failed() -> None:
    means = S.paired_means({0.0: {0: 0.8, 1: 0.6}, 0.1: {0: 0.9, 1: math.nan}})
    assert means == {0.0: 0.8, 0.1: 0.9}


# Decisions: which method goes on, and why each stops.


def search_of(methods=("flood",), **plan) -> S.Search:
    """A search of two seeds on the Gaussians (levels: auto) with this plan."""
    flood = {"methods": list(methods), "levels": "auto", "search": plan}
    (search,) = expand_grid(filled(gaussians(flood))).searches
    return search


def accuracies(curve: dict[float, float], seeds=(0, 1)) -> dict[float, dict[int, float]]:
    return {b: dict.fromkeys(seeds, acc) for b, acc in curve.items()}


def test_round_one_of_levels_auto_comes_from_the_bounds_alone() -> None:
    search = search_of(initial=4)
    bounds = S.Bounds(predicted=0.3, lower=0.1, upper=0.7)
    decision = S.decide(search, 1, {"flood": accuracies({0.0: 0.8})}, None, bounds)
    assert decision.levels == {"flood": [0.25, 0.3, 0.4, 0.55]}
    assert (decision.predicted, decision.lower, decision.upper) == bounds
    assert decision.best == {} and decision.stopped == {}


def test_a_method_stops_when_a_round_leaves_its_best_where_it_was() -> None:
    search = search_of(initial=4)
    first = S.decide(
        search,
        2,
        {"flood": accuracies({0.0: 0.8, 0.3: 0.9, 0.5: 0.85})},
        None,
        S.Bounds(0.3, 0.0, 0.7),
    )
    assert first.levels == {"flood": [0.15, 0.4]} and first.best == {"flood": 0.3}
    curve = {0.0: 0.8, 0.15: 0.82, 0.3: 0.9, 0.4: 0.86, 0.5: 0.85}
    second = S.decide(search, 3, {"flood": accuracies(curve)}, first, S.Bounds(0.3, 0.0, 0.7))
    assert second.stopped == {"flood": S.UNCHANGED} and second.done
    # A moved best goes on.
    moved = S.decide(
        search, 3, {"flood": accuracies({**curve, 0.4: 0.95})}, first, S.Bounds(0.3, 0.0, 0.7)
    )
    assert moved.levels == {"flood": [0.35, 0.45]}


def test_a_method_stops_after_its_rounds_and_at_the_tolerance() -> None:
    search = search_of(rounds=1)
    curve = {0.0: 0.8, 0.2: 0.9, 0.4: 0.85}
    assert search.last_round == 2
    going = S.decide(search, 2, {"flood": accuracies(curve)}, None, S.Bounds(0.2, 0.0, 0.7))
    assert going.levels == {"flood": [0.1, 0.3]}
    ended = S.decide(
        search, 3, {"flood": accuracies({**curve, 0.3: 0.95})}, going, S.Bounds(0.2, 0.0, 0.7)
    )
    assert ended.stopped == {"flood": S.ROUNDS}
    tight = search_of(tolerance=0.5)
    assert S.decide(
        tight, 2, {"flood": accuracies(curve)}, None, S.Bounds(0.2, 0.0, 0.7)
    ).stopped == {"flood": S.TOLERANCE}


def test_methods_search_apart_and_a_stopped_one_stays_stopped() -> None:
    search = search_of(methods=("flood", "iflood"))
    at_top = {0.0: 0.8, 0.3: 0.85, 0.68: 0.9}
    inside = {0.0: 0.8, 0.3: 0.9, 0.68: 0.85}
    runs = {"flood": accuracies(at_top), "iflood": accuracies(inside)}
    first = S.decide(search, 2, runs, None, S.Bounds(0.3, 0.0, 0.69))
    assert first.stopped == {"flood": S.UPPER_END}
    assert first.levels == {"flood": [], "iflood": [0.15, 0.49]}
    second = S.decide(search, 3, runs, first, S.Bounds(0.3, 0.0, 0.69))
    assert second.stopped == {"flood": S.UPPER_END, "iflood": S.UNCHANGED}


def test_a_decision_reads_back_as_written() -> None:
    decision = S.Decision(
        2, {"flood": [0.15]}, {}, {"flood": 0.2}, {"flood": [(0.0, 0.8)]}, 0.01, 0.69, [0], 0.1
    )
    assert S.Decision.from_json(decision.to_json()) == decision
    assert "adds 0.15" in decision.describe()
    # A decision written when round 1 started at the predicted b named it the lower end.
    older = json.loads(decision.to_json())
    del older["predicted"]
    older["lower"] = 0.1
    assert S.Decision.from_json(json.dumps(older)) == dataclasses.replace(decision, lower=0.1)


# The decision from real run folders: the files a run writes.


def write_run(folder: Path, losses: list[float], val: list[float], status="completed") -> None:
    folder.mkdir(parents=True)
    epochs = range(len(losses))
    pd.DataFrame({"epoch": epochs, "train_loss": losses, "val_acc": val}).to_parquet(
        folder / METRICS_FILE
    )
    (folder / RUN_FILE).write_text(json.dumps({"status": status}))


def test_decide_round_reads_the_runs_and_writes_its_decision(tmp_path: Path) -> None:
    search = search_of(initial=3)
    runs = tmp_path / "runs"
    # Epoch 0 (before training) then 3 epochs; best validation at epoch 2.
    write_run(runs / search.baselines[0].path, [0.66, 0.5, 0.3, 0.1], [0.5, 0.7, 0.8, 0.75])
    write_run(runs / search.baselines[1].path, [0.70, 0.5, 0.5, 0.1], [0.5, 0.7, 0.9, 0.75])
    decision = S.decide_round(search, 1, runs, tmp_path / "search")
    assert decision.upper == pytest.approx(0.68)  # the runs' mean start, below ln 2
    assert decision.predicted == 0.4  # the mean training loss at the best epoch
    assert decision.lower == 0.1  # the mean lowest training loss
    assert decision.levels == {"flood": [0.2933, 0.4, 0.4867]}
    assert S.read_decision(tmp_path / "search" / "round1.json") == decision
    assert decision.tried == {"flood": [(0.0, 0.75)]}


def test_a_search_reads_back_from_its_file_as_the_grid_made_it() -> None:
    for search in [*shipped_grid("config").searches, search_of(("flood", "iflood"), rounds=2)]:
        assert S.Search.from_json(search.to_json()) == search


def test_the_search_round_command_decides_from_the_searchs_file(tmp_path: Path) -> None:
    """What the workflow's search_round job runs: the same decision as in-process, into
    the folder of the search's file; a second method's levels come out apart."""
    search = search_of(("flood", "iflood"), initial=3)
    runs, folder = tmp_path / "runs", tmp_path / "search"
    write_run(runs / search.baselines[0].path, [0.66, 0.5, 0.3, 0.1], [0.5, 0.7, 0.8, 0.75])
    write_run(runs / search.baselines[1].path, [0.70, 0.5, 0.5, 0.1], [0.5, 0.7, 0.9, 0.75])
    folder.mkdir()
    (folder / "search.json").write_text(search.to_json())
    argv = ["search-round", "--search", str(folder / "search.json"), "--round", "1"]
    assert cli.main([*argv, "--runs", str(runs)]) == 0
    expected = S.decide_round(search, 1, runs, tmp_path / "in-process")
    assert S.read_decision(folder / "round1.json") == expected
    assert expected.levels == {"flood": [0.2933, 0.4, 0.4867], "iflood": [0.2933, 0.4, 0.4867]}
    # Without the b = 0 runs there is nothing to decide from: one line, exit 2.
    assert cli.main([*argv, "--runs", str(tmp_path / "none")]) == 2


def test_run_measures_of_a_failed_run_are_missing(tmp_path: Path) -> None:
    write_run(tmp_path / "r", [0.7, 0.5], [0.5, 0.6], status="failed")
    assert all(math.isnan(x) for x in S.run_measures(tmp_path / "r"))
    assert all(math.isnan(x) for x in S.run_measures(tmp_path / "missing"))


# How a config asks for a search.


def test_levels_auto_runs_b_zero_first_and_leaves_the_rest_to_the_search() -> None:
    grid = expand_grid(filled(gaussians({"levels": "auto"})))
    assert [r.config.flood_level for r in grid.runs] == [0.0, 0.0]
    (search,) = grid.searches
    assert search.name == "gaussians-noise0.1/mlp/wd0-aug0"
    assert search.plan == S.SearchPlan()  # levels: auto alone takes the documented defaults
    assert search.seeds == [0, 1] and search.first_decided_round == 1
    runs = search.runs({"flood": [0.25]})
    assert [r.path for r in runs] == [
        "gaussians-noise0.1/mlp/wd0-aug0/flood0.25/seed0",
        "gaussians-noise0.1/mlp/wd0-aug0/flood0.25/seed1",
    ]
    assert runs[0].config == search.baselines[0].config.__class__.from_dict(
        {**search.baselines[0].config.to_dict(), "flood_level": 0.25}
    )


def test_a_listed_first_round_is_part_of_the_grid_and_the_search_refines_from_it() -> None:
    grid = expand_grid(filled(gaussians({"levels": [0.1, 0.3], "search": {"rounds": 2}})))
    assert sorted({r.config.flood_level for r in grid.runs}) == [0.0, 0.1, 0.3]
    (search,) = grid.searches
    assert search.listed == (0.1, 0.3) and search.first_decided_round == 2
    assert search.plan == S.SearchPlan(rounds=2)


def test_a_search_is_per_dataset_or_architecture_like_any_key() -> None:
    config = gaussians({"levels": [0.0, 0.1]})
    config["archs"] = [
        {"name": "mlp", "flood": {"levels": "auto"}},
        {"name": "mlp", "label": "wide"},
    ]
    grid = expand_grid(filled(config))
    assert [s.name for s in grid.searches] == ["gaussians-noise0.1/mlp/wd0-aug0"]
    assert {r.path.split("/")[3] for r in grid.runs if "wide" in r.path} == {"flood0", "flood0.1"}
    # A dataset's fixed list with search: false wins over a global search.
    config = gaussians({"levels": "auto"})
    config["datasets"][0]["flood"] = {"levels": [0.0, 0.2], "search": False}
    assert expand_grid(filled(config)).searches == ()


def test_the_default_and_paper_configs_expand() -> None:
    assert shipped_grid("config").searches
    assert shipped_grid("paper").searches == ()


@pytest.mark.parametrize(
    ("flood", "key"),
    [
        ({"levels": "auto", "search": {"initial": 0}}, "flood.search.initial"),
        ({"levels": "auto", "search": {"rounds": -1}}, "flood.search.rounds"),
        ({"levels": "auto", "search": {"tolerance": 0}}, "flood.search.tolerance"),
        ({"levels": "all"}, "flood.levels"),
        ({"levels": [0.1], "search": {"steps": 3}}, "flood.search"),
    ],
)
def test_bad_search_settings_name_their_key(flood: dict, key: str) -> None:
    with pytest.raises(WorkflowConfigError, match=f"config key {key}:"):
        filled(gaussians(flood))


def test_levels_auto_for_methods_without_a_level_names_the_key() -> None:
    config = gaussians({"levels": "auto"})
    config["datasets"][0]["flood"] = {"methods": ["adaflood"]}
    with pytest.raises(GridError, match=r"datasets\[0\] \(gaussians\)\.flood\.levels: .*adaflood"):
        expand_grid(filled(config))


def test_a_method_without_a_level_trains_at_its_gammas_beside_a_search() -> None:
    config = gaussians({"methods": ["flood", "adaflood"], "levels": "auto", "gammas": [0.5]})
    grid = expand_grid(filled(config))
    (search,) = grid.searches
    assert search.methods == ("flood",)
    assert [s.name for s in grid.searches] == ["gaussians-noise0.1/mlp/wd0-aug0"]
    assert {r.path.split("/")[3] for r in grid.runs} == {"flood0", "adaflood0.5"}
    assert [r.path for r in search.baselines] == [
        "gaussians-noise0.1/mlp/wd0-aug0/flood0/seed0",
        "gaussians-noise0.1/mlp/wd0-aug0/flood0/seed1",
    ]


def test_idle_levels_are_flagged_on_real_runs(tmp_path: Path) -> None:
    """Runs trained to show both flags: b = 0.0001 is never reached in three epochs (the
    flood never engages), b = 0.9 is above ln 2, the loss of a model that knows nothing."""
    from flooding.aggregate import aggregate_runs
    from flooding.config import RunConfig
    from flooding.report import read_metrics, with_every_setting
    from flooding.report.analysis import Analysis
    from flooding.report.diagnostics import AT_UNTRAINED_LOSS, NEVER_ENGAGED
    from flooding.runtime import Runtime
    from flooding.train import run

    small = {"dataset": "gaussians", "train_size": 100, "test_size": 100, "epochs": 3}
    small |= {"mlp_depth": 1, "mlp_width": 16, "batch_size": 20, "lr": 0.05}
    folders = []
    for level in (0.0, 0.0001, 0.3, 0.9):
        folder = tmp_path / "runs" / f"b{level}"
        cfg = RunConfig.from_dict({**small, "flood_level": level})
        assert run(cfg, Runtime(out=folder, device="cpu", threads=1)) == 0
        folders.append(str(folder))
    tables = tmp_path / "metrics.parquet", tmp_path / "summary.parquet"
    aggregate_runs(folders, *map(str, tables), {}, None)
    metrics = read_metrics(tables[0])
    summary = with_every_setting(pd.read_parquet(tables[1]))
    idle = Analysis.of(metrics, summary, None).idle.set_index("flood_level")
    assert idle["reason"].to_dict() == {0.0001: NEVER_ENGAGED, 0.9: AT_UNTRAINED_LOSS}
    assert idle.loc[0.9, "untrained_loss"] <= math.log(2)


def test_the_plan_counts_what_the_searches_may_add() -> None:
    from flooding.plan import make_plan, render

    grid = shipped_grid("config")
    text = render(make_plan(grid, {}, None, 1000, 2))
    # Three Gaussians settings, one method searched, five seeds; the default's plan of 4
    # levels and 1 round adds at most (4 + 1 x 2) levels to each.
    assert len(grid.searches) == 3
    assert {(s.plan.initial, s.plan.rounds) for s in grid.searches} == {(4, 1)}
    assert "searches for b: 3 settings" in text
    assert f"add at most {3 * (4 + 1 * 2) * 5} runs" in text


def test_the_search_table_columns_are_documented() -> None:
    text = (ROOT / "docs" / "search.md").read_text(encoding="utf-8")
    assert all(f"`{column}`" in text for column in S.TABLE_COLUMNS)
    # And each stop reason, in the table of reasons.
    assert all(f"| `{r}` |" in text for r in (S.UPPER_END, S.ROUNDS, S.UNCHANGED, S.TOLERANCE))


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"flood": {"levels": "auto", "search": {"rounds": 0}}}, "config key flood.search.rounds"),
        (
            {"flood": {"methods": ["adaflood"], "levels": "auto"}},
            "datasets[0] (gaussians).flood.levels: a search for b, but adaflood takes no flood",
        ),
    ],
    ids=["rounds-zero", "method-without-a-level"],
)
def test_bad_search_settings_fail_the_dry_run_in_a_line(
    tmp_path: Path, bad: dict, expected: str
) -> None:
    import yaml
    from test_workflow import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = snakemake(workdir, "--dry-run", "--configfile", "bad.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output, output[-3000:]
    assert "Traceback" not in output
