"""The adaptive search for the flood level b: which levels each round trains, decided from
what the earlier rounds measured (docs/search.md gives the rule and the reasons for it).

A search covers one setting (dataset and label noise, architecture, regularisers) and
every flood method of it, over all seeds:

- round 0 is the b = 0 runs, every method's baseline;
- round 1 is the config's level list, or, with `levels: auto`, the predicted b (the b = 0
  runs' training loss at their best validation epoch: the loss where ordinary training
  stopped gaining, which a level there holds it at) and `initial` - 1 levels spread
  evenly over the levels flooding engages at: above the b = 0 runs' lowest training loss
  (a level below it is reached late or never), below the untrained loss (ln C, or the
  b = 0 runs' loss before the first step if lower: a level there pushes the loss up from
  the start).
  The prediction is a guess, not a bound: the best level has lain on either side of it;
- each later round refines, per method, around the level with the best mean final
  validation accuracy over seeds: the midpoints towards its neighbours, and a step past
  it when it is the highest level tried (up to the untrained loss), or below it when it
  is the lowest level b > 0. A method stops at `rounds` refinements, when the best
  level's neighbours are within `tolerance` of it, or when a round did not move its best
  level.

Every decision is a small JSON file, results/search/<setting>/round<r>.json, written by
the workflow's checkpoint once the previous round's runs have finished; the runs
themselves are ordinary runs (flooding.grid), their folders named by level as any
other's. Nothing here imports torch: a decision is a light `flooding search-round` process.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from flooding.atomic import atomic_write
from flooding.config import RunConfig
from flooding.jobs import PackSettings, Resources, Run, format_number
from flooding.validation import Range

# Levels are rounded to this many decimals, so that run folders read well (flood0.2346)
# and a level decided twice is the same run.
LEVEL_DECIMALS = 4
SEARCH_FOLDER = "results/search"
# Why a method's search ended; UPPER_END is the one a reader must be warned of: the best
# level is the highest tried and no level fits between it and the untrained loss.
ROUNDS = "rounds"
TOLERANCE = "tolerance"
UNCHANGED = "best unchanged"
UPPER_END = "upper end"


class SearchError(ValueError):
    """A search that cannot decide: its b = 0 runs left nothing to decide from."""


def _plan_key(default: Any, help: str, check: Range) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, "check": check})


@dataclass(frozen=True)
class SearchPlan:
    """The `flood: search:` mapping of a config; the schema's keys, defaults, ranges and
    descriptions are generated from these fields (flooding.schema)."""

    initial: int = _plan_key(
        5,
        "levels b > 0 in the first round (levels: auto): the predicted b and the rest spread"
        " over the levels flooding engages at",
        Range(integer=True, minimum=1),
    )
    rounds: int = _plan_key(
        3, "most refinement rounds after the first", Range(integer=True, minimum=1)
    )
    tolerance: float = _plan_key(
        0.01,
        "stop refining where the best level's neighbours are this close to it",
        Range(exclusive_minimum=0),
    )


@dataclass(frozen=True)
class Search:
    """One searched setting: its b = 0 runs (one per seed), methods and plan."""

    name: str  # the run paths' setting part: gaussians-noise0.1/mlp/wd0-aug0
    methods: tuple[str, ...]
    baselines: tuple[Run, ...]
    # Levels b > 0 of a first round given by the config; empty: decided from round 0.
    listed: tuple[float, ...]
    plan: SearchPlan
    num_classes: int

    @property
    def first_decided_round(self) -> int:
        return 2 if self.listed else 1

    @property
    def last_round(self) -> int:
        """The last round that may train runs; the decision after it only stops."""
        return 1 + self.plan.rounds

    @property
    def most_later_runs(self) -> int:
        """The most runs its decided rounds can add: per method and seed, the first
        round's levels (levels: auto) and two a refinement round."""
        levels = (0 if self.listed else self.plan.initial) + 2 * self.plan.rounds
        return levels * len(self.methods) * len(self.baselines)

    @property
    def seeds(self) -> list[int]:
        return [run.config.seed for run in self.baselines]

    def decision_path(self, round_: int) -> str:
        return f"{SEARCH_FOLDER}/{self.name}/round{round_}.json"

    def to_json(self) -> str:
        """The search as JSON (from_json), the file from which its jobs decide and tabulate
        its rounds in processes of their own."""
        data = dataclasses.asdict(self) | {"baselines": [_run_record(r) for r in self.baselines]}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Search:
        data = json.loads(text)
        return cls(
            name=data["name"],
            methods=tuple(data["methods"]),
            baselines=tuple(_run_from_record(r) for r in data["baselines"]),
            listed=tuple(data["listed"]),
            plan=SearchPlan(**data["plan"]),
            num_classes=data["num_classes"],
        )

    def runs(self, levels: Mapping[str, Sequence[float]]) -> list[Run]:
        """The runs of these levels per method, for every seed, as the grid names them."""
        runs = []
        for method, method_levels in levels.items():
            for level in method_levels:
                for base in self.baselines:
                    cfg = dataclasses.replace(base.config, flood_method=method, flood_level=level)
                    head = base.path.split("/")[:3]
                    path = "/".join([*head, f"{method}{format_number(level)}", f"seed{cfg.seed}"])
                    runs.append(dataclasses.replace(base, path=path, config=cfg))
        return runs


def _run_record(run: Run) -> dict[str, Any]:
    return dataclasses.asdict(run) | {"config": run.config.to_dict()}


def _run_from_record(record: dict[str, Any]) -> Run:
    pack = record["pack"] | {"by": tuple(record["pack"]["by"])}
    return Run(
        path=record["path"],
        config=RunConfig.from_dict(record["config"]),
        resources=Resources(**record["resources"]),
        pack=PackSettings(**pack),
        aux=record["aux"],
    )


def read_search(path: str | Path) -> Search:
    return Search.from_json(Path(path).read_text())


@dataclass(frozen=True)
class Decision:
    """One round's decision: the levels it adds per method (none: that method stopped),
    and what it was decided from (mean final validation accuracy of each level tried)."""

    round: int
    levels: dict[str, list[float]]
    stopped: dict[str, str]  # method -> reason, for every method that has stopped
    best: dict[str, float]
    tried: dict[str, list[tuple[float, float]]]  # method -> (level, mean val acc), sorted
    lower: float  # the b = 0 runs' lowest training loss: no level below it engages
    upper: float  # the untrained loss: no level is tried at or above it
    seeds: list[int]
    predicted: float  # b predicted from the b = 0 runs alone

    @property
    def done(self) -> bool:
        return not any(self.levels.values())

    def describe(self) -> str:
        """One line a method, e.g. "round 2, flood: best b = 0.2; adds 0.15, 0.25"."""
        lines = []
        for method, new in self.levels.items():
            best = self.best.get(method)
            text = f"round {self.round}, {method}:"
            if best is not None:
                text += f" best b = {best:g};"
            if new:
                text += " adds " + ", ".join(f"{b:g}" for b in new)
            else:
                text += f" stopped ({self.stopped.get(method, '')})"
            lines.append(text)
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Decision:
        data = json.loads(text)
        data["tried"] = {m: [tuple(p) for p in pairs] for m, pairs in data["tried"].items()}
        # Decisions written while round 1 started at the predicted b had it as their lower
        # end; read so, a search decided then still tabulates as it ran.
        data.setdefault("predicted", data["lower"])
        return cls(**data)


def read_decision(path: str | Path) -> Decision:
    return Decision.from_json(Path(path).read_text())


def round_level(value: float) -> float:
    return round(float(value), LEVEL_DECIMALS)


class Measures(NamedTuple):
    """What a search reads of one finished run; NaN where the run has none (a failed run,
    or one without an epoch 0)."""

    final_val_acc: float
    loss_at_best: float  # training loss at the epoch of best validation accuracy
    start_loss: float  # training loss before the first step (epoch 0)
    lowest_loss: float  # lowest training loss of any epoch


class Bounds(NamedTuple):
    """A search's first-round anchors, measured on its b = 0 runs."""

    predicted: float
    lower: float
    upper: float


def untrained_loss(num_classes: int, epoch0_losses: Sequence[float]) -> float:
    """The loss of a model that has learnt nothing: ln C, or the b = 0 runs' mean loss
    before the first step when that is lower (a level at or above it floods from the
    start). The report's flag of such levels uses the same bound."""
    bounds = [math.log(num_classes)]
    finite = [x for x in epoch0_losses if math.isfinite(x)]
    if finite:
        bounds.append(sum(finite) / len(finite))
    return min(bounds)


def predicted_level(losses_at_best: Sequence[float], upper: float) -> float:
    """b predicted from the b = 0 runs alone: their mean training loss at the epoch of best
    validation accuracy (where ordinary training stopped gaining; a level there holds the
    training loss at it), kept below the untrained loss. Always among the first round's
    levels (levels: auto)."""
    finite = [x for x in losses_at_best if math.isfinite(x)]
    if not finite:
        raise SearchError("no b = 0 run has a validation accuracy to take its best epoch from")
    return round_level(min(max(sum(finite) / len(finite), 0.0), upper))


def engaging_end(lowest_losses: Sequence[float], predicted: float) -> float:
    """The lowest level flooding engages at: the b = 0 runs' mean lowest training loss (a
    level below it is reached late or never, so its runs are ordinary training under
    another name), never above the predicted b (a loss those runs had, so reached)."""
    finite = [x for x in lowest_losses if math.isfinite(x)]
    mean = sum(finite) / len(finite) if finite else 0.0
    return round_level(min(max(mean, 0.0), predicted))


def first_levels(
    predicted: float, lower: float, upper: float, initial: int, tolerance: float
) -> list[float]:
    """Round 1 with levels: auto: the predicted b, and `initial` - 1 levels spread evenly
    between `lower` and `upper` (both excluded: the range flooding engages in without
    holding the model at chance). A spread level within `tolerance` of the predicted b is
    left out (the predicted b stands for it, and a pair that close would block the
    refinement between them); a level that rounds to 0 is the b = 0 baseline itself."""
    predicted = round_level(predicted)
    step = (upper - lower) / initial
    spread = {round_level(lower + k * step) for k in range(1, initial)}
    levels = {b for b in spread if abs(b - predicted) > tolerance} | {predicted}
    return sorted(b for b in levels if 0 < b < upper)


@dataclass(frozen=True)
class Refinement:
    best: float
    levels: list[float]  # new levels, sorted; empty when nothing is left to refine
    at_upper_end: bool  # the best is the highest level tried, with no room above it


def choose_best(curve: Mapping[float, float]) -> float:
    """The level with the highest mean validation accuracy; the smallest on ties (the one
    that changes ordinary training least). Levels without a mean (NaN) never win."""
    scored = {b: acc for b, acc in curve.items() if not math.isnan(acc)}
    if not scored:
        raise SearchError("no level has a validation accuracy")
    top = max(scored.values())
    return min(b for b, acc in scored.items() if acc == top)


def refine(curve: Mapping[float, float], upper: float, tolerance: float) -> Refinement:
    """New levels around the best of `curve` (level -> mean validation accuracy, b = 0
    included): the midpoint towards each neighbour further than `tolerance` away; when
    the best is the highest level, one step past it (the last gap again, at most halfway
    to `upper`), and when it is the lowest level b > 0, one step below it (at most
    halfway to 0), each step only if longer than `tolerance`."""
    levels = sorted(curve)
    best = choose_best(curve)
    i = levels.index(best)
    new = []
    if i > 0:
        if levels[i - 1] == 0 and i + 1 < len(levels):
            # The lowest level b > 0: one step below it, as past the highest one (the gap
            # to its upper neighbour again, at most halfway to b = 0).
            below = max(best - (levels[i + 1] - best), best / 2)
            split = best - below
        else:
            below, split = (levels[i - 1] + best) / 2, best - levels[i - 1]
        if split > tolerance:
            new.append(below)
    if i + 1 < len(levels):
        if levels[i + 1] - best > tolerance:
            new.append((best + levels[i + 1]) / 2)
        at_upper_end = False
    else:
        step = best - levels[i - 1] if i > 0 else best
        beyond = min(best + step, (best + upper) / 2)
        at_upper_end = upper - best <= 2 * tolerance
        if not at_upper_end and beyond - best > tolerance:
            new.append(beyond)
    rounded = sorted({round_level(b) for b in new} - set(levels))
    return Refinement(best, [b for b in rounded if 0 < b < upper], at_upper_end)


def paired_means(accuracies: Mapping[float, Mapping[int, float]]) -> dict[float, float]:
    """Mean final validation accuracy per level over the seeds that every level has (a
    seed whose run of some level failed is left out of every level's mean, as the
    report pairs seeds); NaN for every level when no seed is complete."""
    complete = None
    for per_seed in accuracies.values():
        seeds = {s for s, acc in per_seed.items() if not math.isnan(acc)}
        complete = seeds if complete is None else complete & seeds
    means = {}
    for level, per_seed in accuracies.items():
        values = [per_seed[s] for s in sorted(complete or ())]
        means[level] = sum(values) / len(values) if values else math.nan
    return means


def decide(
    search: Search,
    round_: int,
    accuracies: Mapping[str, Mapping[float, Mapping[int, float]]],
    previous: Decision | None,
    bounds: Bounds,
) -> Decision:
    """The decision of round `round_`, from every level tried so far: `accuracies` is
    method -> level -> seed -> final validation accuracy (b = 0 included in each method's
    levels), `previous` the decision of the round before (None for the first decided
    round). With levels: auto, round 1's levels come from the bounds alone."""
    levels: dict[str, list[float]] = {}
    stopped = dict(previous.stopped) if previous else {}
    best: dict[str, float] = {}
    tried: dict[str, list[tuple[float, float]]] = {}
    for method in search.methods:
        means = paired_means(accuracies[method])
        tried[method] = sorted(means.items())
        if round_ == 1:  # levels: auto, nothing but b = 0 tried yet: no best to keep
            levels[method] = first_levels(
                bounds.predicted,
                bounds.lower,
                bounds.upper,
                search.plan.initial,
                search.plan.tolerance,
            )
            continue
        refinement = refine(means, bounds.upper, search.plan.tolerance)
        best[method] = refinement.best
        levels[method] = []
        if method in stopped:
            continue
        if refinement.at_upper_end:
            stopped[method] = UPPER_END
        elif round_ > search.last_round:
            stopped[method] = ROUNDS
        elif previous is not None and previous.best.get(method) == refinement.best:
            stopped[method] = UNCHANGED
        elif not refinement.levels:
            stopped[method] = TOLERANCE
        else:
            levels[method] = refinement.levels
    return Decision(
        round=round_,
        levels=levels,
        stopped=stopped,
        best=best,
        tried=tried,
        lower=bounds.lower,
        upper=bounds.upper,
        seeds=search.seeds,
        predicted=bounds.predicted,
    )


# Reading what the runs measured, and the walk through the rounds.


def run_measures(folder: Path) -> Measures:
    """The measures of a finished run's folder."""
    import pandas as pd

    from flooding.aggregate import best_epoch
    from flooding.finished import METRICS_FILE, RUN_FILE

    nan = Measures(math.nan, math.nan, math.nan, math.nan)
    try:
        record = json.loads((folder / RUN_FILE).read_text())
        metrics = pd.read_parquet(folder / METRICS_FILE)
    except (OSError, ValueError):
        return nan
    if record.get("status") not in ("completed", "diverged") or metrics.empty:
        return nan
    by_epoch = metrics.set_index("epoch")
    final = float(by_epoch["val_acc"].iloc[-1])
    best = best_epoch(metrics)
    at_best = float(by_epoch.loc[best, "train_loss"]) if best is not None else math.nan
    start = float(by_epoch.loc[0, "train_loss"]) if 0 in by_epoch.index else math.nan
    return Measures(final, at_best, start, float(by_epoch["train_loss"].min()))


def search_bounds(baselines: Sequence[Measures], num_classes: int) -> Bounds:
    """The predicted b, the engaging end and the untrained loss from the b = 0 runs."""
    upper = untrained_loss(num_classes, [m.start_loss for m in baselines])
    predicted = predicted_level([m.loss_at_best for m in baselines], upper)
    lower = engaging_end([m.lowest_loss for m in baselines], predicted)
    return Bounds(predicted, lower, upper)


def tried_levels(search: Search, decisions: Sequence[Decision]) -> dict[str, list[float]]:
    """Per method, the levels b > 0 trained before the next decision."""
    levels = {m: list(search.listed) for m in search.methods}
    for decision in decisions:
        for method, new in decision.levels.items():
            levels[method] += new
    return levels


def decide_round(search: Search, round_: int, runs_root: Path, folder: Path) -> Decision:
    """Read the runs of every earlier round under `runs_root` and the earlier decisions
    under `folder`, decide round `round_`, and write its decision file."""
    decisions = [
        read_decision(folder / f"round{r}.json") for r in range(search.first_decided_round, round_)
    ]
    base = {run.config.seed: run_measures(runs_root / run.path) for run in search.baselines}
    bounds = search_bounds(list(base.values()), search.num_classes)
    accuracies: dict[str, dict[float, dict[int, float]]] = {}
    for method, levels in tried_levels(search, decisions).items():
        accuracies[method] = {0.0: {seed: m.final_val_acc for seed, m in base.items()}}
        for run in search.runs({method: levels}):
            per_level = accuracies[method].setdefault(run.config.flood_level, {})
            per_level[run.config.seed] = run_measures(runs_root / run.path).final_val_acc
    previous = decisions[-1] if decisions else None
    decision = decide(search, round_, accuracies, previous, bounds)
    text = decision.to_json()
    atomic_write(folder / f"round{round_}.json", lambda tmp: tmp.write_text(text))
    return decision


def walk(search: Search, folder: Path) -> list[Decision]:
    """The decisions of a finished search, in order, up to the one that ended it."""
    decisions = []
    for round_ in range(search.first_decided_round, search.last_round + 2):
        decision = read_decision(folder / f"round{round_}.json")
        decisions.append(decision)
        if decision.done:
            break
    return decisions


# One row per level each search tried; the report reads it with the summary.
TABLE_COLUMNS = (
    "search",
    "flood_method",
    "round",
    "flood_level",
    "mean_val_acc",  # over seeds, paired, at the search's last decision
    "chosen_level",  # the best level at the last decision
    "stop_reason",
    "predicted_level",  # b predicted from the b = 0 runs alone
    "untrained_loss",  # the upper end: no level is tried at or above it
)


def search_rows(search: Search, decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """The table's rows of one finished search, each with the setting's config columns."""
    setting = {
        k: v
        for k, v in search.baselines[0].config.to_dict().items()
        if k not in ("flood_method", "flood_level", "seed")
    }
    last = decisions[-1]
    rows = []
    for method in search.methods:
        rounds = {0.0: 0, **dict.fromkeys(search.listed, 1)}
        for decision in decisions:
            rounds.update(dict.fromkeys(decision.levels.get(method, []), decision.round))
        means = dict(last.tried[method])
        for level, round_ in sorted(rounds.items()):
            rows.append(
                {
                    **setting,
                    "search": search.name,
                    "flood_method": method,
                    "round": round_,
                    "flood_level": level,
                    "mean_val_acc": means.get(level, math.nan),
                    "chosen_level": last.best.get(method, math.nan),
                    "stop_reason": last.stopped.get(method, ""),
                    "predicted_level": last.predicted,
                    "untrained_loss": last.upper,
                }
            )
    return rows


def write_rounds(search: Search, folder: Path, out: Path) -> str:
    """One finished search's rows of the table, from its decisions under `folder`, into
    `out`; returns a line saying what it holds."""
    import pandas as pd

    decisions = walk(search, folder)
    table = pd.DataFrame(search_rows(search, decisions))
    atomic_write(out, lambda tmp: table.to_parquet(tmp, index=False))
    stops = ", ".join(f"{m}: {why}" for m, why in decisions[-1].stopped.items())
    return f"{search.name}: {len(table)} levels over {len(decisions)} decisions; {stops}"


def write_search_table(parts: Sequence[Path], out: Path) -> str:
    """The searches' tables (write_rounds) as one, empty when nothing was searched."""
    import pandas as pd

    tables = [pd.read_parquet(path) for path in parts]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if table.empty:
        table = pd.DataFrame(columns=list(TABLE_COLUMNS))
    atomic_write(out, lambda tmp: table.to_parquet(tmp, index=False))
    return f"{len(parts)} searches, {len(table)} levels tried"
