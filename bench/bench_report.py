"""Time `flooding report` on a 10,000-run, 200-epoch grid (2,010,000 metric rows).

The grid is made up (tests/fixtures_results.py) but schema-exact: 5 datasets x 2
architectures x 2 label-noise levels x 2 weight decays x 2 augmentation choices x 5 seeds,
each with b = 0 and 12 flood levels for both flood and iflood. It is written to Parquet in
a temporary folder first; the timing covers the command end to end, from reading the two
Parquet files to writing the HTML, in this process (Python start-up and imports excluded).

    OMP_NUM_THREADS=1 python bench/bench_report.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures_results import FakeGrid, make_results, write_results

from flooding.report import main as report_main

GRID = FakeGrid(
    datasets=("gaussians", "sinusoid", "spiral", "mnist", "cifar10"),
    archs=("mlp", "resnet18"),
    label_noises=(0.0, 0.2),
    weight_decays=(0.0, 5e-4),
    augments=(False, True),
    methods=("flood", "iflood"),
    flood_levels=tuple(round(0.01 * i, 2) for i in range(1, 13)),
    seeds=(0, 1, 2, 3, 4),
    epochs=200,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed builds; the best is printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        metrics, summary = make_results(GRID)
        metrics_path, summary_path = write_results(metrics, summary, folder)
        print(
            f"grid: {len(summary)} runs, {len(metrics)} metric rows, "
            f"{metrics_path.stat().st_size / 1e6:.0f} MB of Parquet, "
            f"made in {time.perf_counter() - started:.1f} s"
        )
        del metrics, summary
        argv = ["--metrics", str(metrics_path), "--summary", str(summary_path)]
        argv += ["--out", str(folder / "report.html")]
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            report_main(argv)
            times.append(time.perf_counter() - started)
        each = ", ".join(f"{t:.1f}" for t in times)
        print(f"flooding report: {min(times):.1f} s (best of {each} s; target <= 30 s)")


if __name__ == "__main__":
    main()
