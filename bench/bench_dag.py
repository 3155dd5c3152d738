"""Time `snakemake -n` of this workflow on a 10,000-run grid against a bare 10,000-job Snakefile.

The grid is spiral x 10 label-noise levels x 1 architecture x 4 weight decays x
(b = 0 and 24 flood levels) x 10 seeds = 10,000 training jobs, plus aggregation and the
report; once with the same resources for every run (the train rule gets plain values) and
once with two resource profiles (one lookup function call per job and resource), and once
packed by flood level (400 packs of 25) with every run already finished but in no pack job
(as after a level is removed), so that each pack's members are read to see that it has
nothing to train and their files, not a job, are waited for. The bare
Snakefile has 10,000 trivial jobs (one output file each) and an `all` rule. All three are
planned by child processes of this script, in turn, from fresh folders, with
`snakemake --dry-run --quiet rules` (the DAG is built; no job is printed); the figures are
ratios of medians. This workflow's extra work is loading and validating the config,
expanding and checking the grid, and the per-job params, input and resource lookups.

    OMP_NUM_THREADS=1 python bench/bench_dag.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
N_JOBS = 10_000

NOISE = [round(0.02 * i, 2) for i in range(10)]
UNIFORM: dict[str, Any] = {
    "training": {"train_size": 1000, "epochs": 10},
    "archs": [{"name": "mlp"}],
    "datasets": [{"name": "spiral", "label_noise": NOISE}],
    "regularisers": {"weight_decay": [0.0, 1e-4, 5e-4, 1e-3], "augment": [False]},
    "flood": {"methods": ["flood"], "levels": [round(0.01 * i, 2) for i in range(25)]},
    "seeds": list(range(10)),
}
# The same runs, the noisier half asking for more memory.
PROFILES = {
    **UNIFORM,
    "datasets": [
        {"name": "spiral", "label_noise": NOISE[:5]},
        {"name": "spiral", "label_noise": NOISE[5:], "resources": {"mem_mb": 4000}},
    ],
}

PACKED = {**UNIFORM, "pack": {"by": ["flood"], "max_runs": 25}}

BARE_SNAKEFILE = f"""\
rule all:
    input:
        expand("out/{{i}}.txt", i=range({N_JOBS})),


rule job:
    output:
        "out/{{i}}.txt",
    shell:
        "touch {{output}}"
"""


def workflow_copy(dest: Path, grid: dict[str, Any]) -> Path:
    """This workflow with `grid` as its config."""
    dest.mkdir()
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    for folder in ("workflow", "envs"):
        shutil.copytree(ROOT / folder, dest / folder)
    (dest / "config").mkdir()
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(grid))
    return dest


def finish_every_run(workdir: Path, grid: dict[str, Any]) -> None:
    """Each run's folder as a finished run leaves it (run.json of its config, metrics)."""
    from flooding.config import config_hash
    from flooding.finished import METRICS_FILE, RUN_FILE
    from flooding.grid import expand_grid
    from flooding.schema import validate_workflow_config

    config = yaml.safe_load(yaml.safe_dump(grid))
    validate_workflow_config(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
    for run in expand_grid(config).runs:
        out = workdir / "results" / "runs" / run.path
        out.mkdir(parents=True)
        record = {"config_hash": config_hash(run.config), "status": "completed"}
        (out / RUN_FILE).write_text(json.dumps(record))
        (out / METRICS_FILE).write_bytes(b"")


def bare_copy(dest: Path) -> Path:
    dest.mkdir()
    (dest / "Snakefile").write_text(BARE_SNAKEFILE)
    return dest


def dry_run(workdir: Path) -> tuple[float, str]:
    """Seconds for `snakemake --dry-run` in workdir, and its job-count table."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "snakemake"), "--dry-run", "--quiet", "rules", "--cores", "1"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir}:\n{output[-4000:]}")
    return seconds, output.split("Job stats:")[1].split("\n\n")[0].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed dry runs of each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdirs = {
            "uniform": workflow_copy(Path(tmp, "uniform"), UNIFORM),
            "profiles": workflow_copy(Path(tmp, "profiles"), PROFILES),
            "finished": workflow_copy(Path(tmp, "finished"), PACKED),
            "bare": bare_copy(Path(tmp, "bare")),
        }
        finish_every_run(workdirs["finished"], PACKED)
        times: dict[str, list[float]] = {name: [] for name in workdirs}
        tables: dict[str, str] = {}
        for _ in range(args.repeats):
            for name, workdir in workdirs.items():
                seconds, tables[name] = dry_run(workdir)
                times[name].append(seconds)
    print(f"this workflow, {N_JOBS:,}-run grid:\n{tables['uniform']}\n")
    print(f"bare Snakefile:\n{tables['bare']}\n")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:>8}: median {medians[name]:.2f} s  (runs: {runs})")
    for name, what in [
        ("uniform", "uniform resources"),
        ("profiles", "profiles resources"),
        ("finished", "packs with every run finished"),
    ]:
        ratio = medians[name] / medians["bare"]
        print(f"ratio workflow ({what}) / bare: {ratio:.2f}  (target <= 2.0)")


if __name__ == "__main__":
    main()
