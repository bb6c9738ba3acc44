"""After the ack: a listener's work, handed to a pool once the answers in flight are out.

Every listener acks at once (Slack allows 3 s) and hands its work here. `AcksFirst` holds
that work back while requests are being answered; one hand-out thread then gives
everything queued to the work pool, where `Dispatcher.guard` refuses a replayed request
(bot.slack.middleware.ReplayGuard) before the work runs and answers the person if it fails.
Work that opens a form goes to a pool of its own at once: a trigger_id lasts 3 seconds.

Bolt's lazy listeners (`ack=…, lazy=[…]`) also ack first and work later, but run each
lazy function at once on Bolt's executor: no holding back while acks are in flight, no
separate pool for forms, no replay check between the two. This module keeps those.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.domain.errors import Unavailable
from bot.slack.blocks import escape
from bot.slack.groups import UNKNOWN_TEXT as GROUPS_UNKNOWN
from bot.slack.groups import GroupsBroken, GroupsUnknown
from bot.slack.middleware import NO_IDENTITY, UNAVAILABLE, ReplayGuard, Signed, signed
from bot.surface import Actor

log = logging.getLogger(__name__)

Listener = Callable[[Ack, dict[str, Any], dict[str, Any], BoltContext], None]


class AcksFirst:
    """Work after an ack waits while requests are being answered: Slack's deadline is on the
    answer, not on the work.

    On a small machine the work of one click (database, Web API calls) would otherwise take
    the CPU and the GIL from the acks of the clicks arriving with it. The HTTP server enters
    this around each request; `wait()` returns once no request has been in flight for
    `quiet` seconds (a burst arrives spread out), or after `max_wait` under steady load.
    A request that came alone (none other began within `quiet` before it) holds nothing
    back once it is answered: there is no burst to make way for, and a click's next
    checkpoint would wait the quiet period for nothing.
    """

    def __init__(self, quiet: float = 0.01, max_wait: float = 0.25) -> None:
        self.quiet, self.max_wait = quiet, max_wait
        self._busy = 0
        self._last = 0.0  # time.monotonic() when the last request was answered
        self._began = (-1e9, -1e9)  # when the two latest requests began
        self._cond = threading.Condition()

    def __enter__(self) -> AcksFirst:
        with self._cond:
            self._busy += 1
            self._began = (self._began[1], time.monotonic())
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._busy -= 1
            self._last = time.monotonic()
            if self._busy == 0:  # waiters re-check then; no wake-ups during a burst
                self._cond.notify_all()

    def wait(self) -> None:
        deadline = time.monotonic() + self.max_wait
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return
                alone = self._began[1] - self._began[0] >= self.quiet
                if self._busy == 0 and (alone or now - self._last >= self.quiet):
                    return
                pause = self.quiet - (now - self._last) if self._busy == 0 else deadline - now
                self._cond.wait(min(pause, deadline - now))


class Dispatcher:
    """Runs listeners' work after their ack: `submit` (queued behind the acks in flight),
    `form` (at once, on the forms pool), `later` (queued, no replay check: the listener
    checked already, or the request carries no signature)."""

    def __init__(
        self,
        replays: ReplayGuard,
        answer: Callable[[dict[str, Any], str], None],
        *,
        workers: int = 8,
    ) -> None:
        self.replays = replays
        self.answer = answer
        self.acks_first = AcksFirst()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-work")
        # Forms open here, never queued behind engine work: a trigger_id lasts 3 seconds.
        self.forms = ThreadPoolExecutor(max_workers=4, thread_name_prefix="slack-forms")
        self._work: queue.SimpleQueue[
            tuple[Signed, Callable[..., None], tuple[Any, ...]] | None
        ] = queue.SimpleQueue()
        self._hand_out_thread = threading.Thread(
            target=self._hand_out, name="slack-hand-out", daemon=True
        )
        self._hand_out_thread.start()

    def close(self) -> None:
        """Hands out what is queued, then waits for the forms and the work to finish."""
        self._work.put(None)
        self._hand_out_thread.join()
        self.forms.shutdown(wait=True)
        self.pool.shutdown(wait=True)

    def submit(self, context: BoltContext, fn: Callable[..., None], *args: Any) -> None:
        self._work.put((signed(context), fn, args))

    def later(self, fn: Callable[..., None], *args: Any) -> None:
        """Queued like `submit`, with no replay check (None: nothing to check)."""
        self._work.put(((None, None), fn, args))

    def form(self, context: BoltContext, fn: Callable[..., None], *args: Any) -> None:
        """Work that opens a form: at once, on its own pool (the trigger_id lasts 3 s)."""
        self.forms.submit(self.guard, signed(context), fn, *args)

    def on_click(self, work: Callable[..., None], *lead: Any) -> Listener:
        """A block_actions listener: ack at once, then `work(*lead, action, actor, body)`
        after the answers in flight."""

        def listener(
            ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext
        ) -> None:
            ack()  # at once; the click is worked on after Slack has its answer
            actor = context.get("actor")
            if isinstance(actor, Actor):
                self.submit(context, work, *lead, action, actor, body)
            else:
                self.submit(context, self.answer, body, NO_IDENTITY)

        return listener

    def on_form_click(self, work: Callable[..., None], *lead: Any) -> Listener:
        """As `on_click`, for a click that opens a form: the work runs at once."""

        def listener(
            ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext
        ) -> None:
            ack()
            actor = context.get("actor")
            if isinstance(actor, Actor):
                self.form(context, work, *lead, action, actor, body)
            else:
                self.submit(context, self.answer, body, NO_IDENTITY)

        return listener

    def _hand_out(self) -> None:
        """One thread holds the work back while answers are in flight (acks first), then
        hands everything queued to the pool: a burst wakes one waiter, not every worker."""
        while True:
            first = self._work.get()
            self.acks_first.wait()
            batch = [first]
            while not self._work.empty():
                batch.append(self._work.get_nowait())
            for item in batch:
                if item is None:  # close(): everything before it has been handed out
                    return
                self.pool.submit(self.guard, item[0], item[1], *item[2])

    def guard(self, sig: Signed, fn: Callable[..., None], *args: Any) -> None:
        body = args[-1] if args and isinstance(args[-1], dict) else {}
        try:
            refusal = self.replays.refusal(*sig)  # the same signed bytes again, or stale
            if refusal is not None:
                self.answer(body, refusal)
                return
        except Unavailable:
            log.warning("cannot check for a replayed request: the database is unavailable")
            self.answer(body, UNAVAILABLE)
            return
        try:
            fn(*args)
        except GroupsUnknown as exc:
            log.warning("%s", exc)
            body = args[-1] if args and isinstance(args[-1], dict) else {}
            self.answer(body, GROUPS_UNKNOWN)
        except GroupsBroken as exc:
            log.warning("%s", exc)
            self.answer(body, escape(str(exc)))
        except Exception as exc:
            log.exception("slack work %s failed", fn.__name__)
            self.answer(
                body,
                f"Something went wrong while handling that ({type(exc).__name__}); "
                "`/cutover status` shows where the run stands.",
            )
