"""bot.settings reads a database URL with the standard library (issue 19: settings, and the run
page's tokens that import them, need no database library). It must read, mask and refuse
URLs exactly as it did with SQLAlchemy's `make_url`: the same errors, the same masked text,
the same password found for the masker. SQLAlchemy is the oracle here."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.settings import (
    DatabaseURL,
    DatabaseURLError,
    Settings,
    mask_url,
    normalize_database_url,
    secret_settings,
)

URLS = [
    "sqlite:///cutover.db",
    "sqlite:////abs/path/cutover.db",
    "sqlite://",
    "sqlite:///:memory:",
    "postgresql://app:s3cr3t@db.internal:5433/cutover?sslmode=require",
    "postgres://app:pw@db/cutover",
    "postgresql+psycopg://app@db/cutover",
    "postgresql+psycopg2://app:pw@db/cutover",
    "postgresql://app:p%40ss%2Fw%3Ard@db/cutover",
    "postgresql://app:pw@[::1]:5432/cutover",
    "postgresql://app:pw@/cutover?host=/var/run/postgresql",
    "postgresql://app:pw@db/cut%20over?b=2&a=1&a=0&c=",
    "postgresql://app:@db/cutover",
    "postgresql://:pw@db/cutover",
    "postgresql://app:pw@db:/cutover",
    "postgresql://user name:pass word@db/x",
    "mysql://app:s3cr3t@db/x",
    "mysql+pymysql://app:pw@db:3306/x?charset=utf8mb4",
    "postgresql://app:pw@db:x/y",
    "postgresql://app:s3cr3t@db:port/cutover",
    "sqlite:/cutover.db",
    "cutover.db",
    "://nothing",
    "",
]


def _oracle_mask(url: str) -> str | None:
    """What SQLAlchemy renders (None: it cannot parse the URL)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return None


def _ours(url: str) -> str | None:
    try:
        return DatabaseURL.parse(url).masked()
    except ValueError:
        return None


@pytest.mark.parametrize("url", URLS)
def test_a_url_is_read_and_masked_as_sqlalchemy_reads_and_masks_it(url: str) -> None:
    assert _ours(url) == _oracle_mask(url)
    try:
        theirs = make_url(url)
    except (ArgumentError, ValueError):
        return
    ours = DatabaseURL.parse(url)
    assert (ours.drivername, ours.username, ours.password) == (
        theirs.drivername,
        theirs.username,
        theirs.password,
    )
    assert (ours.host, ours.port, ours.database) == (theirs.host, theirs.port, theirs.database)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab:/@?&=%[]+ 12.x_#", max_size=40).map(lambda rest: "postgresql://" + rest)
)
def test_any_url_is_read_as_sqlalchemy_reads_it(url: str) -> None:
    assert _ours(url) == _oracle_mask(url)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("cutover.db", "database URL 'cutover.db' is malformed: write it as sqlite:///PATH"),
        ("sqlite:/cutover.db", "database URL 'sqlite:/cutover.db' is malformed: write it as"),
        (
            "postgresql://app:s3cr3t@db:port/cutover",
            "database URL 'postgresql://app:***@db:port/cutover' is malformed (the port must "
            "be a number): write it as",
        ),
        (
            "postgresql+psycopg2://app@db/cutover",
            "database URL 'postgresql+psycopg2://app@db/cutover': driver 'psycopg2' is not "
            "installed; use postgresql:// (the bot connects with psycopg 3)",
        ),
        (
            "mysql://app:s3cr3t@db/x",
            "database URL 'mysql://app:***@db/x': 'mysql' is not supported; the bot runs on "
            "SQLite or PostgreSQL: write it as",
        ),
    ],
)
def test_an_unusable_url_is_refused_with_the_same_clear_error(url: str, error: str) -> None:
    with pytest.raises(DatabaseURLError) as refused:
        normalize_database_url(url)
    assert str(refused.value).startswith(error)
    assert "s3cr3t" not in str(refused.value)


def test_usable_urls_are_normalized_as_before() -> None:
    assert normalize_database_url(" sqlite:///x.db ") == "sqlite:///x.db"
    assert normalize_database_url("sqlite+pysqlite:///x.db") == "sqlite+pysqlite:///x.db"
    assert normalize_database_url("postgres://a:b@h/d") == "postgresql+psycopg://a:b@h/d"
    assert normalize_database_url("postgresql+psycopg://a:b@h/d") == "postgresql+psycopg://a:b@h/d"


def test_mask_url_hides_a_password_also_when_the_url_does_not_parse() -> None:
    assert mask_url("postgresql://app:s3cr3t@db:x/y") == "postgresql://app:***@db:x/y"
    assert mask_url("weird host=db password=s3cr3t") == "weird host=db password=***"


def test_the_database_password_is_one_of_the_bots_secrets() -> None:
    found = secret_settings(Settings(database_url="postgresql://app:p%40ss@db/cutover"))
    assert "p@ss" in found
    assert "pw" not in secret_settings(Settings(database_url="postgresql://app:pw@db:x/y"))


def test_settings_and_the_run_page_tokens_import_no_database_library() -> None:
    probe = (
        "import sys, bot.settings, bot.runpage.tokens; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
