"""The audit vocabulary is a public interface: docs/audit.md lists every kind with its data
fields, is generated from bot/domain/audit_vocabulary.py and the enum, and an older name a
trail still holds is read as the kind it became."""

from __future__ import annotations

import ast
from pathlib import Path

from bot import audit
from bot.domain import audit_vocabulary
from bot.domain.audit_kinds import RENAMED, AuditKind, read_data, read_kind
from bot.record import _trail, refusals
from bot.store.db import Database

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "audit.md"
# audit.append's own arguments, and the transaction a refusal is written in
NOT_DATA = {"actor", "run_id", "data", "at", "session", "tx"}


def test_every_kind_has_its_meaning_and_fields_and_nothing_else_is_listed() -> None:
    assert set(audit_vocabulary.CATALOGUE) == set(AuditKind)


def test_docs_audit_md_is_generated_from_the_vocabulary() -> None:
    stale = DOC.read_text(encoding="utf-8") != audit_vocabulary.markdown()
    assert not stale, f"docs/audit.md is stale: regenerate it with `{audit_vocabulary.REGENERATE}`"


def _literal_fields(call: ast.Call) -> list[str]:
    """The data keys a call site spells out: `data={...}`'s keys, or the keyword arguments of
    a helper that puts them in data (`log_event(KIND, decision=...)`, `_record(...)`)."""
    names = [k.arg for k in call.keywords if k.arg and k.arg not in NOT_DATA]
    for k in call.keywords:
        if k.arg == "data" and isinstance(k.value, ast.Dict):
            names += [key.value for key in k.value.keys if isinstance(key, ast.Constant)]
    return [str(n) for n in names]


def written_fields() -> dict[str, set[tuple[str, str]]]:
    """Every data field the bot's source writes, by kind, with where: read from the source,
    so a new field at a call site must be documented before the test passes."""
    found: dict[str, set[tuple[str, str]]] = {}
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            kinds = [
                a.attr
                for a in node.args
                if isinstance(a, ast.Attribute)
                and isinstance(a.value, ast.Name)
                and a.value.id == "AuditKind"
            ]
            if isinstance(node.func, ast.Attribute) and node.func.attr == "refuse":
                kinds = ["ACTION_REFUSED"]
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            for kind in kinds:
                for name in _literal_fields(node):
                    found.setdefault(AuditKind[kind].value, set()).add((name, where))
    return found


def test_every_field_a_call_site_writes_is_documented() -> None:
    found = written_fields()
    assert len(found) >= 30  # the scan sees the call sites
    refused_context = audit_vocabulary._REFUSED_CONTEXT.split(", ")
    undocumented = []
    for kind, fields in found.items():
        documented = set(audit_vocabulary.CATALOGUE[AuditKind(kind)].fields)
        if kind == AuditKind.ACTION_REFUSED:
            documented |= set(refused_context)
        undocumented += [
            f"{kind}.{name} ({where})" for name, where in sorted(fields) if name not in documented
        ]
    assert undocumented == [], (
        "document these fields in bot/domain/audit_vocabulary.py, then run "
        f"`{audit_vocabulary.REGENERATE}`"
    )


def test_an_old_kind_name_is_read_as_the_kind_it_became() -> None:
    assert read_kind("click.refused") == AuditKind.ACTION_REFUSED
    assert read_kind("gate.vote") == "gate.vote"
    assert set(RENAMED) & {k.value for k in AuditKind} == set()  # an old name is never reused
    assert read_data("click.refused", {"decision": "continue", "reason": "r"})["action"] == (
        "continue"
    )
    assert read_data("click.refused", {"abort": True, "reason": "r"})["action"] == "abort"
    assert read_data("click.refused", {"tick": "browser", "gate": 1}) == {
        "action": "tick",
        "item": "browser",
        "gate": 1,
    }
    assert "`click.refused`: read as `action.refused`" in DOC.read_text(encoding="utf-8")


def test_a_refusal_an_older_bot_wrote_shows_in_the_record(sqlite_db: Database) -> None:
    """A trail from before c605e77 says click.refused; the record counts it as a refusal."""
    with sqlite_db.session() as s:
        audit.append(s, "run.started", actor="T1:U1", run_id=7, data={"environment": "prod"})
        audit.append(
            s,
            "click.refused",
            actor="T1:U9",
            run_id=7,
            data={"gate": 1, "phase": "p1", "decision": "continue", "reason": "not an approver"},
        )
        audit.append(
            s, "click.refused", actor="T1:U9", run_id=7, data={"abort": True, "reason": "no"}
        )
    said = refusals(_trail(sqlite_db, 7))
    assert said is not None and said.startswith("2 ")
    assert "1× continue by T1:U9 (not an approver)" in said and "1× abort by T1:U9 (no)" in said
    assert audit.verify(sqlite_db) == []  # read, never rewritten
