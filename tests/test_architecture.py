"""The project's layering, as tests: each part imports only what its role allows.

- The engine (flooding.train and what it needs) and the grid run without Snakemake.
- The report, the grid and the config check run without torch (the workflow plans a
  10,000-run grid and a laptop opens a report without paying torch's import).
- The SLURM executor plugin knows nothing of flooding: it runs any Snakemake workflow.
- flooding.validation is a leaf: config and data both import it, it imports neither.
- No module of flooding imports, however indirectly, a module that imports it back.

Each check imports the module in a fresh interpreter and looks at sys.modules there.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

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
        "flooding.report.page",
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


def flooding_imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The flooding modules that `module` (at `path`) imports anywhere in its source:
    at the top, in functions, under TYPE_CHECKING. `from package import name` imports
    the module package.name where there is one, else the package itself."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                names.add(submodule if submodule in modules else base)
    return {name for name in names if name in modules} - {module}


def module_graph() -> dict[str, set[str]]:
    """Module -> the flooding modules it imports, for every module of src/flooding."""
    root = Path(__file__).resolve().parents[1] / "src"
    paths = {
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (root / "flooding").rglob("*.py")
    }
    return {module: flooding_imports(path, module, set(paths)) for module, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of the graph, as a list of modules, or None."""
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> list[str] | None:
        if module in trail:
            return [*trail[trail.index(module) :], module]
        if module in done:
            return None
        for target in sorted(graph[module]):
            cycle = visit(target, [*trail, module])
            if cycle is not None:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle is not None:
            return cycle
    return None


def test_find_cycle_finds_a_circle_and_passes_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_circle() -> None:
    """Counting every import, lazy ones and those for type checking too: a circle means
    two modules that cannot be read, or changed, one without the other. (A package's
    __init__ importing its own modules is not a circle: they do not import it back.)"""
    graph = module_graph()
    assert "flooding.train" in graph and graph["flooding.grid"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
