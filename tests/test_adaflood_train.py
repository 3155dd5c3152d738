"""AdaFlood's auxiliary models and runs, trained: fold isolation, the losses in the main
run's order with its noisy labels, resumption after SIGTERM, stacking in a pack, and bad
input at the command line."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import flooding.auxiliary
import flooding.train
from flooding.adaflood import LOSSES_FILE, fold_assignment, gather, write_losses
from flooding.auxiliary import train_fold
from flooding.checkpoint import CHECKPOINT_FILE, EXIT_CHECKPOINTED, SignalFlag
from flooding.config import RunConfig
from flooding.data import load_data
from flooding.jobs import train_arguments
from flooding.pack import Member, run_pack
from flooding.runtime import Runtime
from flooding.train import run

# Noisy two Gaussians, small enough for seconds: 240 training samples, 3 folds.
CFG = RunConfig(
    dataset="gaussians",
    train_size=300,
    test_size=200,
    label_noise=0.2,
    mlp_depth=1,
    mlp_width=16,
    epochs=3,
    batch_size=40,
    lr=0.05,
    flood_method="adaflood",
    adaflood_gamma=0.3,
    adaflood_folds=3,
    seed=2,
)
RUNTIME = Runtime(out=Path("."), device="cpu", threads=1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def load(cfg: RunConfig):
    return load_data(cfg, "data", torch.device("cpu"))


def auxiliary_losses(root: Path, cfg: RunConfig, monkeypatch=None) -> tuple[Path, dict]:
    """Train every fold of cfg's auxiliary models into root/fold<k>, gather their losses;
    the gathered file and, per fold, the training-split indices its model trained on."""
    trained_on: dict[int, torch.Tensor] = {}
    if monkeypatch is not None:
        restrict = flooding.auxiliary.restrict

        def spy(data, index):
            trained_on[len(trained_on)] = index.clone()
            return restrict(data, index)

        monkeypatch.setattr(flooding.auxiliary, "restrict", spy)
    files = []
    for k in range(cfg.adaflood_folds):
        out = root / f"fold{k}"
        with SignalFlag() as stop:
            assert train_fold(cfg, k, dataclasses.replace(RUNTIME, out=out), load, stop) == 0
        assert (out / "run.json").is_file() and (out / "metrics.parquet").is_file()
        files.append(out / LOSSES_FILE)
    gathered = root / LOSSES_FILE
    write_losses(gathered, gather(files))
    return gathered, trained_on


def test_each_loss_comes_from_a_model_that_never_trained_on_its_sample(tmp_path, monkeypatch):
    gathered, trained_on = auxiliary_losses(tmp_path, CFG, monkeypatch)
    losses = pd.read_parquet(gathered)
    n_train = len(load(CFG).y_train)
    assigned = fold_assignment(n_train, CFG.adaflood_folds, CFG.seed)
    assert losses["fold"].tolist() == assigned.tolist()
    for k in range(CFG.adaflood_folds):
        held = set(losses.loc[losses["fold"] == k, "index"])
        assert held and not held & set(trained_on[k].tolist())
        assert held | set(trained_on[k].tolist()) == set(range(n_train))
        # The fold's model is a run of its own, on the other folds only.
        metrics = pd.read_parquet(tmp_path / f"fold{k}" / "metrics.parquet")
        assert len(metrics) == CFG.epochs + 1


def test_losses_follow_the_main_runs_training_split_and_its_noisy_labels(tmp_path):
    gathered, _ = auxiliary_losses(tmp_path, CFG)
    losses = pd.read_parquet(gathered)
    data = load(CFG)  # what the adaflood run itself trains on
    assert losses["index"].tolist() == list(range(len(data.y_train)))
    assert losses["label"].tolist() == data.y_train.tolist()
    assert losses["clean_label"].tolist() == data.y_train_clean.tolist()
    assert (losses["label"] != losses["clean_label"]).sum() > 0  # noisy labels included
    assert run(CFG, dataclasses.replace(RUNTIME, out=tmp_path / "run", aux_losses=gathered)) == 0


def test_a_shorter_auxiliary_schedule_trains_its_own_epochs(tmp_path):
    cfg = dataclasses.replace(CFG, adaflood_aux_epochs=1, adaflood_folds=2)
    auxiliary_losses(tmp_path, cfg)
    assert pd.read_parquet(tmp_path / "fold0" / "metrics.parquet")["epoch"].max() == 1


def command(cfg: RunConfig, out: Path, *more: str) -> list[str]:
    return [
        sys.executable, "-m", "flooding", "train", *train_arguments(cfg), *more,
        "--out", str(out), "--threads", "1", "--device", "cpu",
    ]  # fmt: skip


def reproducible(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "metrics.parquet").drop(columns="epoch_seconds")


def test_an_adaflood_run_resumes_bit_for_bit_after_sigterm(tmp_path):
    cfg = dataclasses.replace(CFG, train_size=2000, epochs=30, adaflood_aux_epochs=1)
    gathered, _ = auxiliary_losses(tmp_path / "aux", cfg)
    whole = dataclasses.replace(RUNTIME, out=tmp_path / "whole", aux_losses=gathered)
    assert run(cfg, dataclasses.replace(whole, checkpoint_every=0)) == 0
    out = tmp_path / "interrupted"
    process = subprocess.Popen(
        command(cfg, out, "--aux-losses", str(gathered), "--checkpoint-every", "1"),
        env=ENV,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (out / CHECKPOINT_FILE).exists():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == EXIT_CHECKPOINTED
    assert not (out / "run.json").exists(), "the run finished before the signal"
    resumed = dataclasses.replace(RUNTIME, out=out, aux_losses=gathered, checkpoint_every=1)
    assert run(cfg, resumed) == 0
    pd.testing.assert_frame_equal(reproducible(out), reproducible(tmp_path / "whole"))


def test_a_vectorised_pack_of_flood_iflood_and_adaflood_matches_solo_runs(tmp_path, capsys):
    gathered, _ = auxiliary_losses(tmp_path / "aux", CFG)
    configs = [
        dataclasses.replace(CFG, flood_method="flood", adaflood_gamma=0.5, flood_level=0.0),
        dataclasses.replace(CFG, flood_method="flood", adaflood_gamma=0.5, flood_level=0.3),
        dataclasses.replace(CFG, flood_method="iflood", adaflood_gamma=0.5, flood_level=0.3),
        CFG,
        dataclasses.replace(CFG, adaflood_gamma=0.7),
    ]
    aux = [None, None, None, gathered, gathered]
    pack = [
        Member(tmp_path / f"pack{i}", cfg, a)
        for i, (cfg, a) in enumerate(zip(configs, aux, strict=True))
    ]
    assert run_pack(pack, RUNTIME, vectorise=True) == 0
    assert "pack: 5 runs trained as one stacked model" in capsys.readouterr().out
    for i, (cfg, a) in enumerate(zip(configs, aux, strict=True)):
        solo = dataclasses.replace(RUNTIME, out=tmp_path / f"solo{i}", aux_losses=a)
        assert run(cfg, solo) == 0
        stacked, alone = reproducible(pack[i].out), reproducible(solo.out)
        pd.testing.assert_frame_equal(stacked[:2], alone[:2], rtol=1e-5, atol=1e-7)
    # The two gammas train differently: the levels reach the loss of each member.
    assert not reproducible(pack[3].out).equals(reproducible(pack[4].out))


@pytest.mark.parametrize(
    ("more", "key"),
    [
        (["--flood-method", "adaflood"], "aux_losses"),
        (["--flood-method", "adaflood", "--adaflood-gamma", "1"], "adaflood_gamma"),
        (["--flood-method", "adaflood", "--adaflood-folds", "1"], "adaflood_folds"),
        (["--flood-method", "adaflood", "--adaflood-folds", "200"], "adaflood_folds"),
    ],
)
def test_bad_input_fails_at_the_command_line_naming_the_key(tmp_path, more, key):
    base = dataclasses.replace(CFG, flood_method="flood", adaflood_folds=2)
    args = command(base, tmp_path / "run", *more)
    result = subprocess.run(args, env=ENV, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert f"flooding train: error: {key}" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_aux_names_an_impossible_fold(tmp_path):
    args = [sys.executable, "-m", "flooding", "train-aux", *train_arguments(CFG), "--fold", "3"]
    result = subprocess.run(
        [*args, "--out", str(tmp_path / "aux")], env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert "flooding train-aux: error: fold: invalid value 3" in result.stderr


def test_one_process_trains_every_fold_gathers_them_and_resumes_between_folds(tmp_path):
    """Without --fold, `flooding train-aux` trains each fold into out/fold<k> and gathers
    their losses into out/losses.parquet, as the folds trained one by one would; a rerun
    trains only the folds not finished, and a finished set trains nothing."""
    command = [sys.executable, "-m", "flooding", "train-aux", *train_arguments(CFG)]
    out = tmp_path / "aux"
    done = subprocess.run([*command, "--out", str(out)], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    one_by_one, _ = auxiliary_losses(tmp_path / "one-by-one", CFG)
    assert pd.read_parquet(out / LOSSES_FILE).equals(pd.read_parquet(one_by_one))
    for k in range(CFG.adaflood_folds):
        assert (out / f"fold{k}" / LOSSES_FILE).is_file()

    # As after a kill between folds: fold 1's model is gone, the others stay finished.
    for name in ("run.json", "metrics.parquet", LOSSES_FILE):
        (out / "fold1" / name).unlink()
    (out / LOSSES_FILE).unlink()
    again = subprocess.run([*command, "--out", str(out)], env=ENV, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "fold 0: already trained" in again.stdout and "fold 1: training" in again.stdout
    assert "fold 2: already trained" in again.stdout
    assert pd.read_parquet(out / LOSSES_FILE).equals(pd.read_parquet(one_by_one))


def test_each_sample_of_a_batch_meets_its_own_auxiliary_loss(tmp_path, monkeypatch):
    data = load(CFG)
    n = len(data.y_train)
    # Each sample's "loss" is its own index, so a batch's losses name its samples.
    frame = pd.DataFrame(
        {
            "index": range(n),
            "label": data.y_train.tolist(),
            "clean_label": data.y_train_clean.tolist(),
            "loss": [float(i) for i in range(n)],
            "fold": 0,
        }
    )
    write_losses(tmp_path / "losses.parquet", frame)
    seen = []
    real = flooding.train.flooded_loss

    def spy(logits, targets, cfg, aux_loss=None):
        seen.append((targets.clone(), aux_loss.clone()))
        return real(logits, targets, cfg, aux_loss)

    monkeypatch.setattr(flooding.train, "flooded_loss", spy)
    runtime = dataclasses.replace(RUNTIME, out=tmp_path / "run")
    assert run(CFG, dataclasses.replace(runtime, aux_losses=tmp_path / "losses.parquet")) == 0
    assert len(seen) == CFG.epochs * -(-n // CFG.batch_size)
    for targets, aux in seen:
        assert torch.equal(data.y_train[aux.long()], targets)
    assert sorted(torch.cat([aux for _, aux in seen[: len(seen) // 3]]).tolist()) == list(range(n))
