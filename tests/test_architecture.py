"""The project's layering, as tests: each part imports only what its role allows.

- The engine (flooding.train and what it needs) and the grid run without Snakemake.
- The report, the grid and the config check run without torch (the workflow plans a
  10,000-run grid and a laptop opens a report without paying torch's import).
- The SLURM executor plugin knows nothing of flooding: it runs any Snakemake workflow.
- flooding.validation is a leaf: config and data both import it, it imports neither.

Each check imports the module in a fresh interpreter and looks at sys.modules there.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def imported_by(module: str) -> set[str]:
    """Top-level names of every module a fresh interpreter holds after `import module`."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize("module", ["flooding.train", "flooding.grid", "flooding.cli"])
def test_engine_and_grid_run_without_snakemake(module: str) -> None:
    assert "snakemake" not in top_level(imported_by(module))


@pytest.mark.parametrize(
    "module",
    [
        "flooding.report",
        "flooding.grid",
        "flooding.schema",
        "flooding.aggregate",
        # What the workflow imports when it loads (common.smk), for a quick dry run.
        "flooding.finished",
        "flooding.stale_lock",
    ],
)
def test_report_grid_and_aggregation_run_without_torch(module: str) -> None:
    heavy = {"torch", "torchvision", "timm"} & top_level(imported_by(module))
    assert not heavy, f"{module} imports {sorted(heavy)}"


def test_the_executor_plugin_does_not_know_flooding() -> None:
    modules = imported_by("snakemake_executor_plugin_submitit")
    assert "snakemake_executor_plugin_submitit" in modules
    assert "flooding" not in top_level(modules)


def test_validation_is_a_leaf() -> None:
    flooding_modules = {m for m in imported_by("flooding.validation") if m.startswith("flooding")}
    assert flooding_modules == {"flooding", "flooding.validation"}


def test_the_data_package_does_not_import_the_config() -> None:
    assert "flooding.config" not in imported_by("flooding.data")
