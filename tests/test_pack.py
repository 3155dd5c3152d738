"""Packs: several runs in one process, each with the outputs and resumption of a solo run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import test_train
import torch

import flooding.train
from flooding.checkpoint import CHECKPOINT_FILE, EXIT_CHECKPOINTED, PREVIOUS_CHECKPOINT_FILE
from flooding.config import ConfigError, RunConfig
from flooding.pack import Member, read_spec, run_pack, stacks, write_spec
from flooding.runtime import Runtime
from flooding.state import TrainState
from flooding.train import run

# test_train's tiny spiral, shorter and with noisy labels.
TINY = dataclasses.replace(test_train.TINY, epochs=3, label_noise=0.1)
# Three flood levels share their data; another seed loads its own.
CONFIGS = [dataclasses.replace(TINY, flood_level=b) for b in (0.0, 0.2, 0.5)]
CONFIGS.append(dataclasses.replace(TINY, seed=1, flood_level=0.2))
RUNTIME = Runtime(out=Path("."), device="cpu", threads=1)


def members(root: Path, cfgs: list[RunConfig] = CONFIGS) -> list[Member]:
    return [Member(root / f"run{i}", cfg) for i, cfg in enumerate(cfgs)]


def reproducible(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "metrics.parquet").drop(columns="epoch_seconds")


def record(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def solo(root: Path, cfgs: list[RunConfig] = CONFIGS) -> list[Path]:
    outs = [root / f"solo{i}" for i in range(len(cfgs))]
    for out, cfg in zip(outs, cfgs, strict=True):
        assert run(cfg, dataclasses.replace(RUNTIME, out=out)) == 0
    return outs


def test_a_sequential_pack_is_bit_identical_to_solo_runs(tmp_path):
    pack = members(tmp_path / "pack")
    assert run_pack(pack, RUNTIME) == 0
    for member, alone in zip(pack, solo(tmp_path), strict=True):
        pd.testing.assert_frame_equal(reproducible(member.out), reproducible(alone))
        assert record(member.out)["status"] == "completed"
        log = (member.out / "train.log").read_text()
        assert log.count("epoch ") == TINY.epochs + 1  # its own progress, nobody else's


def test_finished_members_are_skipped_and_changed_ones_retrained(tmp_path):
    pack = members(tmp_path)
    assert run_pack(pack, RUNTIME) == 0
    stamps = [(m.out / "run.json").stat().st_mtime_ns for m in pack]
    longer = dataclasses.replace(pack[1], config=dataclasses.replace(CONFIGS[1], epochs=4))
    added = Member(tmp_path / "added", dataclasses.replace(TINY, flood_level=0.1))
    assert run_pack([pack[0], longer, pack[2], pack[3], added], RUNTIME) == 0
    after = [(m.out / "run.json").stat().st_mtime_ns for m in pack]
    assert [a == b for a, b in zip(stamps, after, strict=True)] == [True, False, True, True]
    assert record(longer.out)["epochs_completed"] == 4
    assert record(added.out)["status"] == "completed"


def test_a_diverging_member_does_not_stop_the_others(tmp_path):
    # Gradient ascent (b far above the loss) without batch norm blows up in epoch 2.
    wild = dataclasses.replace(TINY, mlp_batchnorm=False, lr=0.5, flood_level=1e30, epochs=30)
    pack = members(tmp_path, [CONFIGS[0], wild, CONFIGS[2]])
    assert run_pack(pack, RUNTIME) == 0
    assert [record(m.out)["status"] for m in pack] == ["completed", "diverged", "completed"]


def test_a_member_that_raises_does_not_stop_the_others(tmp_path, monkeypatch):
    real = flooding.train.flooded_loss

    def failing_at_level_0_2(logits, labels, cfg, *aux):
        if cfg.flood_level == 0.2:  # the second member
            raise RuntimeError("simulated crash")
        return real(logits, labels, cfg, *aux)

    monkeypatch.setattr(flooding.train, "flooded_loss", failing_at_level_0_2)
    pack = members(tmp_path, CONFIGS[:3])
    assert run_pack(pack, RUNTIME) == 1  # without record_failure: reported at the end
    assert [(m.out / "run.json").exists() for m in pack] == [True, False, True]
    assert "simulated crash" in (pack[1].out / "train.log").read_text()
    assert run_pack(pack, dataclasses.replace(RUNTIME, record_failure=True)) == 0
    assert record(pack[1].out)["status"] == "failed"


def test_the_spec_round_trips_and_a_bad_one_is_a_config_error(tmp_path):
    spec = tmp_path / "pack.json"
    write_spec(spec, members(tmp_path))
    assert read_spec(spec) == members(tmp_path)
    spec.write_text(json.dumps({"runs": [{"out": "a", "config": {"epochs": 0}}]}))
    with pytest.raises(ConfigError, match="epochs"):
        read_spec(spec)
    write_spec(spec, [Member(tmp_path / "a", TINY), Member(tmp_path / "a", CONFIGS[1])])
    with pytest.raises(ConfigError, match="distinct out folders"):
        read_spec(spec)


def start_pack(spec: Path, *options: str) -> subprocess.Popen:
    """`flooding train-pack` in its own process, checkpointing every epoch."""
    command = [sys.executable, "-m", "flooding", "train-pack", "--spec", str(spec), *options]
    command += ["--threads", "1", "--device", "cpu", "--checkpoint-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def wait_for_line(log: Path, text: str, process: subprocess.Popen) -> None:
    """Until `text` is in the log, with the pack still running (a loaded machine only
    makes this wait longer)."""
    deadline = time.monotonic() + 300
    while not (log.exists() and text in log.read_text()):
        assert process.poll() is None, f"the pack ended before {log} showed {text!r}"
        assert time.monotonic() < deadline, f"{log} did not show {text!r} in 300 s"
        time.sleep(0.01)


def test_a_pack_killed_half_way_resumes_its_unfinished_members(tmp_path):
    long = [dataclasses.replace(c, train_size=2000, batch_size=50, epochs=12) for c in CONFIGS]
    spec = tmp_path / "pack.json"
    pack = members(tmp_path / "pack", long)
    write_spec(spec, pack)
    process = start_pack(spec, "--no-vectorise")
    # SIGKILL once the second member has printed an epoch: the first is finished, the
    # second part-way, the others not started.
    wait_for_line(pack[1].out / "train.log", "epoch 1/", process)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert (pack[0].out / "run.json").exists() and not (pack[1].out / "run.json").exists()
    first = (pack[0].out / "run.json").stat().st_mtime_ns
    # Rerun in process (sparing a start-up): the finished member stays as it was.
    assert run_pack(read_spec(spec), dataclasses.replace(RUNTIME, checkpoint_every=1)) == 0
    assert (pack[0].out / "run.json").stat().st_mtime_ns == first
    for member, alone in zip(pack, solo(tmp_path, long), strict=True):
        pd.testing.assert_frame_equal(reproducible(member.out), reproducible(alone))


# Members that differ only in flood level or method, and one that does not (another seed).
STACKABLE = [*CONFIGS, dataclasses.replace(TINY, flood_method="iflood", flood_level=0.3)]


def test_a_vectorised_pack_matches_solo_runs_at_epoch_one(tmp_path, capsys):
    pack = members(tmp_path / "pack", STACKABLE)
    assert run_pack(pack, RUNTIME, vectorise=True) == 0
    assert "pack: 4 runs trained as one stacked model" in capsys.readouterr().out
    for member, alone in zip(pack, solo(tmp_path, STACKABLE), strict=True):
        vectorised, reference = reproducible(member.out), reproducible(alone)
        # Epochs 0 and 1 to float tolerance; later ones may drift by reassociation.
        pd.testing.assert_frame_equal(vectorised[:2], reference[:2], rtol=1e-5, atol=1e-7)
        assert len(vectorised) == len(reference)
        assert record(member.out)["status"] == "completed"
        assert (member.out / "train.log").read_text().count("epoch ") == TINY.epochs + 1


def test_members_stack_only_with_their_own_kind(tmp_path):
    pack = members(tmp_path, STACKABLE)
    assert [len(group) for group in stacks(pack, vectorise=True)] == [4, 1]
    assert [len(group) for group in stacks(pack, vectorise=False)] == [1] * 5


def test_a_diverging_member_of_a_stack_does_not_stop_the_others(tmp_path):
    # Gradient ascent (b far above the loss) without batch norm blows up in epoch 2; the
    # members differ only in b, so they train as one stack.
    base = dataclasses.replace(TINY, mlp_batchnorm=False, lr=0.5, epochs=30)
    pack = members(tmp_path, [dataclasses.replace(base, flood_level=b) for b in (0, 1e30, 0.2)])
    assert run_pack(pack, RUNTIME, vectorise=True) == 0
    records = [record(m.out) for m in pack]
    assert [r["status"] for r in records] == ["completed", "diverged", "completed"]
    assert [r["epochs_completed"] for r in records] == [30, 1, 30]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_vectorised_pack_stopped_half_way_resumes(tmp_path, stop_signal):
    long = [dataclasses.replace(c, train_size=2000, batch_size=50, epochs=12) for c in STACKABLE]
    stacked = long[:3] + long[4:]  # the seed-0 members: one stack
    spec = tmp_path / "pack.json"
    pack = members(tmp_path / "pack", stacked)
    write_spec(spec, pack)
    process = start_pack(spec, "--vectorise")
    # Stop it once the stack has printed two epochs: every member is part-way.
    wait_for_line(pack[0].out / "train.log", "epoch 2/", process)
    process.send_signal(stop_signal)
    expected = EXIT_CHECKPOINTED if stop_signal == signal.SIGTERM else -signal.SIGKILL
    assert process.wait(timeout=120) == expected
    assert not any((m.out / "run.json").exists() for m in pack)
    assert run_pack(read_spec(spec), RUNTIME, vectorise=True) == 0
    uninterrupted = members(tmp_path / "whole", stacked)
    assert run_pack(uninterrupted, RUNTIME, vectorise=True) == 0
    for member, whole in zip(pack, uninterrupted, strict=True):
        assert record(member.out)["status"] == "completed"
        # SIGTERM: every member checkpointed at the same batch. SIGKILL: at the same epoch,
        # or between their saves, and then rewound to one point (the next test makes sure
        # of that case). Either way one stack again, bit for bit.
        pd.testing.assert_frame_equal(reproducible(member.out), reproducible(whole.out))
        assert not (member.out / PREVIOUS_CHECKPOINT_FILE).exists()


class Killed(BaseException):
    """A SIGKILL, in process: nothing of the pack runs after it."""


# Four members of four epochs, checkpointed every epoch: kills can fall between saves.
KILLABLE = [dataclasses.replace(c, epochs=4) for c in STACKABLE[:3] + STACKABLE[4:]]
EVERY_EPOCH = dataclasses.replace(RUNTIME, checkpoint_every=1)


def run_killed_after(saves: int, pack: list[Member], monkeypatch) -> None:
    """Train the pack as a stack and kill it right after its `saves`-th checkpoint save."""
    saved, save = [], TrainState.save

    def save_then_die(state, setup, keep_previous=False):
        save(state, setup, keep_previous)
        saved.append(setup.runtime.out)
        if len(saved) == saves:
            raise Killed

    monkeypatch.setattr(TrainState, "save", save_then_die)
    with pytest.raises(Killed):
        run_pack(pack, EVERY_EPOCH, vectorise=True)
    monkeypatch.undo()


def assert_resumes_as_one_uninterrupted_stack(pack: list[Member], root: Path, capsys) -> None:
    capsys.readouterr()
    assert run_pack(pack, EVERY_EPOCH, vectorise=True) == 0
    assert f"pack: {len(pack)} runs trained as one stacked model" in capsys.readouterr().out
    uninterrupted = members(root, [m.config for m in pack])
    assert run_pack(uninterrupted, EVERY_EPOCH, vectorise=True) == 0
    for member, whole in zip(pack, uninterrupted, strict=True):
        pd.testing.assert_frame_equal(reproducible(member.out), reproducible(whole.out))


@pytest.mark.parametrize("saves_before_kill", [1, 5], ids=["in-first-save", "in-second-save"])
def test_a_stack_killed_between_its_members_saves_resumes_as_one(
    tmp_path, monkeypatch, capsys, saves_before_kill
):
    pack = members(tmp_path / "pack", KILLABLE)
    run_killed_after(saves_before_kill, pack, monkeypatch)
    # The kill fell after the first member's save of an epoch: it stands ahead of the rest.
    done = saves_before_kill // len(KILLABLE) + 1
    behind = [done - 1 if done > 1 else None] * (len(KILLABLE) - 1)
    assert [epochs_saved(m.out) for m in pack] == [done, *behind]
    assert_resumes_as_one_uninterrupted_stack(pack, tmp_path / "whole", capsys)


@pytest.mark.parametrize("saves_before_kill", [1, 5], ids=["in-first-save", "in-second-save"])
def test_a_stack_killed_again_right_after_a_rewind_resumes_as_one(
    tmp_path, monkeypatch, capsys, saves_before_kill
):
    # The rerun rewinds the first member and is killed after that member's next save: its
    # previous checkpoint must then be the point it was rewound to, as the others' are.
    pack = members(tmp_path / "pack", KILLABLE)
    run_killed_after(saves_before_kill, pack, monkeypatch)
    run_killed_after(1, pack, monkeypatch)
    assert_resumes_as_one_uninterrupted_stack(pack, tmp_path / "whole", capsys)


def epochs_saved(out: Path) -> int | None:
    """The epochs done in the run's checkpoint; None without one."""
    if not (out / CHECKPOINT_FILE).exists():
        return None
    return torch.load(out / CHECKPOINT_FILE, weights_only=True)["epochs_done"]


class FieldsRead:
    """A RunConfig that records which of its fields are read."""

    def __init__(self, cfg: RunConfig) -> None:
        self._cfg, self.read = cfg, set()

    def __getattr__(self, name: str) -> object:
        self.read.add(name)
        return getattr(self._cfg, name)


@pytest.mark.parametrize("dataset", ["gaussians", "spiral", "sinusoid", "digits", "mnist1d"])
def test_members_share_data_only_where_loading_reads_the_same_fields(dataset):
    """A pack lets members equal in the fields declared `data` share one loaded copy
    (flooding.pack.data_key): loading must read no other field, or a new setting that
    changes the data would be shared across members that differ in it."""
    from flooding.config import data_fields
    from flooding.data import load_data

    cfg = FieldsRead(RunConfig(dataset=dataset, train_size=100, test_size=50, label_noise=0.1))
    load_data(cfg, Path("unused"), torch.device("cpu"))
    assert cfg.read, "the recorder saw no field"
    assert cfg.read <= set(data_fields()), sorted(cfg.read - set(data_fields()))
