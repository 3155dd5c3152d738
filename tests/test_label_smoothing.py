"""Label smoothing, a regulariser axis declared once (RunConfig.label_smoothing): the loss,
the command line, the grid, the run paths and the report's RQ3 table all follow from the
declaration."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from fixtures_results import FakeGrid, make_results
from test_workflow_config import filled

from flooding.cli import main
from flooding.config import RunConfig, pack_axes
from flooding.flood import flooded_loss
from flooding.grid import expand_grid
from flooding.report import build_report


def test_the_flood_applies_to_the_smoothed_loss():
    gen = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(32, 4, generator=gen), torch.randint(0, 4, (32,), generator=gen)
    smoothed = F.cross_entropy(logits, targets, label_smoothing=0.2)
    plain = F.cross_entropy(logits, targets)
    level = float(smoothed) + 0.05  # above the smoothed loss: flooded
    result = flooded_loss(
        logits, targets, RunConfig(flood_level=level, label_smoothing=0.2, flood_method="flood")
    )
    torch.testing.assert_close(result.unflooded, smoothed)
    torch.testing.assert_close(result.loss, 2 * level - smoothed)
    assert result.flooded_frac.item() == 1.0
    assert not torch.allclose(smoothed, plain)
    off = flooded_loss(logits, targets, RunConfig(flood_level=0.0))
    assert torch.equal(off.loss, F.cross_entropy(logits, targets, reduction="none").mean())


def test_flooding_train_takes_the_option(tmp_path):
    out = tmp_path / "run"
    args = ["--dataset", "gaussians", "--train-size", "100", "--test-size", "50", "--epochs", "1"]
    args += ["--mlp-width", "8", "--mlp-depth", "1", "--batch-size", "40", "--threads", "1"]
    assert main(["train", *args, "--label-smoothing", "0.1", "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["config"]["label_smoothing"] == 0.1
    assert main(["train", *args, "--label-smoothing", "1.0", "--out", str(tmp_path / "x")]) == 2


def smoothing_grid(values: list[float]) -> dict:
    return filled(
        {
            "datasets": [{"name": "spiral"}],
            "regularisers": {"weight_decay": [0.0], "label_smoothing": values},
            "flood": {"levels": [0.0, 0.1]},
            "seeds": [0],
            "pack": {"by": ["label_smoothing", "flood"], "max_runs": 10},
        }
    )


def test_the_grid_expands_it_and_paths_show_it_only_away_from_its_default():
    grid = expand_grid(smoothing_grid([0.0, 0.1]))
    assert sorted(run.path for run in grid.runs) == [
        "spiral-noise0/mlp/wd0-aug0-ls0.1/flood0.1/seed0",
        "spiral-noise0/mlp/wd0-aug0-ls0.1/flood0/seed0",
        "spiral-noise0/mlp/wd0-aug0/flood0.1/seed0",
        "spiral-noise0/mlp/wd0-aug0/flood0/seed0",
    ]
    assert {run.config.label_smoothing for run in grid.runs} == {0.0, 0.1}
    assert "label_smoothing" in pack_axes()
    assert len(grid.packs) == 1 and len(grid.packs[0].runs) == 4


def test_a_bad_value_names_the_key():
    from flooding.schema import WorkflowConfigError

    with pytest.raises(WorkflowConfigError, match=r"regularisers\.label_smoothing\[0\]"):
        smoothing_grid([1.5])


def test_the_report_shows_it_in_the_rq3_table(tmp_path):
    metrics, summary = make_results(FakeGrid(datasets=("spiral",), seeds=(0, 1, 2)))
    smoothed_metrics, smoothed_summary = copy.deepcopy(metrics), copy.deepcopy(summary)
    for frame in (smoothed_metrics, smoothed_summary):
        frame["label_smoothing"] = 0.1
        frame["config_hash"] = frame["config_hash"] + "-ls"
        if "run_dir" in frame:
            frame["run_dir"] = frame["run_dir"] + "-ls"
    both_metrics = pd.concat([metrics, smoothed_metrics], ignore_index=True)
    both_summary = pd.concat([summary, smoothed_summary], ignore_index=True)
    page = build_report(both_metrics, both_summary, Path(tmp_path) / "r.html").read_text()
    # The tables that compare the regulariser combinations (RQ3) have a column per axis.
    headers = [re.findall(r"<th[^>]*>\s*([^<]*?)\s*</th>", t) for t in page.split("</table>")]
    rq3 = [h for h in headers if "weight decay" in h]
    assert rq3 and all("label smoothing" in h for h in rq3), rq3
