"""Shared test settings.

The SLURM tests (marker `slurm`) run only when asked for, with `pytest --slurm` or
FLOODING_TEST_SLURM=1: their session fixture may start a local cluster (cluster/start.sh,
which installs Debian packages and starts system daemons as root), which a plain `pytest`
must not do to a user's machine. `.ci/run` asks for them.

In CI (``CI=true``) every test must run: a skip there means a service the suite relies
on (SLURM, Chromium) is missing or was not asked for, which is a failure of the CI
set-up, not of the test.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
SLURM_OPT_IN = "FLOODING_TEST_SLURM"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slurm",
        action="store_true",
        help="run the SLURM tests, starting a local cluster with cluster/start.sh if none "
        f"is running (needs root; installs Debian packages); same as {SLURM_OPT_IN}=1",
    )


def slurm_opted_in(config: pytest.Config) -> bool:
    return bool(config.getoption("--slurm")) or os.environ.get(SLURM_OPT_IN) == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if slurm_opted_in(config):
        return
    skip = pytest.mark.skip(
        reason=f"SLURM tests not asked for: run pytest --slurm or set {SLURM_OPT_IN}=1 "
        "(may start a local cluster: root, Debian packages, system daemons)"
    )
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {report.longrepr}"
