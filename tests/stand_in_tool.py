#!/usr/bin/env python3
"""Stand-in for the NostrMaxi project's own tools in a test deployment folder.

    stand_in_tool.py npm run build | npm run build:frontend
    stand_in_tool.py npx prisma generate | migrate deploy | db pull
    stand_in_tool.py restore BACKUP_DIR

It does what the real tools leave behind (dist/main.js, frontend/dist/index.html,
a `_prisma_migrations` row in the real target PostgreSQL, schema.prisma), so the
runbook's checks verify real effects. A file `.standin/fail-<what>` in the working
folder makes that step fail the way the real tool would (a half-applied migration
leaves an unfinished row). Every call is appended to `.standin/calls.log`.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import psycopg

SCHEMA = """// prisma/schema.prisma (stand-in)
model User {
  id     String @id
  pubkey String @unique
}
"""


def _control(name: str) -> bool:
    return (Path(".standin") / f"fail-{name}").exists()


def _log(argv: list[str]) -> None:
    Path(".standin").mkdir(exist_ok=True)
    with open(Path(".standin") / "calls.log", "a", encoding="utf-8") as f:
        f.write(" ".join(argv) + "\n")


def _db() -> psycopg.Connection:
    url = os.environ["DATABASE_URL"]
    return psycopg.connect(url, autocommit=True)


def npm(args: list[str]) -> int:
    target = args[1] if len(args) > 1 else ""
    if args[:1] != ["run"] or target not in ("build", "build:frontend"):
        print(f"npm: unknown script {target!r}", file=sys.stderr)
        return 1
    if _control(target.replace(":", "-")):
        print(f"ERROR in {target}: TS2304: Cannot find name 'x'", file=sys.stderr)
        return 2
    out = Path("dist/main.js") if target == "build" else Path("frontend/dist/index.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("// built\n", encoding="utf-8")
    print(f"built {out}")
    return 0


def npx(args: list[str]) -> int:
    if args[:1] != ["prisma"]:
        return 1
    sub = args[1:]
    if sub == ["generate"]:
        print("Generated Prisma Client")
        return 0
    if sub == ["migrate", "deploy"]:
        with _db() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS _prisma_migrations (id varchar(36) PRIMARY KEY,"
                " checksum varchar(64) NOT NULL, finished_at timestamptz,"
                " migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz,"
                " started_at timestamptz NOT NULL DEFAULT now(),"
                " applied_steps_count integer NOT NULL DEFAULT 0)"
            )
            failing = _control("migrate")
            conn.execute(
                "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, logs)"
                " VALUES (%s, %s, CASE WHEN %s THEN NULL ELSE now() END, %s, %s)",
                (
                    str(uuid.uuid4()),
                    "0" * 64,
                    failing,
                    "20260217_add_nip05",
                    "relation already exists" if failing else None,
                ),
            )
            if failing:
                print("Error: P3018 A migration failed to apply.", file=sys.stderr)
                return 1
            conn.execute('CREATE TABLE IF NOT EXISTS "User" (id text PRIMARY KEY, pubkey text)')
            # What a login and a NIP-05 claim write (Phase 9 counts them: monitoring/user-actions)
            for table in ("Session", "Nip05"):
                conn.execute(
                    f'CREATE TABLE IF NOT EXISTS "{table}" (id text PRIMARY KEY, '
                    '"createdAt" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP)'
                )
        print("All migrations have been successfully applied.")
        return 0
    if sub == ["db", "pull"]:
        path = Path("prisma/schema.prisma")
        path.parent.mkdir(exist_ok=True)
        path.write_text(SCHEMA + ("  drift Int\n" if _control("drift") else ""), encoding="utf-8")
        print("Introspected 1 model")
        return 0
    return 1


def restore(args: list[str]) -> int:
    if _control("restore"):
        print("restore failed: backup unreadable", file=sys.stderr)
        return 1
    with _db() as conn:
        conn.execute("DROP TABLE IF EXISTS _prisma_migrations")
        conn.execute('DROP TABLE IF EXISTS "User"')
    Path(".standin/restored").write_text(args[0] if args else "", encoding="utf-8")
    print(f"restored database from {args[0] if args else '?'}")
    return 0


def main(argv: list[str]) -> int:
    _log(argv)
    tool, args = argv[0], argv[1:]
    handlers = {"npm": npm, "npx": npx, "restore": restore}
    if tool not in handlers:
        print(f"unknown tool {tool}", file=sys.stderr)
        return 127
    return handlers[tool](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
