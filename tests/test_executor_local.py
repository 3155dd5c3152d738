"""The executor end to end on submitit's local backend: no SLURM needed.

The same plugin code path as on SLURM (batch submission, status checks, result files,
checkpoint and requeue), with jobs as local processes; submitit's local controller sends
the timeout signal `signal_delay` seconds before the job's time limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SNAKEFILE = """
rule all:
    input: "out/ok.txt", "out/fail.txt", "out/long.txt"

rule ok:
    output: "out/ok.txt"
    shell: "echo ok > {output}"

rule fail:
    output: "out/fail.txt"
    log: "logs/fail.log"
    shell: "echo 'this rule fails on purpose' > {log}; exit 3"

# Counts until the timeout signal, saves its step and exits; the requeued run resumes.
rule long:
    output: "out/long.txt"
    resources: runtime=1
    shell: "python checkpointing_job.py state.txt {output} 0.5 2"
"""


def run_snakemake(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{SNAKEMAKE.parent}{os.pathsep}{env['PATH']}"
    command = [str(SNAKEMAKE), "--executor", "submitit", "--submitit-backend", "local"]
    command += ["--jobs", "3", "--submitit-status-interval", "1", "--latency-wait", "5"]
    command += ["--default-resources", "runtime=10", *args]
    return subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, timeout=300
    )


def test_local_backend_reports_failure_and_requeues_on_timeout(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    shutil.copy(Path(__file__).parent / "checkpointing_job.py", tmp_path)
    # The 1-minute job is signalled after half its time limit: 30 s.
    result = run_snakemake(tmp_path, "--keep-going")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert (tmp_path / "out" / "ok.txt").read_text() == "ok\n"
    # The failure names submitit's log of the job, which holds the reason.
    assert "Error in rule fail" in output
    log = next(word for word in output.split() if word.endswith("_log.out"))
    assert "the job command exited with status" in Path(log.rstrip(",")).read_text()
    resumed = (tmp_path / "out" / "long.txt").read_text().split()
    assert resumed[:3] == ["resumed", "from", "step"]
    assert int(resumed[3]) > 0


def test_invalid_resource_fails_before_any_submission(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    resources: gpus=1\n    shell: "touch {output}"\n'
    )
    result = run_snakemake(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "resource gpus: invalid value 1; accepted: unknown resource; did you mean gpu?" in output
    submitted = (tmp_path / ".snakemake" / "submitit").rglob("*")
    assert [path for path in submitted if path.is_file()] == []
    assert not (tmp_path / "a.txt").exists()
