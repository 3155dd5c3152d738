"""Interrupted runs, as separate processes: SIGTERM, SIGKILL, restart, atomic outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from flooding.atomic import atomic_write
from flooding.checkpoint import CHECKPOINT_FILE, EXIT_CHECKPOINTED
from flooding.config import RunConfig
from flooding.runtime import Runtime
from flooding.train import run

# About 40 ms an epoch on one thread, 40 epochs: long enough to be interrupted part-way
# three times (each start trains about three epochs before it is killed).
CFG = RunConfig(
    dataset="spiral",
    train_size=2000,
    test_size=500,
    mlp_depth=2,
    mlp_width=64,
    epochs=40,
    batch_size=50,
    flood_level=0.2,
    label_noise=0.1,
)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def command(out: Path) -> list[str]:
    options = []
    for name, value in CFG.to_dict().items():
        option = name.replace("_", "-")
        if isinstance(value, bool):
            options.append(f"--{option}" if value else f"--no-{option}")
        else:
            options.append(f"--{option}={value}")
    return [
        sys.executable, "-m", "flooding", "train", *options,
        "--out", str(out), "--threads", "1", "--device", "cpu", "--checkpoint-every", "1",
    ]  # fmt: skip


def start_and_interrupt(out: Path, sig: int) -> int:
    """Start a run, send `sig` once it has checkpointed, return its exit code."""
    process = subprocess.Popen(command(out), env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / CHECKPOINT_FILE).exists():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    process.send_signal(sig)
    code = process.wait(timeout=120)
    assert not (out / "run.json").exists(), "the run finished before the signal"
    return code


def kill_during_training(out: Path, fraction: float, epochs_seen: int) -> int:
    """Start `flooding train` (resuming from out/ when it holds a checkpoint), let it print
    `epochs_seen` epoch lines, so that it is training and not starting up, then SIGKILL it
    `fraction` of an epoch's time later, that is at some batch of the next epoch. Returns
    the last epoch it printed."""
    process = subprocess.Popen(
        command(out), env=ENV, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert process.stderr is not None
    epochs: list[int] = []
    printed: list[float] = []
    for line in process.stderr:
        if line.startswith("epoch "):
            epochs.append(int(line.split()[1].split("/")[0]))
            printed.append(time.monotonic())
            if len(epochs) == epochs_seen:
                break
    assert len(epochs) == epochs_seen, "the run ended before it was killed"
    epoch_s = printed[-1] - printed[-2]
    time.sleep(fraction * epoch_s)
    process.kill()
    process.stderr.close()
    assert process.wait(timeout=120) == -signal.SIGKILL
    return epochs[-1]


def reproducible(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "metrics.parquet").drop(columns="epoch_seconds")


def test_sigterm_checkpoints_and_a_restart_gives_the_uninterrupted_metrics(tmp_path):
    run(CFG, Runtime(out=tmp_path / "whole", device="cpu", threads=1, checkpoint_every=0))
    out = tmp_path / "interrupted"

    assert start_and_interrupt(out, signal.SIGTERM) == EXIT_CHECKPOINTED
    after_term = pd.read_parquet(out / "metrics.parquet")
    assert 1 <= after_term["epoch"].max() < CFG.epochs

    # Restarting resumes; in process here, to spare another start-up of torch.
    assert run(CFG, Runtime(out=out, device="cpu", threads=1, checkpoint_every=1)) == 0
    pd.testing.assert_frame_equal(reproducible(out), reproducible(tmp_path / "whole"))
    assert not list(out.glob(".*.tmp")) and not (out / CHECKPOINT_FILE).exists()


def test_three_kills_during_training_then_a_restart_give_the_uninterrupted_metrics(tmp_path):
    # Early, middle and late in an epoch, the same in every run of the test (the batch
    # they fall on still depends on the machine's speed, and any batch must do).
    fractions = (0.2, 0.5, 0.8)
    run(CFG, Runtime(out=tmp_path / "whole", device="cpu", threads=1, checkpoint_every=0))
    out = tmp_path / "killed"
    saved = []
    for fraction in fractions:
        # Three epoch lines of this process: it has resumed and trains when it is killed.
        printed = kill_during_training(out, fraction, epochs_seen=3)
        assert not (out / "run.json").exists(), "the run finished before the kill"
        # Whatever the kill interrupted, the output on disk is complete and readable, and
        # holds at least the epochs printed before the last one.
        saved.append(int(pd.read_parquet(out / "metrics.parquet")["epoch"].max()))
        assert saved[-1] >= printed - 1
    # Each start resumed where the last one was killed and trained on: three points.
    assert saved == sorted(set(saved)), saved

    assert run(CFG, Runtime(out=out, device="cpu", threads=1, checkpoint_every=1)) == 0
    pd.testing.assert_frame_equal(reproducible(out), reproducible(tmp_path / "whole"))
    assert not (out / CHECKPOINT_FILE).exists()


def test_a_write_killed_half_way_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "metrics.parquet"
    pd.DataFrame({"epoch": [0, 1]}).to_parquet(target)
    code = (
        "import os, sys; from pathlib import Path; from flooding.atomic import atomic_write\n"
        "def write(tmp):\n"
        "    tmp.write_bytes(b'PAR1 half of a parquet file')\n"
        "    os.kill(os.getpid(), 9)\n"
        "atomic_write(Path(sys.argv[1]), write)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(target)], env=ENV)
    assert result.returncode == -signal.SIGKILL
    assert list(pd.read_parquet(target)["epoch"]) == [0, 1]
    assert len(list(tmp_path.glob(".metrics.parquet.*.tmp"))) == 1  # cleaned at next start


def test_a_failed_write_removes_its_temporary_file(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")

    def failing(tmp: Path) -> None:
        tmp.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
