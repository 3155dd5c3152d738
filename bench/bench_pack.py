"""A pack against solo runs: wall time of N `flooding train` processes over one
`flooding train-pack` of the same N runs, the pack both sequential and vectorised.

The runs are the embedded default's MLP (config/config.yaml's training settings, weight
decay 0, no augmentation, seed 0) on the digits, or with `--dataset gaussians` on its
Gaussians (their own sizes, rate and epochs), at N flood levels, one thread each. The outputs
are checked at the end: the sequential pack's equal the solo runs' bit for bit, the
vectorised pack's at epochs 0 and 1 to float tolerance. Printed: the sequential pack's
ratio, the vectorised pack's over the sequential one, and last `ratio X` = solo wall /
wall of the pack as `flooding train-pack` runs it by default (vectorised).

    python bench/bench_pack.py            # N = 8
    python bench/bench_pack.py --runs 4 --epochs 5
    python bench/bench_pack.py --dataset gaussians --runs 5
    python bench/bench_pack.py --device cuda   # on a GPU (sequential packs equal solo runs
                                               # there only to tolerance, as GPUs sum in
                                               # any order)
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
from flooding.jobs import train_arguments
from flooding.pack import Member, write_spec

ROOT = Path(__file__).resolve().parent.parent
FLOODING = [sys.executable, "-m", "flooding"]


def configs(dataset: str, runs: int, epochs: int | None) -> list[RunConfig]:
    """The default's MLP on `dataset`: the global training settings under its first entry
    of that dataset's own (the Gaussians' sizes, rate and epochs)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    entry = next(d for d in config["datasets"] if d["name"] == dataset)
    training = config["training"] | entry.get("training", {})
    if epochs is not None:
        training["epochs"] = epochs
    levels = [round(0.02 * i, 2) for i in range(runs)]
    return [
        RunConfig.from_dict({**training, "dataset": dataset, "arch": "mlp", "flood_level": b})
        for b in levels
    ]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", default="digits", choices=("digits", "gaussians"), help="default: digits"
    )
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    cfgs = configs(args.dataset, args.runs, args.epochs)
    runtime = ["--threads", "1", "--device", args.device]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        solo = 0.0
        for i, cfg in enumerate(cfgs):
            out = root / "solo" / str(i)
            solo += timed([*FLOODING, "train", *train_arguments(cfg), "--out", str(out), *runtime])
        spec = root / "pack.json"
        walls = {}
        for mode in ("sequential", "vectorised"):
            members = [Member(root / mode / str(i), cfg) for i, cfg in enumerate(cfgs)]
            write_spec(spec, members)
            flag = "--vectorise" if mode == "vectorised" else "--no-vectorise"
            walls[mode] = timed([*FLOODING, "train-pack", "--spec", str(spec), flag, *runtime])
        for i in range(len(cfgs)):
            solo_metrics, sequential, vectorised = (
                pd.read_parquet(root / side / str(i) / "metrics.parquet").drop(
                    columns="epoch_seconds"
                )
                for side in ("solo", "sequential", "vectorised")
            )
            # Bit for bit on the CPU; a GPU's reductions may sum in any order.
            exact = {} if args.device == "cpu" else {"rtol": 1e-4}
            pd.testing.assert_frame_equal(solo_metrics, sequential, **exact)
            pd.testing.assert_frame_equal(solo_metrics[:2], vectorised[:2], rtol=1e-4)
        trained = {
            mode: sum(
                pd.read_parquet(root / mode / str(i) / "metrics.parquet")["epoch_seconds"].sum()
                for i in range(len(cfgs))
            )
            for mode in walls
        }
    print(f"{len(cfgs)} runs of {cfgs[0].epochs} epochs; pack metrics equal the solo runs'")
    print(f"solo processes: {solo:.1f} s wall")
    for mode, wall in walls.items():
        print(f"{mode} pack: {wall:.1f} s wall ({trained[mode]:.1f} s training)")
    print(f"sequential pack: ratio {solo / walls['sequential']:.2f} against solo processes")
    speedup = walls["sequential"] / walls["vectorised"]
    print(f"vectorised pack: ratio {speedup:.2f} against the sequential pack")
    print(f"ratio {solo / walls['vectorised']:.2f}")


if __name__ == "__main__":
    main()
