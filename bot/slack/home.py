"""The App Home tab: active runs (phase, who the gate waits for), upcoming scheduled cutovers,
the last ten cutovers with their outcome. Drawn from the database each time a person opens
it (`app_home_opened` → views.publish), and republished for the people who opened it
recently when a run changes (`HomeRefresher`).

Each person sees only the environments they may see (bot.domain.approvals.may_see: an
approver of it, or in the channel its runs post in); the database is read once per round
(`home_data`) and each person's Home drawn from that (`home_view`).

Within a Home view's limits: at most 100 blocks (docs.slack.dev/reference/block-kit/blocks),
each section under 3,000 characters, and the whole under the block-text budget the
checkpoints keep (blocks.BLOCK_TEXT_BUDGET), so a long history never makes Slack refuse it.
Every string is masked by the surface before it leaves (SlackSurface.publish_home).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.ports import EnginePort, ReadsPort, SchedulesPort
from bot.slack.blocks import (
    BLOCK_TEXT_BUDGET,
    RUN_ICONS,
    Block,
    channel_ref,
    clip,
    context,
    escape,
    header,
    mention,
    section,
    when,
)
from bot.slack.outbox import LocalSlots, Slots
from bot.views import STATUS_WORDS

log = logging.getLogger(__name__)

HOME_BLOCKS = 100
RECENT = 10  # the last ten cutovers
READ_AHEAD = 5  # ended runs read per one shown, for people who see only some environments
SHOWN = 20  # active runs and upcoming schedules shown at most (then: /cutover status)
LINE = 600  # characters of one run's line

WaitingFor = Callable[[str, list[str]], str]  # (environment, votes) → mentions


def _run_line(
    engine: EnginePort, reads: ReadsPort, run_id: int, waiting_for: WaitingFor, now: datetime
) -> str | None:
    view = reads.run_view(run_id)
    if view is None:
        return None
    mask = engine.masker.mask
    dry = " (dry run)" if view.dry_run else ""
    icon = RUN_ICONS.get(view.status, "•")
    where = f" in {channel_ref(view.channel)}" if view.channel else ""
    head = f"{icon} *Run #{view.id} · {escape(mask(view.environment))}*{dry}{where}"
    if view.ended_at is not None:  # a finished cutover: its outcome
        state = STATUS_WORDS.get(view.status, view.status)  # type: ignore[call-overload]
        line = f"{head} — *{escape(state.split(' (')[0])}* {when(view.ended_at)}"
        line += f", started by {mention(view.requested_by)}"
        if view.rollback_reason:
            line += f"\n> {escape(mask(view.rollback_reason))}"
        return clip(line, LINE)
    if view.reverts is not None:  # a revert runs its steps, not the runbook's phases
        state = STATUS_WORDS.get(view.status, view.status)  # type: ignore[call-overload]
        done = sum(st.status != "pending" for st in view.revert_steps)
        return clip(
            f"{head}\n⏪ revert of run #{view.reverts}: {escape(state)} · "
            f"{done}/{len(view.revert_steps)} restore and rollback steps run · "
            f"{view.elapsed_minutes(now):.0f} min elapsed",
            LINE,
        )
    gate_id = reads.open_gate_id(run_id)
    gate = reads.gate_view(gate_id) if gate_id else None
    total = len(view.phases)
    index = min(view.phase_index, total - 1) if total else 0
    phase = view.phases[index] if total else None
    at = f"phase {phase.number}/{total} {escape(mask(phase.name))}" if phase else "?"
    if gate is not None:
        who = waiting_for(gate.environment, gate.votes) or "an approver"
        votes = f" ({len(gate.votes)}/{gate.quorum} approved)" if gate.quorum > 1 else ""
        state = f"✋ waiting at {at} for {who}{votes}"
    else:
        state = f"{STATUS_WORDS.get(view.status, view.status)} · {at}"  # type: ignore[call-overload]
    elapsed = view.elapsed_minutes(now)
    return clip(f"{head}\n{state} · {elapsed:.0f} min elapsed", LINE)


@dataclass(frozen=True)
class HomeLine:
    """One line of Home and what decides who may see it: its environment and its channel."""

    environment: str
    channel: str | None
    text: str


@dataclass(frozen=True)
class HomeData:
    """Everything Home can show, read from the database once per round; each person's Home
    is drawn from it with only what they may see (`home_view`)."""

    active: list[HomeLine]
    upcoming: list[HomeLine]
    recent: list[HomeLine]
    now: datetime
    # When it was drawn, in microseconds on the database's clock (home_viewers.drawing_version):
    # a drawing older than the one Slack shows is never published over it.
    version: int = 0
    locks: list[HomeLine] = field(default_factory=list)  # locks, and freezes in force now


MaySee = Callable[[str, str | None], bool]  # (environment, channel id) → may this person see it


def _channel_of(surface_ref: str | None, channel: str | None) -> str | None:
    """The channel id a run posts in: its message's channel (an id), else the one it was
    given (which may be a #name)."""
    return surface_ref.partition(":")[0] if surface_ref else channel


def lock_lines(engine: EnginePort, now: datetime) -> list[HomeLine]:
    """The environments' locks (who, since when, why) and the change freezes in force at
    `now` (which, declared by whom, why, until when), as `/cutover locks` says them."""
    mask = engine.masker.mask
    envs = engine.runbook.environments
    out = []
    for held in engine.locks():
        spec = envs.get(held.environment)
        name = escape(mask(held.environment))
        out.append(
            HomeLine(
                held.environment,
                spec.channel if spec else None,
                clip(
                    f"🔒 *{name}* locked by {mention(held.locked_by)} since "
                    f"{when(held.locked_at)}: {escape(mask(held.reason))} · no run starts until "
                    f"`/cutover unlock {name}`",
                    LINE,
                ),
            )
        )
    for env_name, spec in envs.items():
        frozen = engine.frozen(env_name, now)
        if frozen is None:
            continue
        f = frozen.freeze
        name = escape(mask(env_name))
        out.append(
            HomeLine(
                env_name,
                spec.channel,
                clip(
                    f"❄️ *{name}* is in the change freeze `{escape(mask(f.id))}` declared by "
                    f"{escape(mask(f.by))}: {escape(mask(f.reason))}, until {when(frozen.until)}"
                    f" · an emergency start: `/cutover start {name} --emergency`",
                    LINE,
                ),
            )
        )
    return out


def home_data(
    engine: EnginePort,
    reads: ReadsPort,
    schedules: SchedulesPort,
    waiting_for: WaitingFor,
    now: datetime,
    version: int = 0,
) -> HomeData:
    """Reads what Home can show. More ended runs than one Home shows are read, so a person who
    may see only some environments still gets their last ten. `version`: taken before."""

    def lines(ids: list[int]) -> list[HomeLine]:
        out = []
        for r in ids:
            view = reads.run_view(r)
            line = _run_line(engine, reads, r, waiting_for, now) if view is not None else None
            if view is not None and line is not None:
                channel = _channel_of(view.surface_ref, view.channel)
                out.append(HomeLine(view.environment, channel, line))
        return out

    upcoming = [
        HomeLine(
            s.environment,
            s.channel,
            clip(
                f"📅 *#{s.id} · {escape(engine.masker.mask(s.environment))}* at "
                f"{when(s.start_at)} in {channel_ref(s.channel)}, scheduled by "
                f"{mention(s.created_by)}",
                LINE,
            ),
        )
        for s, _ in schedules.listing()
        if s.status == "scheduled"
    ]
    return HomeData(
        active=lines(reads.active_runs()),
        upcoming=upcoming,
        recent=lines(reads.recent_runs(RECENT * READ_AHEAD)),
        now=now,
        version=version,
        locks=lock_lines(engine, now),
    )


def home_view(data: HomeData, may_see: MaySee | None = None) -> dict[str, Any]:
    """The Home tab of one person as a `home` view for views.publish: only the lines of
    environments they may see (`may_see`; None: every line, for a surface with no people)."""
    blocks: list[Block] = [header("Cutovers")]
    budget = BLOCK_TEXT_BUDGET - 500
    seen: dict[tuple[str, str | None], bool] = {}

    def visible(lines: list[HomeLine], limit: int) -> list[str]:
        out = []
        for line in lines:
            key = (line.environment, line.channel)
            if key not in seen:
                seen[key] = may_see is None or may_see(*key)
            if seen[key]:
                out.append(line.text)
            if len(out) >= limit:
                break
        return out

    def add(lines: list[str], empty: str) -> None:
        nonlocal budget
        if not lines:
            blocks.append(context(empty))
            return
        for line in lines:
            if len(blocks) >= HOME_BLOCKS - 2 or len(line) > budget:
                blocks.append(context("More in `/cutover status` and `/cutover schedule list`."))
                return
            blocks.append(section(line))
            budget -= len(line)

    blocks.append(header("Active runs"))
    add(
        visible(data.active, SHOWN),
        "No cutover is running. Start one with `/cutover start ENV`.",
    )
    held = visible(data.locks, SHOWN)
    if held:
        blocks.append({"type": "divider"})
        blocks.append(header("Locks and freezes"))
        add(held, "")
    blocks.append({"type": "divider"})
    blocks.append(header("Upcoming"))
    add(visible(data.upcoming, SHOWN), "Nothing scheduled. `/cutover schedule` opens a form.")
    blocks.append({"type": "divider"})
    blocks.append(header(f"Last {RECENT} cutovers"))
    add(visible(data.recent, RECENT), "No cutover has finished yet.")
    blocks = blocks[: HOME_BLOCKS - 1]
    blocks.append(context(f"Updated {when(data.now)} · `/cutover help` for every command"))
    return {"type": "home", "callback_id": "cutover_home", "blocks": blocks}


class HomeRefresher:
    """Republishes the Home tab of the people who opened it recently when a run changes (a run
    starts, a gate opens or is decided, a run ends): `poke()` only marks that something
    changed, so the click or the phase that changed it never waits; one background thread
    reads Home's data once per round (`draw`; the pokes of `gather` seconds make one round),
    and publishes each recent viewer's own Home from it (`publish(user, team, data)`: draws
    only what that person may see; True when Slack took it, False when not (refused, or a
    newer drawing is up), None when not now: another replica is publishing that person's
    Home, so a later round draws it again).

    views.publish is Tier 4 (100+ a minute per app per workspace, whatever the number of
    replicas): publishes are spaced at least `spacing` seconds apart and a person's Home
    published at most once per `per_user` seconds, on budgets (`slots`) every replica shares
    (the database's: bot.store.rate_slots); a person skipped for that is published in a later
    round. Only the people who opened Home recently are kept up to date (`viewers`); the
    others see a fresh Home when they open it."""

    def __init__(
        self,
        viewers: Callable[[], list[tuple[str, str]]],
        draw: Callable[[], Any],
        publish: Callable[[str, str, Any], bool | None],
        *,
        per_user: float = 5.0,
        spacing: float = 0.7,
        clock: Callable[[], float] = time.monotonic,
        slots: Slots | None = None,
        gather: float = 0.05,
    ) -> None:
        self._viewers, self._draw, self._publish = viewers, draw, publish
        self.per_user, self.spacing, self.clock = per_user, spacing, clock
        self.gather = gather  # pokes within this many seconds make one round
        self.slots: Slots = slots if slots is not None else LocalSlots(clock)
        self._dirty = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.published = 0  # views.publish calls Slack accepted (for tests and the bench)

    def poke(self) -> None:
        """A run changed: refresh recent viewers' Home soon (never on the caller's thread)."""
        with self._cond:
            if self._closed:
                return
            self._dirty = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="home-refresh", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def published_now(self, user: str) -> None:
        """`user`'s Home was just published (they opened it): not again within `per_user`."""
        self.slots.hold(f"home:{user}", self.per_user)

    def publish_slot(self) -> float:
        """Takes the next views.publish slot every replica shares; the seconds to wait for it."""
        return self.slots.reserve("views.publish", self.spacing)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._closed:
                    self._cond.wait()
                # One click or phase pokes several times within milliseconds (decided, next
                # phase running, its gate open): one round for them all, once they are done,
                # so its reads stay off the click's path (as the outbox gathers edits).
                gathered = time.monotonic() + self.gather
                while not self._closed and (left := gathered - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._closed:
                    return
                self._dirty = False
            try:
                later = self._round()
            except Exception:
                log.exception("cannot refresh the Home tabs")
                later = self.per_user
            if later is not None:  # someone was skipped: a round again once they may be
                with self._cond:
                    self._cond.wait(later)
                    self._dirty = True

    def _round(self) -> float | None:
        """Publishes Home for each recent viewer whose per-person slot is free; returns in how
        many seconds a skipped one may be published, or None."""
        people: dict[str, str] = {}
        for user, team in self._viewers():  # the latest first: each person once, as last seen
            people.setdefault(user, team)
        due: list[tuple[str, str]] = []
        wait: float | None = None
        for user, team in people.items():
            left = self.slots.take(f"home:{user}", self.per_user)
            if left > 0:  # published a moment ago (by any replica): in a later round
                wait = left if wait is None else min(wait, left)
            else:
                due.append((user, team))
        if not due:
            return wait
        data = self._draw()  # the database read once for everyone
        for user, team in due:
            # Tier 4, shared with every replica and Home opens: the slot is waited for in
            # full (a poke wakes this thread, but never lets it publish before its slot).
            deadline = time.monotonic() + self.publish_slot()
            with self._cond:
                while not self._closed and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._closed:
                    return None
            try:
                done = self._publish(user, team, data)  # only what this person may see
            except Exception:
                log.exception("cannot publish the Home tab of %s", user)
                continue
            if done:
                with self._cond:
                    self.published += 1
            elif done is None:  # another replica is at it: a fresh drawing in a later round
                wait = self.per_user if wait is None else min(wait, self.per_user)
        return wait
