"""How much memory a run of a given shape used: the peaks its jobs measured.

Memory, like time, depends on a run's shape (flooding.timing.Shape: dataset and sizes,
architecture, batch size, augmentation, device kind), not on its flood level or seed. Two
measurements are read, in MB (MiB, as SLURM counts them), and per shape the largest wins:

- `peak_rss_mb` of each finished run (run.json, aggregated into results/summary.parquet):
  the training process's peak resident memory when the run ended. In a pack that is the
  pack's process, so it includes the members and stacks trained before it. It does not
  include the job's own Snakemake, which on a cluster shares the job's memory.
- `max_rss_mb` of each job in the efficiency account (results/efficiency.parquet, written
  after a `--profile slurm` run): sacct's MaxRSS of the job's steps, Snakemake included,
  sampled every `JobAcctGatherFrequency` seconds (a peak between samples is missed). A
  pack's job counts for the shape of each of its members: its runs are read from the
  pack's spec (results/packs/<name>.json), a single run's from its run.json, and the
  device kind from the GPUs the job had.

GPU memory is not host memory and is not counted. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flooding.config import RunConfig
from flooding.timing import SUMMARY_TABLE, Shape, device_kind, shape_of

EFFICIENCY_TABLE = "efficiency.parquet"


def finished_peaks(results: Path) -> dict[Shape, float]:
    """The largest `peak_rss_mb` of each shape's finished runs in the summary table;
    empty without the table or the column (runs recorded before it was measured)."""
    path = results / SUMMARY_TABLE
    if not path.is_file():
        return {}
    import pandas as pd

    summary = pd.read_parquet(path)
    if "peak_rss_mb" not in summary:
        return {}
    measured = summary[summary["peak_rss_mb"].notna() & summary["device"].notna()]
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    peaks: dict[Shape, float] = {}
    for row in measured.to_dict("records"):
        cfg = RunConfig.from_dict({name: row[name] for name in fields})
        shape = shape_of(cfg, device_kind(str(row["device"])))
        peaks[shape] = max(peaks.get(shape, 0.0), float(row["peak_rss_mb"]))
    return peaks


def job_configs(root: Path, output: str) -> Iterator[dict[str, Any]]:
    """The configs of the runs a training job trained, from the output that names it:
    a run's results/runs/<run>/... (its run.json) or a pack's results/packs/<name>.done
    (its spec, <name>.json); nothing for another job or when the file is gone."""
    parts = Path(output).parts
    if len(parts) < 3 or parts[0] != "results":
        return
    if parts[1] == "runs":
        record = _read_json(root / Path(output).parent / "run.json")
        if record is not None and isinstance(record.get("config"), dict):
            yield record["config"]
    elif parts[1] == "packs":
        spec = _read_json(root / Path(output).with_suffix(".json"))
        for member in (spec or {}).get("runs", []):
            yield member["config"]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def account_peaks(results: Path) -> dict[Shape, float]:
    """The largest MaxRSS of the jobs that trained each shape, from the efficiency
    account under results/; empty without it (or an account without job outputs)."""
    path = results / EFFICIENCY_TABLE
    if not path.is_file():
        return {}
    import pandas as pd

    table = pd.read_parquet(path)
    if "output" not in table:
        return {}
    peaks: dict[Shape, float] = {}
    for row in table[table["max_rss_mb"].notna()].to_dict("records"):
        device = "cuda" if row["gpus"] > 0 else "cpu"
        for config in job_configs(results.parent, str(row["output"])):
            shape = shape_of(RunConfig.from_dict(config), device)
            peaks[shape] = max(peaks.get(shape, 0.0), float(row["max_rss_mb"]))
    return peaks


def known_peaks(results: Path) -> dict[Shape, float]:
    """Each shape's largest measured memory, from the runs and the efficiency account."""
    peaks = finished_peaks(results)
    for shape, mb in account_peaks(results).items():
        peaks[shape] = max(peaks.get(shape, 0.0), mb)
    return peaks
