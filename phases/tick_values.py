"""Ticks that carry a value: what a manual step asks for, how the answer is judged, and the
`{tick/ITEM/NAME}` placeholders of the checks bound to a tick.

A manual step declares `value: {name, label, type, pattern}`; ticking it without a value, or
with one that does not match, is refused. `type: nostr_pubkey` takes a 64-hex key or an
`npub1…` (NIP-19, bech32; decoded here, checksum checked) and keeps the hex key, which is
what a NIP-05 lookup answers. The step's `checks` run once it is ticked, with every value
ticked so far at its gate as `{tick/ITEM/NAME}`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,29}$"
HEX_PUBKEY = re.compile(r"^[0-9a-f]{64}$")
NPUB = re.compile(r"^npub1[02-9ac-hj-np-z]{58}$")
# {tick/ITEM/NAME}: ITEM a manual step of the same phase, NAME the value it declares
TICK_REF = re.compile(r"\{tick/([a-z0-9][a-z0-9_-]{0,39})/([a-z][a-z0-9_]{0,29})\}")
VALUE_CHARS = 200


class TickValue(BaseModel):
    """What a manual step's tick must carry: `name` (its placeholder `{tick/ITEM/NAME}`),
    `label` (the question the form and the console ask), `type` and `pattern` (a regular
    expression the whole value must match; required for `text`, an extra rule for
    `nostr_pubkey`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    label: str = Field(min_length=1, max_length=150)
    type: Literal["text", "nostr_pubkey"] = "text"
    pattern: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def pattern_usable(self) -> TickValue:
        if self.type == "text" and self.pattern is None:
            raise ValueError(
                f"value {self.name!r}: a text value needs a pattern (a regular expression "
                "the value must match), or type: nostr_pubkey"
            )
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(
                    f"value {self.name!r}: pattern {self.pattern!r} is not a regular "
                    f"expression: {exc}"
                ) from None
        return self


def accept(spec: TickValue, given: str | None) -> tuple[str | None, str | None]:
    """(the value to keep, None) or (None, why the tick is refused)."""
    raw = (given or "").strip()
    if not raw:
        return None, f"this step needs its {spec.name}: {spec.label}"
    if len(raw) > VALUE_CHARS:
        return None, f"{spec.name} is longer than {VALUE_CHARS} characters"
    if spec.pattern is not None and not re.fullmatch(spec.pattern, raw):
        return None, f"{spec.name} {raw[:80]!r} does not match {spec.pattern}"
    if spec.type == "nostr_pubkey":
        if HEX_PUBKEY.match(raw):
            return raw, None
        if not NPUB.match(raw):
            return None, f"{spec.name} must be a 64-hex public key or an npub1… (NIP-19)"
        key = npub_to_hex(raw)
        if key is None:
            return None, f"{spec.name} {raw[:20]}… is not a valid npub (bech32 checksum)"
        return key, None
    return raw, None


_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            chk ^= g if (top >> i) & 1 else 0
    return chk


def bech32_decode(text: str) -> tuple[str, bytes] | None:
    """(hrp, data bytes) of a bech32 string (BIP-173, as NIP-19 uses), None when invalid."""
    if text.lower() != text and text.upper() != text:
        return None
    text = text.lower()
    hrp, sep, rest = text.rpartition("1")
    if not sep or not hrp or len(rest) < 6 or any(c not in _CHARSET for c in rest):
        return None
    data = [_CHARSET.index(c) for c in rest]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    if _polymod(expanded + data) != 1:
        return None
    acc, bits, out = 0, 0, bytearray()
    for v in data[:-6]:  # 5-bit groups to bytes, no padding left over
        acc, bits = (acc << 5) | v, bits + 5
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        return None
    return hrp, bytes(out)


def npub_to_hex(npub: str) -> str | None:
    got = bech32_decode(npub)
    if got is None or got[0] != "npub" or len(got[1]) != 32:
        return None
    return got[1].hex()


def refs(params: Any) -> set[tuple[str, str]]:
    """The (item, name) of every `{tick/ITEM/NAME}` in a step's parameters."""
    return set(TICK_REF.findall(json.dumps(params, default=str)))


def key(item: str, name: str) -> str:
    return f"tick/{item}/{name}"


def stand_in(spec: TickValue) -> str:
    """What validation renders a `{tick/…}` placeholder with."""
    return "0" * 64 if spec.type == "nostr_pubkey" else "value"
