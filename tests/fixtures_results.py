"""Schema-exact fake results: the two aggregated Parquet tables of a whole grid.

The report tests and `bench/bench_report.py` build reports from these instead of training.
The curves are made up but shaped like the paper's: the training loss falls to about b
(or to almost zero without flooding), the test loss rises after memorisation and, with
flooding, falls again; validation accuracy is measured on noisy labels, test accuracy on
clean ones; flooding near a noise-dependent best level adds about one point of accuracy.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flooding.aggregate import SUMMARY_METRICS
from flooding.config import RunConfig

# Defaults of RunConfig, in its field order; the grid below overrides some of them.
CONFIG_DEFAULTS = RunConfig().to_dict()


@dataclass(frozen=True)
class FakeGrid:
    """A full factorial grid; b = 0 is emitted once per setting and seed, as "flood"."""

    datasets: tuple[str, ...] = ("spiral", "gaussians")
    archs: tuple[str, ...] = ("mlp",)
    label_noises: tuple[float, ...] = (0.0,)
    weight_decays: tuple[float, ...] = (0.0,)
    augments: tuple[bool, ...] = (False,)
    methods: tuple[str, ...] = ("flood",)
    flood_levels: tuple[float, ...] = (0.02, 0.05, 0.1)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 20


def grid_configs(grid: FakeGrid) -> pd.DataFrame:
    """One row per run: every RunConfig field."""
    rows = []
    for dataset, arch, noise, wd, aug, seed in itertools.product(
        grid.datasets, grid.archs, grid.label_noises, grid.weight_decays, grid.augments, grid.seeds
    ):
        levels = [("flood", 0.0)] + [(m, b) for m in grid.methods for b in grid.flood_levels]
        for method, level in levels:
            config = dict(CONFIG_DEFAULTS)
            config.update(
                dataset=dataset,
                arch=arch,
                label_noise=noise,
                weight_decay=wd,
                augment=aug,
                flood_method=method,
                flood_level=level,
                seed=seed,
                epochs=grid.epochs,
            )
            rows.append(config)
    return pd.DataFrame(rows, columns=list(CONFIG_DEFAULTS))


def _hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def make_results(grid: FakeGrid) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, summary) for every run of the grid, all completed."""
    configs = grid_configs(grid)
    n_runs, n_epochs = len(configs), grid.epochs + 1
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 1.0, n_epochs)[None, :]
    b = configs["flood_level"].to_numpy()[:, None]
    noise = configs["label_noise"].to_numpy()[:, None]
    iflood = (configs["flood_method"] == "iflood").to_numpy()[:, None]
    dataset_code = pd.factorize(configs["dataset"])[0][:, None]
    seed_effect = rng.normal(0.0, 0.004, size=(n_runs, 1))

    def jitter(scale: float) -> np.ndarray:
        return rng.normal(0.0, scale, size=(n_runs, n_epochs))

    floor = np.where(b > 0, b, 0.002)
    train_loss = floor + (0.7 - floor) * np.exp(-8.0 * t) * (1 + jitter(0.02))
    train_loss = np.abs(train_loss + (b > 0) * jitter(0.05) * b)
    train_acc = np.clip(1.0 - 0.9 * train_loss, 0.0, 1.0)
    memorised = 1.0 - np.exp(-5.0 * t)
    train_loss_clean = train_loss + 2.0 * noise * memorised
    train_acc_clean = np.clip(train_acc - noise * memorised, 0.0, 1.0)
    # Best flood level grows with label noise; gain of about a point near it.
    best_b = 0.05 + 0.3 * noise
    gain = 0.012 * np.clip(1.0 - ((b - best_b) / best_b) ** 2, -1.0, 1.0) * (b > 0)
    gain = gain - 0.002 * iflood
    final_acc = 0.97 - 0.04 * dataset_code - 0.1 * noise + gain + seed_effect
    test_acc = np.clip(0.5 + (final_acc - 0.5) * (1 - np.exp(-10.0 * t)) + jitter(0.003), 0, 1)
    overfit = np.where(b > 0, 2.5 * t * np.exp(-4.0 * t), 0.6 * t)
    test_loss = 0.25 + 0.45 * np.exp(-30.0 * t) + overfit + noise + jitter(0.01)
    val_acc = np.clip((1 - noise) * test_acc + noise * (1 - test_acc) + jitter(0.004), 0, 1)
    val_acc_clean = np.clip(test_acc + jitter(0.004), 0.0, 1.0)
    val_loss_clean = test_loss + jitter(0.01)
    val_loss = val_loss_clean + noise * 2.0
    batch_loss = train_loss * (1.0 + jitter(0.03))
    grad_norm = np.where(b > 0, 0.6, 0.02) + 2.0 * np.exp(-6.0 * t) + np.abs(jitter(0.05))
    flooded_frac = (b > 0) * (0.5 * (1 - np.exp(-8.0 * t)) + np.abs(jitter(0.02)))
    for first_epoch_undefined in (batch_loss, grad_norm, flooded_frac):
        first_epoch_undefined[:, 0] = np.nan

    curves = {
        "train_loss": train_loss,
        "train_acc": train_acc,
        "train_loss_clean": np.where(noise > 0, train_loss_clean, train_loss),
        "train_acc_clean": np.where(noise > 0, train_acc_clean, train_acc),
        "val_loss": val_loss,
        "val_acc": val_acc,
        "val_loss_clean": val_loss_clean,
        "val_acc_clean": val_acc_clean,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "batch_loss": batch_loss,
        "grad_norm": grad_norm,
        "flooded_frac": np.clip(flooded_frac, 0.0, 1.0),
        "epoch_lr": np.repeat(configs["lr"].to_numpy()[:, None], n_epochs, axis=1),
        "epoch_seconds": 0.05 + np.abs(jitter(0.01)),
    }
    hashes = [_hash(row) for row in configs.to_dict("records")]
    bayes = np.where(configs["dataset"] == "gaussians", 0.0569, np.nan)
    run_dirs = [f"results/runs/{d}/{h}" for d, h in zip(configs["dataset"], hashes, strict=True)]
    per_run = configs.assign(config_hash=hashes, bayes_error=bayes)

    metrics = pd.DataFrame({"epoch": np.tile(np.arange(n_epochs), n_runs)})
    for name, values in curves.items():
        metrics[name] = values.ravel()
    repeated = per_run.iloc[np.repeat(np.arange(n_runs), n_epochs)].reset_index(drop=True)
    metrics = pd.concat([metrics, repeated], axis=1)
    metrics["run_dir"] = np.repeat(np.array(run_dirs, dtype=object), n_epochs)
    metrics["status"] = "completed"

    best_epoch = 1 + np.argmax(val_acc[:, 1:], axis=1)
    summary = per_run.drop(columns="bayes_error").assign(
        run_dir=run_dirs,
        status="completed",
        error=pd.Series([None] * n_runs, dtype="object"),
        epochs_completed=grid.epochs,
        bayes_error=bayes,
        best_epoch=best_epoch,
    )
    for name in SUMMARY_METRICS:
        summary[f"final_{name}"] = curves[name][:, -1]
        summary[f"best_{name}"] = curves[name][np.arange(n_runs), best_epoch]
    return metrics, summary


def mark_unfinished(
    metrics: pd.DataFrame, summary: pd.DataFrame, run_dirs: dict[str, tuple[str, str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn runs into failed or diverged ones: {run_dir: (status, error)}.

    Their metrics stop after half the epochs, as an interrupted run's would.
    """
    summary = summary.copy()
    for run_dir, (status, error) in run_dirs.items():
        row = summary["run_dir"] == run_dir
        half = int(summary.loc[row, "epochs"].iloc[0]) // 2
        summary.loc[row, ["status", "error", "epochs_completed"]] = [status, error, half]
        late = (metrics["run_dir"] == run_dir) & (metrics["epoch"] > half)
        metrics = metrics[~late]
        metrics.loc[metrics["run_dir"] == run_dir, "status"] = status
    return metrics.reset_index(drop=True), summary


def write_results(metrics: pd.DataFrame, summary: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    metrics_path, summary_path = folder / "metrics.parquet", folder / "summary.parquet"
    metrics.to_parquet(metrics_path, index=False)
    summary.to_parquet(summary_path, index=False)
    return metrics_path, summary_path
