"""The state of a run's post-cutover tasks (bot.post_task_view.TasksView), read from its
audit rows through the store's door."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select

from bot.post_task_view import KINDS, TasksView, view_of
from bot.store.db import Database
from bot.store.models import AuditEvent, Run
from bot.store.read_door import door
from bot.store.unit import Store


def tasks_view(
    db: Database | Store, run_id: int, events: Sequence[Any] | None = None
) -> TasksView | None:
    """None when the run listed no post-cutover tasks (not completed, a dry run, none).
    `events`: the run's rows, when the caller read them already (the record)."""
    if events is None:
        with door(db).tx() as tx:
            run = tx.get(Run, run_id)
            events = list(
                tx.session.exec(
                    select(AuditEvent)
                    .where(AuditEvent.run_id == run_id, col(AuditEvent.kind).in_(KINDS))
                    .order_by(col(AuditEvent.seq))
                )
            )
        environment = run.environment if run is not None else "?"
    else:
        environment = next(
            (json.loads(e.data).get("environment", "?") for e in events if e.kind == "run.started"),
            "?",
        )
    return view_of(run_id, environment, events)
