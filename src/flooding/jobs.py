"""What the workflow knows of one run: its path, config, resources and packing.

A leaf of the grid's side: flooding.grid makes Runs, flooding.packing groups them, and
neither needs the other's module for the types.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, replace

from flooding.config import RunConfig
from flooding.data.registry import DATASETS


@dataclass(frozen=True)
class Resources:
    """What one training job asks the scheduler for."""

    threads: int
    mem_mb: int
    runtime: int  # minutes
    gpu: int
    # Ask for what the run's shape took last time instead of `runtime` (flooding.learned).
    runtime_auto: bool = False
    # Ask for the memory the run's shape used last time instead of `mem_mb` (flooding.learned).
    mem_auto: bool = False
    # The longest runtime one job may ask for (minutes; None: no limit): a pack asking
    # more is split (flooding.packing), a run asking more is an error (flooding.learned).
    max_runtime: int | None = None


@dataclass(frozen=True)
class PackSettings:
    """How runs are grouped into jobs: by these axes, at most max_runs a job, the runs
    that can stack trained as one stacked model (vectorise) or one after another."""

    by: tuple[str, ...] = ()
    max_runs: int = 1
    vectorise: bool = True


@dataclass(frozen=True)
class Run:
    """One run: its path under results/runs/, its config, its resources and packing."""

    path: str
    config: RunConfig
    resources: Resources
    pack: PackSettings = dataclasses.field(default_factory=PackSettings)
    # adaflood: the folder of its auxiliary models under results/aux/ (AuxSetting).
    aux: str | None = None

    @property
    def aux_losses(self) -> str | None:
        """The gathered held-out losses the run reads (adaflood), else None."""
        return None if self.aux is None else aux_losses_file(self.aux)

    @property
    def options(self) -> str:
        """`flooding train` options naming every RunConfig field (the job's params)."""
        return options_of(self.config)

    @property
    def download(self) -> str | None:
        """The dataset to fetch before training, or None when nothing is downloaded."""
        return download_of(self.config)


def options_of(cfg: RunConfig) -> str:
    """train_arguments() as one shell-quoted string."""
    return " ".join(shlex.quote(arg) for arg in train_arguments(cfg))


def download_of(cfg: RunConfig) -> str | None:
    """The dataset a job of this config fetches first, or None when nothing is downloaded."""
    return cfg.dataset if DATASETS[cfg.dataset].downloadable else None


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float, without a trailing '.0'."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def train_arguments(cfg: RunConfig) -> list[str]:
    """One `--field-name value` pair per field; booleans as `--name` / `--no-name`."""
    args: list[str] = []
    for name, value in cfg.to_dict().items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(option if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, float):
            args += [option, repr(value)]
        else:
            args += [option, str(value)]
    return args


def aux_losses_file(aux: str) -> str:
    return f"results/aux/{aux}/losses.parquet"


@dataclass(frozen=True)
class AuxSetting:
    """The auxiliary models of adaflood runs alike in all but gamma, alpha and beta: one
    `flooding train-aux` job training every fold, asking what the runs ask for, with a
    run's runtime for each fold (`resources`)."""

    path: str  # under results/aux/
    config: RunConfig  # flooding.adaflood.aux_setting of the runs' config
    run_resources: Resources  # what one of the runs asks for

    @property
    def folds(self) -> list[int]:
        return list(range(self.config.adaflood_folds))

    @property
    def resources(self) -> Resources:
        """The job's request: a run's, with a run's runtime for each fold (a fold trains on
        fewer samples, so this is an upper bound), within max_runtime, since a job cut
        short resumes from the folds it finished."""
        runtime = self.run_resources.runtime * len(self.folds)
        if self.run_resources.max_runtime is not None:
            runtime = min(runtime, self.run_resources.max_runtime)
        return replace(self.run_resources, runtime=runtime)

    @property
    def options(self) -> str:
        return options_of(self.config)

    @property
    def download(self) -> str | None:
        return download_of(self.config)
