"""AdaFlood in the workflow: auxiliary models first, then the runs that read their losses;
reruns stay exact, and bad AdaFlood settings fail the dry run naming the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_workflow import copy_workflow, snakemake, write_config
from test_workflow_runs import changed, pending

pytestmark = pytest.mark.slow

SETTING = "gaussians-noise0.2/mlp/wd0-aug0"
AUX = f"results/aux/{SETTING}/seed0-folds2"
NOISY = [{"name": "gaussians", "label_noise": [0.2]}]


def config(**flood: Any) -> dict[str, Any]:
    methods = {"methods": ["flood", "iflood", "adaflood"], "levels": [0.0, 0.1], "gammas": [0.5]}
    return changed(datasets=NOISY, flood=methods | flood)


def test_gamma_trains_no_auxiliary_model_and_their_settings_retrain_only_adaflood(
    tmp_path: Path,
) -> None:
    workdir = copy_workflow(tmp_path, config())
    snakemake(workdir)
    for k in (0, 1):
        assert (workdir / AUX / f"fold{k}" / "losses.parquet").is_file()
    assert pending(workdir) == set()

    # Another gamma: one new run, reading the same losses; no auxiliary model trains.
    write_config(workdir, config(gammas=[0.5, 0.7]))
    planned = pending(workdir)
    assert {p for p in planned if p[0] in ("train", "train_aux")} == {
        ("train", f"{SETTING}/adaflood0.7/seed0")
    }

    # A setting of the auxiliary models only: they and the adaflood run retrain, the
    # flood and iflood runs of the setting do not.
    shorter = config()
    shorter["training"] = {**shorter["training"], "adaflood_aux_epochs": 1}
    write_config(workdir, shorter)
    planned = pending(workdir)
    assert {p for p in planned if p[0] == "train"} == {("train", f"{SETTING}/adaflood0.5/seed0")}
    assert {p for p in planned if p[0] == "train_aux"} == {("train_aux", f"{AUX}/losses.parquet")}

    # Epochs: every run of the setting and its auxiliary models retrain.
    longer = config()
    longer["training"] = {**longer["training"], "epochs": 3}
    write_config(workdir, longer)
    planned = pending(workdir)
    assert {p[1] for p in planned if p[0] == "train"} == {
        f"{SETTING}/{run}/seed0" for run in ("flood0", "flood0.1", "iflood0.1", "adaflood0.5")
    }
    assert {p for p in planned if p[0] == "train_aux"} == {("train_aux", f"{AUX}/losses.parquet")}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"flood": {"methods": ["adaflood"], "gammas": [1.0]}}, r"config key flood\.gammas\[0\]"),
        ({"training": {"adaflood_folds": 1}}, r"config key training\.adaflood_folds"),
        (
            {
                "flood": {"methods": ["adaflood"]},
                "datasets": [{"name": "spiral", "training": {"train_size": 10}}],
                "training": {"adaflood_folds": 5},
            },
            r"run spiral-noise0/mlp/wd0-aug0/adaflood0.5/seed0: adaflood_folds: invalid value 5",
        ),
    ],
    ids=["gamma", "folds-below-two", "folds-above-the-split"],
)
def test_bad_adaflood_settings_fail_the_dry_run_naming_the_key(
    tmp_path: Path, bad: dict[str, Any], expected: str
) -> None:
    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = snakemake(workdir, "--dry-run", "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert re.search(expected, output), output[-3000:]
    assert "Traceback" not in output
