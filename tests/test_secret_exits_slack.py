"""The same planted secrets, through the real Slack surface: every Web API call the stand-in
recorded and every response_url post, the log at DEBUG and the audit export hold no form of
any of them, before and after a restart (a new bot process on the same database, whose
masker starts empty). An abort reason typed after the restart quotes secrets and pings
people: masked, and not one ping reaches Slack."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from bot import audit
from bot.store.db import Database
from phases.runbook import load_runbook
from phases.secrets import GLOBAL_MASKER, forms
from standins.slack import SlackStandIn
from tests.servers import NostrMaxiStandin, Response
from tests.slack_harness import TOKEN, running_bot, wait_for
from tests.test_secret_exits import deployment, runbook  # noqa: F401  (the fixture)


def forget_everything() -> None:
    """What a restart does to the masker: a new process knows no secret until it learns it."""
    with GLOBAL_MASKER._lock:
        GLOBAL_MASKER._needles.clear()
        GLOBAL_MASKER._pattern = None


@pytest.mark.usefixtures("deployment")
def test_slack_exits_hold_no_planted_secret_before_or_after_a_restart(
    sqlite_db: Database,
    tmp_path: Path,
    deployment: tuple[Path, dict[str, str]],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    env_file, v = deployment
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    app = NostrMaxiStandin()
    body = f'{{"error":"{v["NOSTR_NSEC"]}","who":"<!subteam^S1> <@U9> T1:U3 <!channel>"}}'
    app.route("GET", "/api/v1/debug", lambda req: Response(500, body))
    standin = SlackStandIn(TOKEN).start()
    try:
        with app:
            rb = load_runbook(runbook(tmp_path, env_file, app.url, v))
            with running_bot(sqlite_db, rb, standin) as bot:
                _, key = bot.command("start prod --dry-run", user="U1")
                assert "#1" in bot.reply(key)
                run_id = bot.latest_run()
                bot.checkpoint(run_id, 1)
            forget_everything()
            with running_bot(sqlite_db, rb, standin) as bot:
                bot.engine.recover()
                bot._keys = itertools.count(100)  # response_url keys distinct from the first
                reason = f"leaked {v['SMTP_PASS']} {v['SHORT']} ask T1:U3 <@U4> <!here>"
                _, key = bot.command(f'abort prod --reason "{reason}"', user="U2")
                answer = bot.reply(key)
                assert "aborted" in answer or "cancelled" in answer, answer
                wait_for(
                    lambda: bot.run(run_id).status in ("rolled_back", "cancelled"), "the abort"
                )
                wait_for(lambda: "chain head" in standin.everything_sent(), "the chain head")
    finally:
        standin.stop()
    sent = standin.everything_sent()
    assert "[redacted]" in sent
    assert "leaked [redacted] [redacted] ask" in sent  # the reason, shown masked after restart
    assert "T1:\u2060U3" in sent or "T1:\\u2060U3" in sent  # shown, but no mention
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    exported = audit.export(sqlite_db, None, "jsonl") + audit.export(sqlite_db, None, "csv")
    places = {"slack": sent, "logs": logged, "audit": exported}
    for key, value in v.items():
        for form in forms(value):
            for where, text in places.items():
                assert form not in text, f"{key} ({form!r}) leaked into {where}"
    for ping in ("<!subteam^S1>", "<@U9>", "<@U3>", "<@U4>", "<!channel>", "<!here>"):
        assert ping not in sent, ping
