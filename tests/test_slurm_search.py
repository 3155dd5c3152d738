"""The search for b on a real SLURM, through `snakemake --profile slurm`: each round's runs
are submitted once the round before has finished, as jobs of their own, and a second
invocation submits nothing.

Opt-in, like tests/test_slurm_e2e.py (whose cluster fixture and helpers these reuse).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from test_slurm_e2e import (  # noqa: F401 (slurm_cluster is a fixture)
    sacct_rows,
    slurm_cluster,
    snakemake_env,
    start_snakemake,
    write_profile,
)
from test_workflow import copy_workflow
from test_workflow_runs import CI_CONFIG

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_each_round_of_a_search_is_submitted_after_the_last(
    slurm_cluster: datetime,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = {
        **CI_CONFIG,
        "datasets": [{"name": "gaussians", "label_noise": [0.2]}],
        "flood": {"levels": "auto", "search": {"initial": 2, "rounds": 1}},
        "pack": {"by": ["flood", "seed"], "max_runs": 8},
    }
    workdir = copy_workflow(tmp_path, config)
    write_profile(workdir)
    env = snakemake_env()
    first = start_snakemake(workdir, "first", env)
    assert first.wait(timeout_s=600) == 0, first.output

    table = pd.read_parquet(workdir / "results" / "search.parquet")
    rounds = sorted(set(table["round"]))
    assert rounds[:2] == [0, 1]
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    assert sorted(summary["flood_level"]) == sorted(table["flood_level"])
    jobs = sacct_rows(slurm_cluster, workdir)
    train = sorted({job.array_id for job in jobs if job.name.startswith("train")})
    # One submission a round with runs: b = 0, round 1, and each refinement that ran.
    assert len(train) == len(rounds)
    # The decisions are made on the submitting node, not as jobs.
    assert "localrule search_round" in first.output
    assert not [job for job in jobs if job.name.startswith("search")]

    second = start_snakemake(workdir, "second", env)
    assert second.wait(timeout_s=120) == 0, second.output
    assert sacct_rows(slurm_cluster, workdir) == jobs, "a finished search submits nothing"
