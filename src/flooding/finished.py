"""Which runs are finished, read from their folders without torch.

A run is finished when its folder holds a run.json of its very config (the same config
hash) with status completed or diverged, and its metrics.parquet. A failed run is not:
it is retried, and may resume from its checkpoint. A pack trains only its members that
are not finished; the workflow plans no job at all for a pack whose members all are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from flooding.config import RunConfig, config_hash

if TYPE_CHECKING:
    from flooding.packing import Pack

METRICS_FILE = "metrics.parquet"
RUN_FILE = "run.json"
FINISHED = ("completed", "diverged")


def run_finished(out: Path, cfg: RunConfig) -> bool:
    """Whether `out` holds a finished run of this very config."""
    try:
        record = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (
        record.get("config_hash") == config_hash(cfg)
        and record.get("status") in FINISHED
        and (out / METRICS_FILE).is_file()
    )


def pack_targets(pack: Pack, marker: str) -> list[str]:
    """What the aggregation waits for from a pack: its job's marker, or, when no marker
    exists and every member is already finished (a level was removed, or the runs were
    packed otherwise), the members' own files, so that no job is planned to train nothing.

    An existing marker is kept (the pack's job is done and is not planned again): its
    members then stay the same inputs as when it ran, and the aggregation is not redone.
    """
    folders = [Path("results/runs", run.path) for run in pack.runs]
    if Path(marker).exists() or not all(
        run_finished(folder, run.config) for folder, run in zip(folders, pack.runs, strict=True)
    ):
        return [marker]
    return [str(folder / name) for folder in folders for name in (METRICS_FILE, RUN_FILE)]
