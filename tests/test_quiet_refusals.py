"""Requests refused for their signature, size or shape leave one short line each in the log,
rate-limited, never their body; a command's response_url never reaches the log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store.db import Database
from standins.slack import post_signed, slash_body
from tests.slack_harness import CHANNEL, SECRET, TEAM, running_bot
from tests.small_runbook import small_runbook


@pytest.fixture
def log_sink() -> Iterator[io.StringIO]:
    """Every record of every logger at DEBUG, as a deployment's log file would hold it."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield sink
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def test_ten_forged_one_megabyte_requests_add_under_10_kb_of_log(
    sqlite_db: Database, tmp_path: Path, log_sink: io.StringIO
) -> None:
    for handler in logging.getLogger().handlers:  # the bot's default log level
        if getattr(handler, "stream", None) is log_sink:
            handler.setLevel(logging.INFO)
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        before = len(log_sink.getvalue())
        injected = "\n2026-01-01 00:00:00,000 INFO bot.engine approved by admin\n"
        body = "text=" + injected + "A" * (1024 * 1024 - 200)
        for _ in range(10):
            assert post_signed(bot.url, body, "not-the-signing-secret").status == 401
        grown = log_sink.getvalue()[before:]
    assert len(grown.encode()) < 10 * 1024, grown[:500]
    assert "approved by admin" not in grown
    assert "request refused (401)" in grown


def test_a_command_response_url_never_reaches_the_log(
    sqlite_db: Database, tmp_path: Path, log_sink: io.StringIO
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        url = bot.standin.response_url("secret-hook")
        body = slash_body("status staging", user="U1", team=TEAM, channel=CHANNEL, response_url=url)
        assert post_signed(bot.url, body, SECRET).status == 200
        bot.reply("secret-hook")
    logged = log_sink.getvalue()
    assert "secret-hook" not in logged
