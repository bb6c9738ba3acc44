"""Forms (Block Kit modals) in Slack: a rollback's reason, Continue's comment, an abort's reason,
the schedule form. Signed requests over HTTP; views.open and view_submission as Slack has them
(standins/slack.py: trigger_id single-use, 3 s, view limits)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import audit
from bot.record import build_record, record_text
from bot.store.db import Database
from standins.slack import SlackStandIn, view_problems
from tests.slack_harness import TOKEN, running_bot, wait_for
from tests.small_runbook import small_runbook


def events(db: Database, run_id: int | None, kind: str) -> list[dict[str, object]]:
    return [
        {**json.loads(e.data), "actor": e.actor} for e in audit.events(db, run_id) if e.kind == kind
    ]


def test_rollback_opens_a_form_and_rolls_back_on_submit_with_the_reason_audited_and_recorded(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        sent, _ = bot.click(one, "gate_rollback", user="U2")
        assert sent.status == 200
        form = bot.modal("U2")
        assert view_problems(form.view, "modal") == []
        assert [p for p in bot.standin.problems if p.startswith("views.")] == []  # none refused
        assert form.view["title"]["text"] == "Roll back run #1"
        assert "Why roll back?" in form.text() and "final" in form.text()
        assert bot.gates(run_id)[0].status == "open"  # the click alone changes nothing

        sent = bot.submit(form, {"reason": "relay answers 502 after the switch"})
        assert sent.status == 200 and sent.body == ""  # the form closes
        bot.wait_text(one, "*Rolled back* by <@U2>")
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback")
        (decided,) = events(sqlite_db, run_id, "gate.decided")
        assert decided["decision"] == "rollback"
        assert decided["reason"] == "relay answers 502 after the switch"
        assert bot.run(run_id).rollback_reason == "relay answers 502 after the switch"
        record = build_record(sqlite_db, bot.engine.runbook, run_id)
        assert "relay answers 502 after the switch" in record_text(record, bot.engine.runbook)
        assert bot.standin.problems == []


def test_rollback_form_refuses_an_empty_reason_on_its_field_and_changes_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_rollback", user="U2")
        sent = bot.submit(bot.modal("U2"), {"reason": "   "})
        answer = sent.json()
        assert answer["response_action"] == "errors"
        assert "Say why you roll back" in answer["errors"]["reason"]
        time.sleep(0.3)
        assert bot.gates(run_id)[0].status == "open"
        assert events(sqlite_db, run_id, "gate.decided") == []


def test_a_gate_decided_while_the_form_was_open_gets_a_clear_answer_and_changes_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.click(one, "gate_rollback", user="U2")
        form = bot.modal("U2")
        bot.click(one, "gate_continue", user="U3")  # meanwhile, another approver continues
        bot.wait_text(one, "*Approved* by <@U3>")

        answer = bot.submit(form, {"reason": "too late"}).json()
        assert answer["response_action"] == "errors"
        assert "was approved by" in answer["errors"]["reason"]
        assert "nothing was changed" in answer["errors"]["reason"]
        assert bot.gates(run_id)[0].status == "approved"
        assert bot.run(run_id).rollback_reason is None
        refused = events(sqlite_db, run_id, "action.refused")
        assert refused and refused[-1]["action"] == "rollback"


def test_a_non_approver_gets_no_form_and_the_refusal_is_audited(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        _, key = bot.click(bot.checkpoint(run_id, 1), "gate_rollback", user="U9")
        assert "not an approver for staging" in bot.reply(key)
        assert bot.standin.opened("U9") == []
        (refused,) = events(sqlite_db, run_id, "action.refused")
        assert refused["action"] == "rollback"


def test_permission_is_checked_again_at_submit_against_the_person_who_sends_it(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """The form's metadata names who opened it; a submission by anyone else does nothing."""
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_rollback", user="U2")
        answer = bot.submit(bot.modal("U2"), {"reason": "x"}, user="U9").json()
        assert answer["response_action"] == "errors"
        assert "not one I opened for you" in answer["errors"]["reason"]
        assert bot.gates(run_id)[0].status == "open"


def test_continue_stays_one_click_and_continue_with_comment_records_the_comment(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path, quorum=2)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.click(one, "gate_continue", user="U2")  # one click: a vote
        bot.wait_text(one, "1/2")
        _, key = bot.click(one, "gate_continue_comment", user="U3")
        form = bot.modal("U3")
        assert view_problems(form.view, "modal") == []
        assert [p for p in bot.standin.problems if p.startswith("views.")] == []  # none refused
        assert bot.submit(form, {"comment": "3 slow queries, known"}).body == ""
        bot.wait_text(one, "*Approved* by")
        votes = events(sqlite_db, run_id, "gate.vote")
        assert [v.get("comment") for v in votes] == [None, "3 slow queries, known"]
        record = build_record(sqlite_db, bot.engine.runbook, run_id)
        assert any("3 slow queries, known" in n for n in record.people_notes)


def test_a_trigger_used_late_is_refused_by_slack_and_the_person_is_told(
    sqlite_db: Database, tmp_path: Path
) -> None:
    standin = SlackStandIn(TOKEN).start()
    standin.fail_next(1, status=200, method="views.open", error="expired_trigger_id")
    try:
        with running_bot(sqlite_db, small_runbook(tmp_path), standin) as bot:
            bot.command("start staging", user="U1")
            run_id = bot.latest_run()
            _, key = bot.click(bot.checkpoint(run_id, 1), "gate_rollback", user="U2")
            text = bot.reply(key)
            assert "couldn't open the form in time" in text and "expired_trigger_id" in text
            assert "/cutover abort ENV --reason" in text
            assert bot.gates(run_id)[0].status == "open"
            failed = events(sqlite_db, run_id, "surface.failed")
            assert failed and "views.open" in str(failed[-1])
    finally:
        standin.stop()


def test_abort_without_reason_opens_the_same_form_and_aborts_on_submit(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path, act=True)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        sent, _ = bot.command("abort staging", user="U2")
        assert sent.status == 200 and sent.body == ""
        form = bot.modal("U2")
        assert form.view["title"]["text"] == "Abort staging"
        answer = bot.submit(form, {"reason": ""}).json()
        assert "Say why you abort" in answer["errors"]["reason"]
        assert bot.submit(form, {"reason": "vendor outage"}).body == ""
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback")
        assert "vendor outage" in (bot.run(run_id).rollback_reason or "")

        # The text command keeps working for scripts.
        _, key = bot.command("abort staging --reason 'again'", user="U2")
        assert "no active run" in bot.reply(key)


def test_abort_without_reason_by_a_stranger_opens_no_form_and_changes_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        _, key = bot.command("abort staging", user="U9")
        assert "not an approver for staging" in bot.reply(key)
        assert bot.standin.opened("U9") == []
        (refused,) = events(sqlite_db, run_id, "action.refused")
        assert refused["action"] == "abort"
        assert bot.run(run_id).status == "waiting"  # still at its gate, nothing rolled back


def test_abort_form_for_a_run_that_ended_meanwhile_changes_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        bot.command("abort staging", user="U2")
        form = bot.modal("U2")
        _, key = bot.command("abort staging --reason 'typed first'", user="U3")
        bot.reply(key)
        wait_for(lambda: bot.run(run_id).ended_at is not None, "the run to end")
        answer = bot.submit(form, {"reason": "second"}).json()
        assert "has ended meanwhile" in answer["errors"]["reason"]
        assert "second" not in (bot.run(run_id).rollback_reason or "")


def test_schedule_without_arguments_opens_the_form_and_schedules_on_submit(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        sent, key = bot.command("schedule", user="U2")
        assert sent.status == 200
        form = bot.modal("U2")
        assert view_problems(form.view, "modal") == []
        assert [p for p in bot.standin.problems if p.startswith("views.")] == []  # none refused
        env_select = next(b for b in form.input_blocks() if b["block_id"] == "env")
        assert [o["value"] for o in env_select["element"]["options"]] == list(
            bot.engine.runbook.environments
        )
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
        berlin = datetime.fromisoformat(f"{tomorrow}T14:00").replace(
            tzinfo=__import__("zoneinfo").ZoneInfo("Europe/Berlin")
        )
        yesterday = int((berlin - timedelta(days=2)).timestamp())

        # The start is one datetimepicker (the person's own zone; Slack sends UNIX seconds).
        past = bot.submit(form, {"env": "staging", "when": yesterday}).json()
        assert past["response_action"] == "errors"
        assert "is in the past" in past["errors"]["when"]
        assert bot.submit(form, {"env": None}).json()["errors"]["env"]

        done = bot.submit(
            form,
            {"env": "staging", "when": int(berlin.timestamp()), "stakeholders": "C0LAUNCH"},
        )
        assert done.body == ""
        text = bot.reply(key)
        assert "Cutover of staging scheduled for" in text and "as #1" in text
        (created,) = events(sqlite_db, None, "schedule.created")
        assert created["actor"] == "T1:U2"
        from bot.schedules import ScheduleService

        (row, _) = ScheduleService(bot.engine).listing()[0]
        assert row.stakeholders == "C0LAUNCH"
        assert row.start_at == berlin.astimezone(UTC)

        # A second one for the same environment: refused on the environment's field.
        bot.command("schedule", user="U2")
        again = bot.modal("U2", after=1)
        answer = bot.submit(
            again, {"env": "staging", "when": int(berlin.timestamp()) + 3600}
        ).json()
        assert "already has cutover #1 scheduled" in answer["errors"]["env"]


def test_rollback_form_opens_within_the_trigger_window_while_the_group_lookup_is_slow(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A cold user-group cache and a slow Slack: the form opens first (no lookup before
    views.open); the submission checks the groups, then rolls back."""
    runbook = small_runbook(tmp_path, approvers=["T1:U1"], env={"approver_groups": ["S0OPS"]})
    with running_bot(sqlite_db, runbook) as bot:
        bot.standin.usergroups["S0OPS"] = ["U5"]
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.service.slack.groups.forget()  # a cold cache, as after its ttl
        bot.standin.slow["usergroups.users.list"] = 3.5  # past the trigger's 3 s
        bot.click(one, "gate_rollback", user="U5")
        form = bot.modal("U5")
        assert [p for p in bot.standin.problems if p.startswith("views.")] == []
        sent = bot.submit(form, {"reason": "payments time out"})
        assert sent.status == 200
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback", 20)
        (decided,) = events(sqlite_db, run_id, "gate.decided")
        assert decided["decision"] == "rollback" and decided["reason"] == "payments time out"


def test_a_stranger_gets_the_form_where_groups_may_list_them_but_their_submission_is_refused(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, approvers=["T1:U1"], env={"approver_groups": ["S0OPS"]})
    with running_bot(sqlite_db, runbook) as bot:
        bot.standin.usergroups["S0OPS"] = ["U5"]
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.click(one, "gate_rollback", user="U9")
        form = bot.modal("U9")
        bot.submit(form, {"reason": "I want out"})
        wait_for(lambda: events(sqlite_db, run_id, "action.refused"), "the submission refused", 10)
        assert bot.gates(run_id)[0].status == "open"
        assert events(sqlite_db, run_id, "gate.decided") == []
