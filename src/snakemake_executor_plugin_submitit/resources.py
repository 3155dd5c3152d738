"""Snakemake resources -> one SLURM request, validated before anything is submitted.

| resource          | SLURM                      | accepted                                   |
|-------------------|----------------------------|--------------------------------------------|
| `runtime`         | `--time` (minutes)         | integer > 0 (Snakemake parses "2h" etc.)   |
| `mem_mb`          | `--mem=<n>M`               | integer > 0                                |
| `cpus_per_task`   | `--cpus-per-task`          | integer > 0; default: the job's `threads`  |
| `gpu`             | `--gpus-per-node`          | integer >= 0                               |
| `gpu_model`       | `--gpus-per-node=<model>:n`| a name; ignored for a job with `gpu` = 0    |
| `slurm_partition` | `--partition`              | a name, or several separated by commas     |
| `slurm_account`   | `--account`                | a name                                     |
| `constraint`      | `--constraint`             | a feature expression without spaces        |
| `qos`             | `--qos`                    | a name                                     |
| `slurm_extra`     | extra `sbatch` options     | `--option=value` / `--flag` words          |

Snakemake's own resources (`mem`, `disk_mb`, `tmpdir`, ...) pass silently, and so does any
other name a workflow uses to limit its local scheduling, unless it looks like a typo of a
name above (or carries the `slurm_` prefix): that fails, with the name it probably meant.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAPPED = (
    "runtime",
    "mem_mb",
    "cpus_per_task",
    "gpu",
    "gpu_model",
    "slurm_partition",
    "slurm_account",
    "constraint",
    "qos",
    "slurm_extra",
)
# Resources Snakemake itself defines or derives; they never reach sbatch.
SNAKEMAKE_OWN = ("_cores", "_nodes", "mem", "mem_mib", "disk", "disk_mb", "disk_mib", "tmpdir")

NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
NAMES = re.compile(r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$")
EXTRA_OPTION = re.compile(r"^--([a-z][a-z0-9\-]*)(?:=(.+))?$", re.DOTALL)

# sbatch options the executor sets itself: through a resource, or because submitit and the
# status checks depend on them (array, output files, signal, job name).
MANAGED_OPTIONS = {
    "time": "runtime",
    "mem": "mem_mb",
    "cpus-per-task": "cpus_per_task",
    "gpus-per-node": "gpu",
    "gpus": "gpu",
    "partition": "slurm_partition",
    "account": "slurm_account",
    "constraint": "constraint",
    "qos": "qos",
    "array": "the executor (job arrays)",
    "output": "the executor (log files)",
    "error": "the executor (log files)",
    "open-mode": "the executor (log files)",
    "signal": "--submitit-signal-delay",
    "job-name": "the executor (rule name)",
    "wrap": "the executor (job command)",
    "parsable": "the executor (job ids)",
    "wait": "the executor (status checks)",
}


class ResourceError(ValueError):
    """A resource that cannot become a SLURM request; the message names it."""

    def __init__(self, name: str, value: Any, accepted: str) -> None:
        super().__init__(f"resource {name}: invalid value {value!r}; accepted: {accepted}")
        self.name = name
        self.value = value
        self.accepted = accepted


@dataclass(frozen=True)
class SlurmRequest:
    """What one job asks of SLURM; jobs with equal requests share a job array."""

    time_min: int
    cpus_per_task: int
    mem_mb: int | None = None
    gpus: int = 0
    gpu_model: str | None = None
    partition: str | None = None
    account: str | None = None
    constraint: str | None = None
    qos: str | None = None
    # sbatch options passed through verbatim: (name, value); value True for a bare flag.
    extra: tuple[tuple[str, str | bool], ...] = ()

    def slurm_parameters(self) -> dict[str, Any]:
        """Keyword arguments for submitit's `SlurmExecutor.update_parameters`."""
        params: dict[str, Any] = {"time": self.time_min, "cpus_per_task": self.cpus_per_task}
        if self.mem_mb is not None:
            params["mem"] = f"{self.mem_mb}M"
        if self.gpus:
            params["gpus_per_node"] = (
                f"{self.gpu_model}:{self.gpus}" if self.gpu_model else self.gpus
            )
        optional = {
            "partition": self.partition,
            "account": self.account,
            "constraint": self.constraint,
            "qos": self.qos,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        if self.extra:
            params["additional_parameters"] = dict(self.extra)
        return params

    def local_parameters(self) -> dict[str, Any]:
        """Keyword arguments for submitit's `LocalExecutor.update_parameters`."""
        return {"timeout_min": self.time_min, "gpus_per_node": self.gpus}


def slurm_request(resources: Mapping[str, Any], threads: int) -> SlurmRequest:
    """Validate a job's resources and map them to a SLURM request.

    `threads` is the job's thread count, the CPU count unless `cpus_per_task` is given.
    Raises ResourceError naming the first bad resource.
    """
    check_names(resources)
    if "runtime" not in resources:
        raise ResourceError(
            "runtime",
            None,
            "minutes > 0, required for a time limit (e.g. `--default-resources runtime=60` "
            "or `default-resources: [runtime=60]` in the profile)",
        )
    time_min = _positive_int("runtime", resources["runtime"])
    cpus = _positive_int("cpus_per_task", resources.get("cpus_per_task", threads))
    mem_mb = resources.get("mem_mb")
    gpus = _int_at_least("gpu", resources.get("gpu", 0), 0)
    gpu_model = _optional_name("gpu_model", resources.get("gpu_model"), NAME)
    # A GPU type set for a whole rule (the profile's set-resources) applies to its jobs
    # that ask for GPUs; the config decides which those are.
    if gpus == 0:
        gpu_model = None
    return SlurmRequest(
        time_min=time_min,
        cpus_per_task=cpus,
        mem_mb=None if mem_mb is None else _positive_int("mem_mb", mem_mb),
        gpus=gpus,
        gpu_model=gpu_model,
        partition=_optional_name("slurm_partition", resources.get("slurm_partition"), NAMES),
        account=_optional_name("slurm_account", resources.get("slurm_account"), NAME),
        constraint=_optional_constraint(resources.get("constraint")),
        qos=_optional_name("qos", resources.get("qos"), NAME),
        extra=parse_extra(resources.get("slurm_extra")),
    )


def check_names(resources: Mapping[str, Any]) -> None:
    """Fail on names that look like a mistyped SLURM resource."""
    known = (*MAPPED, *SNAKEMAKE_OWN)
    for name in resources:
        if name in known:
            continue
        close = difflib.get_close_matches(name, MAPPED, n=1, cutoff=0.8)
        if close:
            raise ResourceError(
                name, resources[name], f"unknown resource; did you mean {close[0]}?"
            )
        if name.startswith("slurm_"):
            slurm_names = ", ".join(n for n in MAPPED if n.startswith("slurm_"))
            raise ResourceError(
                name, resources[name], f"unknown SLURM resource; known: {slurm_names}"
            )


def parse_extra(value: Any) -> tuple[tuple[str, str | bool], ...]:
    """Parse `slurm_extra`, e.g. "--mail-type=END --exclusive", into sbatch options."""
    if value is None or value == "":
        return ()
    accepted = "long sbatch options, e.g. '--mail-type=END --exclusive'"
    if not isinstance(value, str):
        raise ResourceError("slurm_extra", value, accepted)
    try:
        words = shlex.split(value)
    except ValueError as error:
        raise ResourceError("slurm_extra", value, f"{accepted} ({error})") from None
    options: list[tuple[str, str | bool]] = []
    for word in words:
        match = EXTRA_OPTION.match(word)
        if match is None:
            raise ResourceError("slurm_extra", value, f"{accepted}; not one: {word!r}")
        option, argument = match.group(1), match.group(2)
        if option in MANAGED_OPTIONS:
            raise ResourceError(
                "slurm_extra", value, f"{accepted}; --{option} is set by {MANAGED_OPTIONS[option]}"
            )
        options.append((option, True if argument is None else argument))
    return tuple(options)


def _positive_int(name: str, value: Any) -> int:
    return _int_at_least(name, value, 1)


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    # bool is an int subclass, and "gpu=True" is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ResourceError(name, value, f"an integer >= {minimum}")
    try:
        number = int(value)
    except ValueError:
        raise ResourceError(name, value, f"an integer >= {minimum}") from None
    if number < minimum:
        raise ResourceError(name, value, f"an integer >= {minimum}")
    return number


def _optional_name(name: str, value: Any, pattern: re.Pattern[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        what = "names separated by commas" if pattern is NAMES else "a name"
        raise ResourceError(name, value, f"{what} of letters, digits, '_', '.', '-'")
    return value


def _optional_constraint(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ResourceError("constraint", value, "a feature expression without spaces, e.g. a100")
    return value
