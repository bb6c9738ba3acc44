"""Run page links in Slack: an ended run's message carries a "Run page" link button (a live
run's does not), `/cutover status` answers with one per run shown, and `/cutover record RUN`
answers with the run's link; without CUTOVER_PUBLIC_URL and the secret, no surface offers a
link, and `/cutover record` says what to set instead."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.runpage import tokens
from bot.runpage.tokens import RunLinks
from bot.slack.blocks import RUN_PAGE, run_message
from bot.store.db import Database
from bot.store.reads import Reads, run_view
from bot.surface import Actor
from commands.handlers import CommandService
from commands.parser import RecordCmd, StatusCmd, UsageError, parse
from tests.schedule_helpers import ALICE, START, clock_at, make_engine
from tests.test_record_truth import completed_run, truth_runbook

SECRET = "k" * 40
NOW = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


def links() -> RunLinks:
    return RunLinks("https://cutover.example.com", SECRET, now=lambda: NOW)


def buttons(blocks: list[dict]) -> list[dict]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_an_ended_run_s_message_has_a_run_page_button_and_a_live_one_has_none(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, truth_runbook(tmp_path), clock)
    ended = completed_run(engine, clock)
    live = engine.start_run("prod", ALICE)
    assert live.id is not None
    url = links().for_run(ended)
    ended_view = run_view(sqlite_db, engine.runbook, ended)
    assert ended_view is not None
    _, blocks = run_message(ended_view, NOW, page_url=url)
    [button] = buttons(blocks)
    assert button["text"]["text"] == "Run page" and button["url"] == url
    assert button["action_id"].startswith(RUN_PAGE)
    token = url.split("token=")[1]
    assert tokens.refusal(SECRET, token, ended, NOW) is None
    live_view = run_view(sqlite_db, engine.runbook, live.id)
    assert live_view is not None
    assert buttons(run_message(live_view, NOW, page_url=links().for_run(live.id))[1]) == []


def test_status_and_record_answer_with_signed_links_when_configured(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, truth_runbook(tmp_path), clock)
    run_id = completed_run(engine, clock)
    me = Actor("T1:U1", "alice")
    service = CommandService(engine, Reads(engine.db, engine.runbook), links())
    assert parse(f"/cutover record {run_id}") == RecordCmd(run_id)
    reply = service.execute(RecordCmd(run_id), me)
    [(label, url)] = reply.links
    assert label == "Run page" and url in reply.text
    assert url.startswith(f"https://cutover.example.com/runs/{run_id}?token={run_id}.")
    assert "7 days" in reply.text
    status = service.execute(StatusCmd("prod"), me)
    assert [u for _, u in status.links] == [url]  # prod's latest run, its page
    bare = CommandService(engine, Reads(engine.db, engine.runbook)).execute(RecordCmd(run_id), me)
    assert bare.links == [] and "CUTOVER_PUBLIC_URL" in bare.text
    assert f"cutover record {run_id} --html" in bare.text
    assert "There is no run #4242" in service.execute(RecordCmd(4242), me).text


def test_record_without_a_run_number_says_what_to_type() -> None:
    for text in ("/cutover record", "/cutover record x", "/cutover record 1 2"):
        try:
            parse(text)
        except UsageError as exc:
            assert "record needs a run number, e.g. /cutover record 12" in exc.problem
        else:
            raise AssertionError(text)
