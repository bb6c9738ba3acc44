"""Shared fixtures: the bot's database (SQLite and PostgreSQL), Docker, the stand-in environment."""

import os
from collections.abc import Iterator

import pytest

from phases.secrets import GLOBAL_MASKER
from tests.db_fixtures import app_role, db, pg_db, sqlite_db  # noqa: F401
from tests.docker_fixtures import compose, docker_client  # noqa: F401
from tests.slow_first import order
from tests.standin_env import standin  # noqa: F401


@pytest.hookimpl(trylast=True)  # after -m/-k have deselected: the slices are of what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, each worker's first slice starts with its share of the known-slow tests,
    longest first (tests/slow_first.py): every worker collects the same order, as xdist needs."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 0))
    items[:] = order(items, workers)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true (as scripts/test.sh runs) the suite has no skips: any skip fails the run."""
    if os.environ.get("CI", "").lower() != "true" or exitstatus != pytest.ExitCode.OK:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not reporter.stats.get("skipped"):
        return
    skipped = len(reporter.stats["skipped"])
    reporter.ensure_newline()
    reporter.write_line(f"CI=true: {skipped} test(s) skipped; the suite must not skip", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _global_masker_per_test() -> Iterator[None]:
    """Each test starts with the secrets the process-wide masker knew before it: a secret one
    test registers (a runbook's values, a bot's tokens) must not mask another test's audit
    rows. A process used to run one test file; an xdist worker runs any mix, in any order."""
    with GLOBAL_MASKER._lock:
        needles, pattern = set(GLOBAL_MASKER._needles), GLOBAL_MASKER._pattern
    yield
    with GLOBAL_MASKER._lock:
        GLOBAL_MASKER._needles, GLOBAL_MASKER._pattern = needles, pattern


STEP_USER = "nobody"  # the unprivileged user a root bot's steps run as in the tests


@pytest.fixture
def step_tmp():  # type: ignore[no-untyped-def]
    """A folder the step user may work in (pytest's tmp_path is root's alone, 0700): for a
    `cutover serve`/`console` process started as root with CUTOVER_STEP_USER=nobody."""
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="cutover-step-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)
