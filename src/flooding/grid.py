"""Expand the workflow config into runs: one RunConfig and one readable path per run.

The Snakefile validates the config with flooding.schema (which fills
in every default) and then calls `expand_grid`; everything the workflow knows about a run
comes from here. The grid is

    datasets (each with its label-noise levels) x architectures x weight decay x augment
    x flood (method, level) x seeds,

with `augment: true` skipped for datasets of vectors and flood level 0 emitted once, with
method "flood", as the ordinary-training baseline of every method. Training settings and
resources are layered: global < architecture entry < dataset entry (null = inherit).

Nothing here imports torch or Snakemake: expanding and checking a 10,000-run grid takes a
fraction of a second, which keeps `snakemake -n` quick.
"""

from __future__ import annotations

import dataclasses
import itertools
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flooding.config import ConfigError, RunConfig, validate
from flooding.data.registry import DATASETS
from flooding.packing import Pack, PackSettings, Resources, group_packs


class GridError(ValueError):
    """A config that cannot be expanded into runs; the message names the key at fault."""


@dataclass(frozen=True)
class Run:
    """One run: its path under results/runs/, its config, its resources and packing."""

    path: str
    config: RunConfig
    resources: Resources
    pack: PackSettings = dataclasses.field(default_factory=PackSettings)

    @property
    def options(self) -> str:
        """`flooding train` options naming every RunConfig field (the job's params)."""
        return " ".join(shlex.quote(arg) for arg in train_arguments(self.config))

    @property
    def download(self) -> str | None:
        """The dataset to fetch before training, or None when nothing is downloaded."""
        return self.config.dataset if DATASETS[self.config.dataset].downloadable else None


@dataclass(frozen=True)
class Grid:
    """All runs of a config, in config order, and the same runs by path; runs that are
    packed are in `packs`, the others in `singles`."""

    runs: tuple[Run, ...]
    # Built once: Snakemake looks up each job's params and resources by its path.
    by_path: Mapping[str, Run]
    packs: tuple[Pack, ...] = ()
    packs_by_name: Mapping[str, Pack] = dataclasses.field(default_factory=dict)

    @property
    def singles(self) -> list[str]:
        """Paths of the runs that are one job each."""
        packed = {run.path for pack in self.packs for run in pack.runs}
        return [run.path for run in self.runs if run.path not in packed]

    @property
    def paths(self) -> list[str]:
        return [run.path for run in self.runs]

    @property
    def shared_resources(self) -> Resources | None:
        """The resources of every run when they are all the same, else None."""
        distinct = {run.resources for run in self.runs}
        return distinct.pop() if len(distinct) == 1 else None

    @property
    def downloads(self) -> list[str]:
        """Datasets that some run reads from the data root, each once, in config order."""
        return list(dict.fromkeys(run.download for run in self.runs if run.download))


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float, without a trailing '.0'."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def run_path(cfg: RunConfig, dataset_label: str, arch_label: str) -> str:
    """e.g. spiral-noise0.2/mlp/wd0.0005-aug0/flood0.05/seed1 (unique within a grid)."""
    return "/".join(
        (
            f"{dataset_label}-noise{format_number(cfg.label_noise)}",
            arch_label,
            f"wd{format_number(cfg.weight_decay)}-aug{int(cfg.augment)}",
            f"{cfg.flood_method}{format_number(cfg.flood_level)}",
            f"seed{cfg.seed}",
        )
    )


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


def flood_settings(methods: Sequence[str], levels: Sequence[float]) -> list[tuple[str, float]]:
    """(method, level) pairs; level 0 is the same run for every method, so it appears once."""
    pairs: list[tuple[str, float]] = []
    if any(level == 0 for level in levels):
        pairs.append(("flood", 0.0))
    pairs += [(m, float(b)) for m in methods for b in levels if b != 0]
    return pairs


def _layered(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later layers override earlier ones; None values inherit."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in (layer or {}).items() if v is not None})
    return merged


def _inherit(override: Any, default: Any) -> Any:
    return default if override is None else override


def _where(entry_kind: str, index: int, entry: Mapping[str, Any]) -> str:
    return f"{entry_kind}[{index}] ({entry['name']})"


def _archs_by_label(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    archs: dict[str, Mapping[str, Any]] = {}
    for i, arch in enumerate(config["archs"]):
        label = arch.get("label") or arch["name"]
        if label in archs:
            raise GridError(f"{_where('archs', i, arch)}: label {label!r} is used twice")
        archs[label] = arch
    return archs


def _dataset_runs(
    index: int,
    dataset: Mapping[str, Any],
    config: Mapping[str, Any],
    archs: Mapping[str, Mapping[str, Any]],
) -> Iterator[Run]:
    where = _where("datasets", index, dataset)
    spec = DATASETS[dataset["name"]]
    label = dataset.get("label") or dataset["name"]
    arch_labels = _inherit(dataset.get("archs"), list(archs))
    unknown = [a for a in arch_labels if a not in archs]
    if unknown:
        raise GridError(f"{where}.archs: {unknown} not among archs {list(archs)}")
    own_regularisers = dataset.get("regularisers") or {}
    regularisers = config["regularisers"]
    weight_decays = _inherit(own_regularisers.get("weight_decay"), regularisers["weight_decay"])
    # Augmentation needs images: on a dataset of vectors the augmented half of the global
    # grid simply has no runs.
    augments = [
        a
        for a in _inherit(own_regularisers.get("augment"), regularisers["augment"])
        if spec.images or not a
    ]
    if not augments:
        raise GridError(f"{where}.regularisers.augment: only true, but {spec.name} has no images")
    own_flood = dataset.get("flood") or {}
    floods = flood_settings(
        _inherit(own_flood.get("methods"), config["flood"]["methods"]),
        _inherit(own_flood.get("levels"), config["flood"]["levels"]),
    )
    for noise, arch_label in itertools.product(dataset["label_noise"], arch_labels):
        arch = archs[arch_label]
        training = _layered(config["training"], arch.get("training"), dataset.get("training"))
        resources = Resources(
            **_layered(config["resources"], arch.get("resources"), dataset.get("resources"))
        )
        packing = _layered(config["pack"], arch.get("pack"), dataset.get("pack"))
        pack = PackSettings(tuple(packing["by"]), packing["max_runs"])
        for weight_decay, augment, (method, level), seed in itertools.product(
            weight_decays, augments, floods, config["seeds"]
        ):
            axes = {
                "dataset": spec.name,
                "label_noise": float(noise),
                "arch": arch["name"],
                "weight_decay": float(weight_decay),
                "augment": augment,
                "flood_method": method,
                "flood_level": level,
                "seed": seed,
            }
            cfg = RunConfig.from_dict({**training, **axes})
            yield Run(run_path(cfg, label, arch_label), cfg, resources, pack)


def expand_grid(config: Mapping[str, Any]) -> Grid:
    """All runs of a schema-validated config (defaults filled in), each checked by the engine.

    Raises GridError naming the config entry and the field for a config the engine would
    reject, so the mistake shows at `snakemake -n`, before any job starts.
    """
    archs = _archs_by_label(config)
    by_path: dict[str, Run] = {}
    source: dict[str, int] = {}  # path -> index of the dataset entry that made it
    for index, dataset in enumerate(config["datasets"]):
        where = _where("datasets", index, dataset)
        for run in _dataset_runs(index, dataset, config, archs):
            if run.path in by_path:
                raise GridError(
                    f"{where}: run {run.path} also comes from datasets[{source[run.path]}]; "
                    "give one of the entries another label or other archs"
                )
            try:
                validate(run.config)
            except ConfigError as error:
                raise GridError(f"{where}, run {run.path}: {error}") from error
            by_path[run.path], source[run.path] = run, index
    runs = tuple(by_path.values())
    packs = group_packs(runs)
    return Grid(runs, by_path, packs, {pack.name: pack for pack in packs})
