"""The report's section on a cluster run's jobs, from a real efficiency account, and its
absence without one.

The account is written as the workflow writes it (flooding.efficiency.write_account: the
executor's ledger, one sacct call, here a fake sacct on the PATH), then read back by
`flooding report --efficiency`.
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from fixtures_results import FakeGrid, make_results, write_results
from test_cluster_limits import fake_command

from flooding.efficiency import write_account
from flooding.report import main
from snakemake_executor_plugin_submitit.accounting import LEDGER, Submission


def job(
    job_id: str, rule: str, output: str, minutes: int, cpus: int, mem_mb: int | None, gpus: int
) -> Submission:
    return Submission(job_id, rule, (output,), minutes, cpus, mem_mb, gpus, submitted=1.0)


# A CPU pack of two tasks, a GPU run whose use the cluster records, one whose use it does
# not (the larger MaxRSS, the smaller request), and an auxiliary model's job (no dataset /
# arch of a run) without a MaxRSS.
SUBMISSIONS = [
    job("61_0", "train_pack", "results/packs/spiral-noise0/mlp/p0.done", 1, 2, 1000, 0),
    job("61_1", "train_pack", "results/packs/spiral-noise0/mlp/p1.done", 1, 2, 1000, 0),
    job("62", "train", "results/runs/mnist-noise0/mlp2x1000/a/run.json", 60, 4, 16000, 1),
    job("63", "train", "results/runs/cifar10-noise0/resnet18/a/run.json", 120, 4, 8000, 1),
    job("64", "train_aux", "results/aux/spiral/fold0/losses.parquet", 5, 1, None, 0),
]
# sacct --parsable2 --noheader --format=JobID,State,ElapsedRaw,TotalCPU,AllocCPUS,MaxRSS,
# TRESUsageInAve,TRESUsageInMax
SACCT = """\
61_0|COMPLETED|20|00:30|2||||
61_0.batch|COMPLETED|20|00:30|2|100M|cpu=00:00:30|cpu=00:00:30
61_1|COMPLETED|40|00:20|2||||
61_1.batch|COMPLETED|40|00:20|2|300M|cpu=00:00:20|cpu=00:00:20
62|COMPLETED|1800|00:30:00|4||||
62.batch|COMPLETED|1800|00:30:00|4|2G|cpu=00:30:00,gres/gpuutil=50|gres/gpuutil=90,gres/gpumem=2G
63|COMPLETED|3600|01:48:00|4||||
63.batch|COMPLETED|3600|01:48:00|4|3G|cpu=01:48:00|cpu=01:48:00
64|FAILED|60|00:45|1||||
64.batch|FAILED|60|00:45|1||cpu=00:00:45|cpu=00:00:45
"""
HEAD = [
    "jobs",
    "runtime",
    "CPU efficiency",
    "largest MaxRSS",
    "GPU-hours allocated",
    "GPU-hours used",
]
PACK = ["2", "0.02 h used of 0.03 h requested (50%)", "50%", "300 MB of 1000 MB requested"]
AUX = ["1", "0.02 h used of 0.08 h requested (20%)", "75%", "not recorded", "no GPU", "no GPU"]
PER_RULE = [
    ["rule", *HEAD],
    ["train_pack", *PACK, "no GPU", "no GPU"],
    # One GPU job's use is not recorded: the rule's GPU-hours used are not either.
    [
        "train",
        "2",
        "1.50 h used of 3.00 h requested (50%)",
        "35%",
        "3072 MB of 8000 MB requested",
        "1.50",
        "not recorded",
    ],
    ["train_aux", *AUX],
]
PER_DATASET = [
    ["dataset / arch", *HEAD],
    ["spiral / mlp", *PACK, "no GPU", "no GPU"],
    [
        "mnist / mlp2x1000",
        "1",
        "0.50 h used of 1.00 h requested (50%)",
        "25%",
        "2048 MB of 16000 MB requested",
        "0.50",
        "0.25 (50% util, peak 2048 MB)",
    ],
    [
        "cifar10 / resnet18",
        "1",
        "1.00 h used of 2.00 h requested (50%)",
        "45%",
        "3072 MB of 8000 MB requested",
        "1.00",
        "not recorded",
    ],
    ["(other rules)", *AUX],
]


class Tables(HTMLParser):
    """The section ids of a page, and the text of each table cell, by section."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.sections.append(dict(attrs)["id"])
        elif tag == "table":
            self.tables.setdefault(self.sections[-1], []).append([])
        elif tag == "tr":
            self.tables[self.sections[-1]][-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[self.sections[-1]][-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[Path, Path]:
    grid = FakeGrid(datasets=("spiral",), flood_levels=(0.05, 0.1), epochs=6)
    return write_results(*make_results(grid), tmp_path_factory.mktemp("results"))


def write_efficiency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """The account of SUBMISSIONS as the workflow writes it; its path and printed summary."""
    folder = tmp_path / "submitit"
    folder.mkdir()
    ledger = "".join(
        json.dumps({**vars(job), "outputs": list(job.outputs)}) + "\n" for job in SUBMISSIONS
    )
    (folder / LEDGER).write_text(ledger)
    fake_command(tmp_path / "bin", "sacct", SACCT)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "efficiency.parquet"
    return out, write_account(folder, out)


def report(results: tuple[Path, Path], out: Path, *args: str) -> str:
    metrics, summary = results
    argv = ["--metrics", str(metrics), "--summary", str(summary), "--out", str(out), *args]
    assert main(argv) == 0
    return out.read_text(encoding="utf-8")


def test_the_report_sums_the_account_per_rule_and_per_dataset(tmp_path, monkeypatch, results):
    path, printed = write_efficiency(tmp_path, monkeypatch)
    assert len(pd.read_parquet(path)) == 5
    page = report(results, tmp_path / "report.html", "--efficiency", str(path))
    found = Tables(page)
    assert found.sections[-2:] == ["efficiency", "method"]
    assert found.tables["efficiency"] == [PER_RULE, PER_DATASET]
    assert 'href="#efficiency">cluster efficiency</a>' in page
    assert "What the 5 SLURM jobs of the efficiency account" in page
    # `flooding efficiency` prints the same figures, worded by the same functions.
    assert (
        "  mnist / mlp2x1000: 1 jobs, runtime 0.50 h used of 1.00 h requested (50%), CPU "
        "efficiency 25%, largest MaxRSS 2048 MB of 16000 MB requested, gpu-h 0.50 allocated, "
        "used 0.25 (50% util, peak 2048 MB)"
    ) in printed.splitlines()
    assert "  train_aux: 1 jobs" in printed and "largest MaxRSS not recorded, no GPU" in printed


def test_without_an_account_the_report_has_no_such_section(tmp_path, results):
    page = report(results, tmp_path / "report.html")
    assert "efficiency" not in Tables(page).sections
    assert not re.search("cluster efficiency|Cluster jobs|SLURM", page)
