"""A Snakemake executor plugin that submits jobs to SLURM through submitit.

`snakemake --executor submitit` (or `executor: submitit` in a profile) turns every
non-local job into a SLURM job: resources map to sbatch options (see `resources`), jobs
ready together become job arrays, status checks are one sacct query per interval, and a
job that reaches its time limit is requeued to resume from its checkpoint (see `command`).
`--submitit-backend local` runs the same jobs as local processes, for machines without
SLURM. Settings: `snakemake --help`, section "submitit executor plugin settings".
"""

from snakemake_interface_executor_plugins.settings import CommonSettings

from .executor import Executor
from .settings import ExecutorSettings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]

common_settings = CommonSettings(
    # Jobs run elsewhere (SLURM nodes or separate processes) but share this file system.
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=True,
    auto_deploy_default_storage_provider=False,
    pass_group_args=True,
    # The first check comes one interval after the first submission anyway.
    init_seconds_before_status_checks=0,
)
