"""The efficiency account of a cluster run: what each job asked for against what it used.

    flooding efficiency [--folder .snakemake/submitit] [--out results/efficiency.parquet]

The executor plugin keeps a ledger of the SLURM jobs it submitted (their rule, outputs and
request); sacct says what each used (snakemake_executor_plugin_submitit.accounting). Here
each job is named by its dataset and architecture (from its outputs: a run's folder or a
pack's name) and the table is written, one row per job:

| column | meaning |
|---|---|
| job_id, rule, state | the SLURM job, its rule, its final state |
| dataset, arch | its dataset label and architecture label (a pack's: its members') |
| output | its first output, which names its run or pack (flooding.memory reads it) |
| requested_runtime_s, used_runtime_s | the time limit asked for, the time it ran |
| requested_mem_mb, max_rss_mb | memory asked for (null: the cluster default), peak RSS |
| cpus, cpu_efficiency | CPUs allocated, CPU time / (used runtime x CPUs) |
| gpus, gpu_hours | GPUs allocated, GPUs x used runtime in hours |
| gpu_util, gpu_mem_mb | mean GPU utilisation (%) and peak GPU memory; null where not recorded |
| gpu_usage | "recorded", or "not recorded" where the cluster's accounting has no gres/gpuutil |

and summarised per rule and per dataset/architecture (summarise()): printed here, and a
section of the HTML report where the file exists (flooding.report.cluster). The workflow
writes the account of the jobs a run submitted at its end, when it went through the
submitit executor on SLURM (the Snakefile's `onsuccess` and `onerror`); `flooding
efficiency` writes it for every job in the ledger.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from flooding.memory import EFFICIENCY_TABLE
from snakemake_executor_plugin_submitit.accounting import (
    LEDGER,
    AccountingError,
    Submission,
    Usage,
    job_usage,
    read_ledger,
)

DEFAULT_FOLDER = Path(".snakemake/submitit")
DEFAULT_OUT = Path("results", EFFICIENCY_TABLE)
RECORDED = "recorded"
NOT_RECORDED = "not recorded"


class EfficiencyError(ValueError):
    """No account can be made; the message says why."""


def job_group(outputs: Sequence[str]) -> tuple[str, str]:
    """(dataset label, architecture label) of a training job from its outputs:
    results/runs/<dataset>-noise<p>/<arch>/... or results/packs/<dataset>-noise<p>/<arch>/...;
    ("", "") for a job of another rule."""
    for output in outputs:
        parts = Path(output).parts
        if len(parts) >= 4 and parts[0] == "results" and parts[1] in ("runs", "packs"):
            return parts[2].rsplit("-noise", 1)[0], parts[3]
    return "", ""


def account(submissions: Sequence[Submission], usage: Mapping[str, Usage]) -> pd.DataFrame:
    """One row per submitted job that sacct knows, in submission order."""
    rows = []
    for job in submissions:
        used = usage.get(job.job_id)
        if used is None:
            continue
        dataset, arch = job_group(job.outputs)
        recorded = used.gpu_util is not None or used.gpu_mem_mb is not None
        cpu_seconds = used.elapsed_s * used.alloc_cpus
        rows.append(
            {
                "job_id": job.job_id,
                "rule": job.rule,
                "state": used.state,
                "dataset": dataset,
                "arch": arch,
                "output": job.outputs[0] if job.outputs else "",
                "requested_runtime_s": job.time_min * 60.0,
                "used_runtime_s": used.elapsed_s,
                "requested_mem_mb": job.mem_mb,
                "max_rss_mb": used.max_rss_mb,
                "cpus": used.alloc_cpus,
                "cpu_efficiency": used.total_cpu_s / cpu_seconds if cpu_seconds else None,
                "gpus": job.gpus,
                "gpu_hours": job.gpus * used.elapsed_s / 3600,
                "gpu_util": used.gpu_util,
                "gpu_mem_mb": used.gpu_mem_mb,
                "gpu_usage": RECORDED if recorded else NOT_RECORDED,
            }
        )
    table = pd.DataFrame(rows)
    for column in ("requested_mem_mb", "max_rss_mb", "cpu_efficiency", "gpu_util", "gpu_mem_mb"):
        if column in table:
            table[column] = table[column].astype("float64")
    return table


# The two ways the account is summed, each with its name and the columns that key it.
GROUPINGS = (("rule", ("rule",)), ("dataset / arch", ("dataset", "arch")))
OTHER_RULES = "(other rules)"  # the dataset / arch group of jobs that train no run
NO_GPU = "no GPU"


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """The account summed per rule and per dataset/architecture, one row a group in the
    order of GROUPINGS and of the groups' first jobs: `by` (the grouping's name), `group`,
    `jobs`, `requested_h` and `used_h` (runtime), `cpu_efficiency` (the jobs' mean),
    `max_rss_mb` (the largest) and `requested_mem_mb` (what that job asked for; NaN: the
    cluster default), `gpu_hours` allocated, and, over the jobs with GPUs, `gpu_usage`
    (NO_GPU, RECORDED when every such job's is, else NOT_RECORDED), `gpu_hours_used`
    (allocated x utilisation), `gpu_util` (mean) and `gpu_mem_mb` (peak); NaN where
    not recorded."""
    table = table.reset_index(drop=True)  # one label a job, for the job that peaked
    rows = []
    for by, keys in GROUPINGS:
        for key, group in table.groupby(list(keys), sort=False):
            parts = key if isinstance(key, tuple) else (key,)
            name = " / ".join(str(part) for part in parts if str(part))
            gpu_jobs = group[group["gpus"] > 0]
            if gpu_jobs.empty:
                usage = NO_GPU
            elif (gpu_jobs["gpu_usage"] == NOT_RECORDED).any():
                usage = NOT_RECORDED
            else:
                usage = RECORDED
            recorded = usage == RECORDED
            # idxmax is undefined on an all-NaN column: no MaxRSS, no request to show.
            peak = group["max_rss_mb"].idxmax() if group["max_rss_mb"].notna().any() else None
            rows.append(
                {
                    "by": by,
                    "group": name or OTHER_RULES,
                    "jobs": len(group),
                    "requested_h": group["requested_runtime_s"].sum() / 3600,
                    "used_h": group["used_runtime_s"].sum() / 3600,
                    "cpu_efficiency": group["cpu_efficiency"].mean(),
                    "max_rss_mb": group["max_rss_mb"].max(),
                    "requested_mem_mb": (
                        float("nan") if peak is None else group.loc[peak, "requested_mem_mb"]
                    ),
                    "gpu_hours": group["gpu_hours"].sum(),
                    "gpu_usage": usage,
                    "gpu_hours_used": (
                        (gpu_jobs["gpu_hours"] * gpu_jobs["gpu_util"] / 100).sum()
                        if recorded
                        else float("nan")
                    ),
                    "gpu_util": gpu_jobs["gpu_util"].mean() if recorded else float("nan"),
                    "gpu_mem_mb": gpu_jobs["gpu_mem_mb"].max() if recorded else float("nan"),
                }
            )
    return pd.DataFrame(rows)


# How each summed fact is written, in the printed summary and in the report alike.


def runtime_text(row: pd.Series) -> str:
    share = f" ({row['used_h'] / row['requested_h']:.0%})" if row["requested_h"] else ""
    return f"{row['used_h']:.2f} h used of {row['requested_h']:.2f} h requested{share}"


def cpu_text(row: pd.Series) -> str:
    return NOT_RECORDED if pd.isna(row["cpu_efficiency"]) else f"{row['cpu_efficiency']:.0%}"


def memory_text(row: pd.Series) -> str:
    """The largest MaxRSS against the memory its job asked for."""
    if pd.isna(row["max_rss_mb"]):
        return NOT_RECORDED
    asked = row["requested_mem_mb"]
    of = "the cluster default" if pd.isna(asked) else f"{asked:.0f} MB requested"
    return f"{row['max_rss_mb']:.0f} MB of {of}"


def gpu_allocated_text(row: pd.Series) -> str:
    return NO_GPU if row["gpu_usage"] == NO_GPU else f"{row['gpu_hours']:.2f}"


def gpu_used_text(row: pd.Series) -> str:
    if row["gpu_usage"] != RECORDED:
        return row["gpu_usage"]
    return (
        f"{row['gpu_hours_used']:.2f} ({row['gpu_util']:.0f}% util, peak "
        f"{row['gpu_mem_mb']:.0f} MB)"
    )


def summary(table: pd.DataFrame) -> str:
    """The account per rule and per dataset/architecture (summarise()), as text."""
    lines = []
    summed = summarise(table)
    for by, _ in GROUPINGS:
        lines.append(f"per {by}:")
        for _, row in summed[summed["by"] == by].iterrows():
            gpu = NO_GPU
            if row["gpu_usage"] != NO_GPU:
                gpu = f"gpu-h {gpu_allocated_text(row)} allocated, used {gpu_used_text(row)}"
            lines.append(
                f"  {row['group']}: {row['jobs']} jobs, runtime {runtime_text(row)}, CPU "
                f"efficiency {cpu_text(row)}, largest MaxRSS {memory_text(row)}, {gpu}"
            )
    return "\n".join(lines)


def write_account(folder: Path, out: Path, since: float | None = None) -> str:
    """Query sacct for the jobs in the executor's ledger under `folder` (those submitted
    at or after `since`, Unix time, if given), write the table to `out`, return the
    summary; EfficiencyError when there is nothing to account."""
    ledger = folder / LEDGER
    if not ledger.is_file():
        raise EfficiencyError(
            f"{ledger}: no ledger of submitted jobs (run snakemake --profile slurm first)"
        )
    submissions = [job for job in read_ledger(ledger) if since is None or job.submitted >= since]
    if not submissions:
        raise EfficiencyError(f"no job was submitted by this run; {out} is left as it was")
    try:
        usage = job_usage([job.job_id for job in submissions])
    except AccountingError as error:
        raise EfficiencyError(str(error)) from None
    table = account(submissions, usage)
    if table.empty:
        raise EfficiencyError(f"sacct knows none of the {len(submissions)} jobs in {ledger}")
    from flooding.aggregate import write_parquet

    write_parquet(table, str(out))
    return f"{out}: {len(table)} jobs\n{summary(table)}"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="flooding efficiency",
        description="What the SLURM jobs of the last runs asked for against what they "
        "used (sacct), per job into a table and summed per rule and dataset/arch.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--folder",
        type=Path,
        default=DEFAULT_FOLDER,
        metavar="DIR",
        help=f"the executor's submitit-folder (default: {DEFAULT_FOLDER})",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="FILE", help=f"default: {DEFAULT_OUT}"
    )
    args = parser.parse_args(list(argv))
    try:
        print(write_account(args.folder, args.out))
    except EfficiencyError as error:
        print(f"flooding efficiency: error: {error}", file=sys.stderr)
        return 2
    return 0
