"""Shared test configuration."""

import os
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings
from pluggy import Result

# Timing-based hypothesis deadlines are flaky on a shared 2-core machine; correctness only.
settings.register_profile(
    "vigil", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60
)
settings.load_profile("vigil")


# With CI=true a missing real component (a Debian package, the ../shared corpora) is a failure,
# never a skip: a skipped end-to-end test would leave CI green without having run it.
_CI_SKIP = "skipped under CI=true, which counts a skip as a failure"


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if _ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{_CI_SKIP}: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, Result[pytest.CollectReport], None]:
    outcome = yield
    report = outcome.get_result()
    if _ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{_CI_SKIP}: {report.longrepr}"
