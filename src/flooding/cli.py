"""The `flooding` command line: `train` one run, `download`, `aggregate`, `report`.

Each subcommand's module is imported only when that subcommand runs, so `flooding --help`
and `flooding train --help` answer without importing torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flooding.config import ConfigError, RunConfig
from flooding.data.registry import DATASETS
from flooding.validation import field_type

COMMANDS = {
    "train": "train one run and write metrics.parquet and run.json to --out",
    "train-pack": "train several runs in one process (a pack), each into its own folder",
    "download": "fetch a torchvision dataset into a data root (needs internet)",
    "aggregate": "concatenate run outputs into results/metrics.parquet and summary.parquet",
    "report": "build the HTML report from the aggregated results",
    "docs": "write the reference pages of docs/ (config keys, outputs, datasets) from the code",
    "plan": "what a grid will cost on a cluster: jobs, arrays, CPU- and GPU-hours",
    "calibrate-shape": "time a few epochs of one run's shape; write the timing to --out (JSON)",
    "efficiency": "what the last cluster run's jobs asked for against what they used (sacct)",
    "train-aux": "train an adaflood run's auxiliary fold models (all, or --fold K); write "
    "their held-out losses",
    "gather-aux": "gather the auxiliary folds' held-out losses into one file (adaflood)",
    "reproduce": "retrain a finished run along its recorded float path and compare",
    "search-round": "decide a round of a search for b from the runs of the rounds before it",
    "search-rounds": "one finished search's rounds as a table",
    "search-table": "every search's rounds as one table",
}
DATA_ROOT_ENV = "FLOODING_DATA_ROOT"


def default_data_root() -> str:
    return os.environ.get(DATA_ROOT_ENV, "data")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _show_default(f: dataclasses.Field[Any]) -> str:
    if isinstance(f.default, bool):
        return _option(f.name) if f.default else "--no-" + _option(f.name)[2:]
    return str(f.default)


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flooding train",
        description="Train one run. Options override the values of --config, which override "
        "the defaults. Rerunning the same command resumes from the run's checkpoint.",
        allow_abbrev=False,  # a misspelt option must fail, not match a longer one
    )
    experiment = parser.add_argument_group("run config (what is trained; in the config hash)")
    metavars = {str: "NAME", int: "N", float: "X"}
    for f in dataclasses.fields(RunConfig):
        text = f.metadata["help"]
        if f.name == "dataset":
            text += ": " + ", ".join(DATASETS)
        # argparse %-formats help texts, so a literal % is doubled.
        text = f"{text} (default: {_show_default(f)})".replace("%", "%%")
        kind = field_type(f)
        if kind is bool:
            experiment.add_argument(
                _option(f.name), action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            experiment.add_argument(
                _option(f.name),
                type=kind,
                default=None,
                metavar=metavars[kind],
                help=text,
            )
    runtime = parser.add_argument_group("runtime (how it runs; results do not depend on it)")
    runtime.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder of the run"
    )
    runtime.add_argument(
        "--config", type=Path, metavar="FILE", help="YAML file of RunConfig fields (name: value)"
    )
    add_runtime_arguments(runtime)
    runtime.add_argument(
        "--aux-losses",
        type=Path,
        metavar="FILE",
        help="adaflood: the gathered held-out losses of the run's setting (gather-aux)",
    )
    return parser


def add_data_root(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The --data-root option of the commands that load data."""
    parser.add_argument(
        "--data-root",
        type=Path,
        default=Path(default_data_root()),
        metavar="DIR",
        help=f"folder of downloaded datasets (default: ${DATA_ROOT_ENV} or data)",
    )


def add_runtime_arguments(runtime: argparse._ArgumentGroup) -> None:
    """The options of `train` and `train-pack` that say how runs run."""
    runtime.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)"
    )
    runtime.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="torch CPU threads; 0 = torch's default (default: 0)",
    )
    add_data_root(runtime)
    runtime.add_argument(
        "--checkpoint-every",
        type=int,
        default=10,
        metavar="N",
        help="checkpoint every N epochs; 0 = only on SIGTERM/SIGUSR2 (default: 10)",
    )
    runtime.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bf16 autocast on CUDA (default: on; ignored on CPU)",
    )
    runtime.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels-last memory format on CUDA (default: on; ignored on CPU)",
    )
    runtime.add_argument(
        "--record-failure",
        action="store_true",
        help="on an unexpected error write status 'failed' to run.json and exit 0",
    )


def pack_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flooding train-pack",
        description="Train the runs of a pack spec in this process, each "
        "into its own folder, sharing loaded data between runs that read the same. Runs "
        "already finished with the same config are skipped, so rerunning resumes. "
        'Spec: JSON {"runs": [{"out": DIR, "config": {RunConfig fields}}, ...]}.',
        allow_abbrev=False,
    )
    parser.add_argument("--spec", type=Path, required=True, metavar="FILE", help="pack spec")
    parser.add_argument(
        "--vectorise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train runs that differ only in flood level or method as one stacked model "
        "(torch.func.vmap): equal to solo runs at epoch 1 to float tolerance, not bit for "
        "bit after; --no-vectorise trains them one after another, bit-identical to solo "
        "runs (default: on)",
    )
    add_runtime_arguments(parser.add_argument_group("runtime (how it runs)"))
    return parser


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError("config", str(path), "an existing YAML file")
    values = yaml.safe_load(path.read_text())
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError("config", str(path), "a YAML mapping of RunConfig fields to values")
    return values


def parse_train_args(argv: Sequence[str]) -> tuple[RunConfig, Any]:
    """(RunConfig, Runtime) from the command line; Runtime is flooding.train.Runtime."""
    parser = train_parser()
    args, unknown = parser.parse_known_args(list(argv))
    if unknown:
        accepted = sorted(a.option_strings[-1] for a in parser._actions if a.option_strings)
        raise ConfigError("option", unknown[0], " ".join(accepted))
    values = _read_yaml(args.config) if args.config is not None else {}
    for f in dataclasses.fields(RunConfig):
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = given
    cfg = RunConfig.from_dict(values)
    return cfg, runtime_from(args, args.out)


def runtime_from(args: argparse.Namespace, out: Path) -> Any:
    """flooding.train.Runtime from the parsed runtime options."""
    if args.threads < 0:
        raise ConfigError("threads", args.threads, "0 (torch's default) or a positive count")
    if args.checkpoint_every < 0:
        raise ConfigError("checkpoint_every", args.checkpoint_every, "0 or a positive count")
    from flooding.runtime import Runtime

    return Runtime(
        out=out,
        device=args.device,
        threads=args.threads,
        data_root=args.data_root,
        checkpoint_every=args.checkpoint_every,
        bf16=args.bf16,
        channels_last=args.channels_last,
        record_failure=args.record_failure,
        aux_losses=getattr(args, "aux_losses", None),
    )


def train_main(argv: Sequence[str]) -> int:
    """`flooding train`: exit 0 when the run ends (completed, diverged, or a recorded
    failure), 2 on a usage or config error, 75 after a checkpoint forced by a signal."""
    try:
        cfg, runtime = parse_train_args(argv)
    except ConfigError as exc:
        print(f"flooding train: error: {exc}", file=sys.stderr)
        return 2
    from flooding.data import DatasetMissingError
    from flooding.train import run

    try:
        return run(cfg, runtime)
    except (ConfigError, DatasetMissingError) as exc:
        print(f"flooding train: error: {exc}", file=sys.stderr)
        return 2


def aux_main(argv: Sequence[str]) -> int:
    """`flooding train-aux`: the options of `flooding train` (the adaflood run's config)
    and --fold K for that fold alone (else every fold, then their gathered losses); exit
    codes as `flooding train`'s."""
    fold_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    fold_parser.add_argument("--fold", type=int)
    known, rest = fold_parser.parse_known_args(list(argv))
    if "-h" in rest or "--help" in rest:
        print("flooding train-aux [--fold K] [flooding train options]: " + COMMANDS["train-aux"])
    try:
        cfg, runtime = parse_train_args(rest)
    except ConfigError as exc:
        print(f"flooding train-aux: error: {exc}", file=sys.stderr)
        return 2
    from flooding.auxiliary import run_fold
    from flooding.data import DatasetMissingError

    try:
        return run_fold(cfg, known.fold, runtime)
    except (ConfigError, DatasetMissingError) as exc:
        print(f"flooding train-aux: error: {exc}", file=sys.stderr)
        return 2


def calibrate_shape_main(argv: Sequence[str]) -> int:
    """`flooding calibrate-shape`: the options of `flooding train` (a run of the shape),
    --device cpu or cuda, and --out FILE; exit 0 when the outcome is written, measured or
    not (the file says why not), 2 on a usage or config error."""
    if "-h" in argv or "--help" in argv:
        print(
            "flooding calibrate-shape --device cpu|cuda --out FILE [flooding train options]: "
            + COMMANDS["calibrate-shape"]
        )
    try:
        cfg, runtime = parse_train_args(argv)
        if runtime.device not in ("cpu", "cuda"):
            raise ConfigError("device", runtime.device, "cpu or cuda, the device kind of the shape")
    except ConfigError as exc:
        print(f"flooding calibrate-shape: error: {exc}", file=sys.stderr)
        return 2
    from flooding.calibrate import calibrate_shape

    print(calibrate_shape(cfg, runtime.device, runtime.threads, runtime.data_root, runtime.out))
    return 0


def gather_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="flooding gather-aux", description=COMMANDS["gather-aux"], allow_abbrev=False
    )
    parser.add_argument("folds", type=Path, nargs="+", help="each fold's losses.parquet")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="gathered file")
    args = parser.parse_args(list(argv))
    from flooding.adaflood import gather, write_losses

    try:
        write_losses(args.out, gather(args.folds))
    except ConfigError as exc:
        print(f"flooding gather-aux: error: {exc}", file=sys.stderr)
        return 2
    return 0


def search_main(command: str, argv: Sequence[str]) -> int:
    """`flooding search-round`, `search-rounds`, `search-table`: the jobs of a search for b
    (flooding.search), each from the search's file that the workflow writes
    (results/search/<setting>/search.json); what they decide or tabulate goes beside it."""
    parser = argparse.ArgumentParser(
        prog=f"flooding {command}", description=COMMANDS[command], allow_abbrev=False
    )
    if command == "search-table":
        parser.add_argument("parts", type=Path, nargs="*", help="each search's rounds.parquet")
    else:
        parser.add_argument("--search", type=Path, required=True, metavar="FILE")
    if command == "search-round":
        parser.add_argument("--round", type=int, required=True, metavar="R")
        parser.add_argument("--runs", type=Path, default=Path("results/runs"), metavar="DIR")
    else:
        parser.add_argument("--out", type=Path, required=True, metavar="FILE")
    args = parser.parse_args(list(argv))
    from flooding import search

    try:
        if command == "search-table":
            print(search.write_search_table(args.parts, args.out))
            return 0
        found, folder = search.read_search(args.search), args.search.parent
        if command == "search-round":
            print(search.decide_round(found, args.round, args.runs, folder).describe())
        else:
            print(search.write_rounds(found, folder, args.out))
    except (OSError, search.SearchError) as exc:  # a missing file; no b = 0 run to decide from
        print(f"flooding {command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def pack_main(argv: Sequence[str]) -> int:
    """`flooding train-pack`: exit codes as `flooding train`'s, and 1 when a member raised
    without --record-failure (the other members were trained)."""
    from flooding.data import DatasetMissingError
    from flooding.pack import read_spec, run_pack

    args = pack_parser().parse_args(list(argv))
    try:
        return run_pack(read_spec(args.spec), runtime_from(args, Path(".")), args.vectorise)
    except (ConfigError, DatasetMissingError) as exc:
        print(f"flooding train-pack: error: {exc}", file=sys.stderr)
        return 2


def download_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="flooding download", description=COMMANDS["download"], allow_abbrev=False
    )
    parser.add_argument("name", help="dataset name, e.g. cifar10")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(default_data_root()),
        help=f"data root (default: ${DATA_ROOT_ENV} or data)",
    )
    args = parser.parse_args(list(argv))
    from flooding.data import DatasetDownloadError, download_dataset

    try:
        download_dataset(args.name, args.root)
    except (ConfigError, DatasetDownloadError) as exc:
        print(f"flooding download: error: {exc}", file=sys.stderr)
        return 2
    return 0


def reproduce_main(argv: Sequence[str]) -> int:
    """`flooding reproduce`: 0 when the retrained metrics are identical, 1 when they
    differ, 2 when the run or its float path cannot be used here."""
    parser = argparse.ArgumentParser(
        prog="flooding reproduce",
        description="Retrain a finished run along the float path its run.json records "
        "(device, threads, and for a member of a vectorised pack the same stack of flood "
        "settings), into --out, and compare its metrics with the original's. Exit 0: "
        "identical; 1: they differ; 2: the run cannot be reproduced here.",
        allow_abbrev=False,
    )
    parser.add_argument("run", type=Path, help="folder of the finished run (holds run.json)")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where to retrain it"
    )
    add_data_root(parser)
    args = parser.parse_args(list(argv))
    from flooding.data import DatasetMissingError
    from flooding.reproduce import reproduce

    try:
        return reproduce(args.run, args.out, args.data_root)
    except (ConfigError, DatasetMissingError) as exc:
        print(f"flooding reproduce: error: {exc}", file=sys.stderr)
        return 2


def _usage() -> str:
    lines = ["usage: flooding COMMAND [options]   (flooding COMMAND --help for its options)", ""]
    width = max(map(len, COMMANDS))
    lines += [f"  {name:<{width}} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        return train_main(rest)
    if command == "train-pack":
        return pack_main(rest)
    if command == "train-aux":
        return aux_main(rest)
    if command == "gather-aux":
        return gather_main(rest)
    if command == "reproduce":
        return reproduce_main(rest)
    if command.startswith("search-") and command in COMMANDS:
        return search_main(command, rest)
    if command == "download":
        return download_main(rest)
    if command == "aggregate":
        from flooding.aggregate import main as aggregate_main

        return int(aggregate_main(rest) or 0)
    if command == "report":
        from flooding.report import main as report_main

        return int(report_main(rest) or 0)
    if command == "docs":
        from flooding.reference import main as docs_main

        return docs_main(rest)
    if command == "plan":
        from flooding.plan import main as plan_main

        return plan_main(rest)
    if command == "calibrate-shape":
        return calibrate_shape_main(rest)
    if command == "efficiency":
        from flooding.efficiency import main as efficiency_main

        return efficiency_main(rest)
    error = ConfigError("command", command, ", ".join(COMMANDS))
    print(f"flooding: error: {error}\n\n{_usage()}", file=sys.stderr)
    return 2
