"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a flooding.state.TrainState saved field by field: the model, the
optimiser, the random generators, the epoch and batch reached, the partial sums of the
interrupted epoch and the metric rows so far. It contains
only tensors and plain Python values, so it loads with `torch.load(weights_only=True)`:
opening a checkpoint never runs code from the file.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import torch

from flooding.atomic import atomic_write

CHECKPOINT_FILE = "checkpoint.pt"
# The checkpoint before the last, kept by the members of a stack (flooding.vectorised):
# a kill between their saves leaves some one checkpoint ahead of the rest.
PREVIOUS_CHECKPOINT_FILE = "checkpoint.previous.pt"
FORMAT_VERSION = 2  # 2: the fields of flooding.state.TrainState
# Exit code after a checkpoint forced by SIGTERM/SIGUSR2: EX_TEMPFAIL from sysexits.h,
# "temporary failure, try again". The run is incomplete but resumable: rerunning the same
# command continues from the checkpoint. SLURM/submitit requeue on a non-zero exit.
EXIT_CHECKPOINTED = 75
CHECKPOINT_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


def save_checkpoint(out: Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    """Write a TrainState snapshot (plain values and CPU tensors) atomically; with
    keep_previous the checkpoint it replaces stays, as PREVIOUS_CHECKPOINT_FILE."""
    payload = {"format_version": FORMAT_VERSION, **state}
    current = out / CHECKPOINT_FILE
    if keep_previous and current.exists():
        atomic_write(out / PREVIOUS_CHECKPOINT_FILE, lambda tmp: _link_or_copy(current, tmp))
    atomic_write(current, lambda tmp: torch.save(payload, tmp))


def _link_or_copy(source: Path, target: Path) -> None:
    try:  # a hard link costs nothing: the save that follows replaces the name, not the file
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, target)


def load_checkpoint(
    out: Path, expected_hash: str, name: str = CHECKPOINT_FILE
) -> dict[str, Any] | None:
    """The saved TrainState fields in `out`, or None if there is none to resume.

    A checkpoint written by another config (the settings of a run changed while its output
    folder stayed, as when a workflow's epochs change) or by another format version is
    stale: resuming it would mix two experiments, so the run starts afresh and the next
    save replaces it.
    """
    path = out / name
    if not path.exists():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    version = payload.pop("format_version", None)
    if version != FORMAT_VERSION:
        print(
            f"{path}: checkpoint format {version!r}, this version reads {FORMAT_VERSION}; "
            "starting afresh",
            file=sys.stderr,
        )
        return None
    if payload["config_hash"] != expected_hash:
        print(
            f"{path} belongs to config {payload['config_hash']}, not {expected_hash}; "
            "starting afresh",
            file=sys.stderr,
        )
        return None
    return payload


def rewind_checkpoint(out: Path) -> None:
    """Make the previous checkpoint the current one again, so that the files agree with a
    run resumed from it (and the next save keeps it as the previous one)."""
    os.replace(out / PREVIOUS_CHECKPOINT_FILE, out / CHECKPOINT_FILE)


def remove_checkpoint(out: Path) -> None:
    """Drop the checkpoints of a finished run: they are large and no longer needed."""
    for name in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE):
        (out / name).unlink(missing_ok=True)


def to_cpu(tree: Any) -> Any:
    """Copy of a nest of dicts/lists with every tensor moved to the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu().clone()
    if isinstance(tree, dict):
        return {key: to_cpu(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_cpu(value) for value in tree)
    return tree


class SignalFlag:
    """Records SIGTERM/SIGUSR2 so the loop can checkpoint at the next batch boundary.

    The handler only sets a flag: checkpointing inside a signal handler could interrupt
    an optimiser step half-way.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signum

    def __enter__(self) -> SignalFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in CHECKPOINT_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
