"""Carries out a parsed command against the engine; every surface uses this."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bot.domain.errors import CutoverError
from bot.engine import Engine, EngineError
from bot.ports import ReadsPort
from bot.runpage.tokens import RunLinks
from bot.store import step_outputs
from bot.surface import Actor
from bot.text import status_text, who
from commands.parser import (
    USAGE,
    Abort,
    AuditCmd,
    ChecklistCmd,
    Command,
    Deviation,
    EmergencyForm,
    Help,
    Lock,
    LocksCmd,
    LogsCmd,
    Note,
    RecordCmd,
    Revert,
    ScheduleForm,
    ScheduleList,
    SignOff,
    Start,
    StatusCmd,
    TickCmd,
    Unlock,
    Unschedule,
    UntickCmd,
    UsageError,
)
from commands.parser import Schedule as ScheduleCmd
from phases.runbook import RunbookError

LOGS_TEXT = 3_000  # of a `/cutover logs` answer: within a chat reply's 3,900 characters


@dataclass(frozen=True)
class Reply:
    text: str
    ephemeral: bool = True  # only the person who typed sees it
    run_id: int | None = None
    # Run page links ((label, url) each): a surface that can shows them as buttons.
    links: list[tuple[str, str]] = field(default_factory=list)


class CommandService:
    def __init__(self, engine: Engine, reads: ReadsPort, links: RunLinks | None = None) -> None:
        self.engine = engine
        self.reads = reads  # what `status`, `logs`, `audit` and `record` read (bot.ports)
        self.links = links  # run page links; None: not configured (no public URL or secret)

    def execute(
        self,
        cmd: Command,
        actor: Actor,
        channel: str | None = None,
        group_members: list[str] | None = None,
    ) -> Reply:
        """group_members: qualified ids of the environment's approver-group members, when the
        surface can list them (Slack), so a start that could never reach quorum is refused."""
        try:
            return self._execute(cmd, actor, channel, group_members)
        except (CutoverError, RunbookError, UsageError) as exc:
            return Reply(self.engine.masker.mask(str(exc)))

    def _execute(
        self, cmd: Command, actor: Actor, channel: str | None, group_members: list[str] | None
    ) -> Reply:
        engine = self.engine
        if isinstance(cmd, Help):
            return Reply(USAGE)
        if isinstance(cmd, Start):
            from bot.schedules import ScheduleService

            started = ScheduleService(engine).start_env(
                cmd.env,
                actor,
                channel=channel,
                dry_run=cmd.dry_run,
                group_members=group_members,
                emergency=cmd.emergency,
                ref=cmd.ref,
            )
            if started.outcome != "started":
                raise EngineError(started.message)
            return Reply(started.message, ephemeral=False, run_id=started.run_id)
        if isinstance(cmd, TickCmd | UntickCmd | ChecklistCmd):
            return self.checklist(cmd, actor)
        if isinstance(cmd, StatusCmd):
            text = self.status(cmd.env)
            return Reply(text, links=self._page_links(self.status_runs(cmd.env)))
        if isinstance(cmd, RecordCmd):
            return self.record(cmd.run_id)
        if isinstance(cmd, Lock | Unlock):
            decision = (
                engine.lock(cmd.env, actor, cmd.reason)
                if isinstance(cmd, Lock)
                else engine.unlock(cmd.env, actor)
            )
            return Reply(decision.message, ephemeral=not decision.changed)
        if isinstance(cmd, LocksCmd):
            return Reply(self.locks_text() or "No environment is locked or frozen now.")
        if isinstance(cmd, Abort):
            if cmd.reason is None:  # a surface that can ask (a form, a prompt) asked already
                raise UsageError("abort needs --reason TEXT saying why")
            decision = engine.abort(cmd.env, actor, cmd.reason)
            return Reply(decision.message, ephemeral=not decision.changed, run_id=decision.run_id)
        if isinstance(cmd, EmergencyForm):  # a surface that can ask asked already
            raise UsageError("an emergency start needs --reason TEXT saying why")
        if isinstance(cmd, Revert):
            if cmd.reason is None:  # a surface that can ask (a form, a prompt) asked already
                raise UsageError("revert needs --reason TEXT saying why")
            decision = engine.revert(cmd.env, actor, cmd.reason)
            return Reply(decision.message, ephemeral=not decision.changed, run_id=decision.run_id)
        if isinstance(cmd, AuditCmd):
            return Reply(self.audit_summary(cmd.run_id))
        if isinstance(cmd, LogsCmd):
            return Reply(self.logs(cmd.run_id, cmd.step))
        if isinstance(cmd, ScheduleForm):
            raise UsageError(
                "schedule needs an environment and a time, e.g. /cutover schedule prod "
                "2026-03-01T14:00Z --stakeholders #launch"
            )
        if isinstance(cmd, ScheduleCmd | ScheduleList | Unschedule):
            return self.schedule(cmd, actor, channel)
        if isinstance(cmd, SignOff):
            decision = (
                engine.sign_off_run(cmd.run_id, actor, cmd.note)
                if cmd.criterion is None
                else engine.sign_off(cmd.run_id, cmd.criterion, actor, cmd.note)
            )
            return Reply(decision.message, ephemeral=not decision.changed, run_id=cmd.run_id)
        if isinstance(cmd, Note):
            decision = engine.add_note(cmd.run_id, actor, cmd.text)
            return Reply(decision.message, ephemeral=not decision.changed, run_id=cmd.run_id)
        if isinstance(cmd, Deviation):
            decision = engine.add_deviation(cmd.run_id, actor, cmd.text)
            return Reply(decision.message, ephemeral=not decision.changed, run_id=cmd.run_id)
        raise EngineError(f"unsupported command {cmd!r}")

    def schedule(
        self, cmd: ScheduleCmd | ScheduleList | Unschedule, actor: Actor, channel: str | None
    ) -> Reply:
        from bot.notices import channel_name, when
        from bot.schedules import EVENTS, ScheduleService

        service = ScheduleService(self.engine)
        if isinstance(cmd, ScheduleList):
            return Reply(service.list_text())
        if isinstance(cmd, Unschedule):
            return Reply(service.cancel(cmd.schedule_id, actor), ephemeral=False)
        sched = service.create(
            cmd.env, cmd.start_at, actor, stakeholders=cmd.stakeholders, channel=channel
        )
        # Preflight now, days ahead: a failure is a warning (anything it finds can be fixed
        # before T-0), checked again at T-24h, and at Start, which it refuses while it fails.
        checked = service.preflight(cmd.env, "schedule", sched.id)
        warning = (
            f"\n⚠️ Scheduled, but preflight fails now: fix this before T-0 (Start is refused "
            f"while it fails; it runs again at T-24h).\n{checked.text}"
            if checked.failed
            else f"\n✅ {checked.text.splitlines()[0]}"
        )
        now = self.engine.now()
        at = {
            kind: when(sched.start_at - before) if sched.start_at - before > now else "now"
            for kind, before in EVENTS
        }
        return Reply(
            f"Cutover of {cmd.env} scheduled for {when(sched.start_at)} as #{sched.id} by "
            f"{actor.label}. Run channel: {channel_name(sched.channel)}; stakeholders: "
            f"{channel_name(sched.stakeholders or sched.channel)}.\n"
            f"T-24h readiness dry run: {at['t-24h']} · T-1h notice: {at['t-1h']} · "
            f"T: reminder with a Start button (it never starts by itself). "
            f"Cancel: /cutover unschedule {sched.id}{warning}",
            ephemeral=False,
        )

    def checklist(self, cmd: TickCmd | UntickCmd | ChecklistCmd, actor: Actor) -> Reply:
        """Pre-cutover items that gate Start: tick (an approver's word, or the bot checks a
        bound item now), untick, or show where each stands."""
        from bot.checklists import Checklists
        from bot.notices import start_checklist_text
        from bot.schedules import ScheduleService

        if not isinstance(cmd, ChecklistCmd):  # RUN TASK: a post-cutover task marked done
            from bot.post_tasks import command_tick

            done = command_tick(
                self.engine, cmd.target, cmd.item, actor, untick=isinstance(cmd, UntickCmd)
            )
            if done is not None:
                return Reply(done.message, ephemeral=not done.changed, run_id=done.run_id)
        scope = ScheduleService(self.engine).scope(cmd.target)
        lists = Checklists(self.engine)
        if isinstance(cmd, ChecklistCmd):
            return Reply(start_checklist_text(scope.label, lists.states(scope)))
        if isinstance(cmd, TickCmd):
            result = lists.tick(scope, cmd.item, actor, cmd.note)
        else:
            result = lists.untick(scope, cmd.item, actor)
        left = lists.missing(scope)
        tail = (
            f"\nStill needed before Start: {', '.join(m.id for m in left)}"
            if left
            else "\nEvery item needed before Start is done."
        )
        return Reply(result.message + tail, ephemeral=not result.changed)

    def locks_text(self, env: str | None = None) -> str:
        """The locks and the freezes in force now (of one environment): who, why, until."""
        engine = self.engine
        lines = [f"🔒 {lock.text()}" for lock in engine.locks() if env in (None, lock.environment)]
        for name in [env] if env else list(engine.runbook.environments):
            frozen = engine.frozen(name)
            if frozen is not None:
                lines.append(f"❄️ {frozen.text(name)}")
        return "\n".join(lines)

    def status_runs(self, env: str | None) -> list[int]:
        """The runs `status` shows: the active ones (of ENV), else ENV's latest."""
        if env is None:
            return self.reads.active_runs()
        return self.reads.active_runs(env) or [
            i for i in [self.reads.latest_run(env)] if i is not None
        ]

    def _page_links(self, run_ids: list[int]) -> list[tuple[str, str]]:
        if self.links is None:
            return []
        return [(f"Run page #{i}", self.links.for_run(i)) for i in run_ids[:5]]

    def record(self, run_id: int) -> Reply:
        """A signed link to the run's page, or how to get the page without one."""
        if not self.reads.run_known(run_id):
            raise EngineError(f"There is no run #{run_id}; `/cutover status` lists the runs.")
        if self.links is None:
            return Reply(
                f"Run pages are not configured here (set CUTOVER_PUBLIC_URL and "
                f"CUTOVER_RUNPAGE_SECRET). On the bot's host: "
                f"cutover record {run_id} --html > run-{run_id}.html"
            )
        url = self.links.for_run(run_id)
        days = f"{self.links.days:g} day{'s' if self.links.days != 1 else ''}"
        return Reply(
            f"Run #{run_id}'s page (the link works for {days}; forward it with care): {url}",
            links=[("Run page", url)],
            run_id=run_id,
        )

    def status(self, env: str | None) -> str:
        held = self.locks_text(env)
        text = self._status(env)
        return f"{held}\n\n{text}" if held else text

    def _status(self, env: str | None) -> str:
        engine = self.engine
        if env is not None:
            engine.environment(env)
            ids = self.reads.active_runs(env)
            if not ids:
                last = self.reads.latest_run(env)
                if last is None:
                    return f"No run of {env} yet."
                ids = [last]
        else:
            ids = self.reads.active_runs()
            if not ids:
                return "No active cutover run."
        views = [self.reads.run_view(i) for i in ids]
        return "\n\n".join(status_text(v, engine.now()) for v in views if v is not None)

    def logs(self, run_id: int, address: str | None, limit: int = LOGS_TEXT) -> str:
        """The steps of a run that kept output, or the last lines of one (within `limit`
        characters once escaped for chat), in a code block. The output was masked when kept;
        here it is masked again and defused (no mention or link can form from it)."""
        engine = self.engine
        if not self.reads.run_known(run_id):
            raise EngineError(f"There is no run #{run_id}; `/cutover status` lists the runs.")
        if address is None:
            kept = self.reads.outputs(run_id)
            if not kept:
                return f"Run #{run_id} kept no step output."
            lines = [f"Steps of run #{run_id} that kept output (oldest first):"]
            lines += [f"• {k.address} ({k.name}): {k.status}, {step_outputs.size(k.bytes)}"
                      for k in kept]  # fmt: skip
            lines.append(f"Read one: /cutover logs {run_id} PHASE/STEP (its newest attempt)")
            return "\n".join(lines)
        found = self.reads.find_output(run_id, address)
        if isinstance(found, str):
            raise EngineError(found[:1].upper() + found[1:] + ".")
        text = engine.masker.untrusted(found.text).replace("```", "ˋˋˋ")
        heading = step_outputs.describe(found)
        room = limit - len(heading) - 200
        kept_lines: list[str] = []
        for line in reversed(text.splitlines()):
            line = line if len(line) <= 300 else line[:299] + "…"
            cost = len(line) + 1 + 4 * sum(line.count(c) for c in "&<>")  # escaped for chat
            if cost > room:
                break
            kept_lines.insert(0, line)
            room -= cost
        total = len(text.splitlines())
        shown = (
            f"the last {len(kept_lines)} of {total} lines"
            if len(kept_lines) < total
            else (f"all {total} lines")
        )
        return "\n".join(
            [
                f"{heading}; {shown}:",
                "```" + "\n".join(kept_lines or ["…"]) + "```",
                f"All that was kept: cutover logs {run_id} {found.address} (on the bot's host)",
            ]
        )

    def audit_summary(self, run_id: int, limit: int = 40) -> str:
        rows = self.reads.audit_events(run_id)
        if not rows:
            return f"No audit events for run #{run_id}."
        lines = [
            f"Audit trail of run #{run_id} ({len(rows)} events"
            f"{', last ' + str(limit) if len(rows) > limit else ''}):"
        ]
        for r in rows[-limit:]:
            data = json.loads(r.data)
            brief = ", ".join(f"{k}={v}" for k, v in data.items() if k != "evidence")[:160]
            lines.append(f"{r.at[:19]} #{r.seq} {r.kind} by {who(r.actor)}: {brief}")
            if data.get("evidence"):  # what the check saw: the reason an approver approved
                lines.append(f"    evidence: {str(data['evidence'])[:300]}")
        lines.append("Full export: cutover audit export " + str(run_id) + " --format jsonl")
        return "\n".join(lines)
