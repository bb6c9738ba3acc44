"""`SlackSurface` is composed of presenters, not a stack of mixins (issue 19): one shared
`SurfaceContext` and one presenter per kind of message, each given the context and only the
presenters it calls; the surface hands every call to one of them."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

from bot.post_task_view import PostTaskSurface
from bot.slack.post_task_actions import PostTaskMessages
from bot.slack.present.base import SurfaceContext
from bot.slack.present.checkpoints import CheckpointMessages
from bot.slack.present.home_channel import HomeChannel
from bot.slack.present.replies import Replies
from bot.slack.present.runs import RunMessages
from bot.slack.present.schedules import ScheduleMessages
from bot.slack.present.signoffs import SignoffMessages
from bot.slack.surface import SlackSurface
from bot.slack.transport import make_client
from bot.store.db import Database
from bot.surface import (
    ChecklistSurface,
    DirectorySurface,
    SchedulingSurface,
    SignoffSurface,
    Surface,
)
from tests.slack_harness import TOKEN, running_bot, wait_for
from tests.small_runbook import small_runbook

PRESENTERS = (
    RunMessages,
    CheckpointMessages,
    SignoffMessages,
    ScheduleMessages,
    HomeChannel,
    Replies,
    PostTaskMessages,
)


def a_surface() -> SlackSurface:
    return SlackSurface(make_client(TOKEN, "http://127.0.0.1:9/api/"))


def test_the_surface_is_no_stack_of_mixins() -> None:
    assert SlackSurface.__mro__ == (SlackSurface, object)
    for presenter in (*PRESENTERS, SurfaceContext):
        assert presenter.__mro__ == (presenter, object), presenter


def test_each_presenter_is_given_the_context_and_presenters_never_the_surface() -> None:
    allowed = {SurfaceContext, *PRESENTERS}
    for presenter in PRESENTERS:
        names = {c.__name__: c for c in (*allowed, SlackSurface)}
        hints = typing.get_type_hints(presenter.__init__, localns=names)
        hints.pop("return", None)
        params = list(inspect.signature(presenter.__init__).parameters)[1:]
        assert params and params[0] == "ctx", presenter
        assert hints["ctx"] is SurfaceContext, presenter
        assert set(hints.values()) <= allowed, (presenter, hints)
        assert SlackSurface not in hints.values(), presenter
    surface = a_surface()
    parts = [getattr(surface, name) for name in vars(surface) if name != "ctx"]
    built = [p for p in parts if isinstance(p, PRESENTERS)]
    assert {type(p) for p in built} == set(PRESENTERS)  # one of each, composed
    for part in built:
        assert part.ctx is surface.ctx  # one context, shared
        assert surface not in vars(part).values()  # no back door to the surface
    assert surface not in vars(surface.ctx).values()
    assert surface.checkpoints.runs is surface.runs  # checkpoints are replies to the run's
    assert surface.signoffs.runs is surface.runs
    assert surface.post_tasks.runs is surface.runs


def test_what_is_set_on_the_surface_is_what_every_presenter_sees() -> None:
    surface = a_surface()

    def poke() -> None:
        pass

    def problems(env: str) -> list[str]:
        return [f"{env}: unreadable group"]

    surface.on_change = poke
    surface.run_links = None
    surface.directory = problems
    assert surface.ctx.on_change is poke and surface.on_change is poke
    assert surface.ctx.directory is problems
    assert surface.directory_problems("prod") == ["prod: unreadable group"]
    assert surface.runs.ctx.on_change is poke  # the same context, not a copy
    assert surface.outbox is surface.ctx.outbox and surface.refs is surface.ctx.refs
    assert surface.pacer is surface.ctx.pacer and surface.channels is surface.ctx.transport.channels
    # What the engine and the services ask of a surface is still all there.
    for protocol in (SchedulingSurface, SignoffSurface, ChecklistSurface, DirectorySurface):
        assert isinstance(surface, protocol), protocol
    assert isinstance(surface, PostTaskSurface)
    for name in ("run_changed", "checkpoint", "gate_changed", "notice"):
        assert callable(getattr(surface, name)) and hasattr(Surface, name), name


def test_a_checkpoint_posted_through_the_composed_surface_lands_in_slack(
    db: Database, tmp_path: Path
) -> None:
    with running_bot(db, small_runbook(tmp_path)) as bot:
        surface = bot.service.surface
        assert isinstance(surface, SlackSurface)
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        parent = bot.parent(run_id)
        assert one.thread_ts == parent.ts and one.channel == parent.channel
        assert one.action_ids() == ["gate_continue", "gate_continue_comment", "gate_rollback"]
        gate_id = bot.gates(run_id)[0].id
        assert gate_id is not None
        # The checkpoints presenter posted it and keeps its ref in the shared context (the
        # ref is kept once Slack answered the post: the stand-in may show the post first).
        ref = wait_for(lambda: surface.known_gate_ref(gate_id), "the gate's message ref")
        assert ref == f"{one.channel}:{one.ts}"
        assert surface.ctx.refs.gate(gate_id) == (f"{one.channel}:{one.ts}", run_id)
        # A redraw asked of the surface is an edit of that message, through the outbox.
        assert surface.outbox.settle(timeout=30)
        before = len(bot.standin.api_calls("chat.update"))
        surface.gate_changed(gate_id)
        assert surface.outbox.settle(timeout=30)
        edits = bot.standin.api_calls("chat.update")[before:]
        assert any(c.args.get("ts") == one.ts and c.status == 200 for c in edits)
        assert "Phase 1: Phase one" in bot.fresh(one).all_text()
