"""Wall time and sacct calls of `snakemake --profile slurm --configfile config/ci.yaml`.

Runs the workflow on config/ci.yaml (4 short runs) on a SLURM cluster (cluster/start.sh
makes one), from a fresh folder, with the repository's profile verbatim except the
partition. sacct is wrapped to count its calls. The executor plugin is the one Python
imports (PYTHONPATH decides), so two versions of it can be compared on the same cluster:

    OMP_NUM_THREADS=1 python bench/bench_slurm_polling.py [--partition local]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partition", default="local")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("Snakefile", "workflow", "config", "envs", "slurm"):
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name)
            else:
                shutil.copy(source, root / name)
        profile_file = root / "slurm" / "config.yaml"
        profile = yaml.safe_load(profile_file.read_text())
        profile["default-resources"]["slurm_partition"] = args.partition
        profile_file.write_text(yaml.safe_dump(profile))
        calls = root / "sacct-calls.txt"
        shim = root / "shim" / "sacct"
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\necho call >> {calls}\nexec {shutil.which("sacct")} "$@"\n')
        shim.chmod(0o755)
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{shim.parent}:{bin_dir}:{os.environ['PATH']}"}
        started = time.monotonic()
        result = subprocess.run(
            [str(bin_dir / "snakemake"), "--profile", "slurm", "--configfile", "config/ci.yaml"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        if result.returncode != 0:
            sys.exit(result.stdout + result.stderr)
        count = len(calls.read_text().splitlines()) if calls.exists() else 0
        print(
            f"config/ci.yaml on SLURM, status interval {profile['submitit-status-interval']} s: "
            f"{seconds:.1f} s wall, {count} sacct calls"
        )


if __name__ == "__main__":
    main()
