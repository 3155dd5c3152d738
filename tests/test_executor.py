"""Resources -> SLURM requests, and the executor's settings: validated before submission."""

from __future__ import annotations

from typing import Any

import pytest
from snakemake_interface_common.exceptions import WorkflowError
from submitit.slurm.slurm import _make_sbatch_string

from snakemake_executor_plugin_submitit.executor import plan_arrays
from snakemake_executor_plugin_submitit.resources import (
    ResourceError,
    SlurmRequest,
    slurm_request,
)
from snakemake_executor_plugin_submitit.settings import ExecutorSettings

# What Snakemake hands the executor for `resources: runtime="90m", mem="8G", gpu=2, ...`.
SNAKEMAKE_RESOURCES: dict[str, Any] = {
    "_cores": 4,
    "_nodes": 1,
    "tmpdir": "/tmp",
    "mem_mb": 8000,
    "mem": "8 GB",
    "mem_mib": 7630,
    "disk_mb": 1000,
    "disk_mib": 954,
    "runtime": 90,
}


def sbatch_lines(request: SlurmRequest, map_count: int | None = None) -> set[str]:
    """The #SBATCH lines submitit writes for this request (as the executor configures it)."""
    text = _make_sbatch_string(
        command="true",
        folder="/tmp/submitit",
        map_count=map_count,
        array_parallelism=3,
        **request.slurm_parameters(),
    )
    return {line for line in text.splitlines() if line.startswith("#SBATCH")}


def test_every_resource_reaches_its_sbatch_option() -> None:
    resources = {
        **SNAKEMAKE_RESOURCES,
        "gpu": 2,
        "gpu_model": "a100",
        "cpus_per_task": 6,
        "slurm_partition": "gpu,gpu-long",
        "slurm_account": "flood_proj",
        "constraint": "a100&ib",
        "qos": "high",
        "slurm_extra": "--mail-type=END --exclusive --comment='flood run'",
    }
    lines = sbatch_lines(slurm_request(resources, threads=4), map_count=10)
    expected = {
        "#SBATCH --time=90",
        "#SBATCH --mem=8000M",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --gpus-per-node=a100:2",
        "#SBATCH --partition=gpu,gpu-long",
        "#SBATCH --account=flood_proj",
        "#SBATCH --constraint='a100&ib'",
        "#SBATCH --qos=high",
        "#SBATCH --mail-type=END",
        "#SBATCH --exclusive",
        "#SBATCH --comment='flood run'",
        "#SBATCH --array=0-9%3",
    }
    assert expected <= lines, sorted(lines)


def test_defaults_threads_as_cpus_and_no_gpu() -> None:
    request = slurm_request({**SNAKEMAKE_RESOURCES, "download_slots": 1}, threads=3)
    assert request == SlurmRequest(time_min=90, cpus_per_task=3, mem_mb=8000)
    lines = sbatch_lines(request)
    assert "#SBATCH --cpus-per-task=3" in lines
    assert not any("gpu" in line or "partition" in line for line in lines)


def test_local_backend_gets_time_limit_and_gpus() -> None:
    request = slurm_request({"runtime": 5, "gpu": 1}, threads=1)
    assert request.local_parameters() == {"timeout_min": 5, "gpus_per_node": 1}


def test_equal_resources_make_equal_requests() -> None:
    # The executor groups jobs into arrays by request, so equality must follow the values.
    first = slurm_request({**SNAKEMAKE_RESOURCES, "gpu": 1}, threads=2)
    second = slurm_request({**SNAKEMAKE_RESOURCES, "gpu": 1}, threads=2)
    third = slurm_request({**SNAKEMAKE_RESOURCES, "gpu": 0}, threads=2)
    assert first == second
    assert len({first, second, third}) == 2


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"runtime": 0}, "resource runtime: invalid value 0; accepted: an integer >= 1"),
        ({"runtime": "soon"}, "resource runtime: invalid value 'soon'; accepted: an integer"),
        ({"mem_mb": -5}, "resource mem_mb: invalid value -5; accepted: an integer >= 1"),
        ({"cpus_per_task": 0}, "resource cpus_per_task: invalid value 0"),
        ({"gpu": -1}, "resource gpu: invalid value -1; accepted: an integer >= 0"),
        ({"gpu": True}, "resource gpu: invalid value True; accepted: an integer >= 0"),
        ({"gpu": 1, "gpu_model": "a 100"}, "resource gpu_model: invalid value 'a 100'"),
        ({"slurm_partition": "gpu long"}, "resource slurm_partition: invalid value 'gpu long'"),
        ({"slurm_account": ""}, "resource slurm_account: invalid value ''"),
        ({"qos": 3}, "resource qos: invalid value 3"),
        ({"constraint": "a100 | v100"}, "resource constraint: invalid value 'a100 | v100'"),
        ({"slurm_extra": "-N 2"}, "not one: '-N'"),
        ({"slurm_extra": "--time=5"}, "--time is set by runtime"),
        ({"slurm_extra": "--array=0-3"}, "--array is set by the executor (job arrays)"),
        ({"slurm_extra": "--comment='open"}, "resource slurm_extra: invalid value"),
        (
            {"gpus": 1},
            "resource gpus: invalid value 1; accepted: unknown resource; did you mean gpu?",
        ),
        ({"runtme": 5}, "did you mean runtime?"),
        ({"slurm_partiton": "gpu"}, "did you mean slurm_partition?"),
        ({"slurm_queue": "gpu"}, "unknown SLURM resource; known: slurm_partition, slurm_account"),
    ],
)
def test_invalid_resources_fail_with_a_message_naming_them(
    resources: dict[str, Any], message: str
) -> None:
    with pytest.raises(ResourceError) as error:
        slurm_request({"runtime": 10, **resources}, threads=1)
    assert message in str(error.value)


def test_a_time_limit_is_required() -> None:
    # Without one, submitit would silently impose its own 5 minutes.
    with pytest.raises(ResourceError) as error:
        slurm_request({"mem_mb": 1000}, threads=1)
    assert "resource runtime: invalid value None; accepted: minutes > 0, required" in str(
        error.value
    )


def test_settings_defaults_are_valid_and_bad_ones_name_the_option() -> None:
    ExecutorSettings().check()
    # A job is never signalled before half its time limit has passed.
    assert ExecutorSettings(signal_delay=90).signal_delay_s(time_min=60) == 90
    assert ExecutorSettings(signal_delay=90).signal_delay_s(time_min=1) == 30
    with pytest.raises(WorkflowError, match="--submitit-backend: invalid value 'pbs'"):
        ExecutorSettings(backend="pbs").check()
    with pytest.raises(WorkflowError, match="--submitit-max-array-size: invalid value 0"):
        ExecutorSettings(max_array_size=0).check()
    with pytest.raises(WorkflowError, match="--submitit-max-requeues: invalid value -1"):
        ExecutorSettings(max_requeues=-1).check()


def test_jobs_ready_together_form_arrays_per_rule_and_request() -> None:
    gpu = slurm_request({"runtime": 60, "gpu": 1}, threads=1)
    cpu = slurm_request({"runtime": 60}, threads=1)
    jobs = [("train", gpu, f"g{i}") for i in range(5)]
    jobs += [("train", cpu, "c0"), ("download", cpu, "d0"), ("train", cpu, "c1")]
    assert plan_arrays(jobs, max_size=2) == [
        ("train", gpu, ["g0", "g1"]),
        ("train", gpu, ["g2", "g3"]),
        ("train", gpu, ["g4"]),
        ("train", cpu, ["c0", "c1"]),
        ("download", cpu, ["d0"]),
    ]
    assert len(plan_arrays(jobs, max_size=1000)) == 3
