"""The runbook's `post_cutover_tasks` (issue 24): a plain line stays valid (old runbooks read
as before); a task may name an `id` and an `owner` (a Slack user id or a user group id); the
reminder interval is `post_cutover_reminder_hours` (default 4). Wrong ones are refused with
an error naming the task and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phases.runbook import RunbookError
from tests.schedule_helpers import schedule_runbook


def book(tmp_path: Path, tasks: list[Any], **extra: Any) -> Any:
    return schedule_runbook(tmp_path, extra={"post_cutover_tasks": tasks, **extra})


def test_a_plain_line_is_a_task_with_an_id_from_its_words_and_no_owner(tmp_path: Path) -> None:
    runbook = book(tmp_path, ["Send launch announcement (social media, Nostr)"])
    [task] = runbook.post_cutover_tasks
    assert (task.id, task.text, task.owner) == (
        "send-launch-announcement-social-media-no",
        "Send launch announcement (social media, Nostr)",
        None,
    )
    assert runbook.post_cutover_reminder_hours == 4


def test_a_task_names_its_id_and_owner_a_user_or_a_user_group(tmp_path: Path) -> None:
    runbook = book(
        tmp_path,
        [
            {"id": "announce", "text": "Send launch announcement", "owner": "U0OWNER"},
            {"id": "alerting", "text": "Configure alerting", "owner": "S0OPS"},
            {"id": "monitoring", "text": "Enable uptime monitoring", "owner": "T1:U0ANN"},
        ],
        post_cutover_reminder_hours=2,
    )
    assert [(t.id, t.owner) for t in runbook.post_cutover_tasks] == [
        ("announce", "U0OWNER"),
        ("alerting", "S0OPS"),
        ("monitoring", "T1:U0ANN"),
    ]
    assert runbook.post_cutover_reminder_hours == 2


def test_an_owner_given_by_name_is_refused_saying_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(RunbookError) as err:
        book(tmp_path, [{"id": "announce", "text": "Announce", "owner": "@alice"}])
    assert "post_cutover_tasks" in str(err.value)
    assert "owner '@alice' must be a Slack user id like U012AB3CD" in str(err.value)
    assert "a user group id like S012AB3CD" in str(err.value)


def test_a_repeated_task_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="post-cutover task id 'announce' is repeated"):
        book(tmp_path, [{"id": "announce", "text": "A"}, {"id": "announce", "text": "B"}])


def test_a_task_id_that_is_a_pre_cutover_item_id_is_refused(tmp_path: Path) -> None:
    """`/cutover tick TARGET ID` tells a run's post-cutover task from a schedule's item by
    its id, so the two never share one."""
    pre = {
        "t_minus_24h": {"title": "T-24h", "items": ["Backup"]},
        "t_minus_1h": {"title": "T-1h", "items": [{"id": "announce", "text": "Notify"}]},
    }
    with pytest.raises(RunbookError, match="post-cutover task id 'announce' is also"):
        book(tmp_path, [{"id": "announce", "text": "A"}], pre_cutover=pre)


def test_a_reminder_interval_outside_the_24_hours_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="post_cutover_reminder_hours"):
        book(tmp_path, ["A"], post_cutover_reminder_hours=0)
    with pytest.raises(RunbookError, match="post_cutover_reminder_hours"):
        book(tmp_path, ["A"], post_cutover_reminder_hours=30)
