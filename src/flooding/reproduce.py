"""Retrain a finished run along the float path it trained on, and compare.

Training with label noise is chaotic: the same config on another floating-point path
(threads, the stack it trained in, the device) ends up at another point, as far apart as
another seed. A run is therefore reproducible bit for bit only along its own path, which
its run.json records (`float_path`): `flooding reproduce RUN_DIR --out DIR` rebuilds that
path (the same threads, device settings and, for a member of a vectorised pack, the same
stack of flood settings in the same order), retrains into DIR, and says whether the
metrics came out identical.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from flooding.config import ConfigError, RunConfig, validate
from flooding.metrics import METRICS_FILE, RUN_FILE
from flooding.runtime import Runtime, stack_configs

# Columns that are not results: how long an epoch took differs on every run.
NOT_REPRODUCIBLE = ("epoch_seconds",)


def read_record(run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """The config and float path of a finished run."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise ConfigError("run", str(run_dir), "a folder holding a finished run's run.json")
    record = json.loads(path.read_text())
    if record.get("float_path") is None:
        raise ConfigError(
            "run", str(run_dir), "a run.json with a float_path (runs trained by this version)"
        )
    return RunConfig.from_dict(record["config"]), record["float_path"]


def recorded_device(path: dict[str, Any]) -> str:
    """The device name of a float path's description, e.g. "cuda:0" of "cuda:0 (H100)"."""
    return path["device"].split(" (")[0]


def member_folders(out: Path, configs: list[RunConfig], position: int) -> list[Path]:
    """The run itself in `out`; the other members of its stack beside it, in out/stack/."""
    return [
        out if m == position else out / "stack" / f"{m}-{cfg.flood_method}{cfg.flood_level:g}"
        for m, cfg in enumerate(configs)
    ]


def compare(original: Path, again: Path) -> str | None:
    """None when the two runs' metrics are identical (but for NOT_REPRODUCIBLE), else
    where they first differ."""
    import pandas as pd

    first = pd.read_parquet(original / METRICS_FILE).drop(columns=list(NOT_REPRODUCIBLE))
    second = pd.read_parquet(again / METRICS_FILE).drop(columns=list(NOT_REPRODUCIBLE))
    if first.shape != second.shape:
        return f"{len(first)} epochs recorded, {len(second)} retrained"
    for column in first.columns:
        a, b = first[column].to_numpy(), second[column].to_numpy()
        same = (a == b) | ((a != a) & (b != b))  # NaN equals NaN here (epoch 0's sums)
        if not same.all():
            epoch = int(first["epoch"].to_numpy()[~same][0])
            return f"{column} differs from epoch {epoch} on"
    return None


def reproduce(run_dir: Path, out: Path, data_root: Path) -> int:
    """Retrain the run of `run_dir` along its float path into `out`; 0 when the metrics
    are identical, 1 when they differ, 2 when the path cannot be rebuilt here."""
    import torch

    from flooding.checkpoint import SignalFlag
    from flooding.data import load_data
    from flooding.pack import member_log
    from flooding.runtime import describe_device, resolve_device
    from flooding.train import train_runs

    cfg, path = read_record(run_dir)
    configs = stack_configs(cfg, path)
    for member in configs:
        validate(member)
    device = resolve_device(recorded_device(path))
    torch.set_num_threads(path["threads"])
    position = path["stack_position"]
    folders = member_folders(out, configs, position)
    runtime = Runtime(
        out=out,
        device=str(device),
        threads=path["threads"],
        data_root=data_root,
        bf16=path["bf16"],
        channels_last=path["channels_last"],
    )
    jobs = [(c, replace(runtime, out=f)) for c, f in zip(configs, folders, strict=True)]
    print(
        f"reproduce: {len(configs)} run(s) as one stack on {describe_device(device)}; "
        f"the run is member {position}, retrained into {out} (progress: train.log there)",
        flush=True,
    )
    with SignalFlag() as stop:
        data = load_data(cfg, data_root, device)  # the stack's members share their data
        codes = train_runs(jobs, lambda c: data, stop, lambda m: member_log(folders[m]))
    if codes is None or any(code != 0 for code in codes):
        print(f"reproduce: training stopped (exit {codes}); rerun to resume", file=sys.stderr)
        return 1
    difference = compare(run_dir, out)
    if difference is None:
        print(f"reproduce: identical to {run_dir}")
        return 0
    print(f"reproduce: not identical to {run_dir}: {difference}")
    return 1
