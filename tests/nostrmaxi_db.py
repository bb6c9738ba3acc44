"""NostrMaxi's own database, as far as Phase 9 reads it: the Prisma tables a login and a NIP-05
claim write (github.com/imp0stor/nostrmaxi, prisma/schema.prisma: "Session", "Nip05", each
with "createdAt" timestamp(3), UTC), in a throwaway database on the test PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from standins.pg import libpq, postgres_reachable, throwaway_pg_database
from tests.require import unavailable

SCHEMA = """
CREATE TABLE "User" ("id" TEXT PRIMARY KEY, "pubkey" TEXT NOT NULL UNIQUE);
CREATE TABLE "Session" (
    "id" TEXT PRIMARY KEY, "userId" TEXT NOT NULL REFERENCES "User"("id"),
    "token" TEXT NOT NULL UNIQUE, "expiresAt" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE "Nip05" (
    "id" TEXT PRIMARY KEY, "localPart" TEXT NOT NULL, "domain" TEXT NOT NULL,
    "userId" TEXT NOT NULL REFERENCES "User"("id"), "isActive" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO "User" VALUES ('u1', 'ab' || repeat('0', 62));
"""


class AppDb:
    def __init__(self, url: str) -> None:
        self.url = url  # libpq form, as the runbook's database_url

    def _insert(self, sql: str, args: tuple[Any, ...]) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql, args)

    def login(self, at: datetime) -> None:
        """A session, as AuthService.verifyChallenge creates one (createdAt in UTC)."""
        n = f"s{at.timestamp():.0f}"
        self._insert(
            'INSERT INTO "Session" ("id", "userId", "token", "expiresAt", "createdAt") '
            "VALUES (%s, 'u1', %s, %s, %s)",
            (n, n, at.replace(tzinfo=None), at.replace(tzinfo=None)),
        )

    def claim(self, name: str, at: datetime) -> None:
        """A NIP-05 identity, as Nip05Service.provision creates one."""
        self._insert(
            'INSERT INTO "Nip05" ("id", "localPart", "domain", "userId", "createdAt") '
            "VALUES (%s, %s, 'nostrmaxi.com', 'u1', %s)",
            (f"n-{name}", name, at.replace(tzinfo=None)),
        )


@pytest.fixture
def app_db() -> Iterator[AppDb]:
    if not postgres_reachable():
        unavailable("NostrMaxi's database needs the PostgreSQL server")
    with throwaway_pg_database("nostrmaxi_app") as url:
        db = AppDb(libpq(url))
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        yield db
