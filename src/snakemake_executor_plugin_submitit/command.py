"""The function submitit runs on the node: one Snakemake job command, requeued on timeout.

submitit pickles a `JobCommand`, starts it in the SLURM job and, on the timeout or
preemption signal (SIGUSR2, `--signal=USR2@<delay>`), calls its `checkpoint()`. That stops
the command (whose training process saves a checkpoint on the signal) and returns the same
command for the next run; submitit requeues the SLURM job, and the next run resumes from
the checkpoint. After `max_num_timeout` timeouts submitit refuses to requeue and the job
fails with "timed-out too many times". A SIGTERM (scancel, or a preemption SLURM requeues
by itself) ends the job without a result, so that its SLURM state tells what happened.

The command runs in its own session, so that the whole process tree can be signalled
without signalling submitit, and with SIGUSR2 ignored, so that the Snakemake process in it
outlives its job and reaps it: a program that wants the signal (the training loop)
installs its own handler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import FrameType

from submitit.core.job_environment import JobEnvironment
from submitit.core.utils import DelayedSubmission

POLL_S = 0.5
# After an interruption (Ctrl-C on the local backend) submitit kills the task within 1 s.
INTERRUPT_GRACE_S = 0.5

# The command's process: the signal handler that calls `checkpoint` runs in this same
# process, between two polls of `__call__`, and has to reach it.
_child: subprocess.Popen[bytes] | None = None


class JobCommandError(RuntimeError):
    """The Snakemake job command exited with a non-zero status."""


@dataclass(frozen=True)
class JobCommand:
    """A shell command that submitit runs, and reruns from its checkpoint after a requeue."""

    command: str
    workdir: str
    # Seconds between the timeout signal and the moment the command is killed; it must
    # leave submitit time to requeue before SLURM's own time limit strikes.
    grace_s: float
    # Which run of the command this is: 1, then one more after each requeue.
    run: int = 1

    def __call__(self) -> None:
        global _child
        print(f"[submitit-executor] run {self.run} of: {self.command}", file=sys.stderr, flush=True)
        child = subprocess.Popen(
            ["/bin/bash", "-c", self.command],
            cwd=self.workdir,
            preexec_fn=_detach_and_ignore_timeout_signal,
        )
        _child = child
        with _watch_sigterm() as terminated:
            try:
                # Poll instead of wait(): a blocking wait() holds the Popen lock that the
                # signal handler needs when it waits for the child in `checkpoint`.
                while (returncode := child.poll()) is None:
                    time.sleep(POLL_S)
            except BaseException:
                # KeyboardInterrupt (cancelled), or submitit leaving after a requeue.
                stop(child, INTERRUPT_GRACE_S)
                raise
            finally:
                _child = None
        if returncode != 0 and terminated:
            # SLURM is ending the job: scancel, or a preemption it may requeue by itself.
            # Leave no result, so that the job's SLURM state, not this exit, says what
            # happened (submitit records only exceptions, not SystemExit).
            raise SystemExit(f"terminated by SLURM; the command exited with status {returncode}")
        if returncode != 0:
            raise JobCommandError(f"the job command exited with status {returncode}")

    def checkpoint(self) -> DelayedSubmission:
        """Called by submitit on the timeout signal: stop the run, return the next one."""
        child = _child
        if child is not None:
            print(
                f"[submitit-executor] timeout/preemption signal in run {self.run}: stopping the "
                "command so that it saves its checkpoint",
                file=sys.stderr,
                flush=True,
            )
            stop(child, self.grace_s, first_signal=timeout_signal())
        return DelayedSubmission(replace(self, run=self.run + 1))


def timeout_signal() -> signal.Signals:
    """The signal submitit asks SLURM to send before the time limit (SIGUSR2 by default)."""
    return signal.Signals[f"SIG{JobEnvironment.USR_SIG}"]


def stop(
    child: subprocess.Popen[bytes], grace_s: float, first_signal: int = signal.SIGTERM
) -> None:
    """Signal the child's process group, escalating to SIGTERM, then SIGKILL.

    Each signal gets an equal share of grace_s to end the child. Whatever the child left
    behind in its group is killed at the end, as SLURM would at the end of the job.
    """
    signals = [first_signal] if first_signal == signal.SIGTERM else [first_signal, signal.SIGTERM]
    for signum in signals:
        if child.poll() is not None:
            break
        _signal_group(child.pid, signum)
        try:
            child.wait(timeout=grace_s / len(signals))
        except subprocess.TimeoutExpired:
            continue
    _signal_group(child.pid, signal.SIGKILL)
    child.wait()


def _signal_group(pgid: int, signum: int) -> None:
    # ProcessLookupError: the group is already empty.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@contextlib.contextmanager
def _watch_sigterm() -> Iterator[list[int]]:
    """Record SIGTERMs while the command runs, still passing them to submitit's handler."""
    received: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)
    # Only under submitit (which installed a handler) and only where handlers can be set.
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _detach_and_ignore_timeout_signal() -> None:
    # Runs in the child between fork and exec: ignored signals stay ignored across exec.
    os.setsid()
    signal.signal(timeout_signal(), signal.SIG_IGN)
