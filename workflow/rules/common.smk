# Load-time work: validate the config (filling in the schema's defaults), expand the grid,
# and answer Snakemake's per-job questions by looking the run up. The logic is in
# flooding.grid, where it is unit-tested; nothing here imports torch.
import functools
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod

# Jobs run the `flooding` command and this file imports its package: both come from the
# virtual environment that `make` creates (or, for jobs, from a rule's conda environment).
OUTSIDE_VENV = (
    "the flooding package or its `flooding` command is not found: activate the virtual "
    "environment (source .venv/bin/activate) or run through make (make report)"
)
try:
    from flooding.finished import pack_targets
    from flooding.grid import expand_grid
    from flooding.learned import device_of, learn_resources
    from flooding.memory import EFFICIENCY_TABLE
    from flooding.packing import group_packs
    from flooding.search import SEARCH_FOLDER, read_decision, walk
    from flooding.schema import validate_workflow_config
    from flooding.stale_lock import enter, remove_half_written
except ImportError:
    raise WorkflowError(OUTSIDE_VENV) from None
if not (
    shutil.which("flooding")
    or DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
):
    raise WorkflowError(OUTSIDE_VENV)

# A lock left by an invocation that was killed (SIGKILL, power loss) is removed, so the
# same command continues the work (the workflow profile adds --rerun-incomplete); jobs
# that Snakemake starts as processes of their own are part of their invocation.
if not (workflow.subprocess_exec or workflow.remote_exec):
    INVOCATION = enter()
    if INVOCATION.removed:
        print("removed the lock of a snakemake that was killed here", file=sys.stderr)
    elif INVOCATION.locked_by_another:
        print(
            "another snakemake is running in this directory and holds its lock: "
            "let it end (or stop it), then run this command again",
            file=sys.stderr,
        )
    # Also in a dry run, which then plans those files' jobs as a run would.
    if INVOCATION.alone:
        for path in remove_half_written():
            print(f"removed {path}, left half-written by a killed job", file=sys.stderr)

# The schema's training settings are generated from the engine's RunConfig, so the config
# is checked by flooding.schema rather than snakemake.utils.validate, which reads a file.
validate_workflow_config(
    config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
)

# Runs with `runtime_auto` or `mem_auto` ask for what their shape used last time, and packs
# longer than `max_runtime` are split (flooding.learned).
GRID = learn_resources(expand_grid(config), Path("results"))
# AdaFlood's auxiliary models, by their folder under results/aux/.
AUX = GRID.aux
# The efficiency account covers the jobs this invocation submits; a run on SLURM writes
# it here at its end, a local run never does.
STARTED = time.time()
EFFICIENCY = f"results/{EFFICIENCY_TABLE}"


# Only the datasets this grid reads from the data root can be downloaded ("(?!)" matches
# nothing, for grids without any).
wildcard_constraints:
    dataset="|".join(GRID.downloads) or "(?!)",
    aux="|".join(re.escape(path) for path in AUX) or "(?!)",


def final_outputs():
    return ["reports/report.html"]


def run_outputs():
    """What the aggregation waits for: the files of every run of the grid (run_targets),
    and of each search its table of rounds, written once its last decision is."""
    return run_targets(GRID.runs) + search_tables()


def search_outputs(wildcards):
    """A search's decisions up to the one that ended it, and the runs of each round: each
    decision is a checkpoint, so this is evaluated again as they are written. One search
    each, so that the searches' rounds run side by side."""
    search = GRID.searches_by_name[wildcards.search]
    targets = []
    round_ = search.first_decided_round
    while True:
        decision = checkpoints.search_round.get(
            search=search.name, round=round_
        ).output[0]
        targets.append(decision)
        runs = search.runs(read_decision(decision).levels)
        if not runs:
            return targets
        targets += run_targets(remember(runs))
        round_ += 1


def run_targets(runs):
    """The files that say these runs are done: of a single run its own files, of a pack
    its marker (its members' files are not outputs of the pack job: Snakemake would
    delete the finished members' files before rerunning a pack whose members changed),
    or its members' files when they are all finished already, so that no job trains
    nothing."""
    targets, packs = [], {}
    for run in runs:
        pack = pack_of(run.path)
        if pack is None:
            targets += [
                f"results/runs/{run.path}/{f}" for f in ("metrics.parquet", "run.json")
            ]
        else:
            packs[pack.name] = pack
    for pack in packs.values():
        targets += pack_targets(pack, f"results/packs/{pack.name}.done")
    return targets


# Runs and packs of the searches' rounds, by path and name, as their decisions are read.
SEARCHED_RUNS = {}
SEARCHED_PACKS = {}
PACK_OF = {run.path: pack for pack in GRID.packs for run in pack.runs}


def remember(runs):
    """Record a round's runs and packs, so that their jobs can be looked up by name."""
    packs = group_packs(runs)
    SEARCHED_RUNS.update((run.path, run) for run in runs)
    SEARCHED_PACKS.update((pack.name, pack) for pack in packs)
    PACK_OF.update((run.path, pack) for pack in packs for run in pack.runs)
    return runs


def read_decided_rounds():
    """Remember the runs of every decision file there is: a job of a searched round, run
    by a Snakemake process of its own (on a cluster node), finds its run or pack there.
    """
    for search in GRID.searches:
        for path in sorted(Path(SEARCH_FOLDER, search.name).glob("round*.json")):
            remember(search.runs(read_decision(path).levels))


def pack_of(path):
    return PACK_OF.get(path)


def lookup_run(path):
    run = GRID.by_path.get(path) or SEARCHED_RUNS.get(path)
    if run is None:
        read_decided_rounds()
        run = SEARCHED_RUNS[path]
    return run


def lookup_pack(name):
    pack = GRID.packs_by_name.get(name) or SEARCHED_PACKS.get(name)
    if pack is None:
        read_decided_rounds()
        pack = SEARCHED_PACKS[name]
    return pack


def searched_runs():
    """The runs of every round of each finished search (their decisions all written)."""
    runs = []
    for search in GRID.searches:
        for decision in walk(search, Path(SEARCH_FOLDER, search.name)):
            runs += search.runs(decision.levels)
    return runs


def search_round_input(wildcards):
    """A round's decision reads the runs of every round before it: the grid's own runs
    of the setting (b = 0, and listed levels) for the first, then the previous round's
    runs and decision."""
    search = GRID.searches_by_name[wildcards.search]
    round_ = int(wildcards.round)
    if round_ == search.first_decided_round:
        prefix = f"{search.name}/"
        return run_targets([run for run in GRID.runs if run.path.startswith(prefix)])
    previous = checkpoints.search_round.get(
        search=search.name, round=round_ - 1
    ).output[0]
    runs = remember(search.runs(read_decision(previous).levels))
    return [previous, *run_targets(runs)]


def search_spec(wildcards):
    """The search as the file its jobs read (flooding.search.Search.to_json)."""
    return GRID.searches_by_name[wildcards.search].to_json()


def search_tables():
    return [f"{SEARCH_FOLDER}/{search.name}/rounds.parquet" for search in GRID.searches]


def efficiency_input(wildcards):
    """The efficiency account, an input of the report only where a cluster run wrote one:
    a local run never waits for it, and the report is rebuilt when it appears (at the end
    of a cluster run, after that run's report) or changes."""
    return [EFFICIENCY] if Path(EFFICIENCY).exists() else []


def efficiency_option(wildcards, input):
    return f"--efficiency {input.efficiency[0]}" if input.efficiency else ""


def report_title():
    """The report's --title option; none when the config leaves the title to the report."""
    title = config["title"]
    return "" if title is None else f"--title {shlex.quote(title)}"


def run_dirs():
    """Every run's folder: the grid's, then the searches' (read in the aggregation's job,
    once every decision is written)."""
    paths = GRID.paths + [run.path for run in searched_runs()]
    return [f"results/runs/{path}" for path in paths]


def download_marker(dataset):
    return str(Path(config["data_root"]) / f"{dataset}.downloaded")


def download_root(wildcards, output):
    return Path(output[0]).parent


def train_input(wildcards):
    dataset = lookup_run(wildcards.run).download
    return [download_marker(dataset)] if dataset else []


def pack_input(wildcards):
    dataset = lookup_pack(wildcards.pack).download
    return [download_marker(dataset)] if dataset else []


def train_aux_input(wildcards):
    losses = lookup_run(wildcards.run).aux_losses
    return [losses] if losses else []


def pack_aux_input(wildcards):
    return lookup_pack(wildcards.pack).aux_losses


def aux_option(wildcards, input):
    # The file is an input: a retrained auxiliary model retrains the runs that read it.
    return f"--aux-losses {input.aux[0]}" if input.aux else ""


def aux_data_input(wildcards):
    dataset = AUX[wildcards.aux].download
    return [download_marker(dataset)] if dataset else []


def aux_configs():
    return {path: setting.config for path, setting in AUX.items()}


def aux_gathered():
    return [f"results/aux/{path}/losses.parquet" for path in AUX]


def aux_options(wildcards):
    return AUX[wildcards.aux].options


def aux_resource(name):
    def per_setting(wildcards):
        return getattr(AUX[wildcards.aux].resources, name)

    return per_setting


def pack_spec(wildcards):
    return lookup_pack(wildcards.pack).spec


def pack_vectorise_option(wildcards):
    return lookup_pack(wildcards.pack).vectorise_option


def pack_resource(name):
    def per_pack(wildcards):
        return getattr(lookup_pack(wildcards.pack).resources, name)

    return per_pack


def train_options(wildcards):
    return lookup_run(wildcards.run).options


def data_root_option(wildcards, input):
    # Derived from the download marker (an input), so it is no rerun trigger of its own.
    return f"--data-root {Path(input.data[0]).parent}" if input.data else ""


def train_resource(name):
    """A resource of the train rule: a plain value when every run asks for the same one,
    else a per-job lookup (Snakemake calls such a function once per job, which a
    10,000-run grid notices)."""
    shared = GRID.shared_resources
    if shared is not None:
        return getattr(shared, name)

    def per_run(wildcards):
        return getattr(lookup_run(wildcards.run).resources, name)

    return per_run


def aggregate(metrics, summary, log):
    """The aggregate job: every run into the two tables."""
    from flooding.aggregate import aggregate_runs

    account = aggregate_runs(
        run_dirs(), metrics, summary, grid_configs(), local_cores()
    )
    Path(log).write_text(f"{account}\n")


def grid_configs():
    """Each run's config by folder, so aggregation can name a run whose run.json is damaged."""
    runs = [*GRID.runs, *searched_runs()]
    return {f"results/runs/{run.path}": run.config.to_dict() for run in runs}


def local_cores():
    """The cores of a local invocation, for the share of them that training used. Read in
    the job, not as a param (other cores must not re-aggregate); a cluster executor sets no
    total, and there the share would mean nothing."""
    try:
        return workflow.cores
    except WorkflowError:
        return None


def efficiency_account():
    """After a run through the submitit executor on SLURM: what its jobs asked for
    against what they used, into results/efficiency.parquet (flooding.efficiency)."""
    settings = workflow.executor_settings
    if getattr(settings, "backend", None) != "slurm":
        return
    from flooding.efficiency import EfficiencyError, write_account

    try:
        print(write_account(Path(settings.folder), Path(EFFICIENCY), since=STARTED))
    except EfficiencyError as error:
        print(f"No efficiency account: {error}")


# `snakemake calibrate` (workflow/rules/calibrate.smk): the logic is in flooding.calibrate.
CALIBRATION_CACHE = "results/calibration.json"


@functools.cache
def uncalibrated():
    """The shapes nothing under results/ has measured, each with the run to time; read
    only when the calibration is asked for."""
    from flooding.calibrate import shapes_to_calibrate

    return shapes_to_calibrate(GRID, Path("results"))


@functools.cache
def shape_runs_by_name():
    from flooding.calibrate import shape_runs

    return {shape.name: run for shape, run in shape_runs(GRID.runs).items()}


def calibration_target(wildcards):
    """The gathered timings of the shapes left to time; or, with none left, the cache."""
    return (
        ["results/calibration/gathered.done"] if uncalibrated() else [CALIBRATION_CACHE]
    )


def calibration_files(wildcards):
    return [f"results/calibration/{shape.name}.json" for shape in uncalibrated()]


def calibration_run(wildcards):
    return shape_runs_by_name()[wildcards.shape]


def calibration_data(wildcards):
    dataset = calibration_run(wildcards).download
    return [download_marker(dataset)] if dataset else []


def calibration_options(wildcards):
    return calibration_run(wildcards).options


def calibration_device(wildcards):
    return device_of(calibration_run(wildcards))


def calibration_resource(name):
    def per_shape(wildcards):
        from flooding.calibrate import job_resources

        return getattr(job_resources(calibration_run(wildcards).resources), name)

    return per_shape


def gather_timings(files, log):
    """The gather_calibration job: the jobs' timings into the cache, and a job's
    start-up timed here as `flooding plan --calibrate` times it."""
    from flooding.calibrate import gather_calibration
    from flooding.plan import grid_jobs, workflow_load_command

    load = workflow_load_command(workflow.overwrite_configfiles, grid_jobs(GRID)[0])
    account = gather_calibration([Path(f) for f in files], Path("results"), load)
    Path(log).write_text(f"{account}\n")
    print(account)
