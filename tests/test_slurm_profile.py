"""The SLURM profile (slurm/config.yaml) and the local-cluster scripts, without SLURM."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from snakemake_executor_plugin_submitit.resources import slurm_request
from snakemake_executor_plugin_submitit.settings import ExecutorSettings

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "slurm" / "config.yaml"


def test_profile_sets_the_executor_and_its_settings_exist() -> None:
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "submitit"
    assert profile["keep-going"] is True
    assert profile["rerun-incomplete"] is True
    assert profile["jobs"] >= profile["submitit-max-array-size"]
    fields = {field.name for field in dataclasses.fields(ExecutorSettings)}
    settings = {
        key.removeprefix("submitit-").replace("-", "_"): value
        for key, value in profile.items()
        if key.startswith("submitit-")
    }
    assert set(settings) <= fields
    ExecutorSettings(**settings).check()


def test_training_jobs_get_a_gpu_and_valid_resources() -> None:
    profile = yaml.safe_load(PROFILE.read_text())
    train = {**profile["default-resources"], **profile["set-resources"]["train"]}
    assert train["gpu"] >= 1
    request = slurm_request(train, threads=4)
    assert request.gpus == train["gpu"]
    assert request.time_min == profile["default-resources"]["runtime"]


def test_profile_names_the_lines_to_edit_and_the_official_plugin() -> None:
    text = PROFILE.read_text()
    edits = [line for line in text.splitlines() if "EDIT" in line and line.lstrip().startswith("#")]
    edited = " ".join(edits)
    for key in ("slurm_partition", "slurm_account", "gpu_model"):
        assert key in edited, f"no EDIT line for {key}"
    assert "executor: slurm" in text


def test_snakemake_accepts_the_profile(tmp_path: Path) -> None:
    for name in ("Snakefile", "workflow", "config", "envs", "slurm"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    snakemake = Path(sys.executable).parent / "snakemake"
    result = subprocess.run(
        [str(snakemake), "--profile", "slurm", "--configfile", "config/ci.yaml", "-n"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    train_jobs = output.split("rule train:")[1:]
    assert train_jobs, output
    assert all("gpu=1" in job.split("\n\n")[0] for job in train_jobs), output


def test_cluster_scripts_parse() -> None:
    for script in ("start.sh", "stop.sh"):
        result = subprocess.run(
            ["bash", "-n", str(REPO / "cluster" / script)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
