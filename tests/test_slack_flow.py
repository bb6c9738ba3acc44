"""A whole cutover driven through Slack: signed requests over HTTP, Web API calls to a stand-in."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from bot import audit
from bot.store.db import Database
from bot.store.models import Vote
from tests.slack_harness import SECRET, TOKEN, running_bot, wait_for
from tests.small_runbook import small_runbook


def kinds(db: Database, run_id: int) -> list[str]:
    return [e.kind for e in audit.events(db, run_id)]


def test_whole_cutover_start_refusal_ticks_approvals_and_stale_click(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        sent, key = bot.command("start staging", user="U1")
        assert sent.status == 200 and sent.seconds < 1.5
        run_id = bot.latest_run()
        assert "Run #1 of staging started by u1." in bot.reply(key)

        one = bot.checkpoint(run_id, 1)
        parent = bot.parent(run_id)
        assert one.thread_ts == parent.ts and one.channel == parent.channel == "C0CUTOVER"
        text = one.all_text()
        assert "Phase 1: Phase one" in text and "*Checkpoint:* one ok" in text
        assert "*true*" in text and " ms)" in text and "PASS → Continue" in text
        assert one.action_ids() == ["gate_continue", "gate_continue_comment", "gate_rollback"]
        assert "confirm" not in one.element("gate_rollback")[1]  # its form is the confirmation

        # Someone who is not an approver: refused, audited, nothing changed.
        sent, key = bot.click(one, "gate_continue", user="U9")
        assert sent.status == 200
        assert "not an approver for staging" in bot.reply(key)
        assert kinds(sqlite_db, run_id).count("action.refused") == 1
        assert bot.gates(run_id)[0].status == "open"
        with sqlite_db.session() as s:
            assert s.exec(select(Vote)).all() == []

        sent, _ = bot.click(one, "gate_continue", user="U2")
        assert sent.status == 200
        decided = bot.wait_text(one, "*Approved* by <@U2> at <!date^")
        assert decided.action_ids() == []  # the buttons are gone

        two = bot.checkpoint(run_id, 2)
        assert two.thread_ts == parent.ts
        assert two.action_ids() == [
            "gate_tick",
            "gate_continue",
            "gate_continue_comment",
            "gate_rollback",
        ]
        _, key = bot.click(two, "gate_continue", user="U2")
        assert "tick every manual step first: browser" in bot.reply(key)
        _, key = bot.tick(two, ["browser"], user="U9")
        assert "not an approver" in bot.reply(key)
        bot.tick(two, ["browser"], user="U3")
        two = bot.wait_text(two, "ticked by <@U3>")
        assert "initial_options" in two.element("gate_tick")[1]
        _, key = bot.tick(two, [], user="U3")  # unticking is not a thing: the box is redrawn
        assert "stays ticked" in bot.reply(key)
        assert "initial_options" in bot.fresh(two).element("gate_tick")[1]
        bot.click(two, "gate_continue", user="U2")
        bot.wait_text(two, "*Approved* by <@U2>")

        three = bot.checkpoint(run_id, 3)
        bot.click(three, "gate_continue", user="U3")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
        parent = bot.wait_text(parent, "completed")
        text = parent.all_text()
        assert "approved by <@U2>" in text and "approved by <@U3>" in text
        assert "elapsed" in text and "estimated 4-5 min" in text

        # A click on a message whose gate was decided long ago.
        _, key = bot.click(one, "gate_continue", user="U3")
        stale = bot.reply(key)
        assert "already approved by <@U2> at <!date^" in stale and "changed nothing" in stale

        # One parent per run, edited in place; the checkpoints are its thread, and the run's
        # end posts the audit chain head there last.
        assert len(bot.standin.parents()) == 1
        # (How many edits depends on how many the outbox gathered into one drawing; a
        # run with two clicks apart is edited at least once per click.)
        assert bot.fresh(parent).updates >= 2
        thread = wait_for(
            lambda: (
                len(bot.standin.thread(f"{parent.channel}:{parent.ts}")) == 5
                and bot.standin.thread(f"{parent.channel}:{parent.ts}")
            ),
            "the audit chain head in the thread",
        )
        # The first reply is the start's proof that the channel takes thread replies.
        assert "Checkpoints of this run follow in this thread" in thread[0].text
        assert [m.ts for m in thread[1:4]] == [one.ts, two.ts, three.ts]
        assert "Audit chain head at the end of run #1" in thread[4].text
        posts = bot.standin.api_calls("chat.postMessage")
        assert len([c for c in posts if not c.args.get("thread_ts")]) == 1

        _, key = bot.command("status staging", user="U5")
        status = bot.reply(key)
        assert "Run #1 · staging · completed" in status and "approved by <@U2>" in status

        assert bot.standin.problems == []
        # Every Web API method used is covered by the manifest's scopes (chat:write; none for
        # auth.test); usergroups.users.list (usergroups:read) only with approver_groups.
        assert {c.method for c in bot.standin.api_calls()} <= {
            "auth.test",
            "chat.postMessage",
            "chat.update",
            "chat.postEphemeral",
            "chat.delete",
        }
        sent_text = bot.standin.everything_sent()
        assert TOKEN not in sent_text and SECRET not in sent_text
        assert audit.verify(sqlite_db) == []


def test_quorum_gate_shows_live_approvals_and_forbids_self_approval(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, quorum=2, allow_self_approval=False)
    with running_bot(sqlite_db, runbook) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        assert "*Approvals:* 0/2" in one.all_text()

        _, key = bot.click(one, "gate_continue", user="U1")
        assert "you started this run" in bot.reply(key)

        _, key = bot.click(one, "gate_continue", user="U2")
        assert "Your approval is recorded: 1/2 approved" in bot.reply(key)
        one = bot.wait_text(one, "1/2 approved by <@U2>")
        assert "gate_continue" in one.action_ids()  # still open

        _, key = bot.click(one, "gate_continue", user="U2")
        assert "you already approved this gate" in bot.reply(key)

        bot.click(one, "gate_continue", user="U3")
        one = bot.wait_text(one, "*Approved* by <@U2>, <@U3>")
        assert one.action_ids() == []
        bot.checkpoint(run_id, 2)
        assert bot.standin.problems == []


def test_failed_checks_offer_retry_then_rollback_runs_the_rollback(
    sqlite_db: Database, tmp_path: Path
) -> None:
    (tmp_path / "fail-two").touch()  # phase two's check fails
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        two = bot.checkpoint(run_id, 2)
        assert "FAIL → ROLLBACK" in two.all_text()
        assert two.action_ids() == ["gate_tick", "gate_retry", "gate_rollback"]
        _, key = bot.click(two, "gate_retry", user="U2")
        bot.wait_text(two, "*Sent to retry* by <@U2>")

        again = bot.checkpoint(run_id, 3)  # phase two, attempt 2: still failing
        assert "attempt 2" in again.all_text()
        bot.click(again, "gate_rollback", user="U3")
        sent = bot.submit(bot.modal("U3"), {"reason": "flag file keeps coming back"})
        assert sent.status == 200 and sent.body == ""
        bot.wait_text(again, "*Rolled back* by <@U3>")
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback to finish")
        assert (tmp_path / "rolled-back").exists()
        parent = bot.parent(run_id)
        ref = f"{parent.channel}:{parent.ts}"
        wait_for(
            lambda: any(
                "Rollback finished; every step passed." in m.text for m in bot.standin.thread(ref)
            ),
            "the rollback report in the run's thread",
        )
        bot.wait_text(parent, "↩️ *rolled back*")
        assert bot.standin.problems == []


def test_wrong_or_missing_arguments_get_an_ephemeral_usage(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        for text in ("start", "frobnicate", "abort staging --why x", "audit x", "start <prod>"):
            sent, _ = bot.command(text)
            assert sent.status == 200
            answer = sent.json()
            assert answer["response_type"] == "ephemeral"
            assert "Usage:" in answer["text"] and "<prod>" not in answer["text"]
        sent, _ = bot.command("help")
        assert "/cutover start ENV [--dry-run]" in sent.json()["text"]

        _, key = bot.command("start staging", user="U9")
        assert "only approvers of staging may start a run there" in bot.reply(key)
        _, key = bot.command("start nowhere", user="U1")
        assert "unknown environment 'nowhere'" in bot.reply(key)
        _, key = bot.command("status")
        assert bot.reply(key) == "No active cutover run."
        with sqlite_db.session() as s:
            assert s.exec(select(Vote)).all() == []
        assert bot.standin.api_calls("chat.postMessage") == []


def test_user_group_approvers_are_checked_when_the_click_arrives(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, approvers=[], env={"approver_groups": ["S0APPROVE"]})
    with running_bot(sqlite_db, runbook) as bot:
        bot.standin.usergroups["S0APPROVE"] = ["U7", "U8"]
        bot.command("start staging", user="U7")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.standin.usergroups["S0APPROVE"] = ["U7"]  # U8 left the group
        bot.service.slack.groups.forget()  # as after the cached list's ttl
        _, key = bot.click(one, "gate_continue", user="U8")
        assert "not an approver" in bot.reply(key)
        bot.click(one, "gate_continue", user="U7")
        bot.wait_text(one, "*Approved* by <@U7>")
        assert bot.standin.api_calls("usergroups.users.list")
        assert bot.standin.problems == []


def test_abort_command_rolls_back_and_masks_secrets_in_the_reason(
    sqlite_db: Database, tmp_path: Path
) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("JWT_SECRET=hunter2-very-secret-jwt\n", encoding="utf-8")
    runbook = small_runbook(tmp_path, env={"env_file": str(env_file)}, act=True)
    with running_bot(sqlite_db, runbook) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        _, key = bot.command(
            "abort staging --reason 'leaked hunter2-very-secret-jwt in a log'", user="U2"
        )
        assert "rolled back by" in bot.reply(key)
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback")
        parent = bot.wait_text(bot.parent(run_id), "Rollback:")
        assert "[redacted]" in parent.all_text()
        assert "hunter2-very-secret-jwt" not in bot.standin.everything_sent()
        assert bot.standin.problems == []
