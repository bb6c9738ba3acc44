#!/usr/bin/env python3
"""cutover-bot benchmarks: figures and ratios, all measured in this one run.

    python bench/bench.py            # full run (a few minutes)
    python bench/bench.py --quick    # fewer repetitions (under a minute)
    python bench/bench.py --only phase,audit

Sections (goals in brackets):
  phase     a phase of 8 checks of ~300 ms each against local HTTP servers: wall time
            vs the slowest check [<= 1.2x], and vs running them one after another
  audit     appends/s on PostgreSQL and SQLite, 1 and 4 writers [>= 2,000/s on PG],
            against the ORM append it replaced, in the same run
  signed    signed appends/s on PostgreSQL vs the same statements (and signing) on bare
            psycopg, interleaved in chunks: an event recorded alone [>= 0.8x], and an
            append inside an ORM session (shown, no goal)
  verify    `audit verify` of 100,000 events [< 3 s], on PostgreSQL and SQLite
  decision  click -> next checkpoint posted, bot overhead excluding the checks [p50 < 200 ms]
  serve     `cutover serve`: start-up time and idle resident memory [< 150 MB]
  ack       Slack ack latency vs a bare Bolt app: not measured here (the Slack
            surface's own benchmark); printed as n/a
  runpage   the run page (bot/runpage) of a run of 1,000 audit rows: read, verify and
            render [< 200 ms], and its size

Needs the PostgreSQL server of the tests (CUTOVER_TEST_PG_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres); PG figures are skipped
without it. Nothing here asserts: it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import sqlalchemy  # noqa: E402
import yaml  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from bot import audit  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.standin import NostrMaxiStandin  # noqa: E402
from bot.store.db import Database  # noqa: E402
from bot.store.models import AuditEvent, AuditHead, StepRun  # noqa: E402
from bot.surface import Actor  # noqa: E402
from phases.checks.base import StepContext  # noqa: E402
from phases.runbook import load_runbook  # noqa: E402
from phases.runner import run_checks, run_step  # noqa: E402
from standins.pg import PG_URL, postgres_reachable, throwaway_pg_database  # noqa: E402

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")


# --------------------------------------------------------------------------- output


@dataclass
class Figure:
    section: str
    name: str
    value: str
    goal: str = ""
    ok: bool | None = None  # None: no goal


FIGURES: list[Figure] = []


def report(section: str, name: str, value: str, goal: str = "", ok: bool | None = None) -> None:
    FIGURES.append(Figure(section, name, value, goal, ok))
    mark = {True: "ok", False: "MISSED", None: ""}[ok]
    goal_text = f"  [{goal}] {mark}" if goal else ""
    print(f"  {name:<58} {value:>16}{goal_text}", flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def environment() -> None:
    print("Environment")
    print(f"  {platform.platform()}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    print(
        f"  Python {platform.python_version()}; SQLAlchemy {sqlalchemy.__version__}; "
        f"psycopg {psycopg.__version__}; SQLite {sqlite3.sqlite_version}"
    )
    if postgres_reachable():
        with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql")) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), current_setting('synchronous_commit'),"
                " current_setting('fsync')"
            ).fetchone()
        assert row is not None
        print(f"  PostgreSQL {row[0]} (synchronous_commit={row[1]}, fsync={row[2]})")
    else:
        print("  PostgreSQL: not reachable; its figures are skipped")
    print()


@contextlib.contextmanager
def databases(tmp: Path) -> Iterator[list[tuple[str, Database]]]:
    """A fresh SQLite file and, when the server answers, a throwaway PostgreSQL database."""
    with contextlib.ExitStack() as stack:
        out = []
        sqlite_db = Database(f"sqlite:///{tmp / f'bench-{time.monotonic_ns()}.db'}")
        sqlite_db.create_all()
        stack.callback(sqlite_db.dispose)
        out.append(("SQLite", sqlite_db))
        if postgres_reachable():
            url = stack.enter_context(throwaway_pg_database("cutover_bench"))
            pg = Database(url)
            pg.create_all()
            stack.callback(pg.dispose)
            out.append(("PostgreSQL", pg))
        yield out


def write_runbook(tmp: Path, phases: list[dict[str, Any]], name: str) -> Path:
    data = {
        "name": f"Bench {name}",
        "phases": phases,
        "rollback": [],
        "environments": {
            "bench": {
                "domain": "bench.test",
                "base_url": "http://127.0.0.1:9",
                "approvers": [ALICE.id, BOB.id],
            },
        },
    }
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- phase


def bench_phase(tmp: Path, quick: bool) -> None:
    print("Phase of 8 checks, each ~300 ms against its own local HTTP server")
    servers = [NostrMaxiStandin() for _ in range(8)]
    for s in servers:
        s.delay_ms = 300
        s.start()
    try:
        checks = [
            {
                "id": f"c{i}",
                "name": f"check {i}",
                "kind": "http",
                "params": {"url": f"{s.url}/health", "expect_json": {"status": "ok"}},
                "timeout": 10,
            }
            for i, s in enumerate(servers)
        ]
        runbook = load_runbook(
            write_runbook(
                tmp,
                [
                    {
                        "id": "p",
                        "name": "P",
                        "estimate_minutes": 1,
                        "checkpoint": "x",
                        "checks": checks,
                    }
                ],
                "phase",
            )
        )
        steps = runbook.phases[0].checks
        values = runbook.values_for("bench")
        ctx = StepContext()
        reps = 3 if quick else 7
        slowest, sequential, parallel, engine_phase = [], [], [], []
        for _ in range(reps):
            alone = []
            start = time.perf_counter()
            for step in steps:  # one after another: also each check's time alone
                t0 = time.perf_counter()
                run_step(step, values, ctx)
                alone.append(time.perf_counter() - t0)
            sequential.append(time.perf_counter() - start)
            slowest.append(max(alone))
            t0 = time.perf_counter()
            outcomes = run_checks(steps, values, ctx)
            parallel.append(time.perf_counter() - t0)
            assert all(o.result.status == "pass" for o in outcomes), outcomes
        with databases(tmp) as dbs:
            sqlite_db = dbs[0][1]
            engine = Engine(sqlite_db, runbook, background=False)
            for _ in range(reps):
                t0 = time.perf_counter()
                run = engine.start_run("bench", ALICE)  # returns once the gate is open
                engine_phase.append(time.perf_counter() - t0)
                engine.abort("bench", BOB, "bench")
            engine.shutdown()
        slow, seq = statistics.median(slowest), statistics.median(sequential)
        par, eng = statistics.median(parallel), statistics.median(engine_phase)
        report("phase", "slowest single check (median)", ms(slow))
        report("phase", "8 checks one after another", ms(seq))
        report("phase", "8 checks as a phase (run_checks)", ms(par))
        report("phase", "whole phase in the engine: start -> gate open (SQLite)", ms(eng))
        report("phase", "phase / slowest check", f"{par / slow:.2f}x", "<= 1.2x", par / slow <= 1.2)
        report(
            "phase",
            "engine phase / slowest check",
            f"{eng / slow:.2f}x",
            "<= 1.2x",
            eng / slow <= 1.2,
        )
        report("phase", "one after another / phase (speed-up)", f"{seq / par:.1f}x")
        del run
    finally:
        for s in servers:
            s.stop()
    print()


# --------------------------------------------------------------------------- audit


def orm_append(session: Session, kind: str, *, actor: str, data: dict[str, Any]) -> None:
    """The ORM append that audit.append replaced (kept here to measure the change)."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    seq, stamp, payload = head.seq + 1, audit.now_iso(), audit.canonical(data)
    digest = audit.event_hash(head.hash, seq, stamp, None, actor, kind, payload)
    session.add(
        AuditEvent(
            seq=seq,
            at=stamp,
            run_id=None,
            actor=actor,
            kind=kind,
            data=payload,
            prev_hash=head.hash,
            hash=digest,
        )
    )
    head.seq, head.hash = seq, digest
    session.add(head)
    session.flush()


def appends_per_second(db: Database, n: int, writers: int, fn: Callable[..., Any]) -> float:
    def write(count: int, who: int) -> None:
        for i in range(count):
            with db.session() as s:  # one transaction per appended event, as in the engine
                fn(
                    s,
                    "bench.event",
                    actor=f"bench:{who}",
                    data={"i": i, "evidence": "GET /health -> 200 in 12 ms"},
                )

    threads = [threading.Thread(target=write, args=(n // writers, w)) for w in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (n // writers * writers) / (time.perf_counter() - t0)


def raw_appends_per_second(db: Database, n: int) -> float:
    """The statements of audit.append on a bare psycopg connection: no pool, no ORM session,
    no ping. What the database and the network allow; the rest is the bot's Python."""
    url = sqlalchemy.engine.make_url(db.url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(False)) as conn:
        t0 = time.perf_counter()
        for i in range(n):
            with conn.transaction():
                seq, prev = conn.execute(
                    "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
                ).fetchone() or (0, "")
                stamp, payload = audit.now_iso(), audit.canonical({"i": i})
                digest = audit.event_hash(prev, seq + 1, stamp, None, "raw", "bench", payload)
                conn.execute(
                    "WITH tip AS (UPDATE audit_head SET seq = %(seq)s, hash = %(hash)s "
                    "WHERE id = 1) INSERT INTO audit_event (seq, at, run_id, actor, kind, data, "
                    "prev_hash, hash) VALUES (%(seq)s, %(at)s, NULL, 'raw', 'bench', %(data)s, "
                    "%(prev)s, %(hash)s)",
                    {"seq": seq + 1, "hash": digest, "at": stamp, "data": payload, "prev": prev},
                )
        return n / (time.perf_counter() - t0)


def bench_audit(tmp: Path, quick: bool) -> None:
    print("Audit appends (each its own committed transaction)")
    n = 1500 if quick else 6000
    with databases(tmp) as dbs:
        for label, db in dbs:
            appends_per_second(db, 200, 1, audit.append)  # warm the pool and the statements
            old = appends_per_second(db, n // 2, 1, orm_append)
            one = appends_per_second(db, n, 1, audit.append)
            four = appends_per_second(db, n, 4, audit.append)
            goal = label == "PostgreSQL"
            report("audit", f"{label}: ORM append (before), 1 writer", f"{old:,.0f}/s")
            report(
                "audit",
                f"{label}: audit.append, 1 writer",
                f"{one:,.0f}/s",
                ">= 2,000/s" if goal else "",
                one >= 2000 if goal else None,
            )
            report("audit", f"{label}: audit.append, 4 writers", f"{four:,.0f}/s")
            report("audit", f"{label}: after / before", f"{one / old:.2f}x")
            if not db.is_sqlite:
                floor = raw_appends_per_second(db, n)
                report(
                    "audit", f"{label}: same statements, psycopg alone (floor)", f"{floor:,.0f}/s"
                )
            problems = audit.verify(db)
            assert problems == [], problems[:3]
    print()


class SignedFloor:
    """The statements of a signed audit.append (row, head and signature in one statement,
    the same hash and signature computed) on one bare psycopg connection: the floor."""

    def __init__(self, db: Database, signer: audit.Signer) -> None:
        url = sqlalchemy.engine.make_url(db.url).set(drivername="postgresql")
        self.conn = psycopg.connect(url.render_as_string(False))
        self.signer = signer

    def append(self, i: int) -> None:
        conn, signer = self.conn, self.signer
        with conn.transaction():
            seq, prev = conn.execute(
                "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
            ).fetchone() or (0, "")
            stamp = audit.now_iso()
            payload = audit.canonical({"i": i, "evidence": "GET /health -> 200 in 12 ms"})
            digest = audit.event_hash(prev, seq + 1, stamp, None, "raw", "bench", payload)
            conn.execute(
                "WITH tip AS (UPDATE audit_head SET seq = %(seq)s, hash = %(hash)s "
                "WHERE id = 1), sig AS (INSERT INTO audit_signature (seq, key_id, signature) "
                "VALUES (%(seq)s, %(key_id)s, %(sig)s)) "
                "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, "
                "prev_hash, hash) VALUES (%(seq)s, %(at)s, NULL, 'raw', 'bench', %(data)s, "
                "%(prev)s, %(hash)s)",
                {
                    "seq": seq + 1,
                    "hash": digest,
                    "at": stamp,
                    "data": payload,
                    "prev": prev,
                    "key_id": signer.key_id,
                    "sig": signer.sign(digest),
                },
            )

    def close(self) -> None:
        self.conn.close()


def bench_signed(tmp: Path, quick: bool) -> None:
    """Signed appends on PostgreSQL against the same statements on bare psycopg, interleaved
    in chunks of 50 so a neighbour's load falls on all alike.

    Two ways the bot appends: `audit.record`, an event alone in its transaction (a note, a
    tick, a readiness check), on a pooled DBAPI cursor; and `audit.append` inside an ORM
    session, as a state change's own row is written. The goal is on the first: the second
    also pays the session's begin, commit and close, which carry the state change too."""
    print("Signed audit appends on PostgreSQL (Ed25519 per row; each its own transaction)")
    if not postgres_reachable():
        print("  PostgreSQL not reachable: skipped\n")
        return
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = audit.Signer(Ed25519PrivateKey.generate())
    chunks, size = (20, 50) if quick else (80, 50)
    with databases(tmp) as dbs:
        db = dict(dbs)["PostgreSQL"]
        db.audit_signer = signer
        floor = SignedFloor(db, signer)
        data = {"i": 0, "evidence": "GET /health -> 200 in 12 ms"}

        def recorded(i: int) -> None:  # an event alone: its own transaction, no session
            audit.record(db, "bench.event", actor="bench", data={**data, "i": i})

        def in_session(i: int) -> None:  # one ORM session per appended event
            with db.session() as s:
                audit.append(s, "bench.event", actor="bench", data={**data, "i": i})

        paths = {"record": recorded, "session": in_session, "floor": floor.append}
        for i in range(200):  # warm the pool, the statement caches and prepared statements
            for fn in paths.values():
                fn(i)
        spent = dict.fromkeys(paths, 0.0)
        for c in range(chunks):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                for i in range(size):
                    fn(c * size + i)
                spent[name] += time.perf_counter() - t0
        floor.close()
        n = chunks * size
        rate = {name: n / t for name, t in spent.items()}
        report("signed", "audit.record signed (event alone), 1 writer", f"{rate['record']:,.0f}/s")
        report("signed", "audit.append signed in a session, 1 writer", f"{rate['session']:,.0f}/s")
        report(
            "signed", "same statements + signing, psycopg alone (floor)", f"{rate['floor']:,.0f}/s"
        )
        ratio = rate["record"] / rate["floor"]
        report("signed", "audit.record / floor", f"{ratio:.2f}x", ">= 0.8x", ratio >= 0.8)
        report(
            "signed", "audit.append in a session / floor", f"{rate['session'] / rate['floor']:.2f}x"
        )
        t0 = time.perf_counter()
        keys = {signer.key_id: signer._private.public_key()}
        problems = audit.verify_signatures(db, keys)
        report(
            "signed",
            f"verify_signatures of {audit.head(db)[0]:,} rows",
            ms(time.perf_counter() - t0),
        )
        assert problems == [], problems[:3]
    print()


# --------------------------------------------------------------------------- verify


def fill_chain(db: Database, n: int) -> float:
    """n events with a correct chain, written in bulk; returns the seconds it took."""
    t0 = time.perf_counter()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    prev, rows = audit.GENESIS, []
    for seq in range(1, n + 1):
        at = audit.now_iso(start + timedelta(milliseconds=seq))
        data = audit.canonical(
            {
                "section": "checks",
                "step": f"s{seq % 8}",
                "status": "pass",
                "evidence": f"GET /health -> 200 in {seq % 97} ms",
            }
        )
        run_id = seq // 50 + 1
        digest = audit.event_hash(prev, seq, at, run_id, "system", "step.result", data)
        rows.append((seq, at, run_id, "system", "step.result", data, prev, digest))
        prev = digest
    if db.is_sqlite:
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("BEGIN")
            cur.executemany(
                "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, "
                "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            cur.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (n, prev))
            cur.execute("COMMIT")
        finally:
            raw.close()
    else:
        url = sqlalchemy.engine.make_url(db.url).set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(False)) as conn:
            with conn.cursor().copy(
                "COPY audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (n, prev))
    return time.perf_counter() - t0


def bench_verify(tmp: Path, quick: bool) -> None:
    n = 100_000
    print(f"Audit verify of {n:,} events")
    with databases(tmp) as dbs:
        for label, db in dbs:
            took = fill_chain(db, n)
            report("verify", f"{label}: writing {n:,} chained events in bulk", f"{took:.1f} s")
            times = []
            for _ in range(1 if quick else 3):
                t0 = time.perf_counter()
                problems = audit.verify(db)
                times.append(time.perf_counter() - t0)
                assert problems == [], problems[:3]
            best = min(times)
            report(
                "verify", f"{label}: audit verify, {n:,} events", f"{best:.2f} s", "< 3 s", best < 3
            )
            report("verify", f"{label}: events verified per second", f"{n / best:,.0f}/s")
    print()


# --------------------------------------------------------------------------- decision


class TimingSurface:
    """Notes when each checkpoint is posted."""

    def __init__(self) -> None:
        self.posted: dict[int, float] = {}
        self.cond = threading.Condition()

    def run_changed(self, run_id: int) -> None:
        pass

    def gate_changed(self, gate_id: int) -> None:
        pass

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        pass

    def checkpoint(self, gate_id: int, opened: object = None) -> None:
        with self.cond:
            self.posted[gate_id] = time.perf_counter()
            self.cond.notify_all()

    def wait_for_new(self, known: set[int], timeout: float = 30) -> tuple[int, float]:
        with self.cond:
            ok = self.cond.wait_for(lambda: set(self.posted) - known, timeout)
            assert ok, "no checkpoint posted"
            gate = max(set(self.posted) - known)
            return gate, self.posted[gate]


def bench_decision(tmp: Path, quick: bool) -> None:
    print("Click -> next checkpoint posted (engine on its pool, as under Slack)")
    phases = 21
    runbook = load_runbook(
        write_runbook(
            tmp,
            [
                {
                    "id": f"p{i}",
                    "name": f"P{i}",
                    "estimate_minutes": 1,
                    "checkpoint": "x",
                    "checks": [
                        {"id": "t", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
                    ],
                }
                for i in range(phases)
            ],
            "decision",
        )
    )
    clicks = 20 if quick else 100
    with databases(tmp) as dbs:
        for label, db in dbs:
            surface = TimingSurface()
            engine = Engine(db, runbook, surface=surface, background=True)
            totals, overheads = [], []
            while len(totals) < clicks:
                run = engine.start_run("bench", ALICE)
                gate, _ = surface.wait_for_new(set())
                for _ in range(phases - 1):
                    if len(totals) >= clicks:
                        break
                    known = set(surface.posted)
                    t0 = time.perf_counter()
                    result = engine.decide(gate, BOB, "continue")
                    assert result.outcome == "approved", result
                    gate, posted = surface.wait_for_new(known)
                    total = posted - t0
                    pr_id = _phase_run_of(db, gate)
                    with db.session() as s:
                        check_ms = sum(
                            r.duration_ms
                            for r in s.exec(select(StepRun).where(StepRun.phase_run_id == pr_id))
                        )
                    totals.append(total)
                    overheads.append(max(0.0, total - check_ms / 1000))
                engine.abort("bench", BOB, "bench done")
                _wait_finished(db, run.id or 0)
                surface.posted.clear()
            engine.shutdown()
            p50, p99 = pct(overheads, 50), pct(overheads, 99)
            report(
                "decision",
                f"{label}: click -> checkpoint, p50 / p99",
                f"{ms(pct(totals, 50))} / {ms(pct(totals, 99))}",
            )
            report(
                "decision",
                f"{label}: bot overhead (minus the check), p50",
                ms(p50),
                "< 200 ms",
                p50 < 0.2,
            )
            report("decision", f"{label}: bot overhead (minus the check), p99", ms(p99))
    print()


def _phase_run_of(db: Database, gate_id: int) -> int:
    from bot.store.models import Gate

    with db.session() as s:
        gate = s.get(Gate, gate_id)
        assert gate is not None
        return gate.phase_run_id


def _wait_finished(db: Database, run_id: int) -> None:
    from bot.store.models import Run

    for _ in range(600):
        with db.session() as s:
            run = s.get(Run, run_id)
            if run is not None and run.active_env is None:
                return
        time.sleep(0.01)
    raise AssertionError(f"run #{run_id} did not finish")


# --------------------------------------------------------------------------- serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_serve(tmp: Path, quick: bool) -> None:
    print("cutover serve (HTTP mode, against a local Slack Web API stand-in)")
    try:
        from bot.slack import server  # noqa: F401
        from standins.slack import SlackStandIn
    except ImportError as exc:
        report("serve", "start-up time / idle RSS", f"n/a ({exc.name} missing)")
        print()
        return
    token = "xoxb-bench-" + hashlib.sha256(b"bench").hexdigest()[:24]
    standin = SlackStandIn(token).start()
    port = _free_port()
    rb = write_runbook(
        tmp,
        [
            {
                "id": "p",
                "name": "P",
                "estimate_minutes": 1,
                "checkpoint": "x",
                "checks": [
                    {"id": "t", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
                ],
            }
        ],
        "serve",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CUTOVER_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=token,
        SLACK_SIGNING_SECRET=hashlib.sha256(b"signing").hexdigest(),
        SLACK_API_URL=standin.api_url,
        CUTOVER_HTTP_PORT=str(port),
        CUTOVER_HTTP_HOST="127.0.0.1",
        CUTOVER_DATABASE_URL=f"sqlite:///{tmp / 'serve.db'}",
        CUTOVER_RUNBOOK=str(rb),
        CUTOVER_LOG_LEVEL="WARNING",
        CUTOVER_METRICS_PORT="0",  # /metrics listens apart; not measured here
        # a root bot runs its steps as an unprivileged user (docs/hardening.md)
        **({"CUTOVER_STEP_USER": "nobody"} if os.geteuid() == 0 else {}),
    )
    starts, rss = [], []
    try:
        for _ in range(1 if quick else 3):
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve"],
                cwd=tmp,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                while True:
                    if proc.poll() is not None:
                        err = proc.stderr.read().decode() if proc.stderr else ""
                        raise RuntimeError(f"cutover serve exited: {err[-500:]}")
                    with contextlib.suppress(httpx.HTTPError):
                        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                        if health.status_code == 200:
                            break
                    time.sleep(0.01)
                starts.append(time.perf_counter() - t0)
                time.sleep(3)  # idle
                rss.append(_rss_mb(proc.pid))
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    except RuntimeError as exc:
        report("serve", "start-up time / idle RSS", f"n/a ({exc})")
        print()
        return
    finally:
        standin.stop()
    report("serve", "start-up: process start -> /healthz answers", ms(statistics.median(starts)))
    top = max(rss)
    report("serve", "idle resident memory (RSS)", f"{top:.0f} MB", "< 150 MB", top < 150)
    print()


def bench_ack(tmp: Path, quick: bool) -> None:
    print("Slack ack latency (slash commands, clicks; 1 and 50 at once) vs a bare Bolt app")
    report("ack", "p99 ack latency / bare Bolt", "n/a", "<= 1.3x, < 100 ms")
    slack_bench = Path(__file__).with_name("slack_bench.py")
    where = f"python {slack_bench.relative_to(ROOT)}" if slack_bench.exists() else "not built yet"
    print(f"  (the Slack surface's own benchmark: {where})")
    print()


# --------------------------------------------------------------------------- runpage


def bench_runpage(tmp: Path, quick: bool) -> None:
    """A 10-phase run driven through the engine, its trail padded to 1,000 rows with the
    rows a long cutover has most of (votes with comments, ticks, step results, notes)."""
    from bot.runpage import page, render
    from bot.store.reads import open_gate_id

    print("runpage: the run page of a run of 1,000 audit rows")
    check = {"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
    phases = [
        {"id": f"p{i}", "name": f"Phase {i}", "estimate_minutes": 2, "checkpoint": "ok",
         "checks": [check]}
        for i in range(10)
    ]  # fmt: skip
    runbook = load_runbook(write_runbook(tmp, phases, "runpage"))
    with databases(tmp) as dbs:
        for label, db in dbs:
            engine = Engine(db, runbook, background=False)
            run = engine.start_run("bench", ALICE)
            assert run.id is not None
            gates = []
            while (gate := open_gate_id(db, run.id)) is not None:
                gates.append(gate)
                engine.decide(gate, BOB, "continue")
            have = len(audit.events(db, run.id))
            for i in range(1000 - have):
                gate, kind = gates[i % len(gates)], i % 4
                if kind == 0:
                    data = {"gate": gate, "phase": "p0", "votes": 1, "quorum": 1,
                            "comment": f"looks fine, checked dashboard {i}"}  # fmt: skip
                    audit.record(db, "gate.vote", actor=BOB.id, run_id=run.id, data=data)
                elif kind == 1:
                    data = {"gate": gate, "item": f"item-{i}"}
                    audit.record(db, "manual.ticked", actor=ALICE.id, run_id=run.id, data=data)
                elif kind == 2:
                    data = {"section": "checks", "step": f"s{i}", "status": "pass",
                            "evidence": "HTTP 200 in 41 ms " * 3, "duration_ms": 41}  # fmt: skip
                    audit.record(db, "step.result", actor="system", run_id=run.id, data=data)
                else:
                    data = {"text": f"note {i}: the relay was slow"}
                    audit.record(db, "record.note", actor=BOB.id, run_id=run.id, data=data)
            rows = len(audit.events(db, run.id))
            times, html = [], ""
            for _ in range(5 if quick else 15):
                t0 = time.perf_counter()
                html = render.render(page.build(db, runbook, run.id))
                times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            report(
                "runpage",
                f"{label}: build + verify + render, {rows} rows (median)",
                ms(median),
                "< 200 ms",
                median < 0.2,
            )
            report("runpage", f"{label}: page size", f"{len(html.encode()) / 1024:.0f} KB")
            engine.shutdown()


SECTIONS: dict[str, Callable[[Path, bool], None]] = {
    "phase": bench_phase,
    "audit": bench_audit,
    "signed": bench_signed,
    "verify": bench_verify,
    "decision": bench_decision,
    "serve": bench_serve,
    "ack": bench_ack,
    "runpage": bench_runpage,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (under a minute)")
    p.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [c for c in chosen if c not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s): {', '.join(unknown)}")
    started = time.perf_counter()
    environment()
    with tempfile.TemporaryDirectory(prefix="cutover-bench-") as tmp:
        for name in chosen:
            SECTIONS[name](Path(tmp), args.quick)
    missed = [f for f in FIGURES if f.ok is False]
    print(
        f"Done in {time.perf_counter() - started:.0f} s; "
        f"{sum(1 for f in FIGURES if f.ok)} goals met, {len(missed)} missed"
        + (": " + "; ".join(f"{f.section}: {f.name}" for f in missed) if missed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
