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

The files a killed invocation's jobs were writing are marked incomplete under
.snakemake/incomplete/. Snakemake runs such jobs again (--rerun-incomplete), but only
those it finds before it evaluates the checkpoints again: a job that a checkpoint adds (a
search round's pack spec, say) would keep its half-written file. So an invocation that is
alone also removes those files (`remove_half_written`); their jobs then run again because
their output is missing. A marker with an external job id (a cluster job, as Snakemake
marks it at submission) is left; once the job's own Snakemake starts, it marks the file
again without one (docs/workflow.md, "After a crash").
"""

from __future__ import annotations

import base64
import fcntl
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO

INVOCATIONS_FILE = "invocations.lock"
INCOMPLETE_FOLDER = "incomplete"


@dataclass
class Invocation:
    """This process's hold on the working directory: keep it referenced while the process
    lives (closing the file releases the hold)."""

    held: IO[str]
    # Snakemake's lock files found stale and removed; empty when there were none.
    removed: list[Path]
    # Whether Snakemake's lock files are present and another invocation is alive.
    locked_by_another: bool
    # Whether no other invocation is alive (then the markers of incomplete files are stale).
    alone: bool


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
        return Invocation(held, [], locked_by_another=False, alone=False)
    else:
        alone = True
        for path in lock_files:
            path.unlink(missing_ok=True)
            removed.append(path)
    # Downgrade to shared (or wait the moment another invocation holds it exclusively).
    fcntl.flock(held, fcntl.LOCK_SH)
    return Invocation(held, removed, locked_by_another=bool(lock_files) and not alone, alone=alone)


def marked_incomplete(state_dir: Path = Path(".snakemake")) -> list[Path]:
    """The files that Snakemake's markers under `state_dir`/incomplete name as being written
    by a job it ran itself (no external job id), as paths relative to the working
    directory. A marker's name is the file's path, URL-safe base64, split into folders
    ("@"-prefixed parts) where it is longer than a file name may be."""
    root = state_dir / INCOMPLETE_FOLDER
    paths = []
    for marker in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = marker.relative_to(root).parts
        try:
            name = base64.urlsafe_b64decode("".join(p.removeprefix("@") for p in parts))
            record = json.loads(marker.read_text() or "{}")
        except (ValueError, OSError):  # not a marker (Snakemake's migration flag, say)
            continue
        if isinstance(record, dict) and record.get("external_jobid") is None:
            paths.append(Path(name.decode()))
    return paths


def remove_half_written(state_dir: Path = Path(".snakemake")) -> list[Path]:
    """Remove the files that an invocation's own jobs left half-written; call only when
    `enter` found this invocation alone (no job of another is writing them)."""
    removed = []
    for path in marked_incomplete(state_dir):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
