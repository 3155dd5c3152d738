"""Snakemake's lock on its working directory, and how to tell that it is stale.

While it runs, Snakemake locks its working directory (files under .snakemake/locks/) and
removes the lock when it ends. A SIGKILL, an out-of-memory kill or a power loss leaves
the lock behind, and every later invocation stops ("Directory cannot be locked") until
someone runs `snakemake --unlock`: Snakemake's lock does not say who holds it.

So each invocation of this workflow also holds an operating-system lock (flock) on
.snakemake/invocations.lock, shared, for as long as its process lives; the kernel drops
it when the process ends, however it ends. An invocation that finds Snakemake's lock
files and can take that lock exclusively knows that no other invocation is alive: the
files are stale, and it removes them, as `snakemake --unlock` would. While another
invocation is alive, its lock is left to Snakemake.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import IO

INVOCATIONS_FILE = "invocations.lock"


@dataclass
class Invocation:
    """This process's hold on the working directory: keep it referenced while the process
    lives (closing the file releases the hold)."""

    held: IO[str]
    # Snakemake's lock files found stale and removed; empty when there were none.
    removed: list[Path]
    # Whether Snakemake's lock files are present and another invocation is alive.
    locked_by_another: bool


def enter(state_dir: Path = Path(".snakemake")) -> Invocation:
    """Hold the shared lock on `state_dir`/invocations.lock, first removing Snakemake's
    lock files under `state_dir`/locks if no other invocation of the workflow is alive."""
    state_dir.mkdir(parents=True, exist_ok=True)
    held = (state_dir / INVOCATIONS_FILE).open("a")
    lock_files = sorted((state_dir / "locks").glob("*.lock"))
    removed: list[Path] = []
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        alone = False  # another invocation holds it: its lock files are its own
    except OSError:  # a file system without locks: nothing can be told, nothing is done
        return Invocation(held, [], locked_by_another=False)
    else:
        alone = True
        for path in lock_files:
            path.unlink(missing_ok=True)
            removed.append(path)
    # Downgrade to shared (or wait the moment another invocation holds it exclusively).
    fcntl.flock(held, fcntl.LOCK_SH)
    return Invocation(held, removed, locked_by_another=bool(lock_files) and not alone)
