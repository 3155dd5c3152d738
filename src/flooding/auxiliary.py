"""Training one auxiliary model of AdaFlood (flooding.adaflood): a run of the one training
loop on the other folds, which scores its held-out fold as it completes.

A module of its own because the loop (flooding.train) reads flooding.adaflood's losses:
this one imports both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flooding.adaflood import (
    LOSSES_FILE,
    aux_config,
    fold_indices,
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


def run_fold(cfg: RunConfig, fold: int, runtime: Runtime) -> int:
    """Validate, load the data, train fold `fold`; returns the process exit code."""
    from flooding.checkpoint import SignalFlag
    from flooding.config import validate
    from flooding.data import load_data
    from flooding.runtime import resolve_device, set_threads

    validate(cfg)
    set_threads(runtime)
    device = resolve_device(runtime.device)
    with SignalFlag() as stop:
        return train_fold(
            cfg, fold, runtime, lambda c: load_data(c, runtime.data_root, device), stop
        )
