"""What a cluster run's jobs asked for against what they used: the report's section of the
efficiency account (results/efficiency.parquet, flooding.efficiency), when there is one.

The sums and their wording are flooding.efficiency's (summarise() and its *_text
functions), the same as `flooding efficiency` prints.
"""

from __future__ import annotations

import pandas as pd

from flooding.efficiency import (
    GROUPINGS,
    NO_GPU,
    NOT_RECORDED,
    cpu_text,
    gpu_allocated_text,
    gpu_used_text,
    memory_text,
    runtime_text,
)
from flooding.report.parts import Part, Section
from flooding.report.tables import Cell, Table, cells

HEADINGS = {"rule": "Per rule", "dataset / arch": "Per dataset and architecture"}


def _cell(text: str) -> Cell:
    return Cell(text, css="muted" if text in (NOT_RECORDED, NO_GPU) else "")


def _table(by: str, summed: pd.DataFrame) -> Table:
    head = [
        cells(
            by,
            "jobs",
            "runtime",
            "CPU efficiency",
            "largest MaxRSS",
            "GPU-hours allocated",
            "GPU-hours used",
        )
    ]
    body = [
        cells(
            str(row["group"]),
            str(row["jobs"]),
            runtime_text(row),
            _cell(cpu_text(row)),
            _cell(memory_text(row)),
            _cell(gpu_allocated_text(row)),
            _cell(gpu_used_text(row)),
        )
        for _, row in summed.iterrows()
    ]
    return Table(head, body, css="results")


def section(summed: pd.DataFrame) -> Section:
    """The section for an account summed by flooding.efficiency.summarise()."""
    jobs = int(summed.loc[summed["by"] == GROUPINGS[0][0], "jobs"].sum())
    intro = (
        f"What the {jobs} SLURM jobs of the efficiency account (results/efficiency.parquet, "
        "written at the end of a run through the submitit executor on SLURM, or by flooding "
        "efficiency) asked for against what they used, from sacct. Runtime: the jobs' "
        "elapsed time summed, against their summed time limits. CPU efficiency: the mean "
        "over jobs of CPU time / (elapsed time x CPUs). Largest MaxRSS: the highest peak "
        "memory among the group's jobs, against what that job requested. GPU-hours "
        "allocated: GPUs x elapsed time; used: allocated x mean utilisation, only where the "
        "cluster records gres/gpuutil for every GPU job of the group "
        f"('{NOT_RECORDED}' otherwise)."
    )
    parts = [
        Part(HEADINGS[by], tables=[_table(by, summed[summed["by"] == by])]) for by, _ in GROUPINGS
    ]
    return Section(
        "efficiency", "cluster efficiency", "Cluster jobs: requested against used", parts, [intro]
    )
