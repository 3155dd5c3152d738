"""A pack: several runs trained by one process, one after another or as one stack.

A grid's small runs cost their start-up (importing torch, loading the data) more than
their training. A pack pays it once: the members share the process, and members whose
data is the same (dataset, seed and the data settings, as for runs differing only in flood
level) share one loaded copy of it. Each member is still a run of its own, trained by the
same `train_run` as `flooding train`, so its outputs are bit-identical to a solo run's: its
own folder, metrics.parquet, run.json, checkpoint and train.log.

The spec is JSON: {"runs": [{"out": "results/runs/...", "config": {RunConfig fields}}]}.

A member whose folder already holds a finished run (completed or diverged) of the same
config hash is skipped, so rerunning a pack after a kill, or with members added, trains
only what is missing. A failed member does not stop the others.

With `vectorise`, members that differ only in flood level or method train together as one
stacked model (flooding.vectorised): faster, equal to the solo runs at epoch 1 to float
tolerance, then drifting by floating-point reassociation. An error there is every stacked
member's: each is recorded failed (or counted, without record_failure).
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

from flooding.config import ConfigError, RunConfig, config_hash, validate
from flooding.data.registry import DatasetMissingError
from flooding.metrics import METRICS_FILE, RUN_FILE
from flooding.runtime import Runtime

if TYPE_CHECKING:
    from flooding.checkpoint import SignalFlag
    from flooding.train import DataSource

LOG_FILE = "train.log"
FINISHED = ("completed", "diverged")  # a failed run is retried: it may resume
# The RunConfig fields load_data reads: members equal in these share one copy of the data.
DATA_FIELDS = (
    "dataset",
    "train_size",
    "test_size",
    "val_fraction",
    "label_noise",
    "gaussians_mean",
    "spiral_noise",
    "seed",
)


@dataclass(frozen=True)
class Member:
    out: Path
    config: RunConfig


def read_spec(path: Path) -> list[Member]:
    """The members of a pack spec file, each config checked as `flooding train` would."""
    if not path.is_file():
        raise ConfigError("spec", str(path), "an existing JSON file")
    try:
        spec = json.loads(path.read_text())
        members = [Member(Path(m["out"]), RunConfig.from_dict(m["config"])) for m in spec["runs"]]
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
    runs = [{"out": str(m.out), "config": m.config.to_dict()} for m in members]
    path.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


def is_finished(member: Member) -> bool:
    """Whether member.out holds a finished run of this very config."""
    try:
        record = json.loads((member.out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (
        record.get("config_hash") == config_hash(member.config)
        and record.get("status") in FINISHED
        and (member.out / METRICS_FILE).is_file()
    )


def data_key(cfg: RunConfig) -> tuple[object, ...]:
    return tuple(getattr(cfg, name) for name in DATA_FIELDS)


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
            codes = train_stack(group, runtime, load, stop) if len(group) > 1 else None
            for member, code in zip(group, codes or [None] * len(group), strict=True):
                if code is None:  # alone, or a group that could not stack
                    code = train_member(member, runtime, load, stop)
                print(f"pack: {member.out}: exit {code}", flush=True)
                if code == EXIT_CHECKPOINTED:
                    print(
                        "pack: stopped by a signal; rerun the same command to resume",
                        file=sys.stderr,
                    )
                    return EXIT_CHECKPOINTED
                failures += code != 0
    return 1 if failures else 0


def train_member(member: Member, runtime: Runtime, load: DataSource, stop: SignalFlag) -> int:
    """One member trained as `flooding train` would, logging to its own train.log."""
    from flooding.train import train_run

    with member_log(member.out):
        try:
            return train_run(
                member.config, dataclasses.replace(runtime, out=member.out), load, stop
            )
        except (ConfigError, DatasetMissingError):
            raise
        except Exception:
            traceback.print_exc()
            return 1


def train_stack(
    members: list[Member], runtime: Runtime, load: DataSource, stop: SignalFlag
) -> list[int] | None:
    """Exit codes of members trained as one stack; None when they stand at different
    points (some resumed from other epochs than the rest, as when a member was added) and
    must train one by one."""
    from flooding.checkpoint import EXIT_CHECKPOINTED
    from flooding.metrics import now_iso
    from flooding.train import finish, prepare, report_interrupted
    from flooding.vectorised import Stack, can_stack, fit_stack, rewind_to_common_point

    runtimes = [dataclasses.replace(runtime, out=m.out) for m in members]
    started, prepared = now_iso(), []
    codes = [0] * len(members)

    def done(m: int, status: str, error: str | None) -> None:
        with member_log(members[m].out):
            if error is not None:
                print(f"{status}: {error}", file=sys.stderr)
            trained = prepared[m] if m < len(prepared) else None
            finish(members[m].config, runtimes[m], trained, status, error, started)

    try:
        for member, member_runtime in zip(members, runtimes, strict=True):
            with member_log(member.out):
                prepared.append(prepare(member.config, member_runtime, load))
        prepared = rewind_to_common_point(prepared)
        if not can_stack([state for _, state in prepared]):
            return None
        print(f"pack: {len(members)} runs trained as one stacked model", flush=True)
        stack = Stack.of(*map(list, zip(*prepared, strict=True)))
        if not fit_stack(stack, stop, lambda m: member_log(members[m].out), done):
            for member, member_runtime in zip(members, runtimes, strict=True):
                with member_log(member.out):
                    report_interrupted(stop, member_runtime)
            return [EXIT_CHECKPOINTED] * len(members)
    except (ConfigError, DatasetMissingError):
        raise
    except Exception as exc:
        for m, member in enumerate(members):
            with member_log(member.out):
                traceback.print_exc()
                if runtime.record_failure and not is_finished(member):
                    done(m, "failed", f"{type(exc).__name__}: {exc}")
                elif not runtime.record_failure:
                    codes[m] = 1
    return codes
