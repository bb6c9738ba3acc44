"""The audit trail: append-only, each row hash-chained to the one before, each row signed.

An append happens inside the caller's transaction, so a state change and its
audit row commit together or not at all; an event that changes no state is
`record`ed in a transaction of its own. The chain's tip lives in audit_head,
locked for the append: rows get gap-free sequence numbers in commit order.

The chain proves order and integrity, not authorship: anyone who may INSERT can append
a row with a correct hash. So each row's hash is also signed with an Ed25519 key the
bot reads from a file (CUTOVER_AUDIT_KEY_FILE) and the database never holds;
`verify_signatures` with the public key names every unsigned or badly signed row.
Every string in a row's data is masked before it is written: a row cannot be scrubbed.

One module per part: `signing` (keys), `verify` (the chain), `signatures` (the rows'
signatures), `export` (the trail read out), `lockdown` (the role that may only append).
The chain's hashing and append live behind the store's door (bot/store/audit_chain.py),
its reads too (bot/store/audit_rows.py), each read in a transaction the store opens. The
names callers use are re-exported here.
"""

from __future__ import annotations

from bot.audit.export import EXPORT_FIELDS, events, events_containing, export
from bot.audit.lockdown import ROLE_NAME, LockdownError, lockdown, lockdown_statements
from bot.audit.signatures import (
    KEY_EVENTS,
    KeyEvent,
    check_signature,
    key_events,
    retirements,
    verify_signatures,
)
from bot.audit.signing import AuditKeyError, Signer, key_id, keygen, load_public_keys
from bot.audit.verify import (
    HEAD_FORM,
    Problem,
    Verified,
    check_expected_head,
    hash_at,
    head,
    parse_head,
    verify,
    verify_chain,
)
from bot.store.audit_chain import GENESIS, Appended, append, canonical, event_hash, now_iso, record

__all__ = [
    "EXPORT_FIELDS",
    "GENESIS",
    "HEAD_FORM",
    "KEY_EVENTS",
    "ROLE_NAME",
    "Appended",
    "AuditKeyError",
    "KeyEvent",
    "LockdownError",
    "Problem",
    "Signer",
    "Verified",
    "append",
    "canonical",
    "check_expected_head",
    "check_signature",
    "event_hash",
    "events",
    "events_containing",
    "export",
    "hash_at",
    "head",
    "key_events",
    "key_id",
    "keygen",
    "load_public_keys",
    "lockdown",
    "lockdown_statements",
    "now_iso",
    "parse_head",
    "record",
    "retirements",
    "verify",
    "verify_chain",
    "verify_signatures",
]
