"""Shared fixtures: the bot's database (SQLite and PostgreSQL), Docker, the stand-in environment."""

from tests.db_fixtures import db, pg_db, sqlite_db  # noqa: F401
from tests.docker_fixtures import compose, docker_client  # noqa: F401
from tests.standin_env import standin  # noqa: F401
