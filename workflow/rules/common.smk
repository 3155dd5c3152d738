# Load-time work: validate the config (filling in the schema's defaults), expand the grid,
# and answer Snakemake's per-job questions by looking the run up. The logic is in
# flooding.grid, where it is unit-tested; nothing here imports torch.
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
    from flooding.learned import learn_runtimes
    from flooding.schema import validate_workflow_config
    from flooding.stale_lock import enter
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

# The schema's training settings are generated from the engine's RunConfig, so the config
# is checked by flooding.schema rather than snakemake.utils.validate, which reads a file.
validate_workflow_config(
    config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
)

# Runs with `runtime_auto` ask for what their shape took last time (flooding.learned).
GRID = learn_runtimes(expand_grid(config), Path("results"))
# AdaFlood's auxiliary models, by their folder under results/aux/.
AUX = GRID.aux
# The efficiency account covers the jobs this invocation submits.
STARTED = time.time()


# Only the datasets this grid reads from the data root can be downloaded ("(?!)" matches
# nothing, for grids without any).
wildcard_constraints:
    dataset="|".join(GRID.downloads) or "(?!)",
    aux="|".join(re.escape(path) for path in AUX) or "(?!)",
    fold=r"\d+",


def final_outputs():
    return ["reports/report.html"]


def run_outputs():
    """What the aggregation waits for: the files of each single run, and of each pack its
    marker (its members' files are not outputs of the pack job: Snakemake would delete
    the finished members' files before rerunning a pack whose members changed), or its
    members' files when they are all finished already, so that no job trains nothing."""
    targets = expand(
        "results/runs/{run}/{file}",
        run=GRID.singles,
        file=("metrics.parquet", "run.json"),
    )
    for pack in GRID.packs:
        targets += pack_targets(pack, f"results/packs/{pack.name}.done")
    return targets


def report_title():
    """The report's --title option; none when the config leaves the title to the report."""
    title = config["title"]
    return "" if title is None else f"--title {shlex.quote(title)}"


def run_dirs():
    return [f"results/runs/{path}" for path in GRID.paths]


def download_marker(dataset):
    return str(Path(config["data_root"]) / f"{dataset}.downloaded")


def download_root(wildcards, output):
    return Path(output[0]).parent


def train_input(wildcards):
    dataset = GRID.by_path[wildcards.run].download
    return [download_marker(dataset)] if dataset else []


def pack_input(wildcards):
    dataset = GRID.packs_by_name[wildcards.pack].download
    return [download_marker(dataset)] if dataset else []


def train_aux_input(wildcards):
    losses = GRID.by_path[wildcards.run].aux_losses
    return [losses] if losses else []


def pack_aux_input(wildcards):
    return GRID.packs_by_name[wildcards.pack].aux_losses


def aux_option(wildcards, input):
    # The file is an input: a retrained auxiliary model retrains the runs that read it.
    return f"--aux-losses {input.aux[0]}" if input.aux else ""


def aux_data_input(wildcards):
    dataset = AUX[wildcards.aux].download
    return [download_marker(dataset)] if dataset else []


def aux_fold_losses(wildcards):
    return [
        f"results/aux/{wildcards.aux}/fold{k}/losses.parquet"
        for k in AUX[wildcards.aux].folds
    ]


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
    return GRID.packs_by_name[wildcards.pack].spec


def pack_resource(name):
    def per_pack(wildcards):
        return getattr(GRID.packs_by_name[wildcards.pack].resources, name)

    return per_pack


def train_options(wildcards):
    return GRID.by_path[wildcards.run].options


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
        return getattr(GRID.by_path[wildcards.run].resources, name)

    return per_run


def grid_configs():
    """Each run's config by folder, so aggregation can name a run whose run.json is damaged."""
    return {f"results/runs/{run.path}": run.config.to_dict() for run in GRID.runs}


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
        out = Path("results/efficiency.parquet")
        print(write_account(Path(settings.folder), out, since=STARTED))
    except EfficiencyError as error:
        print(f"No efficiency account: {error}")
