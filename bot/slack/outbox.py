"""What the bot sends to Slack, paced per channel and never waiting on Slack while a lock is held.

- `Pacer`: chat.postMessage allows about one post per second per channel (Slack's rate-limit
  page, "Special" tier). Each post reserves the channel's next slot and the caller waits
  for it *before* taking any lock, so a burst is spread out instead of refused. The slots
  are the database's once the surface is bound (`Slots`: bot.store.rate_slots), so every
  replica posting in a channel shares its one budget; a process's own (`LocalSlots`)
  before that, or while the database cannot be reached.
- `Outbox`: edits of messages already posted (chat.update, Tier 3). One thread per channel
  sends them in order; edits of the same message coalesce and each is drawn when it is
  sent, from the database, so what Slack shows is the latest state whatever was dropped on
  the way. An edit waits `gather` seconds (50 ms) before it is drawn: the few state changes
  of one click (decided, next phase running, its gate open) become one drawing, and the
  drawing's reads stay out of the way of the click's own work. This is the bot's only
  redraw queue: the engine tells the surface in the thread that changed the state.
  A 429 is waited out in that thread (Retry-After), with no lock held, and delays
  only that channel's edits; a failing edit is retried with back-off *of that message
  only* (the channel's other edits go on), then audited. A message Slack will never let
  the bot edit again (deleted by an admin or a retention policy, `cant_update_message`,
  `edit_window_closed`, …: `GONE`) is not retried: its `on_gone` re-posts it, once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

Draw = Callable[[], "tuple[str, list[dict[str, Any]]] | None"]


class RateLimited(Exception):
    """Slack answered 429: wait `retry_after` seconds before the next call of this kind."""

    def __init__(self, method: str, retry_after: float) -> None:
        super().__init__(f"Slack {method} rate-limited: retry after {retry_after:g} s")
        self.method, self.retry_after = method, retry_after


class Slots(Protocol):
    """Rate budgets by key: `reserve` queues for the next slot (returns the seconds to wait),
    `take` takes one only if free now (0.0; else the seconds until one is), `hold` keeps
    the key closed for `seconds` (a Retry-After), `free` opens it now."""

    def reserve(self, key: str, interval: float) -> float: ...
    def take(self, key: str, interval: float) -> float: ...
    def hold(self, key: str, seconds: float) -> None: ...
    def free(self, key: str) -> None: ...


class LocalSlots:
    """`Slots` kept by this process alone (a bot with no database, or tests of one process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._next: dict[str, float] = {}
        self._guard = threading.Lock()

    def reserve(self, key: str, interval: float) -> float:
        with self._guard:
            now = self.clock()
            slot = max(now, self._next.get(key, now))
            self._next[key] = slot + interval
            return slot - now

    def take(self, key: str, interval: float) -> float:
        with self._guard:
            now = self.clock()
            due = self._next.get(key, now)
            if due > now:
                return due - now
            self._next[key] = now + interval
            return 0.0

    def hold(self, key: str, seconds: float) -> None:
        with self._guard:
            self._next[key] = max(self._next.get(key, 0.0), self.clock() + seconds)

    def free(self, key: str) -> None:
        with self._guard:
            self._next.pop(key, None)


class Pacer:
    """At most one post per `interval` seconds per channel, in the order the slots were taken;
    across replicas once `slots` (the database's) is set. `clock` and `sleep` are one time
    source (tests fast-forward both together)."""

    def __init__(
        self,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        slots: Slots | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval, self.clock, self.sleep = interval, clock, sleep
        self.slots = slots  # shared by every replica (bot.store.rate_slots), once bound
        self._next: dict[str, float] = {}
        self._guard = threading.Lock()

    def reserve(self, channel: str) -> float:
        """Seconds to wait before posting in `channel` (the slot is taken now)."""
        if self.slots is not None:
            try:
                return self.slots.reserve(f"post:{channel}", self.interval)
            except Exception as exc:  # the database is away: this process's own pacing
                log.warning("shared post pacing unavailable, pacing alone: %s", exc)
        with self._guard:
            now = self.clock()
            slot = max(now, self._next.get(channel, 0.0))
            self._next[channel] = slot + self.interval
            return slot - now

    def wait(self, channel: str) -> None:
        pause = self.reserve(channel)
        if pause > 0:
            self.sleep(pause)

    def hold(self, channel: str, seconds: float) -> None:
        """Slack said wait: no slot in `channel` before `seconds` from now."""
        if self.slots is not None:
            try:
                self.slots.hold(f"post:{channel}", seconds)
            except Exception as exc:
                log.warning("shared post pacing unavailable, pacing alone: %s", exc)
        with self._guard:
            self._next[channel] = max(self._next.get(channel, 0.0), self.clock() + seconds)


@dataclass
class _Edit:
    channel: str
    ts: str
    draw: Draw
    run_id: int | None
    fallback: Draw | None
    on_sent: Callable[[], None] | None = None
    tries: int = 0
    due: float = 0.0  # time.monotonic() before which it is not drawn (gathering, back-off)
    on_gone: Callable[[], None] | None = None  # the message can no longer be edited


class Outbox:
    """Edits per channel, one sender thread each (started on first use, daemon)."""

    def __init__(
        self,
        update: Callable[[str, str, str, list[dict[str, Any]]], None],
        on_failure: Callable[[str, str, int | None], None],
        *,
        max_tries: int = 8,
        backoff: float = 0.5,
        gather: float = 0.05,
    ) -> None:
        self._update, self._on_failure = update, on_failure
        self.max_tries, self.backoff, self.gather = max_tries, backoff, gather
        self._pending: dict[str, OrderedDict[str, _Edit]] = {}
        self._not_before: dict[str, float] = {}
        self._busy: set[str] = set()
        self._threads: dict[str, threading.Thread] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._gone: set[tuple[str, str]] = set()  # messages Slack said are gone for good
        self.sent = 0  # edits Slack accepted (for the bench)

    def edit(
        self,
        channel: str,
        ts: str,
        draw: Draw,
        *,
        run_id: int | None = None,
        fallback: Draw | None = None,
        on_sent: Callable[[], None] | None = None,
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        """Redraw message `ts` in `channel` soon; a pending redraw of it is replaced.
        `on_sent` runs once Slack took the drawing; `on_gone` (in a thread of its own) once
        Slack says the message can never be edited again."""
        with self._cond:
            queue = self._pending.setdefault(channel, OrderedDict())
            old = queue.get(ts)
            # A pending edit keeps its place and its due time: a busy message is never starved.
            due = old.due if old else time.monotonic() + self.gather
            queue[ts] = _Edit(
                channel,
                ts,
                draw,
                run_id,
                fallback,
                on_sent,
                old.tries if old else 0,
                due,
                on_gone,
            )
            if channel not in self._threads:
                thread = threading.Thread(
                    target=self._send_loop, args=(channel,), name=f"outbox-{channel}", daemon=True
                )
                self._threads[channel] = thread
                thread.start()
            self._cond.notify_all()

    def settle(self, timeout: float = 30.0) -> bool:
        """Waits until every edit is sent or given up; False on timeout (tests, bench)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(self._pending.values()) or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _send_loop(self, channel: str) -> None:
        while True:
            with self._cond:
                item: _Edit | None = None
                while not self._closed:
                    item, wait = self._next_due(channel)
                    if item is not None:
                        break
                    self._cond.wait(wait)
                if self._closed or item is None:
                    return
                del self._pending[channel][item.ts]
                self._busy.add(channel)
            try:
                self._send(item)
            finally:
                with self._cond:
                    self._busy.discard(channel)
                    self._cond.notify_all()

    def _next_due(self, channel: str) -> tuple[_Edit | None, float | None]:
        """The first edit of the channel that is due (in queue order), or how long to wait
        (None: until notified). A message backing off never holds up the others."""
        queue = self._pending.get(channel)
        if not queue:
            return None, None
        now = time.monotonic()
        held = self._not_before.get(channel, 0.0) - now  # Slack said wait (429)
        if held > 0:
            return None, held
        for item in queue.values():
            if item.due <= now:
                return item, None
        return None, max(min(e.due for e in queue.values()) - now, 0.0)

    def _send(self, item: _Edit) -> None:
        with self._cond:
            gone = (item.channel, item.ts) in self._gone
        if gone:  # an edit queued before Slack said so: it goes to the message posted again
            if item.on_gone is not None:
                threading.Thread(target=self._gone_again, args=(item,), daemon=True).start()
            return
        try:
            drawn = item.draw()
            if drawn is not None:
                self._try(item, *drawn)
            return
        except RateLimited as exc:
            self._later(item, exc.retry_after, count=False)
            return
        except Gone as exc:
            with self._cond:
                if len(self._gone) > 10_000:
                    self._gone.clear()
                self._gone.add((item.channel, item.ts))
            self._on_failure("update", str(exc), item.run_id)
            if item.on_gone is not None:  # off this channel's sender: re-posting waits a slot
                threading.Thread(target=self._gone_again, args=(item,), daemon=True).start()
            return
        except Refused as exc:
            if item.fallback is None:
                self._on_failure("update", str(exc), item.run_id)
                return
            self._on_failure("update (posting a shorter message)", str(exc), item.run_id)
            try:
                drawn = item.fallback()
                if drawn is not None:
                    self._try(item, *drawn)
                return
            except Exception as fallback_exc:
                exc2: Exception = fallback_exc
        except Exception as other:
            exc2 = other
        if item.tries + 1 >= self.max_tries:
            self._on_failure("update", str(exc2), item.run_id)
            return
        self._later(item, self.backoff * 2**item.tries, count=True)

    def _try(self, item: _Edit, text: str, blocks: list[dict[str, Any]]) -> None:
        self._update(item.channel, item.ts, text, blocks)
        with self._cond:
            self.sent += 1
        if item.on_sent is not None:
            item.on_sent()

    def _gone_again(self, item: _Edit) -> None:
        assert item.on_gone is not None
        try:
            item.on_gone()
        except Exception as exc:
            self._on_failure("re-post of a message Slack lost", str(exc), item.run_id)

    def _later(self, item: _Edit, seconds: float, *, count: bool) -> None:
        """Again in `seconds`: a 429 holds the channel (Slack's limit), a failure only this
        message (its back-off)."""
        with self._cond:
            if count:
                item.due = time.monotonic() + seconds
            else:
                self._not_before[item.channel] = time.monotonic() + seconds
            queue = self._pending.setdefault(item.channel, OrderedDict())
            if item.ts not in queue:  # a newer redraw of it may have arrived meanwhile
                item.tries += 1 if count else 0
                queue[item.ts] = item
                queue.move_to_end(item.ts, last=False)
            self._cond.notify_all()


class SlackCallFailed(RuntimeError):
    """A Web API call Slack answered with an error (after the retries)."""

    def __init__(self, method: str, error: str, status: object) -> None:
        super().__init__(f"Slack {method} failed: {error} (HTTP {status})")
        self.method, self.error, self.status = method, error, status

    @property
    def transient(self) -> bool:
        """Slack is failing, not refusing: the same call may go through later."""
        return self.error in TRANSIENT or (isinstance(self.status, int) and self.status >= 500)


class Refused(SlackCallFailed):
    """Slack will never take this message as it is (msg_blocks_too_long, invalid_blocks…)."""


class Gone(SlackCallFailed):
    """Slack will never let the bot edit this message again (chat.update's error list)."""


# chat.update's answers for a message that is gone for good: deleted (by an admin, a retention
# policy), not the bot's to edit, past the workspace's edit window, or in a channel that is
# gone or inactive. Retrying changes nothing; posting the message again does.
GONE = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "is_inactive",
        "channel_not_found",
        "is_archived",
    }
)


# What Slack answers when it is failing rather than refusing (docs.slack.dev error tables:
# "The server could not complete your operation(s) without encountering a catastrophic
# error", "…temporarily unavailable"); with 429 and 5xx, the only outcomes worth a retry.
TRANSIENT = frozenset(
    {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
)

# What Slack says of a message it will never take as it is: retrying the same post is useless.
REFUSALS = frozenset(
    {"msg_blocks_too_long", "invalid_blocks", "invalid_blocks_format", "msg_too_long"}
)
