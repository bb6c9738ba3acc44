"""A tick that carries a value, in Slack: the box of a manual step with `value` opens a small
form asking for it; a missing or malformed value is refused on the form's field and nothing
is ticked; a good one ticks the step with the value, and the check bound to the tick (a NIP-05
lookup on a real loopback server) runs and shows on the checkpoint. Signed requests over
HTTP to the bot, views.open and view_submission as Slack has them (standins/slack.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bot import audit
from bot.standin import NostrMaxiStandin
from bot.store.db import Database
from bot.store.reads import gate_view
from standins.slack import view_problems
from tests.servers import nostrmaxi  # noqa: F401  (the NostrMaxi stand-in fixture)
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook

NPUB = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"
HEX = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"


def claim_phase(base_url: str) -> dict[str, Any]:
    return {
        "id": "e2e",
        "name": "End-to-end",
        "estimate_minutes": 5,
        "checkpoint": "critical paths work",
        "manual": [
            {"id": "login", "text": "Log in through the browser"},
            {
                "id": "nip05-claim",
                "text": "Claim NIP-05 cutover-test",
                "value": {
                    "name": "pubkey",
                    "type": "nostr_pubkey",
                    "label": "Pubkey of the claiming account",
                },
                "checks": [
                    {
                        "id": "nip05-pubkey",
                        "name": "NIP-05 cutover-test returns the ticked pubkey",
                        "kind": "nip05_pubkey",
                        "params": {
                            "url": f"{base_url}/.well-known/nostr.json?name=cutover-test",
                            "name": "cutover-test",
                            "expect_pubkey": "{tick/nip05-claim/pubkey}",
                        },
                    }
                ],
            },
        ],
    }


def ticks(db: Database, run_id: int) -> list[dict[str, Any]]:
    return [
        {**json.loads(e.data), "actor": e.actor}
        for e in audit.events(db, run_id)
        if e.kind == "manual.ticked"
    ]


def test_ticking_a_value_step_opens_a_form_that_refuses_a_bad_value_then_ticks_with_it(
    sqlite_db: Database,
    tmp_path: Path,
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
) -> None:
    nostrmaxi.names["cutover-test"] = HEX
    runbook = small_runbook(tmp_path, phases=[claim_phase(nostrmaxi.url)])
    with running_bot(sqlite_db, runbook) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        message = bot.checkpoint(run_id, 1)
        bot.wait_text(message, "runs once nip05-claim is ticked")

        sent, _ = bot.tick(message, ["nip05-claim"], user="U2")
        assert sent.status == 200
        form = bot.modal("U2")
        assert view_problems(form.view, "modal") == []
        assert form.view["title"]["text"] == "Tick nip05-claim"
        assert "Pubkey of the claiming account" in form.text()
        assert ticks(sqlite_db, run_id) == []  # the box alone ticks nothing

        refused = bot.submit(form, {"tick_value": "cutover-test"}).json()
        assert refused["response_action"] == "errors"
        assert "64-hex public key or an npub1" in refused["errors"]["tick_value"]
        empty = bot.submit(form, {"tick_value": "  "}).json()
        assert empty["errors"]["tick_value"] == (
            "this step needs its pubkey: Pubkey of the claiming account"
        )
        time.sleep(0.2)
        assert ticks(sqlite_db, run_id) == []

        sent = bot.submit(form, {"tick_value": NPUB})
        assert sent.status == 200 and sent.body == ""  # the form closes
        [tick] = wait_for(lambda: ticks(sqlite_db, run_id), "the tick")
        assert (tick["item"], tick["actor"]) == ("nip05-claim", "T1:U2")
        assert tick["value"] == {"pubkey": HEX} and tick["given"] == NPUB

        def looked_up() -> Any:
            view = gate_view(sqlite_db, runbook, message_gate(bot, run_id))
            found = [s for s in (view.steps if view else []) if s.step_id == "nip05-pubkey"]
            return found[0] if found and found[0].status != "pending" else None

        step = wait_for(looked_up, "the lookup after the tick")
        assert step.status == "pass", step.evidence
        bot.wait_text(message, "the pubkey given with the tick")
        assert bot.standin.problems == []


def message_gate(bot: Any, run_id: int) -> int:
    return int(bot.gates(run_id)[0].id)
