"""The search for b driven by Snakemake on real (tiny) runs: each round's runs appear once
the round before has finished (a checkpoint), and reruns stay exact: a finished search
plans nothing, a new seed trains that seed's levels, an epochs change retrains the
search's runs and nothing else, and a search killed half-way continues where it stopped.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_stale_lock import mark_incomplete
from test_workflow import copy_workflow, planned_counts, snakemake, write_config
from test_workflow_runs import CI_CONFIG, finished, killed_when

pytestmark = pytest.mark.slow

# Three epochs leave the b = 0 runs' losses within 0.03 of ln 2: a fine tolerance, so that
# round 1's spread level is not left out as too close to the predicted b.
SEARCH = {"levels": "auto", "search": {"initial": 2, "rounds": 1, "tolerance": 0.001}}


def config_with(gaussians: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """config/ci.yaml with the Gaussians (20 % noise) searching b, the spiral on the fixed
    list, runs packed by level and seed."""
    config = copy.deepcopy(CI_CONFIG)
    gaussians = {"name": "gaussians", "label_noise": [0.2], "flood": SEARCH, **(gaussians or {})}
    config.update(
        datasets=[{"name": "spiral"}, gaussians],
        pack={"by": ["flood", "seed"], "max_runs": 8},
        **changes,
    )
    return config


def searched(workdir: Path) -> pd.DataFrame:
    return pd.read_parquet(workdir / "results" / "search.parquet")


def gaussians_runs(workdir: Path) -> dict[str, int]:
    return {p: t for p, t in finished(workdir).items() if p.startswith("gaussians")}


def spiral_runs(workdir: Path) -> dict[str, int]:
    return {p: t for p, t in finished(workdir).items() if p.startswith("spiral")}


def test_a_search_runs_round_by_round_and_reruns_exactly(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path, config_with())
    planned = planned_counts(workdir)
    # What is known before any run: b = 0 (round 0) and the first decision to come.
    assert planned["search_round"] == 1
    snakemake(workdir)
    table = searched(workdir)
    assert set(table["search"]) == {"gaussians-noise0.2/mlp/wd0-aug0"}
    rounds = sorted(set(table["round"]))
    assert rounds[0] == 0 and 1 in rounds
    decisions = sorted((workdir / "results/search/gaussians-noise0.2/mlp/wd0-aug0").glob("*.json"))
    assert len(decisions) >= 2  # round 1's levels, then at least the decision that ended it
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    flooded = summary[summary["dataset"] == "gaussians"]
    assert sorted(flooded["flood_level"]) == sorted(table["flood_level"])
    assert list(flooded["status"]) == ["completed"] * len(flooded)
    page = (workdir / "reports" / "report.html").read_text(encoding="utf-8")
    assert "The search for b" in page and "Can b be predicted without a search?" in page
    assert planned_counts(workdir) == {}, "a finished search plans nothing"

    # A new seed: that seed's b = 0 runs, then the search decides again with both seeds,
    # and every level it keeps is trained for both.
    before = finished(workdir)
    write_config(workdir, config_with(seeds=[0, 1]))
    snakemake(workdir)
    table = searched(workdir)
    for level in table["flood_level"]:
        for seed in (0, 1):
            name = "flood0" if level == 0 else f"flood{level:g}"
            assert f"gaussians-noise0.2/mlp/wd0-aug0/{name}/seed{seed}" in finished(workdir)
    assert {p: t for p, t in finished(workdir).items() if p in before} == before, (
        "no run of seed 0 is trained again"
    )
    assert planned_counts(workdir) == {}

    # Longer training for the Gaussians: the search's runs train again, the spiral's not.
    spiral = spiral_runs(workdir)
    longer = config_with({"training": {"epochs": 3}}, seeds=[0, 1])
    write_config(workdir, longer)
    snakemake(workdir)
    assert spiral_runs(workdir) == spiral
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    gaussians = summary[summary["dataset"] == "gaussians"]
    assert set(gaussians["epochs_completed"]) == {3}
    assert len(gaussians) == 2 * len(searched(workdir))
    assert planned_counts(workdir) == {}


def test_a_search_killed_half_way_continues_where_it_stopped(tmp_path: Path) -> None:
    config = config_with()
    config["datasets"] = config["datasets"][1:]
    workdir = copy_workflow(tmp_path, config)
    folder = workdir / "results/search/gaussians-noise0.2/mlp/wd0-aug0"
    # Killed once round 1 is decided and its runs planned (their pack's spec written):
    # they are about to train (a job's start alone, importing torch, takes longer than
    # the poll).
    packs = workdir / "results/packs/gaussians-noise0.2"
    killed_when(workdir, lambda: any(packs.glob("**/*.json")))
    first = (folder / "round1.json").stat().st_mtime_ns
    baseline = gaussians_runs(workdir)
    # As if the kill fell while a spec was being written (it can: the poll sees the file
    # once it exists): empty, and marked incomplete. Snakemake reruns incomplete jobs only
    # if it finds them before the checkpoints are evaluated again, which a round's pack
    # spec is not; the workflow removes such files itself (flooding.stale_lock).
    for spec in packs.glob("**/*.json"):
        spec.write_text("")
        mark_incomplete(workdir / ".snakemake", str(spec.relative_to(workdir)))
    assert list(baseline) == ["gaussians-noise0.2/mlp/wd0-aug0/flood0/seed0"]

    snakemake(workdir)
    assert (folder / "round1.json").stat().st_mtime_ns == first, "round 1 is not decided again"
    runs = gaussians_runs(workdir)
    assert runs[next(iter(baseline))] == baseline[next(iter(baseline))], "b = 0 not retrained"
    assert len(runs) == len(searched(workdir)) > 1
    assert planned_counts(workdir) == {}


def test_a_searchs_runs_are_trained_before_the_rest_of_the_grid(tmp_path: Path) -> None:
    """The workflow profile prioritises the searches' decisions and every job they wait
    for: with one core, the rounds run first, not after the grid's other runs."""
    config = config_with()
    config["datasets"] = [{"name": "spiral", "label_noise": [0.0, 0.1]}, *config["datasets"][1:]]
    workdir = copy_workflow(tmp_path, config)
    jobs = []  # (rule, wildcards) in the order Snakemake started them
    rule = ""
    for line in snakemake(workdir, "--cores", "1").stderr.splitlines():
        if line.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint ")):
            rule = line.split()[-1].rstrip(":")
        elif line.strip().startswith("wildcards:"):
            jobs.append((rule, line.split(":", 1)[1].strip()))
    spiral = [i for i, (rule, w) in enumerate(jobs) if rule == "train_pack" and "spiral" in w]
    rounds = [i for i, (rule, _) in enumerate(jobs) if rule == "search_round"]
    assert spiral and rounds
    assert max(rounds) < min(spiral), f"the spiral trained before the search ended: {jobs}"
