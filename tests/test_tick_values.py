"""Ticks that carry a value: the declaration in the runbook, the rule a value must meet, and
npub1… keys decoded to hex with NIP-19's own test vectors (phases/tick_values.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from phases.runbook import RunbookError, load_runbook
from phases.tick_values import TickValue, accept, bech32_decode, npub_to_hex

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "runbooks" / "nostrmaxi.yml"
PUBKEY = TickValue(name="pubkey", label="Pubkey", type="nostr_pubkey")

# NIP-19 (github.com/nostr-protocol/nips/blob/master/19.md), "Examples"
NIP19 = [
    (
        "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg",
        "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e",
    ),
    (
        "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6",
        "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d",
    ),
]


@pytest.mark.parametrize(("npub", "hex_key"), NIP19)
def test_npub_decodes_to_the_nip19_hex_key(npub: str, hex_key: str) -> None:
    assert npub_to_hex(npub) == hex_key
    assert accept(PUBKEY, npub) == (hex_key, None)


def test_a_bad_bech32_checksum_is_refused() -> None:
    npub = NIP19[1][0][:-1] + ("7" if NIP19[1][0][-1] != "7" else "8")
    assert npub_to_hex(npub) is None
    kept, problem = accept(PUBKEY, npub)
    assert kept is None and problem is not None and "not a valid npub" in problem


def test_bech32_of_another_prefix_is_not_an_npub() -> None:
    # BIP-173's valid test string: right checksum, but no npub and no 32-byte key
    assert bech32_decode("a12uel5l") == ("a", b"")
    assert npub_to_hex("a12uel5l") is None


def test_a_hex_key_is_kept_as_given_and_anything_else_is_refused() -> None:
    hex_key = NIP19[0][1]
    assert accept(PUBKEY, hex_key) == (hex_key, None)
    for bad in ("", "   ", "cutover-test", hex_key[:-1], hex_key.upper()):
        kept, problem = accept(PUBKEY, bad)
        assert kept is None and problem, bad
    assert accept(PUBKEY, None)[1] == "this step needs its pubkey: Pubkey"


def test_a_text_value_must_match_its_pattern() -> None:
    spec = TickValue(name="invoice", label="Invoice id", pattern=r"inv_[0-9]+")
    assert accept(spec, " inv_42 ") == ("inv_42", None)
    assert accept(spec, "inv_42x")[1] == "invoice 'inv_42x' does not match inv_[0-9]+"


def _runbook_with(tmp_path: Path, change: Any) -> Path:
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    e2e = next(p for p in data["phases"] if p["id"] == "e2e")
    change(e2e)
    path = tmp_path / "changed.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _claim(e2e: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in e2e["manual"] if m["id"] == "nip05-claim")


def test_a_value_pattern_that_is_no_regular_expression_is_a_runbook_error(
    tmp_path: Path,
) -> None:
    path = _runbook_with(tmp_path, lambda e2e: _claim(e2e)["value"].update(pattern="([0-9"))
    with pytest.raises(RunbookError, match=r"value 'pubkey': pattern '\(\[0-9' is not a regular"):
        load_runbook(path)


def test_a_text_value_without_a_pattern_is_a_runbook_error(tmp_path: Path) -> None:
    path = _runbook_with(tmp_path, lambda e2e: _claim(e2e)["value"].update(type="text"))
    with pytest.raises(RunbookError, match="a text value needs a pattern"):
        load_runbook(path)


def test_a_value_declaration_with_an_unknown_field_is_a_runbook_error(tmp_path: Path) -> None:
    path = _runbook_with(tmp_path, lambda e2e: _claim(e2e)["value"].update(regex="x"))
    with pytest.raises(RunbookError, match="regex"):
        load_runbook(path)


def test_a_tick_placeholder_naming_no_declared_value_is_a_runbook_error(tmp_path: Path) -> None:
    def typo(e2e: dict[str, Any]) -> None:
        _claim(e2e)["checks"][0]["params"]["expect_pubkey"] = "{tick/nip05-claim/npub}"

    with pytest.raises(RunbookError, match=r"\{tick/nip05-claim/npub\} names no value"):
        load_runbook(_runbook_with(tmp_path, typo))


def test_the_shipped_runbook_binds_the_claim_and_payment_checks_to_their_ticks() -> None:
    e2e = load_runbook(SHIPPED).phase("e2e")
    assert [c.id for c in e2e.checks] == ["nip05-lookup"]  # at phase start: the endpoint
    assert [c.id for c in e2e.tick_checks] == ["nip05-pubkey", "payment-webhook", "pro-upgrade"]
    claim = next(m for m in e2e.manual if m.id == "nip05-claim")
    assert claim.value is not None and claim.value.type == "nostr_pubkey"


def test_console_tick_takes_the_value_after_the_step_id(sqlite_db: Any, tmp_path: Path) -> None:
    import io

    from bot import audit
    from bot.app import console_engine
    from bot.console import Console
    from bot.surface import Actor
    from tests.small_runbook import small_runbook

    phase = {
        "id": "e2e",
        "name": "End-to-end",
        "estimate_minutes": 5,
        "checkpoint": "critical paths work",
        "manual": [
            {
                "id": "nip05-claim",
                "text": "Claim NIP-05 cutover-test",
                "value": {"name": "pubkey", "type": "nostr_pubkey", "label": "Pubkey"},
            }
        ],
    }
    out = io.StringIO()
    engine = console_engine(sqlite_db, small_runbook(tmp_path, phases=[phase]), out)
    lines = ["/cutover start staging", "tick nip05-claim", f"tick nip05-claim {NIP19[0][0]}", "c"]
    Console(
        engine, Actor("console:alice", "alice"), io.StringIO("\n".join(lines) + "\n"), out
    ).loop()
    said = out.getvalue()
    assert "nip05-claim not ticked: this step needs its pubkey: Pubkey" in said
    assert "nip05-claim ticked" in said
    [tick] = [e for e in audit.events(sqlite_db, 1) if e.kind == "manual.ticked"]
    assert '"value":{"pubkey":"' + NIP19[0][1] + '"}' in tick.data
