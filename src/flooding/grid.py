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
from flooding.jobs import AuxSetting, PackSettings, Resources, Run, format_number
from flooding.methods import METHODS
from flooding.packing import Pack, group_packs
from flooding.search import Search, SearchPlan


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
    # Settings whose flood levels are searched (flooding.search): the runs above are their
    # b = 0 runs and listed levels; the later rounds' runs are decided as the runs finish.
    searches: tuple[Search, ...] = ()

    @property
    def searches_by_name(self) -> dict[str, Search]:
        return {search.name: search for search in self.searches}

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


@dataclass(frozen=True)
class FloodBlock:
    """The `flood` settings of one dataset and architecture entry: methods, and either
    fixed levels or a search (plan set), whose first round is `levels` when listed."""

    methods: tuple[str, ...]
    levels: tuple[float, ...]  # the listed levels; empty with levels: auto
    gammas: tuple[float, ...]  # what AdaFlood varies instead of b
    plan: SearchPlan | None

    @property
    def static(self) -> list[tuple[str, float]]:
        """The (method, level) pairs known before any run: with a search, b = 0 and the
        listed levels (the first round); the search decides the rest."""
        levels = [0.0, *self.levels] if self.plan else list(self.levels)
        return flood_settings(self.methods, sorted(set(levels)), self.gammas)


def _flood_block(where: str, *layers: Mapping[str, Any] | None) -> FloodBlock:
    flood = _layered(*layers)
    methods, levels, search = flood["methods"], flood["levels"], flood.get("search")
    if levels == "auto" and search is False:
        raise GridError(f"{where}.flood: levels: auto needs a search, but search is false")
    if levels == "auto" or isinstance(search, Mapping):
        plan = SearchPlan(**(search or {}))
        if not any(METHODS[m].takes_level for m in methods):
            raise GridError(
                f"{where}.flood.levels: a search for b, but {', '.join(methods)} "
                "takes no flood level b (adaflood varies gammas)"
            )
    else:
        plan = None
    listed = () if levels == "auto" else tuple(float(b) for b in levels)
    gammas = tuple(float(g) for g in flood.get("gammas") or (0.5,))
    return FloodBlock(tuple(methods), listed, gammas, plan)


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
    for noise, arch_label in itertools.product(dataset["label_noise"], arch_labels):
        arch = archs[arch_label]
        floods = flood_blocks(where, config, arch, dataset).static
        training = _layered(config["training"], arch.get("training"), dataset.get("training"))
        resources = Resources(
            **_layered(config["resources"], arch.get("resources"), dataset.get("resources"))
        )
        packing = _layered(config["pack"], arch.get("pack"), dataset.get("pack"))
        pack = PackSettings(tuple(packing["by"]), packing["max_runs"], packing["vectorise"])
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


def flood_blocks(
    where: str, config: Mapping[str, Any], arch: Mapping[str, Any], dataset: Mapping[str, Any]
) -> FloodBlock:
    """The flood settings of a dataset entry with one of its architectures: global <
    architecture entry < dataset entry, as training settings are layered."""
    return _flood_block(where, config["flood"], arch.get("flood"), dataset.get("flood"))


def _searches(
    config: Mapping[str, Any], runs: Sequence[Run], source: Mapping[str, int]
) -> tuple[Search, ...]:
    """One search per setting whose entry searches b, from its b = 0 runs (one a seed)."""
    archs = _archs_by_label(config)
    baselines: dict[str, list[Run]] = {}
    blocks: dict[str, FloodBlock] = {}
    for run in runs:
        if (run.config.flood_method, run.config.flood_level) != ("flood", 0.0):
            continue  # not a b = 0 run (an adaflood run's flood_level is 0 too)
        index = source[run.path]
        dataset = config["datasets"][index]
        name, arch_label = "/".join(run.path.split("/")[:3]), run.path.split("/")[1]
        block = flood_blocks(_where("datasets", index, dataset), config, archs[arch_label], dataset)
        if block.plan is not None:
            baselines.setdefault(name, []).append(run)
            blocks[name] = block
    return tuple(
        Search(
            name,
            # The methods with a flood level; the others (adaflood) train at their gammas.
            tuple(m for m in blocks[name].methods if METHODS[m].takes_level),
            tuple(base),
            tuple(b for b in blocks[name].levels if b != 0),
            blocks[name].plan,
            DATASETS[base[0].config.dataset].num_classes,
        )
        for name, base in baselines.items()
    )


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
    searches = _searches(config, runs, source)
    return Grid(runs, by_path, packs, {pack.name: pack for pack in packs}, searches)
