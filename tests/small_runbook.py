"""A small runbook for engine tests that need no outside servers: steps are real commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from phases.runbook import Runbook, load_runbook


def small_runbook(
    tmp_path: Path,
    *,
    quorum: int = 1,
    allow_self_approval: bool = True,
    approvers: list[str] | None = None,
    env: dict[str, Any] | None = None,
    phases: list[dict[str, Any]] | None = None,
    act: bool = False,
    two_acts: bool = False,
    two_acts_twice: bool = False,
    rollback: list[dict[str, Any]] | None = None,
) -> Runbook:
    """act: phase one also runs an action (touches `acted`), so an abort after it has
    something to roll back; without one, an abort cancels the run instead. two_acts: phase two
    runs an action too (appends a line to `two-acted`: a re-run shows); two_acts_twice: and
    then a second one (appends to `two-acted-again`)."""
    marker = tmp_path / "rolled-back"
    acted = tmp_path / "acted"  # phase one's action: a run that passed it changed something
    data = {
        "name": "Small test runbook",
        "phases": phases
        or [
            {
                "id": "one",
                "name": "Phase one",
                "estimate_minutes": 1,
                "checkpoint": "one ok",
                "actions": [
                    {
                        "id": "act",
                        "name": "act",
                        "kind": "run",
                        "params": {"argv": ["touch", str(acted)]},
                    }
                ]
                if act
                else [],
                "checks": [
                    {"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
                ],
            },
            {
                "id": "two",
                "name": "Phase two",
                "estimate_minutes": "2-3",
                "checkpoint": "two ok",
                "manual": [{"id": "browser", "text": "Click around"}],
                "actions": [
                    {
                        "id": "act2",
                        "name": "act two",
                        "kind": "run",
                        "params": {"argv": ["sh", "-c", f"echo acted >> {tmp_path / 'two-acted'}"]},
                    }
                ][: 1 if two_acts or two_acts_twice else 0]
                + [
                    {
                        "id": "act2b",
                        "name": "act two again",
                        "kind": "run",
                        "params": {
                            "argv": ["sh", "-c", f"echo acted >> {tmp_path / 'two-acted-again'}"]
                        },
                    }
                ][: 1 if two_acts_twice else 0],
                "checks": [
                    {
                        "id": "flag",
                        "name": "flag file absent",
                        "kind": "command",
                        "params": {"argv": ["test", "!", "-e", "{fail_flag}"]},
                    }
                ],
            },
            {
                "id": "three",
                "name": "Phase three",
                "estimate_minutes": 1,
                "checkpoint": "three ok",
                "checks": [
                    {"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
                ],
            },
        ],
        "rollback": rollback
        or [
            {
                "id": "mark",
                "name": "mark rolled back",
                "kind": "run",
                "params": {"argv": ["touch", str(marker)]},
            }
        ],
        "environments": {
            "staging": {
                "domain": "staging.test",
                "base_url": "http://127.0.0.1:9",
                "approvers": approvers
                if approvers is not None
                else ["T1:U1", "T1:U2", "T1:U3", "console:alice"],
                "quorum": quorum,
                "allow_self_approval": allow_self_approval,
                "vars": {"fail_flag": str(tmp_path / "fail-two")},
                **(env or {}),
            },
            "prod": {
                "domain": "prod.test",
                "base_url": "http://127.0.0.1:9",
                "approvers": ["T1:U1"],
                "vars": {"fail_flag": str(tmp_path / "x")},
            },
        },
    }
    path = tmp_path / "small.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_runbook(path)
