"""The Snakemake workflow planned without running it: the shipped configs, config errors, lint.

Each test works in a temporary copy of the workflow, so nothing is written into the
repository's results/ or .snakemake/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_workflow_config import filled

from flooding.grid import Grid, expand_grid
from flooding.schema import merge_configs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKFLOW_FILES = ("Snakefile", "workflow", "profiles", "config", "envs")


def copy_workflow(dest: Path, config: dict[str, Any] | None = None) -> Path:
    """The workflow in `dest`; `config`, if given, replaces config/config.yaml there."""
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy(source, dest / name)
    if config is not None:
        write_config(dest, config)
    return dest


def write_config(workdir: Path, config: dict[str, Any]) -> None:
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the venv's snakemake in `workdir`; jobs find the venv's `flooding` on PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        output = result.stdout + result.stderr
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{output[-6000:]}")
    return result


def planned_counts(workdir: Path, *args: str) -> Counter[str]:
    """Jobs per rule that `snakemake -n` would run (its 'Job stats' table)."""
    text = snakemake(workdir, "--dry-run", "--quiet", "rules", *args).stdout
    if "Nothing to be done" in text:
        return Counter()
    table = text.split("Job stats:")[1].split("\n\n")[0]
    rows = (line.split() for line in table.splitlines()[3:])
    return Counter({rule: int(n) for rule, n in rows if rule != "total"})


def shipped_grid(name: str) -> Grid:
    """The grid of a shipped config as Snakemake reads it: merged over config.yaml."""
    layers = [yaml.safe_load((ROOT / "config" / f"{n}.yaml").read_text()) for n in ("config", name)]
    return expand_grid(filled(merge_configs(*layers)))


def test_default_config_plans_the_whole_pipeline_in_packs_without_downloads(
    tmp_path: Path,
) -> None:
    workdir = copy_workflow(tmp_path)
    grid = shipped_grid("config")
    assert grid.singles == [] and sum(len(pack.runs) for pack in grid.packs) == len(grid.runs)
    planned = {"pack_spec": len(grid.packs), "train_pack": len(grid.packs)}
    planned |= {"aggregate": 1, "report": 1, "all": 1}
    # AdaFlood's auxiliary models: a job per seed training its folds and gathering their
    # losses, then one table for the report.
    planned |= {"train_aux": len(grid.aux), "aux_table": 1}
    # The searches for b: what is known before any run is each one's file and first
    # decision (its later rounds appear as the runs finish), its table, and the table of
    # all of them.
    searches = len(grid.searches)
    planned |= {"search_spec": searches, "search_round": searches, "search_rounds": searches}
    planned |= {"search_table": 1}
    assert planned_counts(workdir) == planned


def test_a_pack_job_reads_its_spec_from_a_file_so_its_command_is_short(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    text = snakemake(workdir, "--dry-run", "--printshellcmds").stdout
    commands = [line for line in text.splitlines() if "flooding train-pack" in line]
    assert len(commands) == len(shipped_grid("config").packs)
    for command in commands:
        assert re.search(r"flooding train-pack --spec results/packs/\S+\.json ", command)
        assert len(command) < 300 and '"runs"' not in command, command


def test_a_pack_trains_its_stacks_as_its_config_says(tmp_path: Path) -> None:
    """`pack: vectorise` reaches each pack's command: the default's Gaussians train one
    run after another, the rest as stacked models."""
    workdir = copy_workflow(tmp_path)
    text = snakemake(workdir, "--dry-run", "--printshellcmds").stdout
    flags = {}
    for line in text.splitlines():
        if found := re.search(r"--spec results/packs/(\S+)\.json .*(--(?:no-)?vectorise) ", line):
            flags[found[1]] = found[2]
    packs = {pack.name: pack for pack in shipped_grid("config").packs}
    assert flags.keys() == packs.keys()
    expected = {name: pack.runs[0].pack.vectorise for name, pack in packs.items()}
    assert {name: flag == "--vectorise" for name, flag in flags.items()} == expected
    assert set(expected.values()) == {True, False}  # the default uses both


def test_outside_the_virtual_environment_the_workflow_says_so_in_one_line(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    # The venv's snakemake by its path, with the venv's bin not on PATH: no `flooding`.
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--dry-run"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "activate the virtual environment" in line]
    assert lines == [
        "the flooding package or its `flooding` command is not found: activate the virtual "
        "environment (source .venv/bin/activate) or run through make (make report)"
    ], output
    assert len(output) < 1000, output


def report_command(workdir: Path, *args: str) -> str:
    text = snakemake(workdir, "--dry-run", "--printshellcmds", *args).stdout
    (command,) = [line for line in text.splitlines() if "flooding report" in line]
    return command


def test_the_report_title_defaults_to_the_report_commands_own(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    workdir = copy_workflow(tmp_path, {k: v for k, v in config.items() if k != "title"})
    assert "--title" not in report_command(workdir)
    (workdir / "titled.yaml").write_text("title: Mine, with 'quotes'\n")
    titled = report_command(workdir, "--configfile", "titled.yaml")
    assert """--title 'Mine, with '"'"'quotes'"'"''""" in titled


def test_default_config_asks_the_papers_four_questions() -> None:
    grid = expand_grid(filled(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())))
    runs = grid.runs
    configs = [run.config for run in runs]
    assert len({c.dataset for c in configs}) >= 2 and "digits" in {c.dataset for c in configs}
    assert {"mlp", "resnet_tiny"} <= {c.arch for c in configs}
    assert len({(c.weight_decay, c.augment) for c in configs}) >= 2
    searched = {search.baselines[0].config.dataset for search in grid.searches}
    for dataset in {c.dataset for c in configs}:
        levels = {c.flood_level for c in configs if c.dataset == dataset}
        assert 0.0 in levels
        # Five levels at least: a fixed list, or a search whose first round with b = 0 has
        # five (and whose refinements add more).
        assert len(levels) >= 5 or (dataset in searched and grid.searches[0].plan.initial >= 4)
    assert len({c.seed for c in configs}) >= 5
    noise_levels = Counter(
        len({c.label_noise for c in configs if c.dataset == d})
        for d in {c.dataset for c in configs}
    )
    assert max(noise_levels) >= 3
    assert all(run.download is None for run in runs)


def test_paper_config_plans_downloads_then_training_without_the_data(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    counts = planned_counts(
        workdir, "--configfile", "config/paper.yaml", "--config", "data_root=no-data-here"
    )
    assert counts["download"] == 6
    grid = shipped_grid("paper")
    assert (counts["train"], counts["train_pack"]) == (len(grid.singles), len(grid.packs))
    assert len(grid.runs) > 2000
    assert (counts["aggregate"], counts["report"]) == (1, 1)
    assert not (workdir / "no-data-here").exists()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"training": {"epoch": 3}}, r"'epoch' was unexpected"),
        ({"seeds": "zero"}, r"config key seeds: 'zero' is not of type 'array'"),
        (
            {"datasets": [{"name": "spiral", "label_noise": [1.5]}]},
            r"config key datasets\[0\]\.label_noise\[0\]: "
            r"1.5 is greater than or equal to the maximum of 1",
        ),
        (
            {"archs": [{"name": "mlp", "training": {"optimizer": "adagrad"}}]},
            r"config key archs\[0\]\.training\.optimizer: 'adagrad' is not one of",
        ),
        (
            {"datasets": [{"name": "imagenet"}]},
            r"config key datasets\[0\]\.name: 'imagenet' is not one of \['cifar10'",
        ),
        (
            {"datasets": [{"name": "spiral", "archs": ["resnet"]}]},
            r"datasets\[0\] \(spiral\)\.archs: \['resnet'\] not among archs",
        ),
        (
            {"datasets": [{"name": "spiral", "training": {"train_size": 2}}]},
            r"datasets\[0\] \(spiral\), run spiral-noise0/mlp/wd0-aug0/flood0/seed0: "
            r"train_size: invalid value 2",
        ),
    ],
    ids=["unknown-key", "wrong-type", "bad-value", "bad-enum", "bad-dataset", "bad-arch", "run"],
)
def test_bad_config_fails_the_dry_run_naming_the_key(
    tmp_path: Path, config: dict[str, Any], expected: str
) -> None:
    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--dry-run", "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr  # snakemake logs to stdout when not on a terminal
    assert re.search(expected, output), output[-3000:]
    assert not (workdir / "results").exists()


def test_lint_and_format_are_clean(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    lint = snakemake(workdir, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stderr
