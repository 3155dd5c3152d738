"""A lock left by a killed Snakemake is found stale and removed; a live one is left alone."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from flooding.stale_lock import enter

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
