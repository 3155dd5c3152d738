"""Expand the workflow config into runs: one RunConfig and one readable path per run.

The Snakefile validates the config with flooding.schema (which fills
in every default) and then calls `expand_grid`; everything the workflow knows about a run
comes from here. The grid is

    datasets (each with its label-noise levels) x architectures x regularisers (each axis
    declared in RunConfig, flooding.config.GridAxis) x flood (method, level) x seeds,

with an images-only regulariser (augment) kept at its default for datasets of vectors,
and flood level 0 emitted once, with
method "flood", as the ordinary-training baseline of every method. Training settings and
resources are layered: global < architecture entry < dataset entry (null = inherit).

Nothing here imports torch or Snakemake: expanding and checking a 10,000-run grid takes a
fraction of a second, which keeps `snakemake -n` quick.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flooding.adaflood import aux_setting
from flooding.config import ConfigError, RunConfig, regulariser_fields, validate
from flooding.data.registry import DATASETS, DatasetSpec
from flooding.jobs import AuxSetting, PackSettings, Resources, Run
from flooding.methods import METHODS
from flooding.packing import Pack, group_packs


class GridError(ValueError):
    """A config that cannot be expanded into runs; the message names the key at fault."""


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
    def aux(self) -> dict[str, AuxSetting]:
        """The auxiliary models of the adaflood runs, by their folder under results/aux/:
        one setting for all gammas of a setting and seed."""
        settings: dict[str, AuxSetting] = {}
        for run in self.runs:
            if run.aux is not None and run.aux not in settings:
                settings[run.aux] = AuxSetting(run.aux, aux_setting(run.config), run.resources)
        return settings

    @property
    def downloads(self) -> list[str]:
        """Datasets that some run reads from the data root, each once, in config order."""
        return list(dict.fromkeys(run.download for run in self.runs if run.download))


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float, without a trailing '.0'."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def regulariser_segment(cfg: RunConfig) -> str:
    """The run path's regulariser part, e.g. wd0.0005-aug0 or wd0-aug1-ls0.1: each axis
    after its key, those not always in the path only away from their default."""
    parts = []
    for f in regulariser_fields():
        axis, value = f.metadata["axis"], getattr(cfg, f.name)
        if axis.always_in_path or value != f.default:
            text = str(int(value)) if isinstance(value, bool) else format_number(value)
            parts.append(axis.path_key + text)
    return "-".join(parts) or "regularisers-default"


def run_path(cfg: RunConfig, dataset_label: str, arch_label: str) -> str:
    """e.g. spiral-noise0.2/mlp/wd0.0005-aug0/flood0.05/seed1 (unique within a grid); the
    flood part names the value the method varies (adaflood0.5: gamma)."""
    varied = getattr(cfg, METHODS[cfg.flood_method].varies)
    return "/".join(
        (
            f"{dataset_label}-noise{format_number(cfg.label_noise)}",
            arch_label,
            regulariser_segment(cfg),
            f"{cfg.flood_method}{format_number(varied)}",
            f"seed{cfg.seed}",
        )
    )


def aux_path(cfg: RunConfig, dataset_label: str, arch_label: str) -> str:
    """The folder (under results/aux/) of an adaflood run's auxiliary models, named by what
    they depend on and nothing else (not gamma): e.g. gaussians-noise0.2/mlp/wd0-aug0/
    seed0-folds2. Their other settings reach their jobs as params, the rerun triggers."""
    return "/".join(
        (
            f"{dataset_label}-noise{format_number(cfg.label_noise)}",
            arch_label,
            regulariser_segment(cfg),
            f"seed{cfg.seed}-folds{cfg.adaflood_folds}",
        )
    )


def flood_settings(
    methods: Sequence[str], levels: Sequence[float], gammas: Sequence[float] = (0.5,)
) -> list[tuple[str, float]]:
    """(method, value) pairs; level 0 is the same run for every method, so it appears once.
    The value is what the method varies: b, or gamma for adaflood (from `gammas`)."""
    pairs: list[tuple[str, float]] = []
    if any(level == 0 for level in levels):
        pairs.append(("flood", 0.0))
    for m in methods:
        if METHODS[m].takes_level:
            pairs += [(m, float(b)) for b in levels if b != 0]
        else:
            pairs += [(m, float(g)) for g in gammas]
    return pairs


def method_config(values: Mapping[str, Any], method: str, value: float) -> RunConfig:
    """The config of a run of `method` varying `value`: the fields of other methods at
    their defaults, so that settings of one method never retrain another's runs."""
    others = {name for m in METHODS.values() if m.name != method for name in m.fields} - set(
        METHODS[method].fields
    )
    kept = {k: v for k, v in values.items() if k not in others}
    return RunConfig.from_dict({**kept, "flood_method": method, METHODS[method].varies: value})


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


def _regularisers(
    where: str, spec: DatasetSpec, own: Mapping[str, Any] | None, config: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """The values of each regulariser axis for one dataset entry (its own lists, else the
    global ones). An images-only axis keeps only its default on a dataset of vectors: the
    rest of the global grid simply has no runs there."""
    values = {}
    for f in regulariser_fields():
        listed = _inherit((own or {}).get(f.name), config["regularisers"][f.name])
        if f.metadata["axis"].images_only and not spec.images:
            kept = [v for v in listed if v == f.default]
            if not kept:
                given = ", ".join(json.dumps(v) for v in listed)
                raise GridError(
                    f"{where}.regularisers.{f.name}: only {given}, but {spec.name} has no images"
                )
            listed = kept
        values[f.name] = listed
    return values


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
    regularisers = _regularisers(where, spec, dataset.get("regularisers"), config)
    own_flood = dataset.get("flood") or {}
    floods = flood_settings(
        _inherit(own_flood.get("methods"), config["flood"]["methods"]),
        _inherit(own_flood.get("levels"), config["flood"]["levels"]),
        _inherit(own_flood.get("gammas"), config["flood"].get("gammas", [0.5])),
    )
    for noise, arch_label in itertools.product(dataset["label_noise"], arch_labels):
        arch = archs[arch_label]
        training = _layered(config["training"], arch.get("training"), dataset.get("training"))
        resources = Resources(
            **_layered(config["resources"], arch.get("resources"), dataset.get("resources"))
        )
        packing = _layered(config["pack"], arch.get("pack"), dataset.get("pack"))
        pack = PackSettings(tuple(packing["by"]), packing["max_runs"])
        for *values, (method, varied), seed in itertools.product(
            *regularisers.values(), floods, config["seeds"]
        ):
            axes = {
                "dataset": spec.name,
                "label_noise": float(noise),
                "arch": arch["name"],
                **dict(zip(regularisers, values, strict=True)),
                "seed": seed,
            }
            cfg = method_config({**training, **axes}, method, varied)
            aux = aux_path(cfg, label, arch_label) if METHODS[method].auxiliary else None
            yield Run(run_path(cfg, label, arch_label), cfg, resources, pack, aux)


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
