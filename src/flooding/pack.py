"""A pack: several runs trained by one process, one after another or as one stack.

A grid's small runs cost their start-up (importing torch, loading the data) more than
their training. A pack pays it once: the members share the process, and members whose
data is the same (dataset, seed and the data settings, as for runs differing only in flood
level) share one loaded copy of it. Each member is still a run of its own, trained by the
same `train_runs` as `flooding train`, so its outputs are bit-identical to a solo run's: its
own folder, metrics.parquet, run.json, checkpoint and train.log.

The spec is JSON: {"runs": [{"out": "results/runs/...", "config": {RunConfig fields}}]},
and an adaflood member also names its setting's held-out losses ("aux_losses": FILE).

A member whose folder already holds a finished run (completed or diverged) of the same
config hash is skipped, so rerunning a pack after a kill, or with members added, trains
only what is missing. A failed member does not stop the others.

With `vectorise`, members that differ only in flood level or method train together as one
stacked model (flooding.vectorised): faster, equal to the solo runs at epoch 1 to float
tolerance, then drifting by floating-point reassociation (each run.json records the stack
it trained in: its float path). An error there is every stacked member's: each is recorded
failed (or counted, without record_failure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flooding.config import ConfigError, RunConfig, data_fields, validate
from flooding.data.registry import DatasetMissingError
from flooding.finished import run_finished
from flooding.runtime import Runtime

if TYPE_CHECKING:
    from flooding.checkpoint import SignalFlag
    from flooding.train import DataSource

LOG_FILE = "train.log"


@dataclass(frozen=True)
class Member:
    out: Path
    config: RunConfig
    aux_losses: Path | None = None  # adaflood: the setting's gathered held-out losses


def read_spec(path: Path) -> list[Member]:
    """The members of a pack spec file, each config checked as `flooding train` would."""
    if not path.is_file():
        raise ConfigError("spec", str(path), "an existing JSON file")
    try:
        spec = json.loads(path.read_text())
        members = [
            Member(
                Path(m["out"]),
                RunConfig.from_dict(m["config"]),
                Path(m["aux_losses"]) if m.get("aux_losses") else None,
            )
            for m in spec["runs"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            "spec", str(path), 'JSON {"runs": [{"out": DIR, "config": {...}}, ...]}'
        ) from exc
    outs = [m.out.resolve() for m in members]
    if len(set(outs)) != len(outs):
        raise ConfigError("spec", str(path), "members with distinct out folders")
    for member in members:
        validate(member.config)
    return members


def write_spec(path: Path, members: list[Member]) -> None:
    runs = [
        {"out": str(m.out), "config": m.config.to_dict()}
        | ({"aux_losses": str(m.aux_losses)} if m.aux_losses else {})
        for m in members
    ]
    path.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


def is_finished(member: Member) -> bool:
    """Whether member.out holds a finished run of this very config."""
    return run_finished(member.out, member.config)


def data_key(cfg: RunConfig) -> tuple[object, ...]:
    """Members with equal keys read the same data (RunConfig fields declared `data`)."""
    return tuple(getattr(cfg, name) for name in data_fields())


@contextlib.contextmanager
def member_log(out: Path) -> Iterator[None]:
    """Send the member's progress and errors to its own train.log, as a solo run's are."""
    out.mkdir(parents=True, exist_ok=True)
    with (
        open(out / LOG_FILE, "a", buffering=1) as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        yield


def stacks(members: list[Member], vectorise: bool) -> list[list[Member]]:
    """The members in training order: groups that train as one stack, and single runs."""
    if not vectorise:
        return [[m] for m in members]
    from flooding.vectorised import stack_key

    groups: dict[tuple[object, ...], list[Member]] = {}
    for member in members:
        groups.setdefault(stack_key(member.config), []).append(member)
    return list(groups.values())


def run_pack(members: list[Member], runtime: Runtime, vectorise: bool = False) -> int:
    """Train every unfinished member; returns the exit code.

    0 when every member ended (completed, diverged, or failed with runtime.record_failure),
    EXIT_CHECKPOINTED when a signal stopped the pack (the member in training checkpointed;
    a rerun continues it and the rest), 1 when a member raised without record_failure
    (after the others were trained).
    """
    from flooding.checkpoint import EXIT_CHECKPOINTED, SignalFlag
    from flooding.data import load_data
    from flooding.runtime import resolve_device, set_threads

    set_threads(runtime)
    device = resolve_device(runtime.device)
    todo = [m for m in members if not is_finished(m)]
    print(f"pack: {len(members)} runs, {len(members) - len(todo)} already finished", flush=True)
    # Members with the same data one after another, so that one loaded copy serves them.
    todo.sort(key=lambda m: [str(v) for v in data_key(m.config)])
    cache: dict[tuple[object, ...], object] = {}

    def load(cfg: RunConfig):
        key = data_key(cfg)
        if key not in cache:
            cache.clear()  # one copy at a time: members sharing it are adjacent
            cache[key] = load_data(cfg, runtime.data_root, device)
        return cache[key]

    failures = 0
    with SignalFlag() as stop:
        for group in stacks(todo, vectorise):
            codes = train_group(group, runtime, load, stop)
            if codes is None:  # they stand at different points: one by one
                codes = [code for m in group for code in train_group([m], runtime, load, stop)]
            for member, code in zip(group, codes, strict=True):
                print(f"pack: {member.out}: exit {code}", flush=True)
                if code == EXIT_CHECKPOINTED:
                    print(
                        "pack: stopped by a signal; rerun the same command to resume",
                        file=sys.stderr,
                    )
                    return EXIT_CHECKPOINTED
                failures += code != 0
    return 1 if failures else 0


def train_group(
    members: list[Member], runtime: Runtime, load: DataSource, stop: SignalFlag
) -> list[int] | None:
    """Exit codes of members trained together (one alone, or several as one stack), each
    logging to its own train.log; None when a stack's members stand at different points.
    An unexpected error without record_failure is every member's: exit code 1 each, the
    other groups carry on."""
    from flooding.train import train_runs

    jobs = [
        (m.config, dataclasses.replace(runtime, out=m.out, aux_losses=m.aux_losses))
        for m in members
    ]
    try:
        return train_runs(jobs, load, stop, lambda m: member_log(members[m].out))
    except (ConfigError, DatasetMissingError):
        raise
    except Exception:
        for member in members:
            with member_log(member.out):
                traceback.print_exc()
        return [1] * len(members)
