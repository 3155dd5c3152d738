"""Packs: runs of a grid grouped into one Snakemake job, trained by `flooding train-pack`.

The config's `pack: {by, max_runs}` (global, per architecture, per dataset) says which
grid axes a pack may span. Runs alike in every other field, from the same dataset and
architecture entries, are cut into chunks of max_runs; a run left alone stays a job of its
own (`flooding train`). A pack asks for the largest request of its members and the sum of
their runtimes; a chunk that would ask for more than the members' `max_runtime` is cut
again (`fit_time_limit`), each stack of runs kept whole where it fits.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass

from flooding.config import config_hash, pack_axes
from flooding.jobs import Resources, Run


@dataclass(frozen=True)
class Pack:
    """Runs trained by one `flooding train-pack` job.

    The name ends in a digest of the members' paths and configs: a changed member set
    is another job, and the engine skips the members already finished.
    """

    name: str
    runs: tuple[Run, ...]

    @property
    def resources(self) -> Resources:
        """The largest request of any member; the members' runtimes add up."""
        each = [run.resources for run in self.runs]
        return Resources(
            threads=max(r.threads for r in each),
            mem_mb=max(r.mem_mb for r in each),
            runtime=sum(r.runtime for r in each),
            gpu=max(r.gpu for r in each),
        )

    @property
    def spec(self) -> str:
        """The `flooding train-pack` spec (JSON), members' folders under results/runs/."""
        runs = [
            {"out": f"results/runs/{r.path}", "config": r.config.to_dict()}
            | ({"aux_losses": r.aux_losses} if r.aux_losses else {})
            for r in self.runs
        ]
        return json.dumps({"runs": runs}, separators=(",", ":"))

    @property
    def vectorise_option(self) -> str:
        """How `flooding train-pack` trains the runs that can stack (config `pack.vectorise`;
        the runs of a pack share their pack settings)."""
        return "--vectorise" if self.runs[0].pack.vectorise else "--no-vectorise"

    @property
    def aux_losses(self) -> list[str]:
        """The held-out losses its adaflood members read, each once."""
        return list(dict.fromkeys(r.aux_losses for r in self.runs if r.aux_losses))

    @property
    def download(self) -> str | None:
        return self.runs[0].download


def group_packs(runs: Sequence[Run]) -> tuple[Pack, ...]:
    """Runs grouped into packs of two or more: runs alike in every field but their
    settings' `by` axes, from the same dataset and arch entries, in config order, cut
    into chunks of max_runs. A run left alone stays a job of its own."""
    axes = pack_axes()
    groups: dict[tuple[object, ...], list[Run]] = {}
    for run in runs:
        free = {name for axis in run.pack.by for name in axes[axis]}
        fixed = tuple((k, v) for k, v in run.config.to_dict().items() if k not in free)
        entry = run.path.split("/")[:2]  # dataset and arch labels
        groups.setdefault((run.pack, *entry, fixed), []).append(run)
    packs = []
    for group in groups.values():
        # Runs that differ only in flood level or method next to each other, so that a
        # chunk cuts as few of them apart as it can: together they train as one stacked
        # model (flooding.vectorised). A stable sort keeps config order within them.
        members = sorted(group, key=_stack_order)
        size, limit = members[0].pack.max_runs, members[0].resources.max_runtime
        for start in range(0, len(members), size):
            for piece in fit_time_limit(members[start : start + size], limit):
                if len(piece) > 1:
                    packs.append(Pack(pack_name(piece), tuple(piece)))
    return tuple(packs)


def fit_time_limit(runs: Sequence[Run], limit: int | None) -> list[list[Run]]:
    """Runs (in stack order) cut into the fewest consecutive pieces whose runtimes add up
    to at most `limit` minutes, the longest piece as short as that allows; the runs whose
    configs differ only in flood level or method (a stack) stay in one piece unless they
    alone ask for more than the limit. A run longer than the limit is a piece of its own
    (flooding.learned refuses it). Runs that fit are one piece, as without a limit."""
    if limit is None or _minutes(runs) <= limit:
        return [list(runs)]
    stacks = [list(stack) for _, stack in itertools.groupby(runs, key=_stack_order)]
    units = [_joined(piece) for stack in stacks for piece in _cut([[r] for r in stack], limit)]
    return [_joined(piece) for piece in _cut(units, limit)]


def _minutes(runs: Sequence[Run]) -> int:
    return sum(run.resources.runtime for run in runs)


def _joined(units: list[list[Run]]) -> list[Run]:
    return [run for unit in units for run in unit]


def _cut(units: list[list[Run]], limit: int) -> list[list[list[Run]]]:
    """`units` (consecutive runs, each kept whole) in the fewest consecutive pieces of at
    most `limit` minutes, cut at the smallest cap that keeps that many pieces, so that
    they are as even as the units allow."""
    count = len(_greedy(units, limit))
    low, high = 1, limit
    while low < high:  # the smallest cap that needs no more pieces
        middle = (low + high) // 2
        if len(_greedy(units, middle)) <= count:
            high = middle
        else:
            low = middle + 1
    return _greedy(units, low)


def _greedy(units: list[list[Run]], cap: int) -> list[list[list[Run]]]:
    """Units in order, a new piece whenever the next would take this one above `cap`."""
    pieces: list[list[list[Run]]] = []
    minutes = 0
    for unit in units:
        cost = _minutes(unit)
        if not pieces or minutes + cost > cap:
            pieces.append([])
            minutes = 0
        pieces[-1].append(unit)
        minutes += cost
    return pieces


def _stack_order(run: Run) -> list[str]:
    flood = pack_axes()["flood"]
    return [str(v) for k, v in run.config.to_dict().items() if k not in flood]


def pack_name(runs: Sequence[Run]) -> str:
    """e.g. digits-noise0/mlp/wd0-aug0/pack-3f2a9c1e0b: the path parts the members share,
    then a digest of their paths and configs."""
    parts = [run.path.split("/") for run in runs]
    shared = [p[0] for p in zip(*parts, strict=False) if len(set(p)) == 1]
    identity = json.dumps([[run.path, config_hash(run.config)] for run in runs])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return "/".join([*shared, f"pack-{digest}"])
