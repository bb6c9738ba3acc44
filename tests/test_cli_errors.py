"""The `cutover` CLI as a user meets it: one line and an exit code per class of error, no
traceback; `runbook check FILE`, a description and `--help` for every subcommand, `--version`.

Bad invocations run `bot.cli.main` in this process (its imports paid once, not ~1.4 s a
call) as `python -m bot.cli` would in an empty folder: its own environment and working
folder, stdout and stderr as the process would print them (logging included), the exit code
of `sys.exit(main())`, and a traceback on stderr if anything escaped. The entry point as a
real process is tested too: test_the_entry_point_as_a_process_* and the closed pipe.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import traceback
from importlib.metadata import version
from pathlib import Path

import pytest

from bot.cli import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_RUNBOOK,
    EXIT_SCHEMA,
    EXIT_USAGE,
    main,
)
from bot.settings import normalize_database_url
from bot.store.db import Database
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.require import unavailable

REPO = Path(__file__).resolve().parent.parent
DEMO_RUNBOOK = REPO / "runbooks" / "demo.yml"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty working folder with a bot database (made as an operator does: `cutover db
    upgrade`) and a broken runbook."""
    Database(f"sqlite:///{tmp_path / 'bot.db'}").upgrade()
    (tmp_path / "broken.yml").write_text("phases: [\n", encoding="utf-8")
    (tmp_path / "empty.db").touch()
    return tmp_path


def clean_env(folder: Path, env: dict[str, str] | None) -> dict[str, str]:
    """This process's environment without the bot's settings, the folder's bot database, `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "SLACK_"))}
    clean["CUTOVER_DATABASE_URL"] = f"sqlite:///{folder / 'bot.db'}"
    clean.update(env or {})
    return clean


def cutover_process(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`cutover ARGS` as a real process (`python -m bot.cli`)."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=folder,
        env=clean_env(folder, env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def cutover(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`cutover ARGS` as cutover_process runs it, in this process: the same environment and
    folder, stdout/stderr (the root logger starts without handlers, as in a new process, so
    the CLI's own logging setup writes to this stderr), exit code and escaped tracebacks."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_env = dict(os.environ)
    code: int
    try:
        os.environ.clear()
        os.environ.update(clean_env(folder, env))
        root.handlers.clear()
        with (
            contextlib.chdir(folder),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: usage errors, --help, --version
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        for handler in root.handlers[:]:
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["cutover", *args], code, out.getvalue(), err.getvalue())


BAD_INVOCATIONS = [
    # bad usage: flags and arguments
    pytest.param(["status", "--bogus"], {}, EXIT_USAGE, "unrecognized arguments: --bogus",
                 id="unknown-flag"),
    pytest.param(["launch"], {}, EXIT_USAGE, "invalid choice: 'launch'", id="unknown-command"),
    pytest.param(["audit"], {}, EXIT_USAGE, "required: ACTION", id="missing-action"),
    pytest.param(["audit", "export", "abc"], {}, EXIT_USAGE, "invalid int value: 'abc'",
                 id="run-not-a-number"),
    pytest.param(["audit", "export", "--format", "xml"], {}, EXIT_USAGE,
                 "invalid choice: 'xml'", id="unknown-format"),
    pytest.param(["audit", "lockdown"], {}, EXIT_USAGE, "required: --app-role",
                 id="missing-required-flag"),
    pytest.param(["--runbook", str(DEMO_RUNBOOK), "status", "qa"], {}, EXIT_USAGE,
                 "unknown environment 'qa'", id="unknown-environment"),
    # the runbook
    pytest.param(["runbook", "check", "nope.yml"], {}, EXIT_RUNBOOK, "cannot read runbook",
                 id="runbook-file-missing"),
    pytest.param(["runbook", "check"], {"CUTOVER_RUNBOOK": "gone.yml"}, EXIT_RUNBOOK,
                 "gone.yml: cannot read runbook", id="runbook-from-env-missing"),
    pytest.param(["runbook", "check", "broken.yml"], {}, EXIT_RUNBOOK, "not valid YAML",
                 id="runbook-not-yaml"),
    # configuration: database URL, settings
    pytest.param(["audit", "verify"], {"CUTOVER_DATABASE_URL": "mysql://app:pw@db/cutover"},
                 EXIT_CONFIG, "'mysql' is not supported", id="mysql-url"),
    pytest.param(["audit", "verify"], {"CUTOVER_DATABASE_URL": "cutover.db"}, EXIT_CONFIG,
                 "'cutover.db' is malformed", id="url-without-scheme"),
    pytest.param(["audit", "verify"], {"CUTOVER_DATABASE_URL": "sqlite:/cutover.db"},
                 EXIT_CONFIG, "is malformed", id="url-unparseable"),
    pytest.param(["--database-url", "postgresql://app:pw@db:port/cutover", "audit", "verify"],
                 {}, EXIT_CONFIG, "the port must be a number", id="url-port-not-a-number"),
    pytest.param(["audit", "export", "--database-url", "postgresql+psycopg2://app@db/cutover"],
                 {}, EXIT_CONFIG, "driver 'psycopg2' is not installed", id="url-other-driver"),
    pytest.param(["runbook", "check", str(DEMO_RUNBOOK)], {"CUTOVER_WORKERS": "99"},
                 EXIT_CONFIG, "CUTOVER_WORKERS", id="setting-out-of-range"),
    pytest.param(["runbook", "check", str(DEMO_RUNBOOK)], {"CUTOVER_LOG_LEVEL": "loud"},
                 EXIT_CONFIG, "'loud' is not a log level", id="setting-unknown-log-level"),
    pytest.param(["runbook", "check", str(DEMO_RUNBOOK)], {"CUTOVER_LOG_FORMAT": "xml"},
                 EXIT_CONFIG, "CUTOVER_LOG_FORMAT: 'xml' is not a log format; use text or json",
                 id="setting-unknown-log-format"),
    # the database cannot be reached
    pytest.param(["audit", "verify"],
                 {"CUTOVER_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/postgres"},
                 EXIT_DATABASE, "unreachable", id="postgres-down"),
    # no cutover schema there: read commands never create one
    pytest.param(["audit", "verify"],
                 {"CUTOVER_DATABASE_URL": "sqlite:////nonexistent-dir/cutover.db"},
                 EXIT_SCHEMA, "no such file /nonexistent-dir/cutover.db", id="sqlite-dir-missing"),
    pytest.param(["audit", "verify"], {"CUTOVER_DATABASE_URL": "sqlite:///cutvoer.db"},
                 EXIT_SCHEMA, "sqlite:///cutvoer.db: no such file cutvoer.db; check the path",
                 id="verify-sqlite-path-mistyped"),
    pytest.param(["audit", "export"], {"CUTOVER_DATABASE_URL": "sqlite:///cutvoer.db"},
                 EXIT_SCHEMA, "or create it with `cutover db upgrade`",
                 id="export-sqlite-path-mistyped"),
    pytest.param(["--runbook", str(DEMO_RUNBOOK), "status"],
                 {"CUTOVER_DATABASE_URL": "sqlite:///cutvoer.db"},
                 EXIT_SCHEMA, "no such file cutvoer.db", id="status-sqlite-path-mistyped"),
    pytest.param(["audit", "verify"], {"CUTOVER_DATABASE_URL": "sqlite:///empty.db"},
                 EXIT_SCHEMA, "sqlite:///empty.db has no cutover tables (a wrong URL or path?); "
                 "run `cutover db upgrade`", id="sqlite-file-without-schema"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "env", "code", "fragment"), BAD_INVOCATIONS)
def test_bad_invocation_is_one_line_and_its_exit_code_never_a_traceback(
    folder: Path, args: list[str], env: dict[str, str], code: int, fragment: str
) -> None:
    done = cutover(folder, *args, env=env)
    assert "Traceback" not in done.stdout + done.stderr
    assert (done.returncode, done.stderr.count("\n")) == (code, 1), done.stderr
    assert fragment in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "code", "fragment"),
    [BAD_INVOCATIONS[0], BAD_INVOCATIONS[-1]],  # argparse's usage error, the CLI's own
)
def test_the_entry_point_as_a_process_prints_one_line_and_its_exit_code(
    folder: Path, args: list[str], env: dict[str, str], code: int, fragment: str
) -> None:
    """What the in-process runs above stand for: `python -m bot.cli` itself answers the same."""
    done = cutover_process(folder, *args, env=env)
    assert "Traceback" not in done.stdout + done.stderr
    assert (done.returncode, done.stderr.count("\n")) == (code, 1), done.stderr
    assert fragment in done.stderr
    assert (done.returncode, done.stdout, done.stderr) == tuple(
        getattr(cutover(folder, *args, env=env), f) for f in ("returncode", "stdout", "stderr")
    )


@pytest.mark.parametrize("args", [["audit", "verify"], ["audit", "export"], ["status"]])
def test_read_commands_leave_a_mistyped_sqlite_path_uncreated(
    folder: Path, args: list[str]
) -> None:
    env = {"CUTOVER_DATABASE_URL": "sqlite:///cutvoer.db", "CUTOVER_RUNBOOK": str(DEMO_RUNBOOK)}
    done = cutover(folder, *args, env=env)
    assert done.returncode == EXIT_SCHEMA, done.stderr
    assert not (folder / "cutvoer.db").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("args", [["audit", "verify"], ["audit", "export"], ["status"]])
def test_read_commands_on_an_empty_postgres_create_no_tables(folder: Path, args: list[str]) -> None:
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
    with throwaway_pg_database() as url:
        with_password = url.replace("://postgres@", "://postgres:s3cr3t@")
        env = {"CUTOVER_DATABASE_URL": with_password, "CUTOVER_RUNBOOK": str(DEMO_RUNBOOK)}
        done = cutover(folder, *args, env=env)
        tables = (
            Database(url)
            .engine.connect()
            .exec_driver_sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .scalar()
        )
    assert (done.returncode, tables) == (EXIT_SCHEMA, 0), done.stderr
    assert "s3cr3t" not in done.stderr and "postgres:***@" in done.stderr
    assert done.stderr.endswith(
        "has no cutover tables (a wrong URL or path?); run `cutover db upgrade`\n"
    )


def test_db_upgrade_makes_the_schema_then_reads_work(folder: Path) -> None:
    env = {"CUTOVER_DATABASE_URL": "sqlite:///new.db"}
    made = cutover(folder, "db", "upgrade", env=env)
    assert made.returncode == EXIT_OK, made.stderr
    assert "schema upgraded from none to" in made.stdout
    again = cutover(folder, "db", "upgrade", env=env)
    assert "schema is up to date" in again.stdout
    verified = cutover(folder, "audit", "verify", env=env)
    assert verified.returncode == EXIT_OK, verified.stderr
    assert verified.stdout == (
        "audit chain OK: 0 events verified\n"
        f"verified no rows (an empty trail), head 0:{'0' * 64}\n"  # for --expect-head later
    )


def test_database_url_error_masks_the_password(folder: Path) -> None:
    env = {"CUTOVER_DATABASE_URL": "mysql://app:s3cr3t@db/x"}
    done = cutover(folder, "audit", "verify", env=env)
    assert done.returncode == EXIT_CONFIG
    assert "s3cr3t" not in done.stderr and "mysql://app:***@db/x" in done.stderr


def test_malformed_database_url_error_masks_the_password(folder: Path) -> None:
    env = {"CUTOVER_DATABASE_URL": "postgresql://app:s3cr3t@db:x/y"}
    done = cutover(folder, "audit", "verify", env=env)
    assert done.returncode == EXIT_CONFIG
    assert "s3cr3t" not in done.stderr and "postgresql://app:***@db:x/y" in done.stderr


def test_closed_pipe_exits_quietly(folder: Path) -> None:
    """`cutover audit export --format csv | head -0`: the reader is gone before the first write."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "audit", "export", "--format", "csv"],
        cwd=folder,
        env={**os.environ, "CUTOVER_DATABASE_URL": f"sqlite:///{folder / 'bot.db'}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert (proc.wait(timeout=60), err) == (EXIT_PIPE_CLOSED, "")


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_plain_postgres_urls_are_taken_as_psycopg(scheme: str) -> None:
    url = normalize_database_url(f"{scheme}://app:pw@db.internal:5433/cutover?sslmode=require")
    assert url == "postgresql+psycopg://app:pw@db.internal:5433/cutover?sslmode=require"


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_cli_works_against_a_postgres_url_without_driver(folder: Path, scheme: str) -> None:
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
    with throwaway_pg_database() as url:
        plain = scheme + url[url.index("://") :]
        made = cutover(folder, "--database-url", plain, "db", "upgrade")
        done = cutover(folder, "--database-url", plain, "audit", "verify")
    assert made.returncode == EXIT_OK, made.stderr
    assert (done.returncode, done.stderr) == (EXIT_OK, ""), done.stderr
    assert "audit chain OK" in done.stdout


def test_runbook_check_takes_the_file_positionally(folder: Path) -> None:
    done = cutover(folder, "runbook", "check", str(DEMO_RUNBOOK))
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.startswith(f"{DEMO_RUNBOOK}: OK")


def test_runbook_check_file_wins_over_cutover_runbook(folder: Path) -> None:
    done = cutover(
        folder, "runbook", "check", str(DEMO_RUNBOOK), env={"CUTOVER_RUNBOOK": "gone.yml"}
    )
    assert done.returncode == EXIT_OK, done.stderr


def test_global_options_are_accepted_after_the_subcommand(folder: Path) -> None:
    done = cutover(folder, "status", "--runbook", str(DEMO_RUNBOOK))
    assert done.returncode == EXIT_OK, done.stderr


def test_version_prints_the_package_version(folder: Path) -> None:
    done = cutover(folder, "--version")
    assert (done.returncode, done.stdout) == (EXIT_OK, f"cutover {version('cutover-bot')}\n")


def test_runbook_check_help_is_checks_own(folder: Path) -> None:
    done = cutover(folder, "runbook", "check", "--help")
    assert done.returncode == EXIT_OK
    assert done.stdout.startswith("usage: cutover runbook check")
    assert "FILE" in done.stdout and "Validate a runbook file" in done.stdout


SUBCOMMANDS = [
    "console",
    "demo",
    "serve",
    "runbook",
    "runbook check",
    "status",
    "audit",
    "audit export",
    "audit verify",
    "audit lockdown",
    "db",
    "db upgrade",
]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_its_own_help_with_a_description(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--help"])
    assert exited.value.code == EXIT_OK
    usage, description = capsys.readouterr().out.split("\n\n")[:2]
    assert usage.startswith(f"usage: cutover {command} ")
    assert description.strip() and not description.startswith(("positional", "options"))
