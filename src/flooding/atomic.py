"""Atomic file writes: readers, and a run killed part-way, never see half a file."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file next to `path`, then rename it over `path`.

    A rename within one directory is atomic, so readers see either the old complete file
    or the new complete file, never a truncated one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name in the same folder (a rename across file systems is not atomic); the
    # writer creates it, so it gets the usual permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
