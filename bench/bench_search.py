"""The search for b against a dense fixed grid: runs spent, and accuracy given up.

The settings are the embedded default's Gaussians (config/config.yaml: 0, 10 and 20 %
label noise, its seeds and training settings). The dense grid trains b = 0 to the upper
end of the search (the untrained loss, ln 2 here) in steps of --step; the search runs as
the workflow runs it (flooding.search.decide_round, round after round, with the search
plan's own defaults unless one is given: the default config shortens its plan to stay a
few minutes' demonstration). Runs train as packs (each seed's levels as one
stacked model), one process per setting, both cores busy; runs of the same config (b = 0,
and any level both try) are trained once and count for both.

For each setting and each side, b is chosen as the report chooses it: the level with the
best mean final validation accuracy over seeds; its mean test accuracy goes with it.
Printed per setting, then, as the last line,

    runs ratio R, val gap V points, test gap T points

R = search runs / dense-grid runs; V and T = the dense grid's mean validation / test
accuracy at its chosen b minus the search's, averaged over the settings (positive: the
grid did better).

    python bench/bench_search.py                 # the plan's defaults, step 0.025
    python bench/bench_search.py --initial 4 --rounds 2 --seeds 3
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from flooding.grid import expand_grid
from flooding.jobs import Run
from flooding.pack import Member, run_pack
from flooding.runtime import Runtime
from flooding.schema import validate_workflow_config
from flooding.search import (
    Search,
    SearchPlan,
    choose_best,
    decide_round,
    run_measures,
    untrained_loss,
)

ROOT = Path(__file__).resolve().parent.parent


def searches(plan: SearchPlan, seeds: int | None) -> list[Search]:
    """The default's Gaussians settings as searches of the flood method with `plan`:
    every Gaussians entry of config/config.yaml, each label noise."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    entries = [copy.deepcopy(d) for d in config["datasets"] if d["name"] == "gaussians"]
    for entry in entries:
        flood = entry.setdefault("flood", {})
        flood.update(methods=["flood"], levels="auto")
        flood.pop("gammas", None)
        flood["search"] = dataclasses.asdict(plan)
    config["datasets"] = entries
    if seeds is not None:
        config["seeds"] = config["seeds"][:seeds]
    validate_workflow_config(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
    return list(expand_grid(config).searches)


def train(runs: list[Run], root: Path) -> None:
    members = [Member(root / run.path, run.config) for run in runs]
    runtime = Runtime(out=root, device="cpu", threads=1, checkpoint_every=0)
    code = run_pack(members, runtime, vectorise=True)
    if code != 0:
        raise SystemExit(f"training failed (exit {code}); see the train.log files under {root}")


def train_all(batches: list[list[Run]], root: Path, pool: ProcessPoolExecutor) -> None:
    for future in [pool.submit(train, batch, root) for batch in batches if batch]:
        future.result()


def chosen(runs: list[Run], root: Path) -> tuple[float, float, float]:
    """(b, mean val acc, mean test acc) at the level with the best mean val acc."""
    import pandas as pd

    from flooding.metrics import METRICS_FILE

    val: dict[float, list[float]] = {}
    test: dict[float, list[float]] = {}
    for run in runs:
        val.setdefault(run.config.flood_level, []).append(run_measures(root / run.path)[0])
        last = pd.read_parquet(root / run.path / METRICS_FILE).iloc[-1]
        test.setdefault(run.config.flood_level, []).append(float(last["test_acc"]))
    means = {b: sum(v) / len(v) for b, v in val.items()}
    best = choose_best(means)
    return best, means[best], sum(test[best]) / len(test[best])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", type=float, default=0.025, help="the dense grid's step")
    parser.add_argument(
        "--initial", type=int, help="search plan (default: the plan's defaults, not the config's)"
    )
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--tolerance", type=float)
    parser.add_argument("--seeds", type=int, help="first N seeds of the config (default all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--work",
        type=Path,
        help="keep the runs here (default: a temporary folder); a rerun reuses finished runs",
    )
    args = parser.parse_args()
    given = {k: getattr(args, k) for k in ("initial", "rounds", "tolerance")}
    plan = SearchPlan(**{k: v for k, v in given.items() if v is not None})
    todo = searches(plan, args.seeds)

    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.workers) as pool:
        work = args.work or Path(tmp)
        root, folder = work / "runs", Path(tmp) / "search"
        # Round 0: the b = 0 runs, every search's and the dense grid's.
        train_all([list(s.baselines) for s in todo], root, pool)
        searched = {s.name: list(s.baselines) for s in todo}
        active = {s.name: s.first_decided_round for s in todo}
        while active:
            batches = []
            for search in todo:
                if search.name not in active:
                    continue
                round_ = active[search.name]
                decision = decide_round(search, round_, root, folder / search.name)
                print(decision.describe(), f"({search.name})", flush=True)
                runs = search.runs(decision.levels)
                searched[search.name] += runs
                batches.append(runs)
                active[search.name] = round_ + 1
                if decision.done:
                    del active[search.name]
            train_all(batches, root, pool)

        dense: dict[str, list[Run]] = {}
        for search in todo:
            starts = [run_measures(root / run.path)[2] for run in search.baselines]
            upper = untrained_loss(search.num_classes, starts)
            count = math.ceil(upper / args.step - 1e-9)
            levels = [round(k * args.step, 6) for k in range(1, count)]
            dense[search.name] = list(search.baselines) + search.runs({"flood": levels})
        train_all(
            [runs[len(s.baselines) :] for s, runs in zip(todo, dense.values(), strict=True)],
            root,
            pool,
        )

        val_gaps, test_gaps = [], []
        for search in todo:
            grid_b, grid_val, grid_test = chosen(dense[search.name], root)
            search_b, search_val, search_test = chosen(searched[search.name], root)
            print(
                f"{search.name}: dense grid {len(dense[search.name])} runs, b = {grid_b:g} "
                f"(val {100 * grid_val:.2f}, test {100 * grid_test:.2f}); search "
                f"{len(searched[search.name])} runs, b = {search_b:g} "
                f"(val {100 * search_val:.2f}, test {100 * search_test:.2f})"
            )
            val_gaps.append(100 * (grid_val - search_val))
            test_gaps.append(100 * (grid_test - search_test))
    ratio = sum(map(len, searched.values())) / sum(map(len, dense.values()))
    val_gap, test_gap = sum(val_gaps) / len(val_gaps), sum(test_gaps) / len(test_gaps)
    # Three decimals: the gaps are compared with 0.5-point targets, which two decimals
    # can hide (a test gap of 0.503 printed as 0.50).
    print(f"runs ratio {ratio:.2f}, val gap {val_gap:.3f} points, test gap {test_gap:.3f} points")


if __name__ == "__main__":
    main()
