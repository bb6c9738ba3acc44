"""Block Kit builders stay inside Slack's limits whatever the evidence, and never show a secret."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from bot.slack.blocks import (
    clip,
    fit_lines,
    gate_details,
    gate_message,
    mention,
    mentions,
    minimal_gate_message,
    parse_gate_value,
    parse_tick_block,
    parse_tick_value,
    run_message,
    slackify,
    tick_blocks,
)
from bot.slack.modals import output_view
from bot.views import GateView, ManualView, PhaseLine, RunView, StepView
from phases.secrets import Masker
from standins.slack import (
    BLOCK_TEXT_LIMIT,
    block_problems,
    block_text_chars,
    view_problems,
)

SECRET = "s3cr3t-db-password-xyz"
NOW = datetime(2026, 2, 17, 12, 0, tzinfo=UTC)


def gate(**kw: object) -> GateView:
    fields: dict[str, object] = {
        "id": 7,
        "run_id": 3,
        "environment": "prod",
        "phase_id": "verify",
        "phase_name": "Verify <everything> & more " * 10,
        "phase_index": 6,
        "phase_number": str(6 + 1),
        "phase_count": 13,
        "attempt": 2,
        "status": "open",
        "checks_passed": True,
        "note": f"interrupted while {SECRET} was in use",
        "checkpoint": "All green",
        "on_fail": "restore_and_rollback",
        "quorum": 2,
        "votes": ["T1:U1"],
        "decided_by": None,
        "decided_at": None,
        "surface_ref": None,
        "channel": "C1",
        "run_surface_ref": None,
        "dry_run": True,
        "steps": [
            StepView(
                "checks",
                f"s{i}",
                f"check number {i} <b>",
                "fail" if i % 7 == 0 else "pass",
                f"line one\nline two with {SECRET} " + "x" * 5000,
                i * 10,
            )
            for i in range(300)
        ],
        "manual": [
            ManualView(f"m{i}", "Test " + "y" * 140, "T1:U2" if i % 2 else None) for i in range(23)
        ],
    }
    fields.update(kw)
    return GateView(**fields)  # type: ignore[arg-type]


def test_a_huge_checkpoint_fits_slack_limits_and_is_masked() -> None:
    masker = Masker([SECRET])
    text, blocks = gate_message(gate(), masker.mask)
    assert block_problems(blocks) == []
    assert len(blocks) <= 50 and block_text_chars(blocks) <= BLOCK_TEXT_LIMIT
    dumped = str(blocks) + text
    assert SECRET not in dumped and "[redacted]" in dumped
    assert "<b>" not in dumped and "&lt;b&gt;" in dumped
    assert "/cutover audit 3" in dumped  # more results than one message holds
    assert "257 passed:" in dumped  # passed checks summarised, failing ones shown
    assert dumped.index("check number 0 &lt;b&gt;") < dumped.index("257 passed:")
    assert "1/2 approved by <@U1>" in dumped
    ticks = [b for b in blocks if b.get("block_id", "").startswith("tick:")]
    assert [len(b["elements"][0]["options"]) for b in ticks] == [10, 10, 3]
    assert [b for b in blocks if b.get("block_id") == "gate:7:2"]


def test_a_decided_checkpoint_shows_who_and_when_and_has_no_buttons() -> None:
    when = datetime(2026, 2, 17, 12, 34, 56, tzinfo=UTC)
    view = gate(status="approved", decided_by="T1:U1,T1:U2", decided_at=when, steps=[])
    text, blocks = gate_message(view)
    assert block_problems(blocks) == []
    assert not [b for b in blocks if b["type"] == "actions"]
    last = blocks[-1]["text"]["text"]
    assert last.startswith("✅ *Approved* by <@U1>, <@U2> at <!date^")
    assert "|2026-02-17 12:34:56 UTC>" in last
    assert "approved by <@U1>, <@U2>" in text


def test_failed_checks_offer_retry_not_continue() -> None:
    _, blocks = gate_message(gate(checks_passed=False, manual=[], steps=[]))
    buttons = next(b for b in blocks if b.get("block_id") == "gate:7:2")["elements"]
    assert [b["action_id"] for b in buttons] == ["gate_retry", "gate_rollback"]
    assert "confirm" not in buttons[1]  # Rollback opens the reason form, which says it
    from bot.slack.modals import FormMeta, rollback_form

    form = rollback_form(FormMeta("rollback", "T1:U1", 7, 2, 1), "2 (x)", True, str)
    assert "restored from the backup" in json.dumps(form)


def test_the_run_message_lists_phases_with_approvers() -> None:
    phases = [
        PhaseLine(i, str(i + 1), f"p{i}", f"Phase {i} " + "n" * 200, "5-10 min", s, 1, d, NOW, 3.0)
        for i, (s, d) in enumerate(
            [("passed", "T1:U1,T1:U2"), ("failed", "T1:U3"), ("waiting", None)] * 20
        )
    ]
    view = RunView(
        3,
        "prod",
        "NostrMaxi",
        "rolled_back",
        False,
        "T1:U9",
        "C1",
        None,
        NOW,
        None,
        2,
        f"aborted: {SECRET}",
        "T1:U3",
        90,
        240,
        phases,
    )
    text, blocks = run_message(view, NOW, Masker([SECRET]).mask)
    assert block_problems(blocks) == []
    dumped = str(blocks)
    assert "approved by <@U1>, <@U2>" in dumped and "rolled back by <@U3>" in dumped
    assert "Started by <@U9>" in dumped and "of an estimated 90-240 min" in dumped
    assert SECRET not in dumped + text
    assert text == "Cutover run #3 of prod: rolled back · phase 3 " + phases[2].name


def test_a_long_runs_message_fits_slacks_text_limit_and_counts_what_it_folds() -> None:
    """Slack refuses a whole message past its cumulative text limit (msg_blocks_too_long),
    and the channel then goes on showing an older state: a long runbook's earliest phases
    are folded into one line that counts them, the phase the run is at is kept."""
    statuses = ["passed"] * 110 + ["overridden"] * 5 + ["waiting"] + ["pending"] * 34
    phases = [
        PhaseLine(
            i,
            str(i + 1),
            f"p{i}",
            f"Deploy service {i} and check it",
            "5-10 min",
            status,
            1,
            "T1:U1,T1:U2" if status in ("passed", "overridden") else None,
            NOW if status in ("passed", "overridden") else None,
            3.0 if status in ("passed", "overridden") else None,
        )
        for i, status in enumerate(statuses)
    ]
    view = RunView(
        4, "prod", "NostrMaxi", "running", False, "T1:U9", "C1", None, NOW, None, 115,
        None, None, 90, 240, phases,
    )  # fmt: skip
    _, blocks = run_message(view, NOW, waiting="<@U1>")
    assert block_problems(blocks) == []
    assert block_text_chars(blocks) <= BLOCK_TEXT_LIMIT
    dumped = str(blocks)
    folded = re.search(
        r"\*Phases 1–(\d+)\* \(folded to fit Slack's message size\): ([^;]*);", dumped
    )
    assert folded is not None, dumped
    kept_from = int(folded.group(1)) + 1
    assert folded.group(2) == f"✅ {kept_from - 1} passed"  # the folded ones, counted
    assert "; each one's decision: `/cutover audit 4`" in dumped  # where they are, all of them
    assert "*116. Deploy service 115 and check it* [5-10 min] — waiting for <@U1>" in dumped
    for p in phases[kept_from - 1 :]:  # every phase after the fold is listed
        assert f"*{p.number}. {p.name}*" in dumped
    assert "failed checks overridden" in dumped  # the overridden ones, the latest, are kept


def test_text_helpers() -> None:
    assert mention("T1:U2") == "<@U2>" and mention("console:alice") == "console:alice"
    assert mentions("T1:U1,T1:U2") == "<@U1>, <@U2>" and mentions(None) == "?"
    assert slackify("by T1:U2 <x> & y") == "by <@U2> &lt;x&gt; &amp; y"
    assert clip("abc &amp; def", 7) == "abc …" and clip("go <@U123>", 8) == "go …"
    assert parse_gate_value("12:1") == (12, 1) and parse_gate_value("12:x") is None
    assert parse_gate_value(None) is None and parse_tick_value("3:1:browser") == (3, 1, "browser")
    assert parse_tick_value("3:1:../etc") is None
    lines = ["head"] + [f"line {i} " + "z" * 100 for i in range(200)] + ["tail"]
    fitted = fit_lines(lines, 3900)
    assert len(fitted) <= 3900 and fitted.startswith("head\n… ") and fitted.endswith("tail")


def test_the_decision_buttons_survive_any_number_of_manual_steps() -> None:
    many = [ManualView(f"m{i}", "Test", None) for i in range(100)]
    _, blocks = gate_message(gate(manual=many))
    assert block_problems(blocks) == [] and len(blocks) <= 50
    assert block_text_chars(blocks) <= BLOCK_TEXT_LIMIT
    assert blocks[-1]["block_id"] == "gate:7:2"


def test_a_phase_of_400_checks_and_25_manual_steps_fits_in_one_message_and_its_replies() -> None:
    steps = [
        StepView("checks", f"c{i}", f"check {i}", "fail" if i % 40 == 0 else "pass", "e" * 900, 5)
        for i in range(400)
    ]
    manual = [ManualView(f"m{i}", "Confirm " + "z" * 300, None) for i in range(25)]
    view = gate(steps=steps, manual=manual, note=None)
    _, blocks = gate_message(view)
    assert block_problems(blocks) == [] and block_text_chars(blocks) <= BLOCK_TEXT_LIMIT
    dumped = str(blocks)
    assert all(f"*check {i}*" in dumped for i in range(0, 400, 40))  # every failure shown
    assert "390 passed:" in dumped
    assert [b for b in blocks if b.get("block_id") == "gate:7:2"]
    ticks = [b for b in blocks if b.get("block_id", "").startswith("tick:")]
    assert sum(len(b["elements"][0]["options"]) for b in ticks) == 25
    details = gate_details(view)
    assert 1 < len(details) <= 6
    for text, reply in details:
        assert block_problems(reply) == [] and block_text_chars(reply) <= BLOCK_TEXT_LIMIT
        assert len(text) <= 4000
    assert "*check 0*" in str(details[0][1])  # failures first in the replies too


def test_a_small_checkpoint_shows_every_step_in_order_and_needs_no_replies() -> None:
    steps = [StepView("checks", f"c{i}", f"check {i}", "pass", "fine", 5) for i in range(5)]
    view = gate(steps=steps, manual=[], note=None)
    _, blocks = gate_message(view)
    assert "fine" in str(blocks) and gate_details(view) == []


def test_the_minimal_checkpoint_keeps_the_decision() -> None:
    _, blocks = minimal_gate_message(gate())
    assert block_problems(blocks) == []
    assert blocks[-1]["block_id"] == "gate:7:2" and "/cutover audit 3" in str(blocks)


def test_each_drawing_of_the_checkboxes_has_a_new_block_id_that_still_parses() -> None:
    view = gate(manual=[ManualView("m1", "Test", None)])
    first, second = (tick_blocks(view, iteration=i)[0]["block_id"] for i in ("1a", "1b"))
    assert first != second
    assert parse_tick_block(first) == parse_tick_block(second) == (7, 2, 0)


def test_failing_steps_quote_their_output_and_the_checkpoint_still_fits() -> None:
    """300 steps with kept output, every seventh failing with 5 long lines quoted (one of
    them closes a code block of its own and pings): the checkpoint stays within Slack's
    limits, masked, its quotes unbroken, and at most 5 Show output buttons, failures first."""
    quote = "\n".join([f"{SECRET} <!channel> ``` " + "q" * 300] * 5)
    steps = [
        StepView(
            "checks",
            f"s{i}",
            f"check {i}",
            "fail" if i % 7 == 0 else "pass",
            "exit 1",
            5,
            output_id=1000 + i,
            last_lines=quote,
        )
        for i in range(300)
    ]
    masker = Masker([SECRET])
    _, blocks = gate_message(gate(steps=steps), masker.mask)
    assert block_problems(blocks) == [] and len(blocks) <= 50
    assert block_text_chars(blocks) <= BLOCK_TEXT_LIMIT
    dumped = json.dumps(blocks)
    assert SECRET not in dumped and "<!channel>" not in dumped and "&lt;!channel&gt;" in dumped
    shown = [b for b in blocks if b.get("block_id") == "output:7:2"]
    assert [e["value"] for e in shown[0]["elements"]] == ["1000", "1007", "1014", "1021", "1028"]
    assert "/cutover logs 3 verify/STEP" in dumped
    for b in blocks:
        text = b.get("text", {}).get("text", "") if b["type"] == "section" else ""
        assert text.count("```") % 2 == 0  # every quote closed in its own section


def test_the_output_modal_keeps_the_last_lines_within_a_view_s_limits() -> None:
    lines = [f"line {i} <@U1> & {SECRET} ``` " + "z" * 200 for i in range(2000)]
    masker = Masker([SECRET])
    view = output_view("*npm run build*", "\n".join(lines), "More: `cutover logs 3`", masker.mask)
    assert view_problems(view, "modal") == []
    dumped = json.dumps(view)
    assert SECRET not in dumped and "<@U1>" not in dumped
    assert "line 1999 " in dumped and "line 1900 " not in dumped  # the last ones, within 9,000
    assert block_text_chars(view["blocks"]) <= BLOCK_TEXT_LIMIT
