"""Float-path drift: how far one config's result moves when only its arithmetic path does.

Training with label noise is chaotic: a run trained alone and the same run trained as a
member of a vectorised stack agree at epoch 1 to about 1e-8, yet part later. So do a run
on 1 and on 2 CPU threads. This script measures by how much, on the embedded default's
noisy Gaussians (config/config.yaml as the workflow expands it, label noise 0.2, at the
flood levels of --levels: the default searches its levels, so its grid lists none), and
sets it beside the spread between seeds:

- stack vs solo: each level trained in the stack of all levels (as the default's packs
  train it) and alone, both on 1 thread;
- 2 threads vs 1: each level trained alone on 2 threads and on 1;
- seed spread: the standard deviation over seeds of the final test accuracy of a level
  (alone, 1 thread), averaged over levels.

Printed: a row per seed and level, then the last line
`drift stack/solo max X median Y, threads 2/1 max X median Y, seed sd S (test-acc points)`.

    python bench/bench_drift.py               # seeds 0 1 2 (about 3 minutes on 2 cores)
    python bench/bench_drift.py --seeds 0 1 2 3 4 --noise 0.1
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from flooding.config import RunConfig
from flooding.grid import expand_grid
from flooding.pack import Member, run_pack
from flooding.runtime import Runtime
from flooding.schema import validate_workflow_config

ROOT = Path(__file__).resolve().parent.parent


def default_configs(noise: float, seeds: list[int], levels: list[float]) -> list[RunConfig]:
    """The default grid's Gaussians b = 0 flood run at this label noise, for each seed, at
    each of `levels` (the default searches its levels, so the grid lists none)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config = copy.deepcopy(config)
    validate_workflow_config(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
    config["seeds"] = seeds
    baselines = [
        run.config
        for run in expand_grid(config).runs
        if run.config.dataset == "gaussians"
        and run.config.label_noise == noise
        and run.config.flood_method == "flood"
        and run.config.flood_level == 0
    ]
    return [dataclasses.replace(cfg, flood_level=b) for cfg in baselines for b in levels]


def final_test_acc(out: Path) -> float:
    return float(pd.read_parquet(out / "metrics.parquet")["test_acc"].iloc[-1])


def train(configs: list[RunConfig], root: Path, threads: int, vectorise: bool) -> list[float]:
    members = [Member(root / f"{i}", cfg) for i, cfg in enumerate(configs)]
    assert run_pack(members, Runtime(out=root, threads=threads), vectorise=vectorise) == 0
    return [final_test_acc(m.out) for m in members]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument(
        "--levels",
        type=float,
        nargs="+",
        default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        help="flood levels trained per seed (default: 0 to 0.6, below the untrained ln 2)",
    )
    args = parser.parse_args()
    configs = default_configs(args.noise, args.seeds, args.levels)
    if not configs:
        parser.error(f"the default grid has no Gaussians runs at label noise {args.noise}")
    stack_drift, thread_drift = [], []
    alone: dict[float, list[float]] = {}
    print("seed  b     alone  stacked  2 threads  (final test accuracy, %)")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            group = [c for c in configs if c.seed == seed]
            root = Path(tmp) / f"seed{seed}"
            solo = train(group, root / "solo", threads=1, vectorise=False)
            stacked = train(group, root / "stacked", threads=1, vectorise=True)
            two = train(group, root / "threads2", threads=2, vectorise=False)
            for cfg, a, s, t in zip(group, solo, stacked, two, strict=True):
                row = f"{100 * a:5.2f}  {100 * s:7.2f}  {100 * t:9.2f}"
                print(f"{seed:4d}  {cfg.flood_level:<4g}  {row}")
                stack_drift.append(100 * abs(s - a))
                thread_drift.append(100 * abs(t - a))
                alone.setdefault(cfg.flood_level, []).append(100 * a)
    spread = statistics.mean(statistics.stdev(v) for v in alone.values() if len(v) > 1)
    print(
        f"drift stack/solo max {max(stack_drift):.2f} median {statistics.median(stack_drift):.2f}, "
        f"threads 2/1 max {max(thread_drift):.2f} median {statistics.median(thread_drift):.2f}, "
        f"seed sd {spread:.2f} (test-acc points)"
    )


if __name__ == "__main__":
    main()
