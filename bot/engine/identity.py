"""One live process per replica id: a heartbeat row in the database, on its clock.

A replica id (CUTOVER_REPLICA_ID, the hostname by default) names one replica across its
restarts: a process treats what an earlier incarnation of its own replica left executing as
dead at once. That is only true if no other live process has the same id, which two
`cutover serve` on one host (two systemd units, a second process during an upgrade) would
have by default. So a process claims its id at start: it refuses to start while another
live process holds it (a heartbeat renewed within the lease, from a process that is not
gone), and takes it over at once from a dead predecessor (its pid gone on this host, or its
heartbeat stale).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.errors import CutoverError
from bot.store import replicas
from bot.store.unit import Store
from phases.secrets import Masker

log = logging.getLogger(__name__)


class ReplicaInUse(CutoverError):
    """Another live process holds this process's replica id: it must not start."""


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()[:36]
    except OSError:
        return "?"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a predecessor in a restarted container had our pid: it is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a replica id, from its incarnation string "ME@HOST/BOOT"."""

    me: str
    host: str
    boot: str

    @classmethod
    def parse(cls, incarnation: str) -> Holder:
        me, _, where = incarnation.partition("@")
        host, _, boot = where.partition("/")
        return cls(me, host, boot)

    def pid(self) -> int | None:
        tail = self.me.rsplit("#", 1)[-1]
        head = tail.split(".", 1)[0]
        return int(head) if head.isdigit() else None

    def gone_here(self) -> bool:
        """True if it ran on this very machine since its last boot and its pid is gone."""
        pid = self.pid()
        return (
            self.host == socket.gethostname()
            and self.boot == _boot_id()
            and pid is not None
            and not _alive(pid)
        )


class Identity:
    """This process's claim on its replica id: `me` (replica#pid.nonce, the lease owner),
    the lease length the heartbeat is renewed within, and the engine's stop event."""

    def __init__(
        self,
        store: Store,
        masker: Masker,
        replica: str,
        me: str,
        lease: timedelta,
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.masker = masker
        self.replica = replica
        self.me = me
        self.lease = lease
        self._stop = stop
        self._replica_claimed = False

    def incarnation(self) -> str:
        return f"{self.me}@{socket.gethostname()}/{_boot_id()}"

    def claim_replica(self) -> None:
        """Claims this process's replica id, or raises ReplicaInUse naming CUTOVER_REPLICA_ID.

        A holder whose heartbeat is older than the lease, or whose pid is gone on this host,
        is dead: taken over at once. A holder on another host with a fresh heartbeat is
        watched for up to a lease: if it renews, it is alive (refused); if not, it is dead."""
        lease = self.lease.total_seconds()
        first_seen: datetime | None = None
        deadline = time.monotonic() + lease + 1.0
        while True:
            holder, heartbeat = self._try_claim()
            if holder is None:
                break
            if holder.host == socket.gethostname() and holder.boot == _boot_id():
                raise self._in_use(holder)  # its pid is alive on this very machine
            if first_seen is not None and heartbeat != first_seen:
                raise self._in_use(holder)  # it renewed while we watched
            first_seen = first_seen or heartbeat
            if time.monotonic() > deadline:
                raise self._in_use(holder)
            time.sleep(max(lease / 6, 0.05))
        self._replica_claimed = True
        t = threading.Thread(target=self._beat, name="cutover-replica", daemon=True)
        t.start()

    def shutdown(self) -> None:
        """Once the engine stopped: a claimed replica id is released."""
        if self._replica_claimed:
            self._replica_claimed = False
            self.release_replica()

    def _in_use(self, holder: Holder) -> ReplicaInUse:
        where = f" on host {holder.host}" if holder.host else ""
        return ReplicaInUse(
            f"another live cutover process ({holder.me}{where}) holds replica id "
            f"{self.replica!r}: two processes with one id would declare each other's phases "
            "interrupted. Give each process its own CUTOVER_REPLICA_ID (it defaults to the "
            "hostname), or stop the other process first."
        )

    def _try_claim(self) -> tuple[Holder | None, datetime | None]:
        """Takes the id if free or its holder is dead; else returns the live holder."""
        with self.store.tx() as tx:
            now = tx.db_now()
            row = replicas.claim(tx, self.replica, self.incarnation(), now)
            if row.incarnation == self.incarnation():
                return None, None
            holder = Holder.parse(row.incarnation)
            beat = row.heartbeat_at
            stale = beat is None or (now - beat).total_seconds() > self.lease.total_seconds()
            if not stale and not holder.gone_here():
                return holder, beat
            log.warning(
                "replica %s: taking over from %s (%s)",
                self.replica,
                holder.me,
                "its heartbeat is stale" if stale else "its process is gone",
            )
            row.incarnation, row.heartbeat_at = self.incarnation(), now
            tx.add(row)
            return None, None

    def _beat(self) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                with self.store.tx() as tx:
                    held = replicas.beat(tx, self.replica, self.incarnation())
                if not held:
                    log.error(
                        "replica id %r was taken over by another process (it found this one's "
                        "heartbeat stale); set a distinct CUTOVER_REPLICA_ID per process",
                        self.replica,
                    )
                    return
            except Exception as exc:
                log.warning("replica heartbeat not renewed: %s", self.masker.mask(str(exc)))

    def release_replica(self) -> None:
        """On a clean stop: the next process with this id starts at once."""
        try:
            with self.store.tx() as tx:
                replicas.release(tx, self.replica, self.incarnation())
        except Exception as exc:
            log.warning("replica id not released: %s", self.masker.mask(str(exc)))
