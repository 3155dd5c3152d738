"""Aggregation of run folders written in the engine's own formats (metrics.parquet, run.json)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest

from flooding.aggregate import (
    ENVIRONMENT_COLUMNS,
    MEASURE_COLUMNS,
    SUMMARY_METRICS,
    aggregate,
    best_epoch,
    main,
)
from flooding.config import RunConfig
from flooding.metrics import EPOCH_COLUMNS, versions, write_metrics, write_run_json

NAN = float("nan")


def epoch_row(epoch: int, val_acc: float, loss: float = 0.5) -> dict[str, float]:
    row = {name: loss for name in EPOCH_COLUMNS}
    row.update(epoch=epoch, val_acc=val_acc, train_acc=0.1 * epoch, test_acc=0.01 * epoch)
    return row


def write_run(
    folder: Path,
    cfg: RunConfig,
    rows: list[dict[str, float]],
    status: str = "completed",
    error: str | None = None,
    bayes_error: float | None = None,
) -> str:
    write_metrics(folder, rows, cfg, bayes_error)
    write_run_json(
        folder,
        cfg,
        status=status,
        error=error,
        epochs_completed=max((int(r["epoch"]) for r in rows), default=0),
        bayes_error=bayes_error,
        device="cpu",
        started="2026-01-01T00:00:00+00:00",
    )
    return str(folder)


def test_best_epoch_skips_epoch_zero_and_nan_and_takes_the_earliest_tie() -> None:
    table = pd.DataFrame({"epoch": [0, 1, 2, 3, 4, 5], "val_acc": [0.99, 0.5, 0.8, NAN, 0.8, 0.7]})
    assert best_epoch(table) == 2
    assert best_epoch(table[table["epoch"] == 0]) is None


def test_summary_and_metrics_tables(tmp_path: Path) -> None:
    base = RunConfig(dataset="gaussians", epochs=3, train_size=100, batch_size=10)
    completed = write_run(
        tmp_path / "a",
        base,
        [epoch_row(0, 0.9), epoch_row(1, 0.6), epoch_row(2, 0.7), epoch_row(3, 0.7)],
        bayes_error=0.0569,
    )
    diverged_cfg = dataclasses.replace(base, flood_level=0.1, lr=10.0)
    diverged = write_run(
        tmp_path / "b",
        diverged_cfg,
        [epoch_row(0, 0.5), epoch_row(1, 0.55), epoch_row(2, NAN, loss=NAN)],
        status="diverged",
    )
    failed = write_run(
        tmp_path / "c", dataclasses.replace(base, seed=1), [], "failed", "RuntimeError: x"
    )

    metrics, summary = aggregate([completed, diverged, failed])

    assert list(summary["run_dir"]) == [completed, diverged, failed]
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    expected = [
        *fields,
        "config_hash",
        "run_dir",
        "status",
        "error",
        "epochs_completed",
        "bayes_error",
        *ENVIRONMENT_COLUMNS,
        *MEASURE_COLUMNS,
        *(f"version_{k}" for k in ("flooding", "python", "timm", "torch")),
        "best_epoch",
        *(f"final_{m}" for m in SUMMARY_METRICS),
        *(f"best_{m}" for m in SUMMARY_METRICS),
    ]
    assert list(summary.columns) == expected
    a, b, c = (summary.iloc[i] for i in range(3))
    assert (a["status"], a["best_epoch"], a["epochs_completed"]) == ("completed", 2, 3)
    assert a["best_train_acc"] == pytest.approx(0.2) and a["final_train_acc"] == pytest.approx(0.3)
    assert a["bayes_error"] == pytest.approx(0.0569)
    assert (a["device"], a["started"]) == ("cpu", "2026-01-01T00:00:00+00:00")
    assert a["version_torch"] == versions()["torch"]
    assert (b["status"], b["best_epoch"], b["flood_level"], b["lr"]) == ("diverged", 1, 0.1, 10.0)
    assert math.isnan(b["final_train_loss"]) and b["best_val_acc"] == pytest.approx(0.55)
    assert math.isnan(b["bayes_error"])
    assert (c["status"], c["error"], c["seed"]) == ("failed", "RuntimeError: x", 1)
    assert c["best_epoch"] is pd.NA
    assert all(math.isnan(c[f"final_{m}"]) and math.isnan(c[f"best_{m}"]) for m in SUMMARY_METRICS)

    assert len(metrics) == 4 + 3  # the failed run has no epoch
    assert metrics.groupby("run_dir")["status"].first().to_dict() == {
        completed: "completed",
        diverged: "diverged",
    }
    assert {"epoch_lr", "lr", "config_hash", "flood_level"} <= set(metrics.columns)


def test_command_line_writes_both_tables_and_lists_failed_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = RunConfig(epochs=1, train_size=100, batch_size=10)
    ok = write_run(tmp_path / "runs" / "ok", cfg, [epoch_row(0, 0.5), epoch_row(1, 0.6)])
    bad = write_run(tmp_path / "runs" / "bad", dataclasses.replace(cfg, seed=3), [], "failed")
    metrics_out, summary_out = tmp_path / "m.parquet", tmp_path / "s.parquet"
    argv = ["--runs", ok, bad, "--metrics", str(metrics_out), "--summary", str(summary_out)]
    assert main(argv) == 0
    assert "aggregated 2 runs (1 completed, 1 failed), 2 epoch rows" in capsys.readouterr().err
    assert len(pd.read_parquet(metrics_out)) == 2
    assert list(pd.read_parquet(summary_out)["status"]) == ["completed", "failed"]

    assert main(["--failed", str(summary_out)]) == 0
    assert capsys.readouterr().out.split() == [str(Path(bad) / "metrics.parquet")]
    with pytest.raises(SystemExit):
        main(["--failed", str(summary_out), "--runs", ok])
    with pytest.raises(SystemExit):
        main(["--runs", ok])


def test_the_fake_results_of_the_report_tests_have_the_real_schema(tmp_path):
    # The report tests and bench build from made-up tables; they must stay what a real
    # aggregation of real runs writes, column for column.
    from fixtures_results import FakeGrid, make_results

    fake_metrics, fake_summary = make_results(FakeGrid(datasets=("spiral",), seeds=(0,)))
    config = list(RunConfig().to_dict())
    expected = {*EPOCH_COLUMNS, *config, "config_hash", "bayes_error", "run_dir", "status"}
    assert set(fake_metrics.columns) == expected
    rows = [epoch_row(0, 0.5), epoch_row(1, 0.6)]
    real_metrics, real_summary = aggregate([write_run(tmp_path / "run", RunConfig(), rows)])
    assert set(real_metrics.columns) == expected
    # The fake tables leave out where and with what the runs trained, and the flatness
    # measure: the report treats those columns as optional.
    environment = {c for c in real_summary.columns if c.startswith("version_")}
    environment |= {*ENVIRONMENT_COLUMNS, *MEASURE_COLUMNS}
    assert set(fake_summary.columns) == set(real_summary.columns) - environment


def test_damaged_runs_are_named_and_count_as_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = RunConfig(epochs=1, train_size=100, batch_size=10)
    rows = [epoch_row(0, 0.5), epoch_row(1, 0.6)]
    runs = {
        name: write_run(tmp_path / name, dataclasses.replace(cfg, seed=seed), rows)
        for seed, name in enumerate(("ok", "truncated", "garbled", "keyless"))
    }
    with open(Path(runs["truncated"]) / "metrics.parquet", "r+b") as parquet:
        parquet.truncate(10)
    (Path(runs["garbled"]) / "run.json").write_text('{"config": {"seed"')
    (Path(runs["keyless"]) / "run.json").write_text('{"config": {}, "status": "completed"}')
    configs = {run_dir: dataclasses.replace(cfg, seed=3).to_dict() for run_dir in runs.values()}
    metrics, summary = aggregate(list(runs.values()), configs)
    err = capsys.readouterr().err
    assert list(summary["status"]) == ["completed", "failed", "failed", "failed"]
    assert set(metrics["run_dir"]) == {runs["ok"]}
    for name, problem in [
        ("truncated", "metrics.parquet is unreadable"),
        ("garbled", "run.json is unreadable"),
        ("keyless", "run.json lacks config_hash, epochs_completed"),
    ]:
        line = f"snakemake --forcerun {Path(runs[name]) / 'metrics.parquet'}"
        assert f"run {runs[name]} has damaged outputs: {problem}" in err
        assert line in err
        error = summary.set_index("run_dir").loc[runs[name], "error"]
        assert problem in error and line in error
    damaged = summary[summary["status"] == "failed"]
    # The config columns come from the grid's configs; no metric is invented.
    assert (damaged["seed"] == 3).all() and (damaged["epochs_completed"] == 0).all()
    assert damaged["final_test_acc"].isna().all() and damaged["best_epoch"].isna().all()
