"""The cluster's limits on submissions, read from SLURM itself rather than the profile.

- `MaxArraySize` (`scontrol show config`): an array's task indices must stay below it,
  so an array holds at most that many tasks (submitit numbers them from 0).
- `MaxSubmitJobs` (`sacctmgr show assoc` for this user): the most jobs, array tasks
  counted, that may be pending or running at once; an array larger than that is refused
  whole.

Neither submitit nor sbatch splits an array to fit: the executor cuts its arrays at the
smallest of these and its own `--submitit-max-array-size`, and names the limits when an
sbatch call is refused anyway.
"""

from __future__ import annotations

import getpass
import re
import subprocess
from dataclasses import dataclass

QUERY_TIMEOUT_S = 30


@dataclass(frozen=True)
class ClusterLimits:
    """Limits SLURM reported; None where it did not say (or no SLURM answered)."""

    max_array_size: int | None = None
    max_submit_jobs: int | None = None

    def array_size(self, configured: int) -> int:
        """The most tasks one array may hold here: the configured size, capped."""
        return min(
            limit
            for limit in (configured, self.max_array_size, self.max_submit_jobs)
            if limit is not None
        )

    def describe(self) -> str:
        """e.g. 'MaxArraySize 1001, MaxSubmitJobs not set', for error messages."""
        return ", ".join(
            f"{name} {'not set' if value is None else value}"
            for name, value in (
                ("MaxArraySize", self.max_array_size),
                ("MaxSubmitJobs", self.max_submit_jobs),
            )
        )


def _output(command: list[str]) -> str | None:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=QUERY_TIMEOUT_S
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def parse_max_array_size(scontrol_config: str) -> int | None:
    """MaxArraySize from `scontrol show config` output ('MaxArraySize = 1001')."""
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", scontrol_config, re.MULTILINE)
    return int(match.group(1)) if match else None


def parse_max_submit_jobs(sacctmgr_output: str) -> int | None:
    """The smallest MaxSubmitJobs of the user's associations (`sacctmgr -n -P ... format=
    MaxSubmitJobs`, one value a line, empty where unset)."""
    values = [int(line) for line in sacctmgr_output.split() if line.strip().isdigit()]
    return min(values) if values else None


def read_cluster_limits(scontrol: str = "scontrol", sacctmgr: str = "sacctmgr") -> ClusterLimits:
    """The limits of the SLURM that answers here; no limits where none does."""
    config = _output([scontrol, "show", "config"])
    if config is None:
        return ClusterLimits()
    user = getpass.getuser()
    associations = _output(
        [sacctmgr, "-n", "-P", "show", "assoc", f"where user={user}", "format=MaxSubmitJobs"]
    )
    return ClusterLimits(
        max_array_size=parse_max_array_size(config),
        max_submit_jobs=None if associations is None else parse_max_submit_jobs(associations),
    )
