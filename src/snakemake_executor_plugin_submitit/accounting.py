"""What each submitted job asked for, and what sacct says it used.

The executor appends one line per SLURM job it submits to `<folder>/submitted.jsonl`
(`record_submissions`): the job id, the rule, the job's outputs and its request. After a
run, `job_usage` reads those jobs back from `sacct`, one call for all of them, and pairs
each request with what the job used:

- runtime: `ElapsedRaw` of the allocation against the requested minutes;
- memory: `MaxRSS` of the job's steps (the batch step holds the command);
- CPU efficiency: `TotalCPU` / (elapsed x allocated CPUs);
- GPU utilisation and memory: `gres/gpuutil` and `gres/gpumem` of `TRESUsageInAve` /
  `TRESUsageInMax`, recorded only where the cluster's `AccountingStorageTRES` lists them
  (and its GPU plugin measures them); None otherwise, never 0.

The plugin knows nothing of the workflow's layout: naming a job's dataset or architecture
from its outputs is the workflow's business.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .resources import SlurmRequest

LEDGER = "submitted.jsonl"
SACCT_FORMAT = (
    "JobID",
    "State",
    "ElapsedRaw",
    "TotalCPU",
    "AllocCPUS",
    "MaxRSS",
    "TRESUsageInAve",
    "TRESUsageInMax",
)
QUERY_TIMEOUT_S = 120


class AccountingError(RuntimeError):
    """sacct is missing or refused the query; the message says which."""


@dataclass(frozen=True)
class Submission:
    """One line of the ledger: a submitted job and its request."""

    job_id: str
    rule: str
    outputs: tuple[str, ...]
    time_min: int
    cpus: int
    mem_mb: int | None
    gpus: int
    submitted: float  # Unix time


def record_submissions(
    ledger: Path,
    rule: str,
    request: SlurmRequest,
    jobs: Sequence[Any],
    handles: Sequence[Any],
) -> None:
    """Append the submitted jobs (Snakemake jobs and their submitit handles) to the ledger."""
    now = time.time()
    with ledger.open("a") as out:
        for job, handle in zip(jobs, handles, strict=True):
            entry = Submission(
                job_id=str(handle.job_id),
                rule=rule,
                outputs=tuple(str(path) for path in job.output),
                time_min=request.time_min,
                cpus=request.cpus_per_task,
                mem_mb=request.mem_mb,
                gpus=request.gpus,
                submitted=now,
            )
            out.write(json.dumps(asdict(entry)) + "\n")


def read_ledger(ledger: Path) -> list[Submission]:
    """Every job in the ledger, the latest submission of each id."""
    entries: dict[str, Submission] = {}
    for line in ledger.read_text().splitlines():
        if line.strip():
            values = json.loads(line)
            values["outputs"] = tuple(values["outputs"])
            entries[values["job_id"]] = Submission(**values)
    return list(entries.values())


@dataclass(frozen=True)
class Usage:
    """What sacct recorded for one job."""

    state: str
    elapsed_s: float
    total_cpu_s: float
    alloc_cpus: int
    max_rss_mb: float | None
    gpu_util: float | None  # percent, mean over the job
    gpu_mem_mb: float | None  # peak


def parse_duration(text: str) -> float:
    """sacct's [D-]HH:MM:SS[.fff] or MM:SS.fff -> seconds."""
    text = text.strip()
    if not text:
        return 0.0
    days, _, clock = text.rpartition("-")
    parts = [float(part) for part in clock.split(":")]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds + (int(days) * 86400 if days else 0)


_SIZE = re.compile(r"^([0-9.]+)([KMGTP]?)$")
_UNITS_MB = {"": 1 / 2**20, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}


def parse_size_mb(text: str) -> float | None:
    """sacct's sizes ('1234K', '12.5M', bytes without a suffix) -> MB; None if empty."""
    match = _SIZE.match(text.strip())
    if match is None:
        return None
    return float(match.group(1)) * _UNITS_MB[match.group(2)]


def parse_tres(text: str) -> dict[str, str]:
    """'cpu=00:00:01,mem=10M,gres/gpuutil=40' -> {'cpu': '00:00:01', 'mem': '10M', ...}."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {key: value for key, value in pairs}


def _largest(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return max(known) if known else None


def parse_sacct(output: str) -> dict[str, Usage]:
    """sacct --parsable2 --noheader rows (SACCT_FORMAT, steps included) -> usage by job id.

    The allocation row (id without a '.') gives the state, elapsed time and CPUs; its steps
    ('<id>.batch', '<id>.0') give memory, CPU time and GPU usage, the largest of them."""
    rows = [line.split("|") for line in output.splitlines() if line.count("|") >= 7]
    steps: dict[str, list[dict[str, str]]] = {}
    allocations: dict[str, dict[str, str]] = {}
    for row in rows:
        fields = dict(zip(SACCT_FORMAT, row, strict=False))
        job_id, _, step = fields["JobID"].partition(".")
        if step:
            steps.setdefault(job_id, []).append(fields)
        else:
            allocations[job_id] = fields
    usage: dict[str, Usage] = {}
    for job_id, fields in allocations.items():
        own = steps.get(job_id, [])
        average = [parse_tres(step["TRESUsageInAve"]) for step in own]
        peak = [parse_tres(step["TRESUsageInMax"]) for step in own]
        usage[job_id] = Usage(
            state=fields["State"].split(" ")[0],
            elapsed_s=float(fields["ElapsedRaw"] or 0),
            # The allocation row's TotalCPU sums its steps.
            total_cpu_s=parse_duration(fields["TotalCPU"]),
            alloc_cpus=int(fields["AllocCPUS"] or 0),
            max_rss_mb=_largest(parse_size_mb(step["MaxRSS"]) for step in own),
            gpu_util=_largest(_number(t.get("gres/gpuutil")) for t in average),
            gpu_mem_mb=_largest(parse_size_mb(t.get("gres/gpumem", "")) for t in peak),
        )
    return usage


def _number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def job_usage(job_ids: Sequence[str], sacct: str = "sacct") -> dict[str, Usage]:
    """One sacct call for the given jobs -> their usage; AccountingError if sacct fails."""
    if not job_ids:
        return {}
    command = [sacct, "--parsable2", "--noheader", "--format=" + ",".join(SACCT_FORMAT)]
    command += ["--jobs", ",".join(job_ids)]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise AccountingError(
            f"{sacct} is not on PATH: this cluster keeps no accounting here"
        ) from None
    except subprocess.TimeoutExpired:
        raise AccountingError(f"{sacct} did not answer within {QUERY_TIMEOUT_S} s") from None
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise AccountingError(f"{sacct} failed: {message}")
    return parse_sacct(result.stdout)
