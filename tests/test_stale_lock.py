"""A lock left by a killed Snakemake is found stale and removed; a live one is left alone;
files that a killed invocation's own jobs left half-written are removed."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from flooding.stale_lock import enter, marked_incomplete, remove_half_written

HOLD = (
    "import sys; from pathlib import Path; from flooding.stale_lock import enter\n"
    "invocation = enter(Path(sys.argv[1]))\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def snakemake_lock(state_dir: Path) -> list[Path]:
    """Lock files as Snakemake writes them while it runs."""
    locks = state_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    paths = [locks / "0.input.lock", locks / "0.output.lock"]
    for path in paths:
        path.write_text("results/summary.parquet\n")
    return paths


def test_without_a_lock_nothing_is_removed(tmp_path):
    invocation = enter(tmp_path / ".snakemake")
    assert (invocation.removed, invocation.locked_by_another) == ([], False)
    invocation.held.close()


def test_a_lock_whose_invocation_was_killed_is_removed_and_a_live_ones_is_kept(tmp_path):
    state = tmp_path / ".snakemake"
    # Another invocation, in its own process, holding the workflow's lock until killed.
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout is not None and other.stdout.readline() == "held\n"
    lock = snakemake_lock(state)

    live = enter(state)
    assert (live.removed, live.locked_by_another) == ([], True)
    assert all(path.exists() for path in lock)
    live.held.close()

    other.kill()  # SIGKILL: no clean-up in the process, as after a power loss
    assert other.wait(timeout=60) == -signal.SIGKILL
    other.stdin.close()
    other.stdout.close()
    stale = enter(state)
    assert (stale.removed, stale.locked_by_another) == (lock, False)
    assert not any(path.exists() for path in lock)
    stale.held.close()


def mark_incomplete(state_dir: Path, path: str, external_jobid: str | None = None) -> None:
    """A marker as Snakemake writes one when a job starts: the output's path, URL-safe
    base64, split into "@"-prefixed folders where longer than a file name may be."""
    root = state_dir / "incomplete"
    root.mkdir(parents=True, exist_ok=True)
    name = base64.urlsafe_b64encode(path.encode()).decode()
    limit = os.pathconf(root, "PC_NAME_MAX") - 1
    parts = [name[i : i + limit] for i in range(0, len(name), limit)]
    marker = root.joinpath(*["@" + p for p in parts[:-1]], parts[-1])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"external_jobid": external_jobid}))


def test_files_left_half_written_by_local_jobs_are_removed_and_cluster_jobs_files_kept(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    state = Path(".snakemake")
    spec = Path("results/packs/gaussians/seed0/pack-1.json")
    deep = Path("results/runs/" + "/".join(["a-long-folder-name" * 4] * 3) + "/metrics.parquet")
    on_cluster = Path("results/packs/gaussians/seed0/pack-2.done")
    finished = Path("results/packs/gaussians/seed0/pack-0.json")
    for path in (spec, deep, on_cluster, finished):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    mark_incomplete(state, str(spec))
    mark_incomplete(state, str(deep))  # a name longer than one file name may be
    mark_incomplete(state, str(on_cluster), external_jobid="4242")
    mark_incomplete(state, "results/never/written.json")
    (state / "incomplete" / "migration_underway").touch()  # Snakemake's flag, no marker

    assert list((state / "incomplete").glob("@*")), "the long marker is split into folders"
    assert sorted(marked_incomplete(state)) == sorted(
        [spec, deep, Path("results/never/written.json")]
    )
    assert sorted(remove_half_written(state)) == sorted([spec, deep])
    assert not spec.exists() and not deep.exists()
    assert on_cluster.exists() and finished.exists()
