"""The Snakemake executor: ready jobs -> SLURM job arrays through submitit.

Each Snakemake job becomes a `JobCommand` (its `python -m snakemake ...` command line).
Jobs that are ready together, belong to the same rule and ask for the same resources go
into one submitit batch, which submitit submits as one SLURM job array (one sbatch call),
up to `--submitit-max-array-size` tasks each. Each status check makes one sacct query for
all active jobs and reads the result file submitit writes when a job ends; checks come
soon after a submission and back off to `--submitit-status-interval` while nothing
changes.

SIGINT and SIGTERM both cancel every submitted job (one scancel) and end Snakemake
within seconds: Snakemake's own SIGTERM handler would wait for the running jobs, and its
shutdown would wait for the status loop's sleep, up to one interval.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from submitit.core.core import Job, PicklingExecutor
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.local.local import LocalExecutor
from submitit.slurm.slurm import SlurmExecutor

from .accounting import LEDGER, record_submissions
from .command import JobCommand
from .limits import ClusterLimits, read_cluster_limits
from .resources import ResourceError, SlurmRequest, slurm_request
from .settings import ExecutorSettings
from .status import (
    MISSING,
    REQUEUE_STATES,
    Outcome,
    PollClock,
    base_state,
    final_state_reason,
    is_active,
    query_queue,
    query_states,
    read_outcome,
)

T = TypeVar("T")

# A job whose final state arrives before its result file (a slow shared file system) gets
# this long for the file to appear before it counts as failed without a result.
RESULT_GRACE_S = 10.0
# The first status check after a submission or a change comes this soon; with the
# doubling after each quiet check, a grid that runs long makes few extra sacct calls.
FIRST_CHECK_S = 2.0
# How often the status loop looks whether it should stop or check early.
TICK_S = 0.2


@dataclass
class Tracked:
    """What the executor remembers of a submitted job between status checks."""

    handle: Job[Any]
    last_state: str = "PENDING"
    final_since: float | None = None
    missing_since: float | None = None
    requeues_seen: int = 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def plan_arrays(
    jobs: Sequence[tuple[str, SlurmRequest, T]], max_size: int
) -> list[tuple[str, SlurmRequest, list[T]]]:
    """Group (rule name, request, job) into arrays: one per rule and request, at most
    max_size jobs each, in the order the jobs came."""
    groups: dict[tuple[str, SlurmRequest], list[T]] = {}
    for name, request, job in jobs:
        groups.setdefault((name, request), []).append(job)
    return [
        (name, request, members[start : start + max_size])
        for (name, request), members in groups.items()
        for start in range(0, len(members), max_size)
    ]


def require_slurm_commands(backend: str) -> None:
    """On the SLURM backend, stop Snakemake with one line on stderr and exit status 2
    unless sbatch (to submit) and sacct (for every status check) are on the PATH.

    Called before anything starts (the status thread, the cluster's limits). SystemExit,
    not WorkflowError: Snakemake turns every Exception into exit status 1 and prints where
    it was raised; a SystemExit passes through its handlers, which release its lock.
    """
    if backend != "slurm":
        return
    for command, why in (("sbatch", "to submit"), ("sacct", "for the status checks")):
        if shutil.which(command) is None:
            print(
                f"--submitit-backend slurm: {command} is not on PATH ({why}); nothing was "
                "submitted. Run on a SLURM login node with accounting, or use "
                "--submitit-backend local",
                file=sys.stderr,
            )
            raise SystemExit(2)


class Executor(RemoteExecutor):
    def __init__(self, workflow: Any, logger: Any) -> None:
        require_slurm_commands(workflow.executor_settings.backend)
        # RemoteExecutor.__init__ starts the status thread before it calls __post_init__:
        # what that thread reads must exist first.
        self.stopping = threading.Event()
        self.clock = PollClock(FIRST_CHECK_S, workflow.executor_settings.status_interval)
        super().__init__(workflow, logger)

    def __post_init__(self) -> None:
        self.settings: ExecutorSettings = self.workflow.executor_settings
        self.settings.check()
        # Arrays are cut to fit the cluster, whatever the profile says.
        self.limits = read_cluster_limits() if self.settings.backend == "slurm" else ClusterLimits()
        self.max_array_size = self.limits.array_size(self.settings.max_array_size)
        # A flat folder that exists before sbatch runs: SLURM does not create the
        # directory of a job's log file, and an array task may start at once.
        self.folder = Path(self.settings.folder).absolute()
        if self.settings.backend == "local":
            # Local job ids are process ids, which repeat: one folder per invocation.
            stamp = time.strftime("%Y%m%dT%H%M%S")
            self.folder = self.folder / f"local-{stamp}-{os.getpid()}"
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.max_array_size < self.settings.max_array_size:
            self.logger.info(
                f"Job arrays of at most {self.max_array_size} tasks ({self.limits.describe()}; "
                f"--submitit-max-array-size {self.settings.max_array_size})."
            )
        self.status_queries = 0
        # Every submitted job not yet reported, for cancellation: RemoteExecutor's own
        # list is empty while a status check runs.
        self._in_flight: dict[str, SubmittedJobInfo] = {}
        self._in_flight_lock = threading.Lock()

    # --- submission -------------------------------------------------------------

    def run_job(self, job: JobExecutorInterface) -> None:
        self.run_jobs([job])

    def run_jobs(self, jobs: Sequence[JobExecutorInterface]) -> None:
        self.cancel_on_sigterm()
        # Validate every job before submitting any, so a bad resource costs no sbatch call.
        requests = [(job.name, self.request(job), job) for job in jobs]
        for name, request, members in plan_arrays(requests, self.max_array_size):
            self.submit_array(name, request, members)

    def request(self, job: JobExecutorInterface) -> SlurmRequest:
        try:
            return slurm_request(dict(job.resources.items()), job.threads)
        except ResourceError as error:
            raise WorkflowError(
                f"rule {job.name} (job {job.jobid}): {error}. Nothing was submitted for "
                "this batch of ready jobs."
            ) from None

    def submit_array(
        self, name: str, request: SlurmRequest, jobs: Sequence[JobExecutorInterface]
    ) -> None:
        executor = self.submitit_executor(name, request)
        # The command gets two thirds of the signal delay to checkpoint, leaving a third
        # for submitit to requeue the job before SLURM's time limit strikes.
        grace_s = self.settings.signal_delay_s(request.time_min) * 2 / 3
        commands = [JobCommand(self.format_job_exec(job), os.getcwd(), grace_s) for job in jobs]
        for job in jobs:
            self.run_job_pre(job)
        try:
            with executor.batch():
                handles = [executor.submit(command) for command in commands]
        except (FailedJobError, FailedSubmissionError, OSError) as error:
            # sbatch refused (a wrong partition, a quota): report these, the others go on.
            # The limits are named, since a refused array is most often one of them.
            what = f"an array of {len(jobs)} tasks" if len(jobs) > 1 else "one job"
            for job in jobs:
                self.report_job_error(
                    SubmittedJobInfo(job),
                    msg=f"submission of rule {name} failed: sbatch refused {what} (cluster "
                    f"limits: {self.limits.describe()}; arrays cut at {self.max_array_size} "
                    f"tasks): {error}\n",
                )
            return
        if self.settings.backend == "slurm":
            record_submissions(self.folder / LEDGER, name, request, jobs, handles)
        for job, handle in zip(jobs, handles, strict=True):
            info = SubmittedJobInfo(
                job, external_jobid=handle.job_id, aux={"tracked": Tracked(handle)}
            )
            with self._in_flight_lock:
                self._in_flight[handle.job_id] = info
            self.report_job_submission(info)
        self.clock.submitted(time.monotonic())
        if self.settings.backend == "local":
            where = f"{len(jobs)} local process(es)"
        elif len(jobs) == 1:
            where = f"SLURM job {handles[0].job_id}"
        else:
            where = f"SLURM job array {handles[0].job_id.split('_')[0]} ({len(jobs)} tasks)"
        self.logger.info(f"Submitted rule {name} as {where}.")

    def submitit_executor(self, name: str, request: SlurmRequest) -> PicklingExecutor:
        executor: PicklingExecutor
        signal_delay_s = self.settings.signal_delay_s(request.time_min)
        if self.settings.backend == "local":
            executor = LocalExecutor(self.folder, max_num_timeout=self.settings.max_requeues)
            executor.update_parameters(
                **request.local_parameters(),
                signal_delay_s=signal_delay_s,
                stderr_to_stdout=True,
            )
            return executor
        executor = SlurmExecutor(self.folder, max_num_timeout=self.settings.max_requeues)
        executor.update_parameters(
            **request.slurm_parameters(),
            job_name=name,
            array_parallelism=self.settings.array_parallelism,
            signal_delay_s=signal_delay_s,
            stderr_to_stdout=True,
            # submitit's default wckey fails on clusters that track wckeys without one.
            wckey=None,
        )
        return executor

    # --- status -----------------------------------------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        states: dict[str, str] = {}
        if active_jobs and self.settings.backend == "slurm":
            async with self.status_rate_limiter:
                self.status_queries += 1
                self.logger.debug(
                    f"Status check {self.status_queries}: one sacct query for "
                    f"{len(active_jobs)} active job(s)."
                )
                job_ids = [info.external_jobid or "" for info in active_jobs]
                states = query_states(job_ids)
                unseen = [job_id for job_id in job_ids if job_id not in states]
                if unseen:
                    states.update(query_queue(unseen))
        now = time.monotonic()
        changed = False
        for info in active_jobs:
            tracked: Tracked = info.aux["tracked"]
            job_id = info.external_jobid or ""
            if self.settings.backend == "slurm":
                state = states.get(job_id, MISSING)
            else:
                state = "RUNNING" if not tracked.handle.done() else "COMPLETED"
            if state == MISSING:
                changed |= tracked.missing_since is None
            else:
                changed |= base_state(state) != tracked.last_state
                self.note_requeue(job_id, tracked, state)
            outcome = read_outcome(tracked.handle.paths.result_pickle)
            if outcome is not None:
                changed = True
                self.finish(info, outcome, state)
            elif state == MISSING:
                tracked.missing_since = tracked.missing_since or now
                if now - tracked.missing_since < self.settings.lost_after:
                    yield info
                else:
                    changed = True
                    self.finish(info, self.lost(), state)
            elif is_active(state):
                tracked.final_since = tracked.missing_since = None
                yield info
            elif tracked.final_since is None or now - tracked.final_since < RESULT_GRACE_S:
                tracked.final_since = tracked.final_since or now
                tracked.missing_since = None
                yield info
            else:
                changed = True
                self.finish(info, Outcome(ok=False, traceback=final_state_reason(state)), state)
        self.clock.checked(changed, time.monotonic())

    def lost(self) -> Outcome:
        return Outcome(
            ok=False,
            traceback=f"lost: neither sacct nor squeue has known the job for "
            f"{self.settings.lost_after} s (--submitit-lost-after), and it left no result; "
            "check slurmdbd (sacct) and the job's log",
        )

    async def sleep(self) -> None:
        """Wait until the clock says the next check is due, or Snakemake shuts down.

        Replaces RemoteExecutor's sleep of one fixed interval, which shutdown() (and so
        every cancellation) had to wait out."""
        while not self.stopping.is_set() and time.monotonic() < self.clock.due:
            await asyncio.sleep(min(TICK_S, max(0.0, self.clock.due - time.monotonic())))

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()

    def note_requeue(self, job_id: str, tracked: Tracked, state: str) -> None:
        """Log a requeue once, on the transition into it."""
        state, last = base_state(state), tracked.last_state
        requeued = (state in REQUEUE_STATES and last not in REQUEUE_STATES) or (
            state == "PENDING" and last == "RUNNING"
        )
        if requeued:
            tracked.requeues_seen += 1
            self.logger.info(
                f"SLURM job {job_id} was requeued (time limit or preemption) and will resume "
                f"from its checkpoint (requeue {tracked.requeues_seen})."
            )
        tracked.last_state = state

    def finish(self, info: SubmittedJobInfo, outcome: Outcome, state: str) -> None:
        with self._in_flight_lock:
            self._in_flight.pop(info.external_jobid or "", None)
        if outcome.ok:
            self.report_job_success(info)
            return
        log = str(info.aux["tracked"].handle.paths.stdout)
        self.report_job_error(
            info,
            msg=f"submitit job {info.external_jobid} failed (state {base_state(state)}): "
            f"{outcome.reason}\nLog: {log}\n",
            aux_logs=[log],
        )

    # --- cancellation -----------------------------------------------------------

    def cancel_on_sigterm(self) -> None:
        """Make SIGTERM cancel like SIGINT does.

        Snakemake's scheduler installs a SIGTERM handler that waits for the running jobs
        to finish, which on SLURM can be days; `kill`, CI timeouts and batch schedulers
        send SIGTERM and mean "stop now". Raising KeyboardInterrupt takes Snakemake's
        SIGINT path: cancel_jobs(), then exit. Installed at the first submission, after
        the scheduler's own handler, from the main thread (the only one that may)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not _interrupt:
            signal.signal(signal.SIGTERM, _interrupt)

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        with self._in_flight_lock:
            infos = {info.external_jobid: info for info in self._in_flight.values()}
            self._in_flight.clear()
        infos.update({info.external_jobid: info for info in active_jobs})
        if not infos:
            return
        if self.settings.backend == "local":
            for info in infos.values():
                info.aux["tracked"].handle.cancel(check=False)
            self.logger.info(f"Cancelled {len(infos)} local submitit job(s).")
            return
        # Cancelling an array's id cancels all of its tasks: one scancel for everything.
        arrays = sorted({str(job_id).split("_")[0] for job_id in infos})
        result = subprocess.run(["scancel", *arrays], capture_output=True, text=True, check=False)
        self.logger.info(f"Cancelled SLURM job(s) {', '.join(arrays)} (scancel).")
        if result.returncode != 0:
            self.logger.warning(f"scancel reported: {result.stderr.strip()}")
