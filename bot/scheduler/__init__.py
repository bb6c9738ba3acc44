"""The time-driven half of the runbook: scheduled notices, gate timeouts, monitoring
rounds and the cutover record. One process (the leader) does it; all state is rows.

`Scheduler.tick(now)` scans the database for due work and does it; it keeps no
state between calls, so a restart or a new leader carries on where the last left
off. Tests call it directly with a controllable clock.

Every message goes out through a `scheduled_event` row: claimed by a conditional
UPDATE (status and attempts as the version), posted, then marked sent with its
audit row ("notice.sent", late=true and how late when sent after its time). A
claim not confirmed within the lease (the process died between claim and post)
is claimed again and the text says it may be a repeat ("notice.reclaimed").

`start_scheduler` runs it for real: every process tries for leadership every few
seconds; the leader runs an APScheduler 3 BackgroundScheduler whose one interval
job is the tick (APScheduler 3 cannot share a job store between processes, so the
jobs live in the leader's memory and the schedule lives in the database).
Leadership on PostgreSQL is `pg_try_advisory_lock` held on a dedicated connection:
it dies with the session, and a standby takes over at its next try. On SQLite a
single process is assumed; a lock file next to the database keeps a second one
(another console on the same file) from ticking too.
"""

from bot.scheduler.core import Scheduler
from bot.scheduler.delivery import Delivery, Posted
from bot.scheduler.leader import (
    LOCK_KEY,
    FileLeaderLock,
    LeaderLock,
    PgLeaderLock,
    leader_lock_for,
)
from bot.scheduler.pre_cutover import SCHEDULE_KINDS, ScheduleNotices
from bot.scheduler.records import RecordJobs
from bot.scheduler.reminders import Reminders
from bot.scheduler.running import SchedulerHandle, start_scheduler

__all__ = [
    "LOCK_KEY",
    "SCHEDULE_KINDS",
    "Delivery",
    "FileLeaderLock",
    "LeaderLock",
    "PgLeaderLock",
    "Posted",
    "RecordJobs",
    "Reminders",
    "ScheduleNotices",
    "Scheduler",
    "SchedulerHandle",
    "leader_lock_for",
    "start_scheduler",
]
