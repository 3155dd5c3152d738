"""A pack against solo runs: wall time of N `flooding train` processes over one
`flooding train-pack` of the same N runs.

The runs are the embedded default's digits MLP (config/config.yaml's training settings,
weight decay 0, no augmentation, seed 0) at N flood levels, one thread each, one after
another. Both sides write the same outputs, checked equal at the end (sequential packs
are bit-identical to solo runs). The last line is `ratio X` = solo wall / pack wall.

    python bench/bench_pack.py            # N = 8
    python bench/bench_pack.py --runs 4 --epochs 5
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from flooding.config import RunConfig
from flooding.grid import train_arguments
from flooding.pack import Member, write_spec

ROOT = Path(__file__).resolve().parent.parent
FLOODING = [sys.executable, "-m", "flooding"]


def configs(runs: int, epochs: int | None) -> list[RunConfig]:
    training = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["training"]
    if epochs is not None:
        training["epochs"] = epochs
    levels = [round(0.02 * i, 2) for i in range(runs)]
    return [
        RunConfig.from_dict({**training, "dataset": "digits", "arch": "mlp", "flood_level": b})
        for b in levels
    ]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    args = parser.parse_args()
    cfgs = configs(args.runs, args.epochs)
    runtime = ["--threads", "1", "--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        solo = 0.0
        for i, cfg in enumerate(cfgs):
            out = root / "solo" / str(i)
            solo += timed([*FLOODING, "train", *train_arguments(cfg), "--out", str(out), *runtime])
        spec = root / "pack.json"
        write_spec(spec, [Member(root / "pack" / str(i), cfg) for i, cfg in enumerate(cfgs)])
        pack = timed([*FLOODING, "train-pack", "--spec", str(spec), *runtime])
        for i in range(len(cfgs)):
            a, b = (
                pd.read_parquet(root / side / str(i) / "metrics.parquet").drop(
                    columns="epoch_seconds"
                )
                for side in ("solo", "pack")
            )
            pd.testing.assert_frame_equal(a, b)
        trained = sum(
            pd.read_parquet(root / "pack" / str(i) / "metrics.parquet")["epoch_seconds"].sum()
            for i in range(len(cfgs))
        )
    print(f"{len(cfgs)} runs of {cfgs[0].epochs} epochs; metrics of pack and solo runs equal")
    print(f"solo processes: {solo:.1f} s wall; pack: {pack:.1f} s wall ({trained:.1f} s training)")
    print(f"ratio {solo / pack:.2f}")


if __name__ == "__main__":
    main()
