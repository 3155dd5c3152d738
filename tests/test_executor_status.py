"""Status checks (one sacct call for all jobs) and the job command's checkpoint/resume."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from submitit.core.utils import cloudpickle_dump
from submitit.local.local import LocalExecutor

from snakemake_executor_plugin_submitit.command import JobCommand, JobCommandError
from snakemake_executor_plugin_submitit.status import (
    Outcome,
    PollClock,
    base_state,
    is_active,
    query_queue,
    query_states,
    read_outcome,
)

SACCT_OUTPUT = """JobID|State
12_0|COMPLETED
12_1|RUNNING
12_[2-3%2]|PENDING
13|CANCELLED by 0
14_5|REQUEUED
"""


def fake_sacct(directory: Path, output: str, returncode: int = 0) -> tuple[Path, Path]:
    """A sacct that records each call's arguments, one line per call."""
    calls = directory / "calls.txt"
    script = directory / "sacct"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\ncat <<"EOF"\n{output}EOF\nexit {returncode}\n'
    )
    script.chmod(0o755)
    return script, calls


def test_one_sacct_call_covers_every_job_and_array_range(tmp_path: Path) -> None:
    sacct, calls = fake_sacct(tmp_path, SACCT_OUTPUT)
    jobs = ["12_0", "12_1", "12_2", "12_3", "13", "14_5"]
    states = query_states(jobs, sacct=str(sacct))
    lines = calls.read_text().splitlines()
    assert len(lines) == 1
    # Arrays are asked for by their id: the command line does not grow with the tasks.
    assert lines[0].endswith("--jobs 12,13,14")
    assert {job: states[job] for job in jobs} == {
        "12_0": "COMPLETED",
        "12_1": "RUNNING",
        "12_2": "PENDING",
        "12_3": "PENDING",
        "13": "CANCELLED by 0",
        "14_5": "REQUEUED",
    }
    assert [is_active(states[job]) for job in jobs] == [False, True, True, True, False, True]
    assert base_state(states["13"]) == "CANCELLED"


def test_failing_sacct_leaves_states_unknown_and_active(tmp_path: Path) -> None:
    sacct, _ = fake_sacct(tmp_path, "sacct: error: slurmdbd unreachable\n", returncode=1)
    assert query_states(["7"], sacct=str(sacct)) == {}
    assert is_active(base_state(""))
    assert query_states([], sacct=str(sacct)) == {}


def test_squeue_finds_jobs_sacct_does_not_return(tmp_path: Path) -> None:
    squeue, calls = fake_sacct(tmp_path, "12_0|RUNNING\n12_1|COMPLETED\n99|PENDING\n")
    assert query_queue(["12_0", "12_1", "13"], squeue=str(squeue)) == {
        "12_0": "RUNNING",
        "12_1": "COMPLETED",
    }
    assert len(calls.read_text().splitlines()) == 1
    assert query_queue([], squeue=str(squeue)) == {}
    (tmp_path / "failing").mkdir()
    failing, _ = fake_sacct(tmp_path / "failing", "squeue: error\n", returncode=1)
    assert query_queue(["12_0"], squeue=str(failing)) == {}


def test_checks_come_soon_after_a_change_then_back_off_to_the_interval() -> None:
    clock = PollClock(shortest=2, longest=60)
    clock.submitted(now=100)
    assert clock.due <= 100  # the first check, at start-up, is due at once
    delays = []
    for now in (100, 102, 106, 114, 130, 162, 222):
        clock.checked(changed=False, now=now)
        delays.append(clock.delay)
    assert delays == [4, 8, 16, 32, 60, 60, 60]
    clock.checked(changed=True, now=300)
    assert clock.due == 302
    clock.checked(changed=False, now=302)
    clock.submitted(now=303)  # a submission while waiting brings the next check forward
    assert (clock.delay, clock.due) == (2, 305)
    # An interval shorter than the first delay is kept.
    assert PollClock(shortest=2, longest=1).delay == 1


def test_outcome_is_read_from_submitits_result_file(tmp_path: Path) -> None:
    result = tmp_path / "12_0_0_result.pkl"
    assert read_outcome(result) is None
    cloudpickle_dump(("success", None), result)
    assert read_outcome(result) == Outcome(ok=True)
    trace = "Traceback (most recent call last):\n  ...\nJobCommandError: exited with status 2\n"
    cloudpickle_dump(("error", trace), result)
    outcome = read_outcome(result)
    assert outcome is not None and not outcome.ok
    assert outcome.reason == "JobCommandError: exited with status 2"


def test_command_runs_in_its_workdir_and_fails_loudly(tmp_path: Path) -> None:
    JobCommand("echo ran > marker.txt", str(tmp_path), grace_s=1.0)()
    assert (tmp_path / "marker.txt").read_text() == "ran\n"
    with pytest.raises(JobCommandError, match="exited with status 4"):
        JobCommand("exit 4", str(tmp_path), grace_s=1.0)()


# Stands in for `flooding train`: on SIGUSR2 it saves its step and exits non-zero.
TRAINER = """
import pathlib, signal, sys, time
state = pathlib.Path("state.txt")
start = int(state.read_text()) if state.exists() else 0
stop = []
signal.signal(signal.SIGUSR2, lambda signum, frame: stop.append(signum))
pathlib.Path("started.txt").write_text(str(start))
step = start
while start == 0 or step < start + 2:
    if stop:
        state.write_text(str(step))
        sys.exit(1)
    time.sleep(0.05)
    step += 1
pathlib.Path("done.txt").write_text(str(start))
"""


def run_in_thread(command: JobCommand) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            command()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, errors


def wait_for(path: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_checkpoint_stops_the_run_and_the_next_run_resumes(tmp_path: Path) -> None:
    (tmp_path / "trainer.py").write_text(TRAINER)
    command = JobCommand(f"{sys.executable} trainer.py", str(tmp_path), grace_s=10.0)
    thread, errors = run_in_thread(command)
    wait_for(tmp_path / "started.txt")
    time.sleep(0.3)
    # What submitit does on the timeout signal: checkpoint, then requeue what it returns.
    next_run = command.checkpoint()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], JobCommandError)
    saved = int((tmp_path / "state.txt").read_text())
    assert saved > 0
    assert next_run.function == JobCommand(command.command, str(tmp_path), 10.0, run=2)
    next_run.result()
    assert int((tmp_path / "done.txt").read_text()) == saved


def test_checkpoint_escalates_when_the_command_ignores_the_signal(tmp_path: Path) -> None:
    # bash and sleep keep SIGUSR2 ignored, so only SIGTERM, after half the grace, ends it.
    command = JobCommand("touch started.txt; sleep 60", str(tmp_path), grace_s=1.0)
    thread, errors = run_in_thread(command)
    wait_for(tmp_path / "started.txt")
    began = time.monotonic()
    command.checkpoint()
    thread.join(timeout=10)
    assert time.monotonic() - began < 5
    assert len(errors) == 1 and "exited with status" in str(errors[0])


def test_requeues_are_bounded_then_the_job_fails_clearly(tmp_path: Path) -> None:
    # submitit's local backend plays SLURM: it signals 3 s into a 12 s time limit.
    executor = LocalExecutor(tmp_path / "submitit", max_num_timeout=0)
    executor.update_parameters(timeout_min=0.2, signal_delay_s=9, stderr_to_stdout=True)
    (tmp_path / "trainer.py").write_text(TRAINER)
    job = executor.submit(JobCommand(f"{sys.executable} trainer.py", str(tmp_path), 5.0))
    job.wait()  # the local controller ends the job at its time limit at the latest
    outcome = read_outcome(job.paths.result_pickle)
    assert outcome is not None and not outcome.ok, job.paths.stdout.read_text()
    assert "timed-out too many times" in outcome.reason
    # The run still saved its checkpoint for a later invocation to resume from.
    assert int((tmp_path / "state.txt").read_text()) > 0
