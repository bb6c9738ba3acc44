"""Enterprise Grid approvers written as org-wide `W…` ids with a workspace `slack_team: T…`:
each is an approver from every workspace of the enterprise (the payload says which enterprise),
never from another enterprise or without one, and never by a display name. Driven with the
real-shaped fixtures (bolt-python's Grid slash command and button click), signed as Slack signs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.store.db import Database
from standins.slack import Message, button_action, post_signed
from tests.slack_harness import SECRET, Bot, running_bot, wait_for
from tests.small_runbook import small_runbook

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "slack"  # from shared/reference
HOME_TEAM, OTHER_TEAM, ORG = "T111", "T222", "E111"  # the fixtures' workspace and enterprise


def grid_runbook(tmp_path: Path, approvers: list[str] | None = None, **kw: Any) -> Any:
    return small_runbook(
        tmp_path,
        approvers=approvers or ["W111", "W222"],
        env={"slack_team": HOME_TEAM, "channel": "C0CUTOVER"},
        **kw,
    )


def grid_command(bot: Bot, text: str, key: str, **fields: str) -> None:
    """The fixture's Grid slash command (W111 typing in T111 of E111) with `text`."""
    form = dict(parse_qsl((FIXTURES / "slash_command.enterprise.form").read_text("utf-8")))
    form.update(
        command="/cutover",
        text=text,
        channel_id="C0CUTOVER",
        response_url=bot.standin.response_url(key),
        trigger_id=bot.standin.trigger(form["user_id"], form["team_id"]),
        **fields,
    )
    assert post_signed(bot.url, urlencode(form), SECRET).status == 200


def grid_click(
    bot: Bot,
    message: Message,
    action_id: str,
    key: str,
    *,
    user: str = "W111",
    team: str = HOME_TEAM,
    enterprise: str | None = ORG,
    name: str = "primary-owner",
    answered: bool = True,
) -> str:
    """The fixture's Grid button click, on `message`'s button, by `user` clicking in `team`."""
    body = json.loads((FIXTURES / "block_actions.button.enterprise.json").read_text("utf-8"))
    body["user"].update(id=user, username=name, name=name, team_id=team)
    body["team"]["id"] = team
    if enterprise is None:
        del body["team"]["enterprise_id"], body["team"]["enterprise_name"]
    else:
        body["team"]["enterprise_id"] = enterprise
    body["container"].update(channel_id=message.channel, message_ts=message.ts, is_ephemeral=False)
    body["channel"] = {"id": message.channel, "name": "cutover"}
    body["response_url"] = bot.standin.response_url(key)
    body["trigger_id"] = bot.standin.trigger(user, team)
    body["message"] = {"type": "message", "ts": message.ts, "blocks": message.blocks}
    body["actions"] = [{**button_action(message, action_id), "action_ts": "1596530385.194939"}]
    sent = post_signed(bot.url, urlencode({"payload": json.dumps(body)}), SECRET)
    assert sent.status == 200
    return bot.reply(key) if answered else ""


def test_a_grid_approver_listed_by_w_id_starts_from_their_workspace(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, grid_runbook(tmp_path)) as bot:
        grid_command(bot, "start staging", "start")
        run_id = bot.latest_run()
        assert bot.run(run_id).requested_by == "E111:W111"
        bot.checkpoint(run_id, 1)


def test_a_grid_approver_approves_from_another_workspace_of_the_enterprise(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, grid_runbook(tmp_path)) as bot:
        grid_command(bot, "start staging", "start")
        run_id = bot.latest_run()
        checkpoint = bot.checkpoint(run_id, 1)
        grid_click(
            bot, checkpoint, "gate_continue", "c1", user="W222", team=OTHER_TEAM, answered=False
        )
        wait_for(lambda: bot.gates(run_id)[0].status == "approved", "the gate to be approved")
        assert bot.gates(run_id)[0].decided_by == "E111:W222"
        assert bot.standin.replies("c1") == []  # no refusal: the checkpoint moved on


def test_a_w_id_listed_with_its_enterprise_counts_from_that_enterprise_only(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, grid_runbook(tmp_path, ["W111", "E111:W222"])) as bot:
        grid_command(bot, "start staging", "start")
        run_id = bot.latest_run()
        checkpoint = bot.checkpoint(run_id, 1)
        answer = grid_click(
            bot, checkpoint, "gate_continue", "c1", user="W222", team="T999", enterprise="E999"
        )
        assert "you are not an approver for staging" in answer
        assert bot.gates(run_id)[0].status == "open"


def test_a_w_id_from_another_workspace_without_the_enterprise_is_no_approver(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Nothing in the payload ties that workspace to the enterprise: fail closed."""
    with running_bot(sqlite_db, grid_runbook(tmp_path)) as bot:
        grid_command(bot, "start staging", "start")
        run_id = bot.latest_run()
        checkpoint = bot.checkpoint(run_id, 1)
        answer = grid_click(
            bot, checkpoint, "gate_continue", "c1", user="W222", team=OTHER_TEAM, enterprise=None
        )
        assert "you are not an approver for staging" in answer
        assert bot.gates(run_id)[0].status == "open"


def test_a_display_name_never_makes_a_grid_approver(sqlite_db: Database, tmp_path: Path) -> None:
    with running_bot(sqlite_db, grid_runbook(tmp_path)) as bot:
        grid_command(bot, "start staging", "start")
        run_id = bot.latest_run()
        checkpoint = bot.checkpoint(run_id, 1)
        answer = grid_click(
            bot, checkpoint, "gate_continue", "c1", user="W999", team=OTHER_TEAM, name="W222"
        )
        assert "you are not an approver for staging" in answer
        refused = [e for e in audit.events(sqlite_db, run_id) if e.kind == AuditKind.ACTION_REFUSED]
        assert [e.actor for e in refused] == ["E111:W999"]


def test_a_grid_requester_may_not_approve_their_run_from_another_workspace(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, grid_runbook(tmp_path, allow_self_approval=False)) as bot:
        grid_command(bot, "start staging", "start")
        run_id = bot.latest_run()
        checkpoint = bot.checkpoint(run_id, 1)
        answer = grid_click(bot, checkpoint, "gate_continue", "c1", team=OTHER_TEAM)
        assert "you started this run" in answer
        assert bot.gates(run_id)[0].status == "open"


def test_with_groups_unreadable_a_w_id_of_another_enterprise_gets_the_approvals_refusal(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Who is an approver by id is asked of bot.domain.approvals (`is_listed`), never matched
    again in the Slack layer: `E111:W222` clicking from another enterprise while the approver
    groups cannot be read is refused by the rule itself, not told to try again later."""
    book = small_runbook(
        tmp_path,
        approvers=["W111", "E111:W222"],
        env={"slack_team": HOME_TEAM, "channel": "C0CUTOVER", "approver_groups": ["S0GROUP"]},
    )
    with running_bot(sqlite_db, book) as bot:
        bot.standin.usergroups["S0GROUP"] = ["W111"]
        grid_command(bot, "start staging", "start")
        run_id = bot.latest_run()
        checkpoint = bot.checkpoint(run_id, 1)
        bot.service.slack.groups.forget()  # a cold cache, and Slack says wait 30 s
        bot.standin.fail_next(5, status=429, retry_after=30, method="usergroups.users.list")
        answer = grid_click(
            bot, checkpoint, "gate_continue", "c1", user="W222", team="T999", enterprise="E999"
        )
        assert "you are not an approver for staging" in answer
        assert bot.gates(run_id)[0].status == "open"
