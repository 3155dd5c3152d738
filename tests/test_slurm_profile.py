"""The SLURM profile (slurm/config.yaml) and the local-cluster scripts, without SLURM."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flooding.grid import expand_grid
from flooding.schema import merge_configs, validate_workflow_config
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


def test_the_profile_leaves_gpu_counts_to_the_config() -> None:
    # A gpu in default-resources or set-resources would override the config's per-dataset
    # and per-architecture counts (set-resources) or hide where the config is silent.
    profile = yaml.safe_load(PROFILE.read_text())
    assert "gpu" not in profile["default-resources"]
    assert "gpu" not in (profile.get("set-resources") or {}).get("train", {})
    request = slurm_request(profile["default-resources"], threads=4)
    assert request.time_min == profile["default-resources"]["runtime"]


def dry_run(tmp_path: Path, *args: str) -> str:
    """`snakemake --profile slurm -n ...` in a copy of the workflow; its output."""
    for name in ("Snakefile", "workflow", "config", "envs", "slurm"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    snakemake = Path(sys.executable).parent / "snakemake"
    result = subprocess.run(
        [str(snakemake), "--profile", "slurm", *args, "-n"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def train_jobs(output: str) -> list[tuple[set[str], int]]:
    """(run paths, GPUs asked for) of each train job in a dry run's output."""
    jobs = []
    for block in output.split("rule train:")[1:]:
        job = block.split("\n\n")[0].split("\n[")[0]
        runs = set(re.findall(r"results/runs/(\S+?)/[\w.]+\.(?:parquet|json)", job))
        gpus = re.search(r"\bgpu=(\d+)", job)
        jobs.append((runs, int(gpus.group(1)) if gpus else 0))
    return jobs


def test_snakemake_accepts_the_profile(tmp_path: Path) -> None:
    jobs = train_jobs(dry_run(tmp_path, "--configfile", "config/ci.yaml"))
    assert jobs
    # config/ci.yaml asks for no GPU, and the profile adds none.
    assert all(gpus == 0 for _, gpus in jobs), jobs


@pytest.mark.slow
def test_paper_grid_asks_for_gpus_only_for_the_runs_that_want_them(tmp_path: Path) -> None:
    jobs = train_jobs(dry_run(tmp_path, "--configfile", "config/paper.yaml"))
    config = merge_configs(
        *(yaml.safe_load((REPO / "config" / n).read_text()) for n in ("config.yaml", "paper.yaml"))
    )
    validate_workflow_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    wanted = {path: run.resources.gpu for path, run in expand_grid(config).by_path.items()}
    asked = {path: gpus for runs, gpus in jobs for path in runs}
    assert {path: wanted[path] for path in asked} == asked
    # The runs that are not one job each are trained in packs: the CPU-sized synthetic
    # runs, and the 28x28 benchmarks' MLPs, whose flood settings share a GPU as a stack.
    packed = set(wanted) - set(asked)
    assert all(wanted[path] == 0 or "/mlp2x1000/" in path for path in packed)
    assert any("/mlp2x1000/" in path for path in packed)
    with_gpu = sum(gpus > 0 for gpus in asked.values())
    print(f"\npaper grid: {len(asked)} runs, {with_gpu} ask for a GPU")
    # The paper's synthetic MLPs are CPU-sized; its image runs want a GPU.
    synthetic = [path for path in wanted if path.startswith(("gaussians", "sinusoid"))]
    assert synthetic and all(wanted[path] == 0 for path in synthetic)
    assert not any(asked.get(path, 0) for path in synthetic)
    assert packed and 0 < with_gpu < len(wanted)


def test_profile_names_the_lines_to_edit_and_the_official_plugin() -> None:
    text = PROFILE.read_text()
    edits = [line for line in text.splitlines() if "EDIT" in line and line.lstrip().startswith("#")]
    edited = " ".join(edits)
    for key in ("slurm_partition", "slurm_account", "gpu_model"):
        assert key in edited, f"no EDIT line for {key}"
    assert "executor: slurm" in text


def test_cluster_scripts_parse() -> None:
    for script in ("start.sh", "stop.sh"):
        result = subprocess.run(
            ["bash", "-n", str(REPO / "cluster" / script)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr


def test_slurm_tests_are_skipped_unless_asked_for() -> None:
    # A plain pytest must not start a cluster (packages, /etc/slurm, daemons).
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CI", "FLOODING_TEST_SLURM", "PYTEST_ADDOPTS")
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "slurm"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SLURM tests not asked for: run pytest --slurm" in result.stdout
    assert " passed" not in result.stdout and " failed" not in result.stdout
