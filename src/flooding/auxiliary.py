"""Training one auxiliary model of AdaFlood (flooding.adaflood): a run of the one training
loop on the other folds, which scores its held-out fold as it completes.

A module of its own because the loop (flooding.train) reads flooding.adaflood's losses:
this one imports both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from flooding.adaflood import (
    LOSSES_FILE,
    aux_config,
    fold_indices,
    gather,
    held_out_losses,
    restrict,
    write_losses,
)
from flooding.config import ConfigError, RunConfig

if TYPE_CHECKING:
    import torch

    from flooding.checkpoint import SignalFlag
    from flooding.data import DataBundle
    from flooding.runtime import Runtime
    from flooding.state import Setup, TrainState
    from flooding.train import DataSource


def train_fold(
    cfg: RunConfig, fold: int, runtime: Runtime, load: DataSource, stop: SignalFlag
) -> int:
    """Train fold `fold`'s auxiliary model of adaflood run `cfg` into runtime.out and,
    once it completes, write its held-out losses there; returns the exit code."""
    from flooding.train import train_runs

    if not 0 <= fold < cfg.adaflood_folds:
        raise ConfigError("fold", fold, f"0 to {cfg.adaflood_folds - 1} (adaflood_folds)")
    full: dict[str, DataBundle] = {}
    index: dict[str, torch.Tensor] = {}

    def load_fold(c: RunConfig) -> DataBundle:
        full["data"] = load(c)
        index["train"], index["held"] = fold_indices(cfg, len(full["data"].y_train), fold)
        return restrict(full["data"], index["train"])

    def score(m: int, setup: Setup, state: TrainState) -> None:
        frame = held_out_losses(state.model, full["data"], index["held"], fold)
        write_losses(runtime.out / LOSSES_FILE, frame)

    runtime.out.mkdir(parents=True, exist_ok=True)
    (runtime.out / LOSSES_FILE).unlink(missing_ok=True)
    codes = train_runs([(aux_config(cfg), runtime)], load_fold, stop, completed=score)
    return (codes or [1])[0]


def fold_folder(out: Path, fold: int) -> Path:
    """Where fold `fold` of the auxiliary models under `out` trains."""
    return out / f"fold{fold}"


def train_folds(cfg: RunConfig, runtime: Runtime, load: DataSource, stop: SignalFlag) -> int:
    """Train every fold's auxiliary model of adaflood run `cfg`, one after another in this
    process, each in runtime.out/fold<k>, then gather their held-out losses into
    runtime.out/losses.parquet; returns the exit code.

    One process pays the start-up (torch, the data) once for all folds, as a pack does for
    its runs. A fold already finished with this config is not trained again: a job killed
    between folds resumes with the next one (and a fold killed part-way, from its
    checkpoint)."""
    from flooding.finished import run_finished

    loaded: dict[RunConfig, DataBundle] = {}

    def load_once(c: RunConfig) -> DataBundle:  # every fold reads the same split
        if c not in loaded:
            loaded[c] = load(c)
        return loaded[c]

    gathered = runtime.out / LOSSES_FILE
    gathered.unlink(missing_ok=True)
    folders = [fold_folder(runtime.out, k) for k in range(cfg.adaflood_folds)]
    for fold, folder in enumerate(folders):
        if run_finished(folder, aux_config(cfg)) and (folder / LOSSES_FILE).is_file():
            print(f"fold {fold}: already trained", flush=True)
            continue
        print(f"fold {fold}: training", flush=True)
        code = train_fold(cfg, fold, replace(runtime, out=folder), load_once, stop)
        if code != 0:
            return code
    write_losses(gathered, gather([folder / LOSSES_FILE for folder in folders]))
    print(f"gathered {len(folders)} folds into {gathered}", flush=True)
    return 0


def run_fold(cfg: RunConfig, fold: int | None, runtime: Runtime) -> int:
    """Validate, load the data, train fold `fold` into runtime.out, or every fold into
    runtime.out/fold<k> and their gathered losses (fold None); the process exit code."""
    from flooding.checkpoint import SignalFlag
    from flooding.config import validate
    from flooding.data import load_data
    from flooding.runtime import resolve_device, set_threads

    validate(cfg)
    set_threads(runtime)
    device = resolve_device(runtime.device)

    def load(c: RunConfig) -> DataBundle:
        return load_data(c, runtime.data_root, device)

    with SignalFlag() as stop:
        if fold is None:
            return train_folds(cfg, runtime, load, stop)
        return train_fold(cfg, fold, runtime, load, stop)
