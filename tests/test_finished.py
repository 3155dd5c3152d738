"""Which runs count as finished, and what the workflow waits for from a pack (flooding.finished)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_grid import small

from flooding.config import RunConfig, config_hash
from flooding.finished import METRICS_FILE, RUN_FILE, pack_targets, run_finished
from flooding.grid import expand_grid
from flooding.packing import Pack

CFG = RunConfig(dataset="spiral", epochs=2)


def write_run(out: Path, cfg: RunConfig, status: str = "completed") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps({"config_hash": config_hash(cfg), "status": status}))
    (out / METRICS_FILE).write_bytes(b"PAR1")


@pytest.mark.parametrize("status", ["completed", "diverged"])
def test_a_completed_or_diverged_run_of_the_same_config_is_finished(tmp_path, status):
    write_run(tmp_path, CFG, status)
    assert run_finished(tmp_path, CFG)


def test_a_failed_changed_half_written_or_missing_run_is_not(tmp_path):
    write_run(tmp_path / "failed", CFG, "failed")
    write_run(tmp_path / "changed", RunConfig(dataset="spiral", epochs=3))
    write_run(tmp_path / "no-metrics", CFG)
    (tmp_path / "no-metrics" / METRICS_FILE).unlink()
    write_run(tmp_path / "garbled", CFG)
    (tmp_path / "garbled" / RUN_FILE).write_text("{")
    for name in ("failed", "changed", "no-metrics", "garbled", "never-started"):
        assert not run_finished(tmp_path / name, CFG), name


def a_pack() -> Pack:
    grid = expand_grid(
        small(
            pack={"by": ["flood"], "max_runs": 8},
            flood={"methods": ["flood"], "levels": [0.0, 0.1]},
        )
    )
    (pack,) = grid.packs
    return pack


def test_a_pack_with_nothing_to_train_is_waited_for_through_its_members_files(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    pack = a_pack()
    marker = f"results/packs/{pack.name}.done"
    folders = [Path("results/runs", run.path) for run in pack.runs]
    assert pack_targets(pack, marker) == [marker]  # nothing trained yet: the job
    write_run(folders[0], pack.runs[0].config)
    assert pack_targets(pack, marker) == [marker]  # one member still to train
    write_run(folders[1], pack.runs[1].config)
    assert pack_targets(pack, marker) == [
        f"{folder}/{name}" for folder in folders for name in (METRICS_FILE, RUN_FILE)
    ]
    # A pack whose job has run keeps its marker, so its inputs do not change afterwards.
    Path(marker).parent.mkdir(parents=True)
    Path(marker).touch()
    assert pack_targets(pack, marker) == [marker]
