"""PostgreSQL client tools for backup and restore: PG* env from a URL, SHA-256, verify."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

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
    """(environment for pg_dump/pg_restore, "host/db" for evidence) from any Postgres URL."""
    conninfo, _schema = libpq_url(url)
    parts = conninfo_to_dict(conninfo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
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
    argv: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (argv from the step's own parameters, no shell)
        argv, env=env, capture_output=True, text=True, timeout=max(1.0, timeout), check=False
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
        listing = run_tool(["pg_restore", "--list", str(path)], dict(os.environ), timeout)
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
