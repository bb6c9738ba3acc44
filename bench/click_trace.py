#!/usr/bin/env python
"""Where the time of one Continue click goes, by thread and by phase of the work (issue 19).

    python bench/click_trace.py [--clicks 60] [--sqlite] [--per-click 3]

The bot runs in this process, served over HTTP as `cutover serve` serves it (as
bench/slack_bench.py's server child does: same settings, pacing interval 0), against the
Slack stand-in in a process of its own (bench/slack_bench.py's). Each click is sent as in
the benchmark's (b); the time runs from just before the click is sent to the stand-in's
arrival of the next checkpoint's chat.postMessage (one monotonic clock for both processes).

Spans are recorded by wrapping the functions on the path (the HTTP request, the hand-out,
the replay guard, the decision, the next phase's claim, checks and gate, the post and its
pacing, the outbox's drawings), every SQL statement and COMMIT at the psycopg level (so the
transactions that bypass the ORM are seen too), and the pool's checkout (its BEGIN). The
report gives, per span, the median start and end after the click was sent, its median
length, and the count per click; then a few clicks' timelines in full.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import slack_bench as sb  # noqa: E402


@dataclass
class Span:
    thread: str
    name: str
    t0: float
    t1: float
    cpu: float  # this thread's CPU time in the span (time.thread_time)


SPANS: list[Span] = []
_LOCK = threading.Lock()


def note(name: str, t0: float, t1: float, cpu: float = 0.0) -> None:
    with _LOCK:
        SPANS.append(Span(threading.current_thread().name, name, t0, t1, cpu))


def wrap(owner: Any, attr: str, name: str | Callable[..., str] | None = None) -> None:
    """Records a span around every call of `owner.attr` (a class's method or a module's
    function)."""
    fn = getattr(owner, attr)
    label = name or attr

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        c0, t0 = time.thread_time(), time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            t1, c1 = time.monotonic(), time.thread_time()
            note(label(*args, **kwargs) if callable(label) else label, t0, t1, c1 - c0)

    wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
    wrapped.__name__ = getattr(fn, "__name__", attr)
    setattr(owner, attr, wrapped)


FIRST_WORDS = re.compile(r"^\s*(\w+)(?:\s+\w+)?(?:.*?\b(?:FROM|INTO|UPDATE)\s+(\w+))?", re.S | re.I)


def sql_label(sql: Any) -> str:
    text = sql.decode() if isinstance(sql, bytes) else str(sql)
    m = FIRST_WORDS.match(text)
    if not m:
        return "sql ?"
    verb = m.group(1).upper()
    table = m.group(2) or ""
    if verb == "UPDATE":
        table = text.split()[1]
    return f"sql {verb} {table}".strip()


PROFILES: list[Any] = []
_PROFILING = threading.local()


def profiled(owner: Any, attr: str) -> None:
    """cProfile around every call of `owner.attr`, in the thread that calls it (cProfile
    sees one thread); the profiles are merged in the report."""
    import cProfile

    fn = getattr(owner, attr)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if getattr(_PROFILING, "on", False) or not PROFILE_ON.is_set():
            return fn(*args, **kwargs)
        prof = cProfile.Profile(time.thread_time)
        _PROFILING.on = True
        prof.enable()
        try:
            return fn(*args, **kwargs)
        finally:
            prof.disable()
            _PROFILING.on = False
            with _LOCK:
                PROFILES.append(prof)

    setattr(owner, attr, wrapped)


PROFILE_ON = threading.Event()


def instrument() -> None:
    """Wraps the click's path. Done before the service is built."""
    import psycopg

    from bot.engine.contexts import Contexts
    from bot.engine.gates import Gates, Interventions
    from bot.engine.phase_claim import PhaseClaim
    from bot.engine.runs import Phases
    from bot.slack import dispatch, server
    from bot.slack.middleware import ReplayGuard
    from bot.slack.outbox import Outbox, Pacer
    from bot.slack.present.checkpoints import CheckpointMessages
    from bot.slack.surface import SlackSurface
    from bot.slack.transport import SlackTransport
    from bot.store.rate_slots import SharedSlots
    from bot.store.reads import Reads
    from bot.store.unit import Store

    wrap(server._Handler, "_events", "http: request + ack")
    wrap(dispatch.AcksFirst, "wait", "hand-out: acks first wait")
    wrap(dispatch.Dispatcher, "guard", "click: guard (all the click's work)")
    wrap(ReplayGuard, "refusal", "click: replay guard")
    wrap(Gates, "decide", "click: engine.decide")
    wrap(Gates, "_decide", "click: decision tx")
    wrap(PhaseClaim, "claim", "phase: claim tx")
    wrap(PhaseClaim, "claim_in", "click: next phase claimed (in the decision tx)")
    wrap(Contexts, "context", "phase: context")
    import bot.engine.runs as runs_mod

    wrap(runs_mod, "run_checks", "phase: run_checks")
    wrap(Phases, "open_gate", "phase: open_gate tx")
    wrap(Interventions, "set_surface_ref", "post: set_surface_ref tx")
    wrap(CheckpointMessages, "gate_changed", "surface: gate_changed")
    wrap(SlackSurface, "run_changed", "surface: run_changed")
    wrap(Reads, "gate_view", "surface: gate_view read")
    wrap(CheckpointMessages, "_post_gate", "post: _post_gate (locked)")
    wrap(Pacer, "wait", "post: pacer.wait")
    wrap(SharedSlots, "reserve", "post: rate slot tx")
    wrap(SlackTransport, "call", lambda self, method, **kw: f"web: {method}")
    # The next phase's CPU from its start to the post's send (the critical path's second half).
    _adv = threading.local()
    advance = Phases.advance

    def advance_marked(self: Any, run_id: int, *args: Any, **kwargs: Any) -> None:
        _adv.cpu, _adv.t0 = time.thread_time(), time.monotonic()
        advance(self, run_id, *args, **kwargs)

    Phases.advance = advance_marked  # type: ignore[method-assign]
    call = SlackTransport.call

    def call_marked(self: Any, method: str, **kwargs: Any) -> Any:
        if method == "chat_postMessage" and hasattr(_adv, "cpu"):
            note(
                "cpu: phase start → post sent",
                _adv.t0,
                time.monotonic(),
                time.thread_time() - _adv.cpu,
            )
        return call(self, method, **kwargs)

    SlackTransport.call = call_marked  # type: ignore[method-assign]
    wrap(Outbox, "_send", "outbox: draw + send")
    wrap(Store, "tx", "store.tx (enter)")
    del Store

    # Every statement and commit at the driver, whichever door it came through.
    orig_execute = psycopg.Cursor.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        c0, t0 = time.thread_time(), time.monotonic()
        try:
            return orig_execute(self, query, *args, **kwargs)
        finally:
            t1, c1 = time.monotonic(), time.thread_time()
            q = query.as_string(self) if hasattr(query, "as_string") else query
            note(sql_label(q), t0, t1, c1 - c0)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    orig_commit = psycopg.Connection.commit

    def commit(self: Any) -> None:
        c0, t0 = time.thread_time(), time.monotonic()
        try:
            orig_commit(self)
        finally:
            t1, c1 = time.monotonic(), time.thread_time()
            note("sql COMMIT", t0, t1, c1 - c0)

    psycopg.Connection.commit = commit  # type: ignore[method-assign]


def pool_hooks(engine: Any) -> None:
    from sqlalchemy import event

    starts: dict[int, tuple[float, float]] = {}

    def before(*_a: Any) -> None:
        starts[threading.get_ident()] = (time.monotonic(), time.thread_time())

    def after(*_a: Any) -> None:
        t0 = starts.pop(threading.get_ident(), None)
        if t0 is not None:
            note("sql checkout (BEGIN)", t0[0], time.monotonic(), time.thread_time() - t0[1])

    event.listen(engine.pool, "checkout", before, insert=True)
    event.listen(engine.pool, "checkout", after)


def build_bot(api_url: str, db_url: str, runbook: Path) -> Any:
    from bot.app import build_service
    from bot.settings import Settings
    from bot.slack.server import make_http_server, settle_memory

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        SLACK_BOT_TOKEN=sb.TOKEN,
        SLACK_SIGNING_SECRET=sb.SECRET,
        SLACK_API_URL=api_url,
        database_url=db_url,
        runbook=runbook,
    )
    service = build_service(settings)
    service.surface.pacer.interval = 0.0  # as the benchmark's bot
    pool_hooks(service.engine.db.engine)
    settle_memory()
    server = make_http_server(service.app, "127.0.0.1", 0, service.slack.acks_first)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return service, server


def report(clicks: list[tuple[float, float, float]], show: int) -> None:
    """clicks: (sent, arrived, checks_ms/1000)."""
    # name → (start, end, length, CPU), of its first span in each click
    per: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    count: dict[str, int] = defaultdict(int)
    threads: dict[str, set[str]] = defaultdict(set)
    totals = []
    for sent, arrived, _checks in clicks:
        totals.append((arrived - sent) * 1000)
        seen: set[str] = set()
        for s in SPANS:
            if s.t0 < sent - 0.002 or s.t0 > arrived:
                continue
            key = s.name
            count[key] += 1
            threads[key].add(re.sub(r"[-_]\d+(_\d+)?$|^Thread-\d+ ", "", s.thread))
            if key not in seen:
                seen.add(key)
                per[key].append(
                    ((s.t0 - sent) * 1000, (s.t1 - sent) * 1000, (s.t1 - s.t0) * 1000, s.cpu * 1000)
                )
    n = len(clicks)
    print(f"\n{n} clicks: click → checkpoint arrival p50 {statistics.median(totals):.1f} ms")
    print(
        f"{'span (first in each click)':44} {'start':>7} {'end':>7} {'len':>6} {'cpu':>6} "
        f"{'n/click':>7}  threads"
    )
    for key, rows in sorted(per.items(), key=lambda kv: statistics.median(r[0] for r in kv[1])):
        print(
            f"{key[:44]:44} {statistics.median(r[0] for r in rows):7.1f} "
            f"{statistics.median(r[1] for r in rows):7.1f} "
            f"{statistics.median(r[2] for r in rows):6.2f} "
            f"{statistics.median(r[3] for r in rows):6.2f} {count[key] / n:7.1f}  "
            f"{','.join(sorted(threads[key]))}"
        )
    # The checks' thread work beyond their own time as the checkpoint shows it (net subtracts that)
    gaps = []
    for sent, arrived, checks in clicks:
        spans = [s for s in SPANS if s.name == "phase: run_checks" and sent <= s.t0 <= arrived]
        if spans:
            gaps.append((spans[0].t1 - spans[0].t0 - checks) * 1000)
    if gaps:
        print(f"\nrun_checks beyond the checks' shown time: p50 {statistics.median(gaps):.2f} ms")
    # Database round trips per click in the window, by thread
    trips: dict[tuple[str, str], int] = defaultdict(int)
    waited: dict[tuple[str, str], float] = defaultdict(float)
    for sent, arrived, _ in clicks:
        for s in SPANS:
            if sent - 0.002 <= s.t0 <= arrived and s.name.startswith("sql"):
                kind = (
                    "COMMIT"
                    if s.name == "sql COMMIT"
                    else ("BEGIN" if "checkout" in s.name else "statement")
                )
                where = (re.sub(r"[-_]\d+(_\d+)?$", "", s.thread), kind)
                trips[where] += 1
                waited[where] += (s.t1 - s.t0) * 1000
    print("\nround trips per click between the click and the post's arrival (n, wall ms):")
    for (thread, kind), k in sorted(trips.items()):
        print(f"  {thread:20} {kind:10} {k / n:5.1f} {waited[(thread, kind)] / n:7.2f}")
    for sent, arrived, _ in clicks[len(clicks) - show :]:
        print(f"\n--- click at {sent:.3f}: {1000 * (arrived - sent):.1f} ms")
        for s in sorted(SPANS, key=lambda s: s.t0):
            if sent - 0.002 <= s.t0 <= arrived + 0.02:
                print(
                    f"  {1000 * (s.t0 - sent):7.2f} → {1000 * (s.t1 - sent):7.2f} "
                    f"({1000 * (s.t1 - s.t0):5.2f} cpu {1000 * s.cpu:5.2f})  "
                    f"{s.thread[:22]:22} {s.name}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=60)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--profile", help="cProfile the click's and the phase's threads to FILE")
    parser.add_argument("--show", type=int, default=2, help="clicks whose timeline is printed")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    slack = sb.Slack()
    try:
        with tempfile.TemporaryDirectory() as tmp, sb.pg_database() as pg:
            folder = Path(tmp)
            runbook = sb.write_runbook(folder, args.clicks + 8)
            db_url = f"sqlite:///{folder / 'bot.db'}" if args.sqlite else pg
            if db_url is None:
                raise SystemExit("no PostgreSQL")
            if args.profile:
                from bot.engine.runs import Phases
                from bot.slack import dispatch

                profiled(dispatch.Dispatcher, "guard")
                profiled(Phases, "advance")
            else:
                instrument()
            os.chdir(folder)
            service, server = build_bot(slack.api_url, db_url, runbook)
            bot = sb.Server("bot", None, server.server_port)  # type: ignore[arg-type]
            gate = sb.start_run(slack, bot)
            clicks: list[tuple[float, float, float]] = []
            warm = 5
            for i in range(args.clicks + warm):
                if i == warm:
                    SPANS.clear()
                    PROFILE_ON.set()
                posted = len(slack.checkpoints())
                body = slack.click(gate, ["U1", "U2", "U3"][i % 3])
                sent = time.monotonic()
                sb.post(bot.port, body)
                call = slack.next_checkpoint(posted)  # (no polling while it is timed)
                if i >= warm:
                    clicks.append((sent, call.at, call.checks_ms / 1000))
                gate = slack.message(call)
                slack.quiet(sb.REST)
            server.shutdown()
            service.close()
            if args.profile:
                import pstats

                stats = pstats.Stats(PROFILES[0])
                for prof in PROFILES[1:]:
                    stats.add(prof)
                stats.dump_stats(args.profile)
                stats.sort_stats("cumulative").print_stats(60)
            else:
                report(clicks, args.show)
    finally:
        slack.stop()


if __name__ == "__main__":
    main()
