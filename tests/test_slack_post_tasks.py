"""Post-cutover tasks in Slack (issue 24), through the stand-in with real signed block_actions
bodies: the completed run's thread gets a checklist with a Done button per task; the owner
(a user, or a member of the owning user group) or an approver marks a task done, anyone else
is refused saying who may; a double click or Slack's retry of a click marks it once; the
message is redrawn without that button, showing who and when."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.scheduler import Scheduler
from bot.store.db import Database
from standins.slack import Message, block_actions_payload, button_action, post_signed
from tests.post_task_helpers import DOCS, tasks_runbook
from tests.slack_harness import SECRET, TEAM, Bot, running_bot, wait_for


def tasks_message(bot: Bot, run_id: int) -> Message:
    parent = bot.parent(run_id)

    def posted() -> Message | None:
        for m in bot.standin.thread(f"{parent.channel}:{parent.ts}"):
            if m.text.startswith(f"Post-cutover tasks of run #{run_id}"):
                return m
        return None

    return wait_for(posted, f"the post-cutover tasks of run #{run_id}")


def done_body(bot: Bot, message: Message, task: str, user: str, key: str) -> str:
    payload = block_actions_payload(
        message,
        button_action(message, f"post_task:{task}"),
        user=user,
        team=TEAM,
        response_url=bot.standin.response_url(key),
    )
    return urlencode({"payload": json.dumps(payload)})


def click_done(bot: Bot, message: Message, task: str, user: str) -> str:
    key = f"done-{task}-{user}-{time.monotonic_ns()}"
    sent = post_signed(bot.url, done_body(bot, message, task, user, key), SECRET)
    assert sent.status == 200
    return bot.reply(key)


def marked(db: Database, run_id: int) -> list[tuple[str, str]]:
    return [
        (json.loads(e.data)["task"], e.actor)
        for e in audit.events(db, run_id)
        if e.kind == AuditKind.POST_TASK_DONE
    ]


def completed(bot: Bot) -> int:
    bot.command("start prod", user="U1")
    run_id = bot.latest_run()
    bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
    wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
    Scheduler(bot.engine).tick()
    return run_id


def test_a_done_button_per_task_for_its_owner_or_an_approver_and_nobody_else(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, tasks_runbook(tmp_path)) as bot:
        bot.standin.usergroups["S0OPS"] = ["U4"]
        run_id = completed(bot)
        message = tasks_message(bot, run_id)
        assert message.action_ids() == [
            "post_task:announce",
            "post_task:alerting",
            f"post_task:{DOCS}",
        ]
        assert message.element("post_task:announce")[1]["value"] == f"{run_id}:announce"

        refused = click_done(bot, message, "announce", "U9")
        assert refused.startswith("🚫 only the task's owner (")
        assert "or an approver of prod may mark 'Send launch announcement' done" in refused
        assert marked(sqlite_db, run_id) == []

        answer = click_done(bot, message, "announce", "U3")
        assert answer == (
            "✅ Marked done: Send launch announcement: done. The record will show it."
        )
        fresh = bot.wait_text(message, "done by <@U3>")
        assert fresh.action_ids() == ["post_task:alerting", f"post_task:{DOCS}"]
        assert "it counts once" in click_done(bot, message, "announce", "U2")  # a stale copy

        assert click_done(bot, fresh, "alerting", "U4").startswith("✅")  # in group S0OPS
        assert click_done(bot, fresh, DOCS, "U2").startswith("✅")  # nobody's: an approver
        last = bot.wait_text(message, "Every task is done.")
        assert last.action_ids() == []
        assert marked(sqlite_db, run_id) == [
            ("announce", "T1:U3"),
            ("alerting", "T1:U4"),
            (DOCS, "T1:U2"),
        ]


def test_a_double_click_and_slacks_retry_mark_a_task_done_once(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, tasks_runbook(tmp_path)) as bot:
        run_id = completed(bot)
        message = tasks_message(bot, run_id)
        bodies = [done_body(bot, message, "announce", "U3", f"dbl{i}") for i in range(2)]
        at = int(time.time())
        threads = [
            threading.Thread(
                target=post_signed, args=(bot.url, b, SECRET), kwargs={"timestamp": at}
            )
            for b in bodies
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Slack's retry of the first click: the same signed bytes again
        post_signed(bot.url, bodies[0], SECRET, timestamp=at, retry_num=1)

        def all_answered() -> list[str] | None:
            said = [str(r["text"]) for k in ("dbl0", "dbl1") for r in bot.standin.replies(k)]
            return said if len(said) == 3 else None

        answers = wait_for(all_answered, "an answer to each click and to the retry")
        assert sum(a.startswith("✅ Marked done") for a in answers) == 1, answers
        # the second click finds it done; the retry (the same signed bytes) does nothing again
        assert sum("it counts once" in a for a in answers) == 1, answers
        assert "That request was already received; nothing was done again." in answers
        bot.wait_text(message, "done by <@U3>")
        assert marked(sqlite_db, run_id) == [("announce", "T1:U3")]
