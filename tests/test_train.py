"""The training engine, in process: outputs, determinism, pairing, divergence, failures."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

import flooding.train
from flooding.checkpoint import CHECKPOINT_FILE, EXIT_CHECKPOINTED
from flooding.config import ConfigError, RunConfig, config_hash, validate, validate_data
from flooding.metrics import EPOCH_COLUMNS, metrics_schema
from flooding.runtime import Runtime, resolve_device
from flooding.state import batch_bounds, learning_rate
from flooding.train import run

TINY = RunConfig(
    dataset="spiral",
    train_size=200,
    test_size=200,
    mlp_depth=2,
    mlp_width=16,
    epochs=4,
    batch_size=40,
    lr=0.05,
)


def train(out: Path, cfg: RunConfig = TINY, **runtime: object) -> int:
    return run(cfg, Runtime(out=out, device="cpu", threads=1, **runtime))


def metrics(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "metrics.parquet")


def reproducible(frame: pd.DataFrame) -> pd.DataFrame:
    """Everything but wall time, which no two runs share."""
    return frame.drop(columns="epoch_seconds")


def test_a_run_writes_metrics_and_run_json(tmp_path):
    cfg = dataclasses.replace(TINY, label_noise=0.2, flood_level=0.3)
    assert train(tmp_path, cfg) == 0
    frame = metrics(tmp_path)
    assert list(frame.columns) == metrics_schema().names
    assert list(frame["epoch"]) == [0, 1, 2, 3, 4]
    for name, value in cfg.to_dict().items():
        assert (frame[name] == value).all(), name
    assert (frame["config_hash"] == config_hash(cfg)).all()
    assert frame["bayes_error"].isna().all()
    first, rest = frame.iloc[0], frame.iloc[1:]
    assert math.isnan(first["batch_loss"]) and math.isnan(first["grad_norm"])
    assert rest[["batch_loss", "grad_norm", "flooded_frac"]].notna().all().all()
    accuracies = frame[[c for c in EPOCH_COLUMNS if c.endswith(("_acc", "_acc_clean"))]]
    assert ((accuracies >= 0) & (accuracies <= 1)).all().all()
    # With label noise the noisy and clean evaluations differ.
    assert (frame["train_acc"] != frame["train_acc_clean"]).any()
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "completed" and record["error"] is None
    assert record["config"] == cfg.to_dict() and record["config_hash"] == config_hash(cfg)
    assert record["epochs_completed"] == 4 and record["bayes_error"] is None
    assert set(record["versions"]) == {"python", "torch", "timm", "flooding"}
    assert record["device"].startswith("cpu") and record["host"]
    assert record["started"] <= record["finished"]
    assert not (tmp_path / CHECKPOINT_FILE).exists()  # a finished run drops it


def test_clean_metrics_equal_noisy_ones_without_label_noise(tmp_path):
    train(tmp_path)
    frame = metrics(tmp_path)
    assert frame["train_loss"].equals(frame["train_loss_clean"])
    assert frame["val_acc"].equals(frame["val_acc_clean"])


def test_bayes_error_is_recorded_for_the_two_gaussians(tmp_path):
    train(tmp_path, dataclasses.replace(TINY, dataset="gaussians", epochs=1))
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["bayes_error"] == pytest.approx(0.0569, abs=1e-3)  # Phi(-sqrt(10)/2)
    assert metrics(tmp_path)["bayes_error"].eq(record["bayes_error"]).all()


def test_the_same_config_gives_bit_identical_metrics(tmp_path):
    cfg = dataclasses.replace(TINY, label_noise=0.1, flood_level=0.4, lr_schedule="cosine")
    train(tmp_path / "a", cfg)
    train(tmp_path / "b", cfg)
    pd.testing.assert_frame_equal(
        reproducible(metrics(tmp_path / "a")), reproducible(metrics(tmp_path / "b"))
    )


def test_runs_differing_only_in_b_are_paired(tmp_path):
    # Digits with augmentation: init, batch order and crops must all be shared. A level far
    # below every batch loss changes nothing but the recorded level: |J - b| + b has the
    # gradient of J, so the trajectories agree bit for bit only if the randomness is paired.
    base = RunConfig(
        dataset="digits",
        train_size=300,
        test_size=100,
        mlp_depth=1,
        mlp_width=32,
        epochs=2,
        batch_size=50,
        augment=True,
    )
    levels = {"zero": 0.0, "tiny": 1e-6, "high": 3.0}
    for name, level in levels.items():
        train(tmp_path / name, dataclasses.replace(base, flood_level=level))
    zero, tiny, high = (reproducible(metrics(tmp_path / n)) for n in levels)
    trajectory = [c for c in EPOCH_COLUMNS if c not in ("flooded_frac", "epoch_seconds")]
    pd.testing.assert_frame_equal(zero[trajectory], tiny[trajectory])
    pd.testing.assert_frame_equal(zero.iloc[:1][trajectory], high.iloc[:1][trajectory])
    assert not zero["train_loss"].equals(high["train_loss"])


def test_iflood_trains_differently_from_flood(tmp_path):
    for method in ("flood", "iflood"):
        train(tmp_path / method, dataclasses.replace(TINY, flood_method=method, flood_level=0.6))
    flood, iflood = metrics(tmp_path / "flood"), metrics(tmp_path / "iflood")
    assert not flood["train_loss"].equals(iflood["train_loss"])
    # flood counts mini-batches (4 per epoch), iflood counts samples (160 per epoch).
    quarters = {0.0, 0.25, 0.5, 0.75, 1.0}
    assert set(flood["flooded_frac"].dropna()) <= quarters
    assert not set(iflood["flooded_frac"].dropna()) <= quarters


def test_a_diverging_run_keeps_its_epochs_and_exits_zero(tmp_path):
    # Gradient ascent (b far above the loss) without batch norm blows up in epoch 2.
    cfg = dataclasses.replace(TINY, mlp_batchnorm=False, lr=0.5, flood_level=1e30, epochs=30)
    assert train(tmp_path, cfg) == 0
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "diverged" and "epoch 2" in record["error"]
    assert record["epochs_completed"] == 1
    frame = metrics(tmp_path)
    assert list(frame["epoch"]) == [0, 1]
    assert frame[["train_loss", "val_loss", "test_loss"]].map(math.isfinite).all().all()


def _fail_in_epoch(monkeypatch, epoch: int, batches_per_epoch: int) -> None:
    real = flooding.train.flooded_loss
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > (epoch - 1) * batches_per_epoch:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(flooding.train, "flooded_loss", failing)


def test_record_failure_writes_failed_status_and_exits_zero(tmp_path, monkeypatch):
    _fail_in_epoch(monkeypatch, epoch=3, batches_per_epoch=4)
    assert train(tmp_path, record_failure=True, checkpoint_every=1) == 0
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed"
    assert record["error"] == "RuntimeError: simulated crash"
    assert record["epochs_completed"] == 2
    assert list(metrics(tmp_path)["epoch"]) == [0, 1, 2]
    assert (tmp_path / CHECKPOINT_FILE).exists()  # a rerun resumes instead of restarting


def test_a_failure_before_training_is_recorded_too(tmp_path, monkeypatch):
    import flooding.data

    def broken(*args):
        raise OSError("corrupt file")

    monkeypatch.setattr(flooding.data, "load_data", broken)
    assert train(tmp_path, record_failure=True) == 0
    record = json.loads((tmp_path / "run.json").read_text())
    assert (record["status"], record["error"]) == ("failed", "OSError: corrupt file")
    assert record["epochs_completed"] == 0 and metrics(tmp_path).empty


def test_without_record_failure_the_error_propagates(tmp_path, monkeypatch):
    _fail_in_epoch(monkeypatch, epoch=2, batches_per_epoch=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tmp_path)
    assert not (tmp_path / "run.json").exists()


def test_signal_checkpoints_mid_epoch_and_the_rerun_matches(tmp_path, monkeypatch):
    cfg = dataclasses.replace(TINY, epochs=3, augment=False, flood_level=0.5)
    train(tmp_path / "whole", cfg)
    # SIGUSR2 during the 6th mini-batch (epoch 2 of 4 batches each): the run stops at the
    # batch boundary, checkpoints and exits with EXIT_CHECKPOINTED.
    real, calls = flooding.train.flooded_loss, []

    def signalling(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGUSR2)
        return real(*args, **kwargs)

    monkeypatch.setattr(flooding.train, "flooded_loss", signalling)
    out = tmp_path / "split"
    assert train(out, cfg, checkpoint_every=0) == EXIT_CHECKPOINTED
    assert len(calls) == 6 and not (out / "run.json").exists()
    ckpt = torch.load(out / CHECKPOINT_FILE, weights_only=True)
    assert (ckpt["epochs_done"], ckpt["batches_done"]) == (1, 2)
    assert list(metrics(out)["epoch"]) == [0, 1]
    monkeypatch.setattr(flooding.train, "flooded_loss", real)
    assert train(out, cfg, checkpoint_every=0) == 0
    pd.testing.assert_frame_equal(
        reproducible(metrics(out)), reproducible(metrics(tmp_path / "whole"))
    )
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # handlers restored


def test_checkpoints_every_n_epochs(tmp_path, monkeypatch):
    _fail_in_epoch(monkeypatch, epoch=4, batches_per_epoch=4)
    with pytest.raises(RuntimeError):
        train(tmp_path, dataclasses.replace(TINY, epochs=5), checkpoint_every=2)
    ckpt = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert (ckpt["epochs_done"], ckpt["batches_done"]) == (2, 0)
    assert list(metrics(tmp_path)["epoch"]) == [0, 1, 2]


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path, monkeypatch, capsys):
    # The settings of a run changed while its folder stayed (as when a workflow's epochs
    # change): the stale checkpoint must not be resumed, and the new run starts afresh.
    _fail_in_epoch(monkeypatch, epoch=2, batches_per_epoch=4)
    with pytest.raises(RuntimeError):
        train(tmp_path, checkpoint_every=1)
    monkeypatch.undo()
    other = dataclasses.replace(TINY, seed=1)
    train(tmp_path, other)
    assert "starting afresh" in capsys.readouterr().err
    fresh = tmp_path / "fresh"
    train(fresh, other)
    pd.testing.assert_frame_equal(reproducible(metrics(tmp_path)), reproducible(metrics(fresh)))


def test_impossible_configs_fail_before_any_output(tmp_path):
    with pytest.raises(ConfigError, match=r"flood_level: invalid value -1\.0"):
        train(tmp_path, dataclasses.replace(TINY, flood_level=-1.0))
    assert not tmp_path.joinpath("metrics.parquet").exists()


def test_a_batch_larger_than_the_training_split_is_full_batch_training(tmp_path):
    # The authors' sinusoid demo: 100 training points, batch size 200.
    demo = RunConfig(dataset="sinusoid", train_size=125, val_fraction=0.2, batch_size=200, epochs=2)
    validate(demo)
    assert train(tmp_path / "demo", demo) == 0
    record = json.loads((tmp_path / "demo" / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["config"]["batch_size"] == 200
    assert record["effective_batch_size"] == 100
    # Exactly the same training as asking for the whole split.
    whole = dataclasses.replace(demo, batch_size=100)
    assert train(tmp_path / "whole", whole) == 0
    assert json.loads((tmp_path / "whole" / "run.json").read_text())["effective_batch_size"] == 100
    # The metrics table repeats the config (and its hash): batch_size as asked for.
    pd.testing.assert_frame_equal(
        reproducible(metrics(tmp_path / "demo")).drop(columns=["batch_size", "config_hash"]),
        reproducible(metrics(tmp_path / "whole")).drop(columns=["batch_size", "config_hash"]),
    )


def test_validate_data_rejects_what_only_the_loaded_data_shows():
    def bundle(n_train: int, n_val: int, n_test: int, augmentation: str = "none"):
        return SimpleNamespace(
            y_train=range(n_train),
            y_val=range(n_val),
            y_test=range(n_test),
            augmentation=augmentation,
            name="fake",
        )

    cfg = dataclasses.replace(TINY, batch_size=10)
    validate_data(cfg, bundle(10, 1, 1))
    # Split sizes are checked as the data loads (flooding.validation); a batch larger than
    # the training split is full-batch training; augmentation is checked against the data.
    validate_data(cfg, bundle(9, 1, 1))
    with pytest.raises(ConfigError, match="augment: invalid value True"):
        validate_data(dataclasses.replace(cfg, augment=True), bundle(10, 1, 1))


def test_learning_rate_schedules():
    cfg = dataclasses.replace(TINY, lr=1.0, epochs=8)
    assert [learning_rate(cfg, e) for e in (1, 8)] == [1.0, 1.0]
    step = dataclasses.replace(cfg, lr_schedule="step")
    assert [learning_rate(step, e) for e in range(1, 9)] == pytest.approx(
        [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    cosine = dataclasses.replace(cfg, lr_schedule="cosine")
    assert learning_rate(cosine, 1) == 1.0
    assert learning_rate(cosine, 5) == pytest.approx(0.5)
    assert 0 < learning_rate(cosine, 8) < 0.05


def test_batches_cover_the_data_but_never_end_with_a_single_sample():
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(9, 4) == [(0, 4), (4, 8)]
    assert batch_bounds(8, 8) == [(0, 8)]
    assert batch_bounds(3, 1) == [(0, 1), (1, 2), (2, 3)]


def test_device_names_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device: invalid value 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")
        assert resolve_device("auto") == torch.device("cpu")


def test_a_completed_run_records_its_sharpness_deterministically(tmp_path):
    first, again, off = tmp_path / "a", tmp_path / "b", tmp_path / "off"
    for out in (first, again):
        train(out, TINY)
    train(off, dataclasses.replace(TINY, sharpness_directions=0))
    records = [json.loads((out / "run.json").read_text()) for out in (first, again, off)]
    assert math.isfinite(records[0]["sharpness"]) and records[0]["sharpness_seconds"] >= 0
    assert records[0]["sharpness"] == records[1]["sharpness"]  # a seeded stream of its own
    assert records[2]["sharpness"] is None and records[2]["sharpness_seconds"] is None


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_run_json_records_the_process_peak_memory(tmp_path):
    """What `mem_auto` learns from: the training process's resident high-water mark in MB,
    the kernel's own VmHWM (KiB) read back the other way."""
    train(tmp_path, TINY)
    peak = json.loads((tmp_path / "run.json").read_text())["peak_rss_mb"]
    status = Path("/proc/self/status").read_text().split("\n")
    high_water_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    assert 50 < peak <= high_water_kib / 1024  # torch alone takes more than 50 MB
