"""Break-glass: continue past a failed overridable check with a justification and the override
quorum (issue 20, item 1). On PostgreSQL, through Slack (signed requests, the stand-in) and the
console; the record's lines checked against the audit trail."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.app import console_engine
from bot.console import Console
from bot.record import build_record, record_text
from bot.store.db import Database
from bot.surface import Actor
from phases.runbook import Runbook, RunbookError
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.trail_checker import check_record, exported_rows

STAKEHOLDERS = "C0STAKEHOLDERS"
WHY_1 = "resolver slow to propagate; checked by hand from 3 regions"
WHY_2 = "agree: TTL is 300 s and the old records are gone"


def ok_check(step_id: str = "ok") -> dict[str, Any]:
    return {"id": step_id, "name": step_id, "kind": "command", "params": {"argv": ["true"]}}


def flag_check(step_id: str, suffix: str, **extra: Any) -> dict[str, Any]:
    """A check that fails while the file `{fail_flag}-SUFFIX` exists."""
    return {
        "id": step_id,
        "name": step_id,
        "kind": "command",
        "params": {"argv": ["test", "!", "-e", "{fail_flag}-" + suffix]},
        **extra,
    }


def glass_runbook(tmp_path: Path, *, quorum: int = 1, **kw: Any) -> Runbook:
    """Phase two has an overridable check (`dns`, fails while fail-dns exists) and a hard one
    (`schema`, fails while fail-schema exists)."""
    phases = kw.pop("phases", None) or [
        {"id": "one", "name": "Phase one", "estimate_minutes": 1, "checkpoint": "ok"},
        {
            "id": "dns",
            "name": "DNS",
            "estimate_minutes": 1,
            "checkpoint": "resolves",
            "checks": [
                flag_check("resolve", "dns", overridable=True),
                flag_check("schema", "schema", critical="hard"),
            ],
        },
        {"id": "three", "name": "Phase three", "estimate_minutes": 1, "checkpoint": "ok"},
    ]
    for p in phases:
        p.setdefault("checks", [ok_check()])
    env = {
        "stakeholders": STAKEHOLDERS,
        "vars": {"fail_flag": str(tmp_path / "fail")},
        **kw.pop("env", {}),
    }
    return small_runbook(tmp_path, quorum=quorum, phases=phases, env=env, **kw)


def rows(db: Database, run_id: int, kind: str) -> list[dict[str, Any]]:
    return [
        {**json.loads(e.data), "actor": e.actor} for e in audit.events(db, run_id) if e.kind == kind
    ]


def test_an_override_needs_two_approvers_each_with_a_justification_and_shows_in_red_everywhere(
    pg_db: Database, tmp_path: Path
) -> None:
    (tmp_path / "fail-dns").touch()
    runbook = glass_runbook(tmp_path)
    with running_bot(pg_db, runbook) as bot:
        bot.standin.add_channel(STAKEHOLDERS, "launch")
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        two = bot.checkpoint(run_id, 2)
        assert "gate_override" in two.action_ids()
        assert "gate_continue" not in two.action_ids()  # a FAIL still blocks Continue

        # A stranger: no form, the refusal audited as an override.
        _, key = bot.click(two, "gate_override", user="U9")
        assert "may not override checks in staging" in bot.reply(key)
        assert bot.standin.opened("U9") == []
        assert rows(pg_db, run_id, "action.refused")[-1]["action"] == "override"

        # The form requires a justification.
        bot.click(two, "gate_override", user="U1")
        form = bot.modal("U1")
        assert "Why is it safe to go on?" in form.text() and "2 override approvers" in form.text()
        answer = bot.submit(form, {"justification": "  "}).json()
        assert answer["response_action"] == "errors"
        assert "justification" in answer["errors"]["justification"]

        # The requester alone never decides it: one vote of two.
        assert bot.submit(form, {"justification": WHY_1}).body == ""
        bot.wait_text(two, "Override requested:* 1/2")
        assert bot.gates(run_id)[1].status == "open"
        bot.click(two, "gate_override", user="U1")
        again = bot.modal("U1", after=1)
        bot.submit(again, {"justification": "me again"})
        wait_for(
            lambda: any(
                "already voted to override" in r["reason"]
                for r in rows(pg_db, run_id, "action.refused")
            ),
            "the second vote of the same person refused",
        )
        assert bot.gates(run_id)[1].status == "open"

        # A second override approver decides it: the next phase runs.
        bot.click(two, "gate_override", user="U2")
        assert bot.submit(bot.modal("U2"), {"justification": WHY_2}).body == ""
        bot.wait_text(two, "Overridden (break-glass): continued past failed checks/resolve")
        assert bot.gates(run_id)[1].status == "overridden"
        three = bot.checkpoint(run_id, 3)
        (decided,) = rows(pg_db, run_id, "gate.overridden")
        assert decided["approvers"] == ["T1:U1", "T1:U2"]
        assert decided["steps"] == ["checks/resolve"]
        assert decided["justifications"] == [f"T1:U1: {WHY_1}", f"T1:U2: {WHY_2}"]
        assert [v["justification"] for v in rows(pg_db, run_id, "override.vote")] == [WHY_1, WHY_2]
        assert rows(pg_db, run_id, "gate.decided")[-1]["phase"] == "one"  # no Continue row

        # The stakeholders hear it, in red, with who and why.
        feed = wait_for(
            lambda: [
                m.text
                for m in bot.standin.parents()
                if m.channel == STAKEHOLDERS and "🟥" in m.text
            ],
            "the override in the stakeholders' channel",
        )
        assert "PAST FAILED CHECKS" in feed[0] and WHY_1 in feed[0] and "<@U2>" in feed[0]
        bot.wait_text(bot.parent(run_id), "failed checks overridden")

        bot.click(three, "gate_continue", user="U2")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
        text = record_text(build_record(pg_db, runbook, run_id), runbook)
        assert "🟥 phase dns: failed checks/resolve overridden (break-glass)" in text
        check_record(text, exported_rows(pg_db, run_id), runbook)


def test_a_hard_step_is_never_overridden_and_gets_no_override_button(
    pg_db: Database, tmp_path: Path
) -> None:
    (tmp_path / "fail-dns").touch()
    (tmp_path / "fail-schema").touch()
    runbook = glass_runbook(tmp_path)
    with running_bot(pg_db, runbook) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        two = bot.checkpoint(run_id, 2)
        assert "gate_override" not in two.action_ids()
        gate_id = bot.gates(run_id)[1].id
        assert gate_id is not None
        result = bot.engine.override(gate_id, Actor("T1:U2", team="T1"), "it is fine")
        assert result.outcome == "refused"
        assert "checks/schema is critical: hard" in result.message
        assert rows(pg_db, run_id, "action.refused")[-1]["action"] == "override"
        assert rows(pg_db, run_id, "override.vote") == []
        assert bot.gates(run_id)[1].status == "open"


def test_a_quorum_short_by_one_does_not_override_and_the_requester_may_not_vote(
    pg_db: Database, tmp_path: Path
) -> None:
    """quorum 2 → override quorum 3; self-approval off: the run's starter may not vote."""
    (tmp_path / "fail-dns").touch()
    runbook = glass_runbook(
        tmp_path,
        quorum=2,
        allow_self_approval=False,
        approvers=["T1:U1", "T1:U2", "T1:U3", "T1:U4"],
    )
    with running_bot(pg_db, runbook) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.click(one, "gate_continue", user="U2")
        bot.click(one, "gate_continue", user="U3")
        bot.checkpoint(run_id, 2)
        gate_id = bot.gates(run_id)[1].id
        assert gate_id is not None
        starter = bot.engine.override(gate_id, Actor("T1:U1", team="T1"), "my own run")
        assert starter.outcome == "refused" and "you started this run" in starter.message
        for user in ("U2", "U3"):
            assert bot.engine.override(gate_id, Actor(f"T1:{user}", team="T1"), WHY_1).outcome == (
                "vote_recorded"
            )
        assert bot.gates(run_id)[1].status == "open"  # 2 of 3: short by one
        last = bot.engine.override(gate_id, Actor("T1:U4", team="T1"), WHY_2)
        assert last.outcome == "overridden"
        assert rows(pg_db, run_id, "gate.overridden")[0]["quorum"] == 3


def test_the_console_overrides_with_a_justification_at_the_prompt(
    pg_db: Database, tmp_path: Path
) -> None:
    (tmp_path / "fail-dns").touch()
    runbook = glass_runbook(tmp_path, approvers=["console:alice", "console:bob"])
    out = io.StringIO()
    engine = console_engine(pg_db, runbook, out)

    def type_as(who: str, lines: list[str], run: int | None = None) -> None:
        console = Console(
            engine, Actor(f"console:{who}", who), io.StringIO("\n".join(lines) + "\n"), out
        )
        console.current_run = run
        console.loop()

    type_as("alice", ["/cutover start staging", "c", "o", "", f"o {WHY_1}"])
    assert "o JUSTIFICATION" in out.getvalue()  # the checkpoint offers it
    assert "Override not requested: it needs a justification." in out.getvalue()
    assert "Override vote recorded: 1/2 override approvals" in out.getvalue()
    type_as("bob", [f"override {WHY_2}", "c"], run=1)
    assert "Phase 2 overridden past its failed checks (break-glass)" in out.getvalue()
    text = record_text(build_record(pg_db, runbook, 1), runbook)
    check_record(text, exported_rows(pg_db, 1), runbook)
    assert "🟥 phase dns" in text


def test_a_hard_step_marked_overridable_is_refused_with_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="critical: hard can never be overridden"):
        glass_runbook(
            tmp_path,
            phases=[
                {
                    "id": "p",
                    "name": "P",
                    "estimate_minutes": 1,
                    "checkpoint": "x",
                    "checks": [ok_check() | {"critical": "hard", "overridable": True}],
                }
            ],
        )


def test_an_override_quorum_no_one_could_reach_is_refused_when_written_and_warned_by_default(
    tmp_path: Path,
) -> None:
    with pytest.raises(RunbookError, match="an override needs 3 approvers"):
        glass_runbook(tmp_path, env={"override_quorum": 3}, approvers=["T1:U1", "T1:U2"])
    warned = glass_runbook(tmp_path, quorum=2, approvers=["T1:U1", "T1:U2"]).warnings()
    assert any("'staging': an override needs 3 approvers" in w for w in warned)
