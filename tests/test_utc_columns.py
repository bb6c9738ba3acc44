"""Every datetime column reads back as an aware UTC datetime, on SQLite and on PostgreSQL.

SQLite keeps datetimes as text and returned them naive, so readers patched them one by one;
the models' UTCDateTime type now does it once. The columns are found by reading the metadata,
so a column added later is covered without touching this test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Column, Table, select, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel

from bot.store.db import Database
from bot.store.models import Schedule, StatusType, UTCDateTime

# Written in a zone that is not UTC, with microseconds: what comes back must be the same
# instant, in UTC, to the microsecond.
KOLKATA = timezone(timedelta(hours=5, minutes=30))
WRITTEN = datetime(2026, 3, 1, 19, 30, 15, 123456, tzinfo=KOLKATA)


def datetime_columns(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if c.type.python_type is datetime]


def tables_to_fill() -> list[Table]:
    """The tables with a datetime column, and the tables their foreign keys point at, parents
    first."""
    wanted = {t for t in SQLModel.metadata.sorted_tables if datetime_columns(t)}
    grew = True
    while grew:
        parents = {fk.column.table for t in wanted for fk in t.foreign_keys}
        grew = not parents <= wanted
        wanted |= parents
    return [t for t in SQLModel.metadata.sorted_tables if t in wanted]


def written_at(table: Table, column: Column[Any]) -> datetime:
    """A distinct instant per column, so a value read from the wrong column shows."""
    return WRITTEN + timedelta(seconds=list(table.columns).index(column))


def row_of(table: Table) -> dict[str, Any]:
    """One row with every column set: id 1, foreign keys to the parents' row 1."""
    row: dict[str, Any] = {}
    for column in table.columns:
        if isinstance(column.type, StatusType):
            row[column.name] = next(iter(column.type.enum_type))
        elif column.type.python_type is datetime:
            row[column.name] = written_at(table, column)
        elif column.type.python_type is int:
            row[column.name] = 1
        elif column.type.python_type is bool:
            row[column.name] = False
        else:
            row[column.name] = "x"
    return row


def mapped_class(table: Table) -> type[SQLModel]:
    for mapper in SQLModel._sa_registry.mappers:  # type: ignore[attr-defined]
        if mapper.local_table is table:
            return mapper.class_  # type: ignore[no-any-return]
    raise AssertionError(f"no model maps table {table.name}")


def test_every_datetime_column_uses_the_utc_type() -> None:
    plain = [
        f"{t.name}.{c.name}"
        for t in SQLModel.metadata.sorted_tables
        for c in datetime_columns(t)
        if not isinstance(c.type, UTCDateTime)
    ]
    assert plain == [], "give these columns models.UTCDateTime (bot/store/models.py: _ts())"


def test_every_datetime_column_reads_back_as_aware_utc(db: Database) -> None:
    tables = tables_to_fill()
    assert {"run", "gate", "schedule", "replica"} <= {t.name for t in tables}
    with db.engine.begin() as conn:
        for table in tables:
            conn.execute(table.insert().values(row_of(table)))
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            # A session in another zone: PostgreSQL returns timestamptz in the session's zone.
            conn.execute(text("SET TIME ZONE 'America/New_York'"))
        for table in tables:
            read = conn.execute(select(table)).mappings().one()
            for column in datetime_columns(table):
                value = read[column.name]
                where = f"{table.name}.{column.name}"
                assert value == written_at(table, column), where
                assert value.tzinfo is UTC, where
    with Session(db.engine) as s:
        for table in tables:
            obj = s.exec(select(mapped_class(table))).one()[0]  # type: ignore[call-overload]
            for column in datetime_columns(table):
                value = getattr(obj, column.name)
                assert (value, value.tzinfo) == (written_at(table, column), UTC), table.name


def test_a_naive_datetime_is_refused_before_it_reaches_the_database(
    db: Database,
) -> None:
    naive = datetime(2026, 3, 1, 14, 0)
    with pytest.raises(StatementError, match="needs an aware datetime"), Session(db.engine) as s:
        s.add(Schedule(environment="prod", start_at=naive, created_by="T1:U1"))
        s.commit()
