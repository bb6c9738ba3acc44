"""Break-glass leftovers of issue 20: the record's Sign-Off line when the last checkpoint was
overridden is no sign-off (never inferred from the override's approvers), a cancelled run's
record passes the trail check, and override approver groups different from the approver
groups are looked up in Slack (usergroups.users.list on the stand-in) and enforced. On
PostgreSQL, at the console and through signed requests against the stand-in."""

from __future__ import annotations

import io
from pathlib import Path

from bot.app import console_engine
from bot.console import Console
from bot.record import build_record, record_text
from bot.store.db import Database
from bot.surface import Actor
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_breakglass import WHY_1, WHY_2, flag_check, glass_runbook, ok_check, rows
from tests.trail_checker import check_record, exported_rows


def last_phase_overridable(tmp_path: Path, **kw: object) -> object:
    """Phase one passes; the last phase, dns, fails while fail-dns exists (overridable)."""
    phases = [
        {"id": "one", "name": "Phase one", "estimate_minutes": 1, "checkpoint": "ok"},
        {
            "id": "dns",
            "name": "DNS",
            "estimate_minutes": 1,
            "checkpoint": "resolves",
            "checks": [flag_check("resolve", "dns", overridable=True), ok_check("up")],
        },
    ]
    return glass_runbook(tmp_path, phases=phases, **kw)


def test_the_sign_off_is_never_inferred_from_the_override_of_the_last_checkpoint(
    pg_db: Database, tmp_path: Path
) -> None:
    (tmp_path / "fail-dns").touch()
    runbook = last_phase_overridable(tmp_path, approvers=["console:alice", "console:bob"])
    out = io.StringIO()
    engine = console_engine(pg_db, runbook, out)  # type: ignore[arg-type]

    def type_as(who: str, lines: list[str], run: int | None = None) -> None:
        console = Console(
            engine, Actor(f"console:{who}", who), io.StringIO("\n".join(lines) + "\n"), out
        )
        console.current_run = run
        console.loop()

    type_as("alice", ["/cutover start staging", "c", f"o {WHY_1}"])
    type_as("bob", [f"o {WHY_2}"], run=1)
    wait_for(lambda: rows(pg_db, 1, "run.completed"), "the run to complete")
    text = record_text(build_record(pg_db, runbook, 1), runbook)  # type: ignore[arg-type]
    [line] = [x for x in text.splitlines() if x.startswith("Sign-Off:")]
    assert line == "Sign-Off: — (no sign-off asked: the runbook names nobody to sign off staging)"
    assert "approved the last checkpoint" not in text  # nor the earlier Continue
    check_record(text, exported_rows(pg_db, 1), runbook)  # type: ignore[arg-type]


def test_a_cancelled_run_s_record_passes_the_trail_check(pg_db: Database, tmp_path: Path) -> None:
    out = io.StringIO()
    runbook = small_runbook(tmp_path)
    engine = console_engine(pg_db, runbook, out)
    lines = ["/cutover start staging", "/cutover abort staging --reason wrong window"]
    Console(
        engine, Actor("console:alice", "alice"), io.StringIO("\n".join(lines) + "\n"), out
    ).loop()
    wait_for(lambda: rows(pg_db, 1, "run.cancelled"), "the cancellation")
    text = record_text(build_record(pg_db, runbook, 1), runbook)
    assert "- cancelled by console:alice at " in text
    assert ": wrong window (no action had run: nothing to roll back)" in text
    check_record(text, exported_rows(pg_db, 1), runbook)


def test_override_groups_other_than_the_approver_groups_are_read_from_slack_and_enforced(
    pg_db: Database, tmp_path: Path
) -> None:
    (tmp_path / "fail-dns").touch()
    runbook = glass_runbook(
        tmp_path,
        approvers=["T1:U1", "T1:U2"],
        env={"approver_groups": ["S0APPROVE"], "override_approver_groups": ["S0BREAK"]},
    )
    with running_bot(pg_db, runbook) as bot:
        bot.standin.usergroups["S0APPROVE"] = ["U5"]
        bot.standin.usergroups["S0BREAK"] = ["U7", "U8"]
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        two = bot.checkpoint(run_id, 2)
        # An approver by group (U5) and one listed by id (U1): neither may override.
        for user in ("U5", "U1"):
            bot.click(two, "gate_override", user=user)
            bot.submit(bot.modal(user), {"justification": "I approve gates"})
        wait_for(
            lambda: (
                len(
                    [
                        r
                        for r in rows(pg_db, run_id, "action.refused")
                        if r["action"] == "override" and "may not override checks" in r["reason"]
                    ]
                )
                == 2
            ),
            "both refused",
        )
        asked = [c.args.get("usergroup") for c in bot.standin.api_calls("usergroups.users.list")]
        assert "S0BREAK" in asked  # looked up in Slack when the submission arrived
        assert rows(pg_db, run_id, "override.vote") == []
        # The override group's members decide it, at its quorum (the gate's 1 + 1).
        bot.click(two, "gate_override", user="U7")
        bot.submit(bot.modal("U7"), {"justification": WHY_1})
        wait_for(lambda: rows(pg_db, run_id, "override.vote"), "the first vote")
        assert bot.gates(run_id)[1].status == "open"
        bot.click(two, "gate_override", user="U8")
        bot.submit(bot.modal("U8"), {"justification": WHY_2})
        wait_for(lambda: bot.gates(run_id)[1].status == "overridden", "the override")
        (decided,) = rows(pg_db, run_id, "gate.overridden")
        assert decided["approvers"] == ["T1:U7", "T1:U8"]
        refused = [r["actor"] for r in rows(pg_db, run_id, "action.refused")]
        assert sorted(refused) == ["T1:U1", "T1:U5"]
