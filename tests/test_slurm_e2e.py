"""End to end on a real SLURM: `snakemake --profile slurm` through the submitit executor.

A session fixture starts a single-node cluster with cluster/start.sh (two fake GPUs, sacct
through slurmdbd). Snakemake then runs from temporary folders, each with its own copy of
the profile, site settings pointed at the local partition:

- the workflow on config/ci.yaml (three times: the second submits nothing and only
  rebuilds the report with the first's efficiency account, the third does nothing);
- at the same time, a small workflow of scenarios: jobs that succeed, one that fails, one
  that sbatch refuses, and one that reaches its 1-minute time limit and must be requeued
  to resume from its checkpoint;
- jobs interrupted by SIGINT or SIGTERM to Snakemake, which must leave none of them in
  the queue within seconds, whatever the status interval and the signal dispositions
  Snakemake inherited;
- jobs that sacct does not return: found through squeue, or reported lost.

These tests run only when asked for (`pytest --slurm` or FLOODING_TEST_SLURM=1, see
tests/conftest.py): starting the cluster installs packages and starts system daemons.
Where SLURM is not running and cannot be started (not root, no Debian packages), they are
skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from snakemake_executor_plugin_submitit.executor import FIRST_CHECK_S

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PARTITION = "local"
STATUS_INTERVAL_S = 2
PROFILE_STATUS_INTERVAL_S = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())[
    "submitit-status-interval"
]
# A profile status interval far longer than any wait below: cancellation and short jobs
# must not wait for it.
LONG_STATUS_INTERVAL_S = 600
SCENARIO_SNAKEFILE = """
rule all:
    input: "out/ok_0.txt", "out/ok_1.txt", "out/fail.txt", "out/long.txt", "out/nowhere.txt"

rule ok:
    output: "out/ok_{i}.txt"
    shell: "echo ok > {output}"

rule fail:
    output: "out/fail.txt"
    log: "logs/fail.log"
    shell: "echo 'this rule fails on purpose' > {log}; exit 3"

# sbatch refuses it: the submission fails, not the workflow.
rule nowhere:
    output: "out/nowhere.txt"
    resources: slurm_partition="nowhere"
    shell: "touch {output}"

# Counts until the timeout signal, saves its step and exits; the requeued run resumes.
rule long:
    output: "out/long.txt"
    log: "logs/long.log"
    resources: runtime=1
    shell: "python checkpointing_job.py state.txt {output} 1 3 > {log} 2>&1"
"""
INTERRUPT_SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(3))

rule slow:
    output: "out/{i}.txt"
    resources: gpu=1
    shell: "sleep 600; touch {output}"
"""
UNSEEN_SNAKEFILE = """
rule quick:
    output: "out.txt"
    shell: "echo done > {output}"
"""
LOST_SNAKEFILE = """
rule lost:
    output: "out.txt"
    shell: "sleep 300; touch {output}"
"""
# sacct and squeue as they answer when slurmdbd has lost the records / the controller has
# forgotten the job: nothing but sacct's header.
BLIND_SACCT = '#!/bin/sh\necho "JobID|State"\n'
BLIND_SQUEUE = "#!/bin/sh\nexit 0\n"


def skip_or_fail(reason: str) -> None:
    """Skip where SLURM is unavailable; under CI a missing cluster is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but SLURM is unavailable: {reason}")
    pytest.skip(reason)


def cluster_ready() -> bool:
    """SLURM answers and has a node that takes jobs (busy or not)."""
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    states = set(result.stdout.split())
    return result.returncode == 0 and bool(states & {"idle", "mixed", "allocated"})


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[datetime]:
    """A running single-node SLURM; yields the time from which sacct shows our jobs."""
    started_here = False
    if not cluster_ready():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            skip_or_fail(
                "SLURM is not running, and starting it takes root on Debian/Ubuntu: "
                "sudo bash cluster/start.sh"
            )
        result = subprocess.run(
            ["bash", str(REPO / "cluster" / "start.sh")], capture_output=True, text=True
        )
        if result.returncode != 0:
            skip_or_fail(f"cluster/start.sh failed:\n{result.stdout}\n{result.stderr}")
        started_here = True
    yield datetime.now() - timedelta(minutes=1)
    if started_here:
        subprocess.run(["bash", str(REPO / "cluster" / "stop.sh")], check=False)


def write_profile(root: Path, **overrides: object) -> None:
    """Copy the repository's profile into root/slurm, with the site settings for here."""
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = PARTITION
    profile["submitit-status-interval"] = STATUS_INTERVAL_S
    profile["latency-wait"] = 5
    profile.update(overrides)
    (root / "slurm").mkdir(parents=True)
    (root / "slurm" / "config.yaml").write_text(yaml.safe_dump(profile))


def blind_env(shim_dir: Path, squeue_too: bool) -> dict[str, str]:
    """An environment whose sacct returns no job, and whose squeue none either if asked."""
    shim_dir.mkdir(parents=True)
    shims = {"sacct": BLIND_SACCT, **({"squeue": BLIND_SQUEUE} if squeue_too else {})}
    for name, text in shims.items():
        (shim_dir / name).write_text(text)
        (shim_dir / name).chmod(0o755)
    env = snakemake_env()
    env["PATH"] = f"{shim_dir}{os.pathsep}{env['PATH']}"
    return env


def snakemake_env(sacct_log: Path | None = None, shim_dir: Path | None = None) -> dict[str, str]:
    """The environment of a Snakemake run; optionally with sacct wrapped to log each call."""
    path = f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": path}
    if sacct_log is not None and shim_dir is not None:
        shim_dir.mkdir(parents=True)
        shim = shim_dir / "sacct"
        real = shutil.which("sacct")
        shim.write_text(f'#!/bin/sh\necho "$(date +%s.%N)" >> {sacct_log}\nexec {real} "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = f"{shim_dir}{os.pathsep}{path}"
    return env


@dataclass(frozen=True)
class Run:
    """A Snakemake invocation running in the background, its output going to a file."""

    process: subprocess.Popen[bytes]
    log: Path
    started: float

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    @property
    def output(self) -> str:
        return self.log.read_text()


def default_sigint() -> None:
    """In the child before exec: SIGINT at its default, whatever this process inherited
    (a shell's background job, nohup and some CI agents start with SIGINT ignored, and an
    ignored disposition survives exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ignored_signals(pid: int) -> int:
    """The process's mask of ignored signals (SigIgn in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn line for process {pid}")


def start_snakemake(root: Path, name: str, env: dict[str, str], *args: str) -> Run:
    log = root / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "snakemake"), "--profile", "slurm", *args],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=default_sigint,
        )
    assert not ignored_signals(process.pid) & (1 << (signal.SIGINT - 1))
    return Run(process, log, time.monotonic())


def queued_jobs(workdir: Path) -> list[tuple[str, str, str]]:
    """(job id, state, reason) of the jobs in SLURM's queue that were submitted from workdir."""
    output = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i|%T|%r|%Z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|") for line in output.splitlines() if line]
    return [(job, state, why) for job, state, why, directory in rows if Path(directory) == workdir]


@dataclass(frozen=True)
class SacctRow:
    job_id: str
    name: str
    state: str
    alloc_tres: str

    @property
    def array_id(self) -> str:
        return self.job_id.split("_")[0]


def sacct_rows(since: datetime, workdir: Path, duplicates: bool = False) -> list[SacctRow]:
    """Our jobs (those submitted from workdir), one row per job, or per run with duplicates."""
    command = ["sacct", "--allocations", "--noheader", "--parsable2", "--allusers"]
    command += ["--starttime", since.strftime("%Y-%m-%dT%H:%M:%S")]
    command += ["--format=JobID,JobName,State,AllocTRES,WorkDir"]
    if duplicates:
        command.append("--duplicates")
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in output.splitlines() if line]
    return [
        SacctRow(job_id, name, state, tres)
        for job_id, name, state, tres, directory in rows
        if Path(directory) == workdir
    ]


@dataclass(frozen=True)
class Results:
    """The two concurrent invocations (workflow and scenarios) and what SLURM recorded."""

    since: datetime
    workflow: Path
    first: Run
    first_returncode: int
    first_seconds: float
    second: Run
    second_returncode: int
    jobs_before_second: list[SacctRow]
    jobs_after_second: list[SacctRow]
    third: Run
    third_returncode: int
    sacct_calls: list[float]
    scenarios: Path
    scenario_run: Run
    scenario_returncode: int


@pytest.fixture(scope="module")
def results(slurm_cluster: datetime, tmp_path_factory: pytest.TempPathFactory) -> Results:
    workflow = tmp_path_factory.mktemp("workflow")
    for name in ("Snakefile", "workflow", "config", "envs"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, workflow / name)
        else:
            shutil.copy(source, workflow / name)
    # The profile verbatim (its 60 s status interval too), but the Gaussians want a GPU:
    # the config decides which runs get one.
    write_profile(workflow, **{"submitit-status-interval": PROFILE_STATUS_INTERVAL_S})
    ci = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())  # over config.yaml there
    for dataset in ci["datasets"]:
        dataset["resources"] = {"gpu": 1 if dataset["name"] == "gaussians" else 0}
    (workflow / "config" / "ci-gpu.yaml").write_text(yaml.safe_dump(ci))
    scenarios = tmp_path_factory.mktemp("scenarios")
    (scenarios / "Snakefile").write_text(SCENARIO_SNAKEFILE)
    shutil.copy(Path(__file__).parent / "checkpointing_job.py", scenarios)
    # The long job gets SLURM's signal at half its 1-minute limit (the profile's 120 s
    # signal delay is capped there).
    write_profile(scenarios)

    sacct_log = workflow / "sacct-calls.txt"
    workflow_env = snakemake_env(sacct_log, workflow / "shim")
    scenario_run = start_snakemake(scenarios, "scenarios", snakemake_env())
    first = start_snakemake(workflow, "first", workflow_env, "--configfile", "config/ci-gpu.yaml")
    first_returncode = first.wait(timeout_s=400)
    first_seconds = time.monotonic() - first.started
    jobs_before_second = sacct_rows(slurm_cluster, workflow)
    second = start_snakemake(workflow, "second", workflow_env, "--configfile", "config/ci-gpu.yaml")
    second_returncode = second.wait(timeout_s=120)
    jobs_after_second = sacct_rows(slurm_cluster, workflow)
    third = start_snakemake(workflow, "third", workflow_env, "--configfile", "config/ci-gpu.yaml")
    third_returncode = third.wait(timeout_s=120)
    scenario_returncode = scenario_run.wait(timeout_s=400)
    calls = sacct_log.read_text().split() if sacct_log.exists() else []
    return Results(
        since=slurm_cluster,
        workflow=workflow,
        first=first,
        first_returncode=first_returncode,
        first_seconds=first_seconds,
        second=second,
        second_returncode=second_returncode,
        jobs_before_second=jobs_before_second,
        jobs_after_second=jobs_after_second,
        third=third,
        third_returncode=third_returncode,
        sacct_calls=[float(call) for call in calls],
        scenarios=scenarios,
        scenario_run=scenario_run,
        scenario_returncode=scenario_returncode,
    )


def test_training_runs_as_job_arrays_with_the_gpus_the_config_asks_for(results: Results) -> None:
    assert results.first_returncode == 0, results.first.output
    jobs = results.jobs_before_second
    train = [job for job in jobs if job.name == "train"]
    runs = len(list((results.workflow / "results" / "runs").glob("**/run.json")))
    sbatch_calls = len({job.array_id for job in jobs})
    print(
        f"\nworkflow: {runs} runs, {len(train)} SLURM jobs, {sbatch_calls} sbatch call(s), "
        f"{len(results.sacct_calls)} sacct queries in {results.first_seconds:.0f} s "
        f"(status interval {PROFILE_STATUS_INTERVAL_S} s)"
    )
    assert runs > 1
    # Only training reaches SLURM: downloads, aggregation and the report are local rules.
    assert len(train) == len(jobs) == runs
    # All runs were ready together: one job array per request, one task per run.
    assert sbatch_calls == 2
    assert all("_" in job.job_id for job in train)
    assert all(job.state == "COMPLETED" for job in train), train
    summary = pd.read_parquet(results.workflow / "results" / "summary.parquet")
    gaussians = int(summary["run_dir"].str.contains("gaussians").sum())
    assert 0 < gaussians < runs
    assert sum("gres/gpu=1" in job.alloc_tres for job in train) == gaussians, train
    assert sum("gres/gpu" not in job.alloc_tres for job in train) == runs - gaussians, train


def test_workflow_outputs_are_complete(results: Results) -> None:
    summary = pd.read_parquet(results.workflow / "results" / "summary.parquet")
    metrics = pd.read_parquet(results.workflow / "results" / "metrics.parquet")
    assert len(summary) == len(results.jobs_before_second)
    assert (summary["status"] == "completed").all(), summary[["run_dir", "status", "error"]]
    assert set(metrics["run_dir"]) == set(summary["run_dir"])
    assert (results.workflow / "reports" / "report.html").stat().st_size > 0


def test_second_invocation_submits_nothing(results: Results) -> None:
    """The first run's efficiency account is written after its report: the second run
    rebuilds the report with it, on the submitting node, and submits nothing; a third has
    nothing to do."""
    assert results.second_returncode == 0, results.second.output
    assert results.jobs_after_second == results.jobs_before_second
    stats = results.second.output.split("Job stats:")[1].split("\n\n")[0]
    ran = {row.split()[0] for row in stats.splitlines()[3:]} - {"total"}
    assert ran == {"report", "all"}, stats
    assert "cluster jobs" in (results.workflow / "reports" / "report.html").read_text().lower()
    assert results.third_returncode == 0, results.third.output
    assert "Nothing to be done" in results.third.output
    assert sacct_rows(results.since, results.workflow) == results.jobs_before_second


def test_status_checks_are_one_sacct_query_each_and_never_closer_than_the_first(
    results: Results,
) -> None:
    calls = results.sacct_calls
    assert calls, "the executor never asked sacct"
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    # Each check is a single sacct call for all active jobs (the runs here finish in
    # seconds, so sacct always has them), then a pause of at least the first check's delay.
    assert min(gaps, default=FIRST_CHECK_S) >= 0.95 * FIRST_CHECK_S, gaps
    assert len(calls) <= results.first_seconds / FIRST_CHECK_S + 1


def test_failed_job_is_reported_with_its_log_and_others_finish(results: Results) -> None:
    output = results.scenario_run.output
    assert results.scenario_returncode != 0, output
    assert "Error in rule fail" in output
    log = next(
        (word for word in output.split() if word.endswith("_log.out") and "submitit" in word),
        None,
    )
    assert log is not None, output
    assert "the job command exited with status" in Path(log.rstrip(",")).read_text()
    assert (results.scenarios / "logs" / "fail.log").read_text().strip() == (
        "this rule fails on purpose"
    )
    assert "submission of rule nowhere failed" in output
    assert "invalid partition specified: nowhere" in output
    for name in ("ok_0", "ok_1", "long"):
        assert (results.scenarios / "out" / f"{name}.txt").exists(), output
    jobs = sacct_rows(results.since, results.scenarios)
    print(
        f"\nscenarios: {len(jobs)} SLURM jobs, {len({job.array_id for job in jobs})} sbatch call(s)"
    )
    # Ready together: the two ok jobs share one array.
    assert len({job.array_id for job in jobs if job.name == "ok"}) == 1


def test_time_limit_requeues_and_resumes_from_checkpoint(results: Results) -> None:
    resumed = (results.scenarios / "out" / "long.txt").read_text().split()
    assert resumed[:3] == ["resumed", "from", "step"]
    assert int(resumed[3]) > 0
    runs = [
        job
        for job in sacct_rows(results.since, results.scenarios, duplicates=True)
        if job.name == "long"
    ]
    assert [job.state for job in runs].count("REQUEUED") >= 1, runs
    assert runs[-1].state == "COMPLETED", runs
    assert "was requeued" in results.scenario_run.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_cancels_every_job_within_seconds(
    slurm_cluster: datetime, tmp_path: Path, sig: signal.Signals
) -> None:
    (tmp_path / "Snakefile").write_text(INTERRUPT_SNAKEFILE)
    # Three jobs: an array of two that runs one task at a time, and an array of one.
    write_profile(
        tmp_path,
        **{
            "submitit-max-array-size": 2,
            "submitit-array-parallelism": 1,
            "submitit-status-interval": LONG_STATUS_INTERVAL_S,
        },
    )
    run = start_snakemake(tmp_path, "interrupted", snakemake_env())

    deadline = time.monotonic() + 120
    while [state for _, state, _ in queued_jobs(tmp_path)].count("RUNNING") < 2:
        assert run.process.poll() is None, run.output
        assert time.monotonic() < deadline, queued_jobs(tmp_path)
        time.sleep(0.5)
    queued = queued_jobs(tmp_path)
    signalled = time.monotonic()
    run.process.send_signal(sig)
    # A tenth of the status interval: generous on a loaded machine, yet far below the wait
    # for the status loop that cancellation must not have.
    returncode = run.wait(timeout_s=LONG_STATUS_INTERVAL_S / 10)
    exit_s = time.monotonic() - signalled
    while queued_jobs(tmp_path) and time.monotonic() < signalled + LONG_STATUS_INTERVAL_S / 10:
        time.sleep(0.5)
    gone_s = time.monotonic() - signalled
    print(f"\n{sig.name}: snakemake exited after {exit_s:.1f} s, jobs gone after {gone_s:.1f} s")
    assert len({job.split("_")[0] for job, _, _ in queued}) == 2, queued
    assert ("PENDING", "JobArrayTaskLimit") in {(state, why) for _, state, why in queued}
    assert returncode != 0
    assert "Cancelled SLURM job" in run.output
    assert queued_jobs(tmp_path) == []


def test_jobs_sacct_does_not_return_are_found_or_reported_lost(
    slurm_cluster: datetime, tmp_path: Path
) -> None:
    unseen, lost = tmp_path / "unseen", tmp_path / "lost"
    for root, snakefile in ((unseen, UNSEEN_SNAKEFILE), (lost, LOST_SNAKEFILE)):
        root.mkdir()
        (root / "Snakefile").write_text(snakefile)
        write_profile(root, **{"submitit-lost-after": 20})
    # sacct never returns the job: squeue follows it to its end.
    unseen_run = start_snakemake(unseen, "unseen", blind_env(tmp_path / "shim1", False))
    # Neither sacct nor squeue knows it: reported lost, with its log, after 20 s.
    lost_run = start_snakemake(lost, "lost", blind_env(tmp_path / "shim2", True))
    try:
        assert unseen_run.wait(timeout_s=300) == 0, unseen_run.output
        assert (unseen / "out.txt").read_text() == "done\n"
        assert lost_run.wait(timeout_s=300) != 0, lost_run.output
    finally:
        for job, _, _ in queued_jobs(lost):
            subprocess.run(["scancel", job.split("_")[0]], check=False)
    output = lost_run.output
    assert "lost: neither sacct nor squeue has known the job for 20 s" in output, output
    log = next(
        (word for word in output.split() if word.endswith("_log.out") and "submitit" in word),
        None,
    )
    assert log is not None, output
    assert Path(log.rstrip(",")).exists()
