"""PostgreSQL client tools for backup and restore: PG* env from a URL, SHA-256, verify."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from phases.checks.base import CommandOutput, StepContext, StopRequest
from phases.checks.command_process import base_env, default_runner, stopped_words
from phases.checks.postgres_check import libpq_url

EVIDENCE_LIMIT = 240
PG_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
}
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def pg_env(url: str) -> tuple[dict[str, str], str]:
    """(environment for pg_dump/pg_restore, "host/db" for evidence) from any Postgres URL:
    what every step inherits (`base_env`) and the connection's PG* variables, never the
    rest of the bot's environment (its tokens and keys)."""
    conninfo, _schema = libpq_url(url)
    parts = conninfo_to_dict(conninfo)
    env = base_env()
    for key, var in PG_ENV.items():
        if parts.get(key):
            env[var] = str(parts[key])
    where = f"{parts.get('host') or 'localhost'}/{parts.get('dbname') or '?'}"
    return env, where


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_tool(
    argv: list[str], env: dict[str, str], timeout: float, stop: StopRequest | None = None
) -> CommandOutput:
    """pg_dump or pg_restore as a command step runs its program (`default_runner`): in its
    own session, begun only once the holder's lease watchdog knows it (killed if the lease
    lapses), stopped by an abort or a lost lease (`stop`), killed whole on timeout.
    Raises FileNotFoundError (not on PATH) and StepNotStarted as the runner does."""
    return default_runner(argv, timeout=max(1.0, timeout), cwd=None, env=env, stop=stop)


def tool_ended_early(
    out: CommandOutput, tool: str, where: str, ctx: StepContext
) -> tuple[str, dict[str, Any]] | None:
    """What to say when the tool did not run to its end (stopped, timed out), and the
    details a stopped step records as a command step does (how it stopped, after how long:
    the rollback's hand-over reads them), else None."""
    if out.stopped is not None:
        said, details = stopped_words(out, ctx)
        return f"{tool} of {where} {said}", details
    if out.timed_out:
        return f"{tool} of {where} timed out after {ctx.timeout:g}s; process group killed", {}
    return None


def _list_archive(path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """`pg_restore --list` (reads the file only; its whole listing is counted)."""
    return subprocess.run(  # noqa: S603  (argv from the step's own parameters, no shell)
        ["pg_restore", "--list", str(path)],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=max(1.0, timeout),
        check=False,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def verify_backup(
    path: Path, min_bytes: int, timeout: float, *, require_listing: bool = True
) -> tuple[list[str], dict[str, Any]]:
    """(problems, facts) of a custom-format dump: readable by pg_restore, big enough, hashed.

    `require_listing=False` (a dump taken in the database's container, where the host may
    have no PostgreSQL client): with no pg_restore on the host, size and SHA-256 still
    count and `facts["listed"]` says the archive was not listed."""
    problems: list[str] = []
    if not path.is_file():
        return [f"{path} not found"], {}
    size = path.stat().st_size
    facts: dict[str, Any] = {"path": str(path), "bytes": size}
    if size < min_bytes:
        problems.append(f"is {size} bytes (min {min_bytes})")
    try:
        listing = _list_archive(path, timeout)
    except FileNotFoundError:
        if require_listing:
            return ["pg_restore is not on PATH"], facts
        facts["listed"] = False
        facts["sha256"] = sha256_of(path)
        return problems, facts
    except subprocess.TimeoutExpired:
        return [f"pg_restore --list timed out after {timeout:g}s"], facts
    if listing.returncode != 0:
        problems.append(f"pg_restore --list failed: {last_line(listing.stderr)}")
    else:
        entries = [x for x in listing.stdout.splitlines() if x.strip() and not x.startswith(";")]
        facts["entries"] = len(entries)  # 0: an empty database, still a restorable archive
        facts["listed"] = True
    facts["sha256"] = sha256_of(path)
    return problems, facts
