"""Job status: one `sacct` query for all active jobs, and the outcome submitit recorded.

submitit's own watcher batches its queries too, but on its own schedule and whenever a
job's state is read. The executor checks on its own clock (`PollClock`) instead, with
exactly one sacct query per check, so it calls sacct here and reads submitit's result
files directly, never `job.done()` or `job.state`, which would query again. Jobs that
sacct does not return (slurmdbd down, a purged record) are looked up in the controller
with one `squeue` call.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from submitit.core.utils import pickle_load
from submitit.slurm.slurm import SlurmInfoWatcher

# SLURM states in which a job may still produce a result; any other state is final.
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SUSPENDED",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
        # Not in the accounting yet: slurmdbd learns of new jobs a moment after sbatch.
        "UNKNOWN",
    }
)
# Given to a job that neither sacct nor squeue knows.
MISSING = "MISSING"
REQUEUE_STATES = frozenset({"REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"})
# What a final state without a result from submitit means, for the error message.
FINAL_STATE_REASONS = {
    "TIMEOUT": "it reached its time limit without being requeued (raise runtime, or "
    "--submitit-signal-delay if saving the checkpoint takes longer)",
    "OUT_OF_MEMORY": "it ran out of memory (raise mem_mb)",
    "CANCELLED": "it was cancelled",
    "PREEMPTED": "it was preempted and not requeued",
    "NODE_FAIL": "its node failed",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "it missed its deadline",
}


@dataclass(frozen=True)
class Outcome:
    """What submitit recorded at the end of a job: success, or the error's traceback."""

    ok: bool
    traceback: str = ""

    @property
    def reason(self) -> str:
        """The last line of the traceback: the exception and its message."""
        lines = [line for line in self.traceback.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no error recorded"


def base_state(state: str) -> str:
    """'CANCELLED by 0' -> 'CANCELLED'; '' -> 'UNKNOWN'."""
    words = state.split()
    return words[0].upper() if words else "UNKNOWN"


def is_active(state: str) -> bool:
    return base_state(state) in ACTIVE_STATES


def final_state_reason(state: str) -> str:
    """Why a job in this final state left no result behind."""
    state = base_state(state)
    reason = FINAL_STATE_REASONS.get(state, "it ended without a result")
    return f"{reason} (SLURM state {state})"


def _output_or_none(command: list[str]) -> str | None:
    """stdout of a SLURM query, or None when it fails or hangs: a status check is retried
    at the next interval, so one failed query is not fatal."""
    try:
        return subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def query_states(job_ids: Iterable[str], sacct: str = "sacct") -> dict[str, str]:
    """One sacct call for all given jobs -> {job id (as submitit names it): state}.

    Array tasks are asked for through their array's id, so the command line stays short
    however many tasks are active. A failing sacct is not fatal: the states stay
    unknown (active) until the next check.
    """
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not arrays:
        return {}
    command = [sacct, "--allocations", "--parsable2", "--format=JobID,State"]
    output = _output_or_none([*command, "--jobs", ",".join(arrays)])
    if output is None:
        return {}
    # submitit's parser expands array ranges such as 12_[3-9%2].
    info = SlurmInfoWatcher().read_info(output)
    return {job_id: fields.get("State", "") for job_id, fields in info.items()}


def query_queue(job_ids: Iterable[str], squeue: str = "squeue") -> dict[str, str]:
    """One squeue call -> {job id: state} for those of the given jobs that the controller
    still holds (it forgets a finished job MinJobAge seconds after its end).

    The fallback for jobs sacct did not return. All of the user's jobs are listed and
    filtered here: squeue fails outright when asked for one id it does not know.
    """
    wanted = set(job_ids)
    if not wanted:
        return {}
    command = [squeue, "--noheader", "--array", "--states=all", "--me", "--format=%i|%T"]
    output = _output_or_none(command)
    if output is None:
        return {}
    rows = (line.split("|", 1) for line in output.splitlines() if "|" in line)
    return {job_id: state for job_id, state in rows if job_id in wanted}


@dataclass
class PollClock:
    """When the next status check is due: `shortest` seconds after a submission or a
    change of any job's state, then twice as long after each check that saw no change,
    up to `longest` (the configured status interval). Short jobs are seen finishing within
    seconds; a grid that runs for hours is checked once per interval, as configured."""

    shortest: float
    longest: float
    delay: float = 0.0
    due: float = 0.0

    def __post_init__(self) -> None:
        self.shortest = min(self.shortest, self.longest)
        self.delay = self.shortest

    def submitted(self, now: float) -> None:
        self.delay = self.shortest
        self.due = min(self.due, now + self.shortest)

    def checked(self, changed: bool, now: float) -> None:
        self.delay = self.shortest if changed else min(2 * self.delay, self.longest)
        self.due = now + self.delay


def read_outcome(result_pickle: Path) -> Outcome | None:
    """The outcome submitit pickled when the job ended, or None while there is none."""
    if not result_pickle.exists():
        return None
    try:
        status, value = pickle_load(result_pickle)
    except (OSError, EOFError):
        # Written to a temporary name and renamed, so this is a file system hiccup.
        return None
    if status == "success":
        return Outcome(ok=True)
    return Outcome(ok=False, traceback=str(value))
