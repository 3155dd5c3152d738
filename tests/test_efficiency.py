"""The efficiency account of a cluster run from sacct, without a SLURM (fake sacct output)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from test_cluster_limits import fake_command

from flooding.cli import main
from flooding.efficiency import (
    NOT_RECORDED,
    EfficiencyError,
    account,
    job_group,
    summary,
    write_account,
)
from snakemake_executor_plugin_submitit.accounting import (
    LEDGER,
    Submission,
    parse_duration,
    parse_sacct,
    parse_size_mb,
    read_ledger,
)

# sacct --parsable2 --noheader, steps included: a CPU job with its batch and extern steps,
# and a GPU job whose batch step recorded gres/gpuutil and gres/gpumem.
SACCT = """\
41_0|COMPLETED|20|00:15.500|2||||
41_0.batch|COMPLETED|20|00:15.500|2|102400K|cpu=00:00:15,mem=102400K|cpu=00:00:15,mem=102400K
41_0.extern|COMPLETED|20|00:00:00|2|0|cpu=00:00:00,mem=0|cpu=00:00:00,mem=0
42|COMPLETED|3600|1-00:00:00|4||||
42.batch|COMPLETED|3600|1-00:00:00|4|2G|cpu=1-00:00:00,gres/gpuutil=40,gres/gpumem=900M|cpu=1-00:00:00,gres/gpuutil=90,gres/gpumem=1G
"""


def test_sacct_sizes_and_durations() -> None:
    assert parse_duration("00:15.500") == 15.5
    assert parse_duration("1-02:00:03") == 86400 + 7203
    assert parse_size_mb("102400K") == 100
    assert parse_size_mb("2G") == 2048
    assert parse_size_mb("1048576") == 1
    assert parse_size_mb("") is None


def test_usage_pairs_each_allocation_with_its_steps() -> None:
    usage = parse_sacct(SACCT)
    assert set(usage) == {"41_0", "42"}
    cpu = usage["41_0"]
    assert (cpu.elapsed_s, cpu.total_cpu_s, cpu.alloc_cpus, cpu.max_rss_mb) == (20, 15.5, 2, 100)
    assert cpu.gpu_util is None and cpu.gpu_mem_mb is None
    gpu = usage["42"]
    assert (gpu.gpu_util, gpu.gpu_mem_mb, gpu.max_rss_mb) == (40, 1024, 2048)


def submissions() -> list[Submission]:
    pack = "results/packs/spiral-noise0.1/mlp/wd0-aug0/pack-0123456789"
    return [
        Submission("41_0", "train_pack", (f"{pack}.json", f"{pack}.done"), 1, 2, 1000, 0, 0.0),
        Submission(
            "42",
            "train",
            ("results/runs/mnist-noise0/mlp2x1000/wd0-aug0/flood0/seed0/metrics.parquet",),
            120,
            4,
            None,
            1,
            0.0,
        ),
        Submission("43", "train", ("results/runs/x/y/z/metrics.parquet",), 5, 1, None, 0, 0.0),
    ]


def test_the_account_has_a_row_per_job_sacct_knows() -> None:
    table = account(submissions(), parse_sacct(SACCT))
    assert list(table["job_id"]) == ["41_0", "42"]  # sacct knows no job 43
    cpu, gpu = table.iloc[0], table.iloc[1]
    assert (cpu["dataset"], cpu["arch"], cpu["rule"]) == ("spiral", "mlp", "train_pack")
    assert (cpu["requested_runtime_s"], cpu["used_runtime_s"]) == (60, 20)
    assert cpu["cpu_efficiency"] == pytest.approx(15.5 / 40)
    assert cpu["gpu_usage"] == NOT_RECORDED and pd.isna(cpu["gpu_util"])
    assert (gpu["dataset"], gpu["arch"], gpu["gpu_hours"], gpu["gpu_usage"]) == (
        "mnist",
        "mlp2x1000",
        1.0,
        "recorded",
    )
    assert gpu["cpu_efficiency"] == pytest.approx(86400 / (3600 * 4))
    text = summary(table)
    assert "train_pack: 1 jobs, runtime 0.01 h used of 0.02 h requested (33%)" in text
    assert "mnist / mlp2x1000: 1 jobs" in text
    # Job 42 asked for no memory: its MaxRSS is set against the cluster's default.
    assert "largest MaxRSS 2048 MB of the cluster default" in text
    assert "gpu-h 1.00 allocated, used 0.40 (40% util, peak 1024 MB)" in text


def test_jobs_of_other_rules_have_no_dataset() -> None:
    assert job_group(["out/ok.txt"]) == ("", "")
    assert job_group(["results/runs/digits-noise0.2/resnet_tiny/wd0-aug1/flood0/seed0/x"]) == (
        "digits",
        "resnet_tiny",
    )


def test_the_ledger_keeps_the_latest_submission_of_each_job(tmp_path: Path) -> None:
    first, second, _ = submissions()
    lines = [json.dumps({**vars(entry), "outputs": list(entry.outputs)}) for entry in submissions()]
    again = json.dumps({**vars(first), "outputs": list(first.outputs), "time_min": 9})
    (tmp_path / LEDGER).write_text("\n".join([*lines, again]) + "\n")
    read = read_ledger(tmp_path / LEDGER)
    assert [entry.job_id for entry in read] == ["41_0", "42", "43"]
    assert read[0].time_min == 9 and read[1] == second


def test_efficiency_command_writes_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "submitit"
    folder.mkdir()
    (folder / LEDGER).write_text(
        "".join(json.dumps({**vars(e), "outputs": list(e.outputs)}) + "\n" for e in submissions())
    )
    fake_command(tmp_path / "bin", "sacct", SACCT)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "efficiency.parquet"
    assert main(["efficiency", "--folder", str(folder), "--out", str(out)]) == 0
    assert len(pd.read_parquet(out)) == 2
    assert "per dataset / arch:" in capsys.readouterr().out
    # The workflow's account covers the jobs its own run submitted (here: none).
    with pytest.raises(EfficiencyError, match="no job was submitted by this run"):
        write_account(folder, out, since=1.0)
    assert len(pd.read_parquet(out)) == 2


@pytest.mark.parametrize("missing", ["ledger", "sacct", "failing sacct"])
def test_efficiency_without_a_ledger_or_sacct_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    missing: str,
) -> None:
    folder = tmp_path / "submitit"
    folder.mkdir()
    if missing != "ledger":
        (folder / LEDGER).write_text(json.dumps({**vars(submissions()[0]), "outputs": []}) + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if missing == "failing sacct":
        fake_command(bin_dir, "sacct", "sacct: error: Problem talking to the database\n", 1)
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "efficiency.parquet"
    assert main(["efficiency", "--folder", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    expected = {
        "ledger": "no ledger of submitted jobs",
        "sacct": "sacct is not on PATH",
        "failing sacct": "sacct failed",
    }[missing]
    assert err.count("\n") == 1 and expected in err, err
    assert not out.exists()
