"""AdaFlood's auxiliary models: per-sample losses from models that never saw the sample.

Bae et al., "AdaFlood: Adaptive Flood Regularization", TMLR 2024 (reference code
BorealisAI/adaflood). A run with `flood_method: adaflood` floods each training sample's
loss at a level of its own, b_i (flooding.flood.adaflood_levels), computed from l_i, the
loss that an auxiliary model which did not train on sample i gives it.

The l_i come from K-fold cross-fitting on the run's own training split:

- `fold_assignment`: every training sample gets a fold 0..K-1, drawn from the run's seed
  alone (its own random stream), the folds as equal as K allows.
- `train_fold` (flooding.auxiliary): fold k's model is the b = 0 run of the setting
  (`aux_config`: same architecture, optimiser, regularisers and epochs, or
  adaflood_aux_epochs) trained by the one training loop on the other folds only, with
  the labels the run trains on (noisy ones included). It is a run like any other
  (metrics.parquet, run.json, checkpoints, resume after a signal); once it completes it
  scores its held-out fold into losses.parquet.
- `gather`: the K folds' losses in one file, one row per training sample in the order of
  the training split, which `flooding train --aux-losses` reads (`read_aux_losses`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flooding.config import ConfigError, RunConfig

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from flooding.data import DataBundle

LOSSES_FILE = "losses.parquet"
# One row per training sample: its index in the training split, the label trained on
# (noisy or not), its clean label, its held-out loss, and the fold that held it out.
COLUMNS = ("index", "label", "clean_label", "loss", "fold")
# AdaFlood's own fields: they shape the levels of the main run, not its auxiliary models.
LEVEL_FIELDS = ("adaflood_gamma", "adaflood_alpha", "adaflood_beta")


def aux_setting(cfg: RunConfig) -> RunConfig:
    """What the auxiliary models of an adaflood run depend on: its config with AdaFlood's
    level fields at their defaults. Runs differing only in gamma, alpha or beta share
    their auxiliary models (the workflow's rerun triggers and paths come from this)."""
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name in LEVEL_FIELDS}
    return dataclasses.replace(cfg, flood_method="adaflood", flood_level=0.0, **defaults)


def aux_config(cfg: RunConfig) -> RunConfig:
    """The config of the auxiliary models of an adaflood run: the b = 0 run of its setting
    (adaflood_aux_epochs, when set, for its epochs), without the final flatness measure."""
    return dataclasses.replace(
        aux_setting(cfg),
        flood_method="flood",
        epochs=cfg.adaflood_aux_epochs or cfg.epochs,
        sharpness_directions=0,
    )


def fold_assignment(n_train: int, folds: int, seed: int) -> torch.Tensor:
    """The fold (0..folds-1) of each of n_train samples, from the seed's own stream."""
    import torch

    from flooding.data.sampling import generator

    order = torch.randperm(n_train, generator=generator(seed, "adaflood_folds"))
    fold = torch.empty(n_train, dtype=torch.int64)
    fold[order] = torch.arange(n_train) % folds
    return fold


def fold_indices(cfg: RunConfig, n_train: int, fold: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(trained on, held out): the training-split indices of fold `fold`'s model."""
    import torch

    assigned = fold_assignment(n_train, cfg.adaflood_folds, cfg.seed)
    held = assigned == fold
    return torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()


def restrict(data: DataBundle, index: torch.Tensor) -> DataBundle:
    """The data with its training split cut down to `index` (validation and test whole)."""
    index = index.to(data.x_train.device)
    return dataclasses.replace(
        data,
        x_train=data.x_train[index],
        y_train=data.y_train[index],
        y_train_clean=data.y_train_clean[index],
    )


def held_out_losses(
    model: torch.nn.Module, data: DataBundle, held: torch.Tensor, fold: int
) -> pd.DataFrame:
    """Per-sample cross-entropy of the held-out samples (on the labels trained on)."""
    import pandas as pd
    import torch
    import torch.nn.functional as F

    held = held.to(data.x_train.device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(data.x_train[held]).float()
            loss = F.cross_entropy(logits, data.y_train[held], reduction="none")
    finally:
        model.train(was_training)
    return pd.DataFrame(
        {
            "index": held.cpu().numpy().astype("int64"),
            "label": data.y_train[held].cpu().numpy().astype("int64"),
            "clean_label": data.y_train_clean[held].cpu().numpy().astype("int64"),
            "loss": loss.double().cpu().numpy(),
            "fold": fold,
        }
    )


def write_losses(path: Path, frame: pd.DataFrame) -> None:
    from flooding.atomic import atomic_write

    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def gather(files: Sequence[Path]) -> pd.DataFrame:
    """The folds' held-out losses as one table in training-split order; every sample must
    be held out by exactly one fold."""
    import pandas as pd

    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    frame = frame.sort_values("index", kind="stable").reset_index(drop=True)
    if not frame["index"].equals(pd.Series(range(len(frame)), dtype=frame["index"].dtype)):
        raise ConfigError(
            "aux_losses",
            [str(f) for f in files],
            "the held-out losses of every fold, each sample once",
        )
    return frame[list(COLUMNS)]


def read_aux_losses(path: Path | None, data: DataBundle) -> torch.Tensor:
    """The training split's held-out losses from `path`, on the data's device, after
    checking that they are in the order of this training split with its labels."""
    import pandas as pd
    import torch

    wanted = "the gathered held-out losses of this run's setting (flooding gather-aux)"
    if path is None or not Path(path).is_file():
        raise ConfigError("aux_losses", None if path is None else str(path), wanted)
    frame = pd.read_parquet(path)
    labels = data.y_train.cpu().numpy()
    if (
        len(frame) != len(labels)
        or (frame["index"].to_numpy() != range(len(labels))).any()
        or (frame["label"].to_numpy() != labels).any()
    ):
        raise ConfigError("aux_losses", str(path), wanted + ", in the order of its labels")
    return torch.tensor(frame["loss"].to_numpy(), dtype=torch.float32, device=data.y_train.device)


def aux_table(settings: dict[str, RunConfig], out: Path) -> str:
    """The gathered losses of every auxiliary setting (folder under results/aux/ -> its
    config) in one table for the report, each row with its setting's dataset, label noise,
    architecture and seed; an empty table (the same columns) when there are none. Returns
    a line for the log."""
    import pandas as pd

    keys = ("dataset", "label_noise", "arch", "seed")
    frames = [
        pd.read_parquet(Path("results/aux", path, LOSSES_FILE)).assign(
            aux=path, **{k: getattr(cfg, k) for k in keys}
        )
        for path, cfg in settings.items()
    ]
    columns = ["aux", *keys, *COLUMNS]
    table = (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )
    write_losses(out, table)
    return f"{len(settings)} auxiliary settings, {len(table)} samples\n"
