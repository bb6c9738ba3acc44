"""The "Run page" link button through the real HTTP path (issue 21): a completed run's message
as the Slack stand-in received it, and the answers to signed `/cutover status` and
`/cutover record RUN` requests, carry a link whose signed token opens that run's page on the
bot's own port; the stand-in refuses the buttons Slack refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.runpage import tokens
from bot.slack.blocks import RUN_PAGE
from bot.store.db import Database
from standins.slack import Message, SlackStandIn
from tests.slack_harness import TOKEN, Bot, running_bot, wait_for
from tests.small_runbook import small_runbook

PUBLIC = "https://cutover.example.com"
PAGE_SECRET = "run-page-secret-" + "0123456789abcdef" * 2

ONE_PHASE = [
    {
        "id": "one",
        "name": "Phase one",
        "estimate_minutes": 1,
        "checkpoint": "one ok",
        "checks": [{"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}],
    }
]


def link_buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for b in blocks
        if b.get("type") == "actions"
        for e in b["elements"]
        if str(e.get("action_id", "")).startswith(RUN_PAGE)
    ]


def opens_page(bot: Bot, url: str, run_id: int) -> str:
    """The page the link opens on the bot's port (its path and token; the host is the
    public one, in front of it); checks the token is valid for this run and no other."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC and parts.path == f"/runs/{run_id}"
    [token] = parse_qs(parts.query)["token"]
    now = bot.engine.now()
    assert tokens.refusal(PAGE_SECRET, token, run_id, now) is None
    assert tokens.refusal(PAGE_SECRET, token, run_id + 1, now) is not None
    base = bot.url.removesuffix("/slack/events")
    page = httpx.get(f"{base}{parts.path}?{parts.query}", timeout=10)
    assert page.status_code == 200, page.text
    return page.text


def test_the_run_page_button_reaches_slack_on_the_run_message_status_and_record(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, phases=ONE_PHASE)
    with running_bot(sqlite_db, runbook, public_url=PUBLIC, runpage_secret=PAGE_SECRET) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
        parent = bot.parent(run_id)

        def with_link() -> Message | None:
            fresh = bot.fresh(parent)
            return fresh if link_buttons(fresh.blocks) else None

        done = wait_for(with_link, "the Run page button on the run's message")
        [button] = link_buttons(done.blocks)
        assert button["text"] == {"type": "plain_text", "text": "Run page"}
        page = opens_page(bot, button["url"], run_id)
        assert f"Cutover run #{run_id}" in page and "audit chain OK" in page

        for typed in ("status staging", f"record {run_id}"):
            sent, key = bot.command(typed, user="U3")
            assert sent.status == 200
            [answer] = wait_for(lambda k=key: bot.standin.replies(k), f"the answer to {typed}")
            [linked] = link_buttons(answer.get("blocks") or [])
            assert linked["text"]["text"] in ("Run page", f"Run page #{run_id}"), typed
            opens_page(bot, linked["url"], run_id)
        assert bot.standin.refused_responses == []


def refused(standin: SlackStandIn, element: dict[str, Any]) -> tuple[str, int, str]:
    """A message with one button element: the Web API's error and the response_url's answer."""
    blocks = [{"type": "actions", "elements": [element]}]
    client = WebClient(token=TOKEN, base_url=standin.api_url)
    with pytest.raises(SlackApiError) as posted:
        client.chat_postMessage(channel="C0CUTOVER", text="x", blocks=blocks)
    answer = httpx.post(standin.response_url("r1"), json={"text": "x", "blocks": blocks})
    return posted.value.response["error"], answer.status_code, answer.text


def test_the_stand_in_refuses_a_link_button_slack_refuses() -> None:
    standin = SlackStandIn(TOKEN, rate_limits=False).start()  # its checks, not its pacing
    try:
        good = {
            "type": "button",
            "action_id": f"{RUN_PAGE}:0",
            "text": {"type": "plain_text", "text": "Run page"},
            "url": f"{PUBLIC}/runs/1?token=1.abc",
        }
        client = WebClient(token=TOKEN, base_url=standin.api_url)
        assert client.chat_postMessage(
            channel="C0CUTOVER", text="x", blocks=[{"type": "actions", "elements": [good]}]
        )["ok"]
        too_long = {**good, "url": f"{PUBLIC}/runs/1?token=" + "a" * 3000}
        no_text = {k: v for k, v in good.items() if k != "text"}
        empty_url = {**good, "url": ""}
        for bad in (too_long, no_text, empty_url):
            assert refused(standin, bad) == ("invalid_blocks", 400, "invalid_blocks"), bad
        assert standin.replies("r1") == [] and len(standin.refused_responses) == 3
        at_limit = {**good, "url": (f"{PUBLIC}/runs/1?token=" + "a" * 3000)[:3000]}
        assert client.chat_postMessage(
            channel="C0CUTOVER", text="x", blocks=[{"type": "actions", "elements": [at_limit]}]
        )["ok"]
    finally:
        standin.stop()
