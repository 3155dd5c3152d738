"""The fixed cost of one run: wall time of `flooding train` (digits, MLP, 1 epoch, one
thread) over the wall time of `python -c "import torch"`, both measured here, best of
three each. The last line is `ratio X`; the target is <= 1.6.

    python bench/bench_startup.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

TRAIN = ["-m", "flooding", "train", "--dataset", "digits", "--arch", "mlp", "--epochs", "1"]
TRAIN += ["--threads", "1", "--device", "cpu", "--out"]


def best_of(command: list[str], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    torch_only = best_of([sys.executable, "-c", "import torch"])
    with tempfile.TemporaryDirectory() as out:
        train = best_of([sys.executable, *TRAIN, out])
    print(f"python -c 'import torch': {torch_only:.2f} s; flooding train (1 epoch): {train:.2f} s")
    print(f"ratio {train / torch_only:.2f}")


if __name__ == "__main__":
    main()
