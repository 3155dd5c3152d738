"""The cluster's limits on submissions, read from SLURM itself rather than the profile.

- `MaxArraySize` (`scontrol show config`): an array's task indices must stay below it,
  so an array holds at most that many tasks (submitit numbers them from 0).
- `MaxSubmitJobs` (`sacctmgr show assoc` for this user): the most jobs, array tasks
  counted, that may be pending or running at once; an array larger than that is refused
  whole.

Neither submitit nor sbatch splits an array to fit: the executor cuts its arrays at the
smallest of these and its own `--submitit-max-array-size`, and names the limits when an
sbatch call is refused anyway.

- `MaxTime` of a partition (`scontrol show partition`): the longest time limit a job may
  ask for there. A job asking more waits forever (or is refused, with
  `EnforcePartLimits`); the executor cannot make a job shorter, so it is read for the
  workflow's own planning (`flooding plan` checks the jobs against it).
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


@dataclass(frozen=True)
class PartitionTime:
    """A partition's time limit: the most minutes a job may ask for there."""

    partition: str
    max_minutes: int | None  # None: UNLIMITED


def parse_time_limit(text: str) -> int | None:
    """SLURM's [days-]hours:minutes:seconds (or minutes, minutes:seconds) in whole
    minutes, rounded down; None for UNLIMITED or INFINITE."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    if len(parts) == 1:  # minutes
        seconds = parts[0] * 60
    elif len(parts) == 2:  # minutes:seconds
        seconds = parts[0] * 60 + parts[1]
    else:
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    return (int(days or 0) * 86400 + seconds) // 60


def parse_partitions(scontrol_partitions: str) -> dict[str, tuple[int | None, bool]]:
    """`scontrol show partition --oneliner`: each partition's MaxTime in minutes (None:
    unlimited) and whether it is the default one."""
    partitions: dict[str, tuple[int | None, bool]] = {}
    for line in scontrol_partitions.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "PartitionName" in fields and "MaxTime" in fields:
            limit = parse_time_limit(fields["MaxTime"])
            partitions[fields["PartitionName"]] = (limit, fields.get("Default") == "YES")
    return partitions


def read_partition_time(
    partition: str | None = None, scontrol: str = "scontrol"
) -> PartitionTime | None:
    """The time limit of `partition` (None: the cluster's default partition) where a SLURM
    answers here; None where none does or it has no such partition."""
    output = _output([scontrol, "show", "partition", "--oneliner"])
    if output is None:
        return None
    partitions = parse_partitions(output)
    if partition is None:
        partition = next((name for name, (_, default) in partitions.items() if default), None)
    if partition not in partitions:
        return None
    return PartitionTime(partition, partitions[partition][0])
