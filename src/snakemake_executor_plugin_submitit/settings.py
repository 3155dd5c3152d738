"""The executor's settings: Snakemake options `--submitit-<name>`, also settable in a profile.

No `from __future__ import annotations` here: Snakemake builds the options from the
fields' types, which must be real types, not strings.
"""

from dataclasses import dataclass, field

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

BACKENDS = ("slurm", "local")


# Not frozen: Snakemake's settings base class is a plain dataclass, and a frozen dataclass
# cannot inherit from one.
@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    backend: str = field(
        default="slurm",
        metadata={
            "help": "submitit backend: 'slurm' submits to SLURM with sbatch; 'local' runs the "
            "jobs as local processes with the same time limits and requeue logic.",
            "choices": list(BACKENDS),
        },
    )
    folder: str = field(
        default=".snakemake/submitit",
        metadata={
            "help": "Folder (on the shared file system) for submitit's job files and the "
            "jobs' logs, <folder>/<jobid>_0_log.out.",
        },
    )
    max_array_size: int = field(
        default=1000,
        metadata={
            "help": "Most jobs in one SLURM job array (one sbatch call); capped at the "
            "cluster's MaxArraySize and the user's MaxSubmitJobs, read from SLURM.",
        },
    )
    array_parallelism: int = field(
        default=256,
        metadata={"help": "Most tasks of one job array that run at the same time (%%N)."},
    )
    status_interval: int = field(
        default=30,
        metadata={
            "help": "Longest time in seconds between two status checks; each check is one "
            "sacct query for all active jobs. Checks come 2 s after a submission or a "
            "change, then back off (doubling) to this interval while nothing changes.",
        },
    )
    lost_after: int = field(
        default=600,
        metadata={
            "help": "Seconds a job may be missing from both sacct and squeue (slurmdbd "
            "down, a purged record) before it is reported as lost, with its log.",
        },
    )
    max_requeues: int = field(
        default=3,
        metadata={
            "help": "How often a job that reaches its time limit is requeued to resume from "
            "its checkpoint before it fails (preemptions do not count).",
        },
    )
    signal_delay: int = field(
        default=90,
        metadata={
            "help": "Seconds before the time limit at which SLURM signals the job (SIGUSR2) "
            "to checkpoint and requeue; at most half the job's time limit.",
        },
    )

    def check(self) -> None:
        """Raise WorkflowError naming the first setting out of range."""
        if self.backend not in BACKENDS:
            raise WorkflowError(
                f"--submitit-backend: invalid value {self.backend!r}; accepted: "
                + ", ".join(BACKENDS)
            )
        minimums = {
            "max_array_size": 1,
            "array_parallelism": 1,
            "status_interval": 1,
            "lost_after": 1,
            "max_requeues": 0,
            "signal_delay": 1,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if value < minimum:
                option = "--submitit-" + name.replace("_", "-")
                raise WorkflowError(
                    f"{option}: invalid value {value!r}; accepted: an integer >= {minimum}"
                )

    def signal_delay_s(self, time_min: int) -> int:
        """The signal delay for a job with this time limit: at most half of the limit, so
        that every run gets at least half its time before it is asked to checkpoint."""
        return min(self.signal_delay, time_min * 30)
