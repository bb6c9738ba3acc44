"""The start of a scheduled cutover is one instant, never a guess (issue 18 #9).

The schedule form asks with Slack's datetimepicker (the person's own time zone; Slack sends
the UNIX time); wherever a local time with a named zone is still taken (the typed command,
a form the previous version opened), a time the clocks skip or show twice is refused with
both instants it could mean. Signed requests against the stand-in (standins/slack.py).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import audit
from bot.schedules import ScheduleService
from bot.store.db import Database
from standins.slack import OpenedView, view_problems
from tests.schedule_helpers import BERLIN, next_transition
from tests.slack_harness import Bot, running_bot
from tests.small_runbook import small_runbook


def created(db: Database) -> list[dict[str, object]]:
    return [
        {**json.loads(e.data), "actor": e.actor}
        for e in audit.events(db, None)
        if e.kind == "schedule.created"
    ]


def legacy_form(form: OpenedView) -> OpenedView:
    """The schedule form as the previous version drew it (day, time, a zone list), opened
    before an upgrade and submitted after it: same metadata, its own fields."""
    old = copy.deepcopy(form)
    keep = [b for b in old.view["blocks"] if b.get("block_id") not in ("when",)]
    zone_options = [
        {"text": {"type": "plain_text", "text": z}, "value": z} for z in ("UTC", "Europe/Berlin")
    ]
    fields = [
        {
            "type": "input",
            "block_id": "date",
            "label": {"type": "plain_text", "text": "Day"},
            "element": {"type": "datepicker", "action_id": "date"},
        },
        {
            "type": "input",
            "block_id": "time",
            "label": {"type": "plain_text", "text": "Start time"},
            "element": {"type": "timepicker", "action_id": "time"},
        },
        {
            "type": "input",
            "block_id": "tz",
            "label": {"type": "plain_text", "text": "Time zone"},
            "element": {
                "type": "static_select",
                "action_id": "tz",
                "options": zone_options,
                "initial_option": zone_options[0],
            },
        },
    ]
    old.view["blocks"] = keep[:2] + fields + keep[2:]
    assert view_problems(old.view, "modal") == []
    return old


def open_form(bot: Bot, user: str = "U2") -> tuple[OpenedView, str]:
    """The schedule form `/cutover schedule` opens, and the command's response_url key."""
    sent, key = bot.command("schedule", user=user)
    assert sent.status == 200
    return bot.modal(user), key


def test_the_schedule_form_asks_for_the_start_with_a_datetimepicker_and_no_zone_list(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        form, _ = open_form(bot)
        assert view_problems(form.view, "modal") == []
        assert [p for p in bot.standin.problems if p.startswith("views.")] == []
        kinds = {b["block_id"]: b["element"]["type"] for b in form.input_blocks()}
        assert kinds["when"] == "datetimepicker"
        assert "tz" not in kinds and "time" not in kinds and "date" not in kinds
        (picker,) = [b["element"] for b in form.input_blocks() if b["block_id"] == "when"]
        first = datetime.fromtimestamp(picker["initial_date_time"], UTC)
        assert first > datetime.now(UTC) + timedelta(hours=23) and first.minute == 0


def test_a_datetimepicker_value_schedules_exactly_that_instant_in_the_row_and_the_trail(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        form, key = open_form(bot)
        # 14:37:00 Berlin time on a day two days from now, as a person in Berlin picks it.
        day = datetime.now(UTC).date() + timedelta(days=2)
        picked = datetime(day.year, day.month, day.day, 14, 37, tzinfo=BERLIN)
        epoch = int(picked.timestamp())
        done = bot.submit(form, {"env": "staging", "when": epoch})
        assert done.status == 200 and done.body == ""
        assert "Cutover of staging scheduled for" in bot.reply(key)
        (row, _) = ScheduleService(bot.engine).listing()[0]
        assert int(row.start_at.timestamp()) == epoch
        (event,) = created(sqlite_db)
        assert event["actor"] == "T1:U2" and event["environment"] == "staging"
        assert datetime.fromisoformat(str(event["start_at"])).timestamp() == epoch
        assert bot.standin.problems == []


def test_a_datetimepicker_value_in_the_past_is_refused_on_its_field(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        form, _ = open_form(bot)
        past = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
        answer = bot.submit(form, {"env": "staging", "when": past}).json()
        assert answer["response_action"] == "errors"
        assert "is in the past" in answer["errors"]["when"]
        assert created(sqlite_db) == []


def test_a_local_time_the_clocks_skip_is_refused_with_both_instants_it_could_mean(
    sqlite_db: Database, tmp_path: Path
) -> None:
    day = next_transition(gap=True)
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        form = legacy_form(open_form(bot)[0])
        answer = bot.submit(
            form,
            {"env": "staging", "date": day.isoformat(), "time": "02:30", "tz": "Europe/Berlin"},
        ).json()
        assert answer["response_action"] == "errors"
        said = answer["errors"]["time"]
        assert "does not exist" in said and "clocks skip it" in said
        assert f"{day} 01:30 UTC (as CET, +01:00)" in said
        assert f"{day} 00:30 UTC (as CEST, +02:00)" in said
        assert created(sqlite_db) == []
        # The same local time typed with its zone: refused the same way, nothing scheduled.
        sent, _ = bot.command(f"schedule staging {day}T02:30 Europe/Berlin", user="U2")
        text = sent.json()["text"]
        assert "does not exist" in text and f"{day} 01:30 UTC" in text
        assert f"{day} 00:30 UTC" in text
        assert created(sqlite_db) == []


def test_a_local_time_the_clocks_show_twice_is_refused_with_both_instants_it_could_mean(
    sqlite_db: Database, tmp_path: Path
) -> None:
    day = next_transition(gap=False)
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        form = legacy_form(open_form(bot)[0])
        answer = bot.submit(
            form,
            {"env": "staging", "date": day.isoformat(), "time": "02:30", "tz": "Europe/Berlin"},
        ).json()
        said = answer["errors"]["time"]
        assert "happens twice" in said
        assert f"{day} 00:30 UTC (as CEST, +02:00)" in said
        assert f"{day} 01:30 UTC (as CET, +01:00)" in said
        assert f"{day}T02:30+02:00" in said  # how to say which one
        assert created(sqlite_db) == []
        sent, _ = bot.command(f"schedule staging {day}T02:30 Europe/Berlin", user="U2")
        text = sent.json()["text"]
        assert "happens twice" in text and f"{day} 00:30 UTC" in text
        assert created(sqlite_db) == []


def test_a_typed_local_time_with_its_zone_schedules_that_zones_instant(
    sqlite_db: Database, tmp_path: Path
) -> None:
    day = datetime.now(UTC).date() + timedelta(days=3)
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        sent, key = bot.command(f"schedule staging {day}T15:00 Europe/Berlin", user="U2")
        assert sent.status == 200
        assert "scheduled for" in bot.reply(key)
        (event,) = created(sqlite_db)
        expected = datetime(day.year, day.month, day.day, 15, 0, tzinfo=BERLIN)
        assert datetime.fromisoformat(str(event["start_at"])) == expected


def test_the_standin_refuses_a_datetimepicker_whose_initial_time_is_not_unix_seconds() -> None:
    block = {
        "type": "input",
        "block_id": "when",
        "label": {"type": "plain_text", "text": "Start"},
        "element": {"type": "datetimepicker", "action_id": "when", "initial_date_time": "soon"},
    }
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "t"},
        "submit": {"type": "plain_text", "text": "s"},
        "blocks": [block],
    }
    assert any("initial_date_time" in p for p in view_problems(view, "modal"))
    block["element"]["initial_date_time"] = 1_800_000_000
    assert view_problems(view, "modal") == []
