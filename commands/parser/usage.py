"""The `/cutover help` text, and the error a wrong argument raises (it ends with that text)."""

from __future__ import annotations

USAGE = """Usage:
  /cutover start ENV [--dry-run] [ref=REF]
                                        start a cutover run of ENV (deploying REF: a
                                        branch, tag or commit; default: the runbook's)
  /cutover start ENV --emergency --reason TEXT
                                        break-glass start during a change freeze (each
                                        override approver types it; the quorum starts it);
                                        in Slack, without --reason a form asks for it
  /cutover status [ENV]                 current phase, elapsed time, approvals, locks
  /cutover lock ENV --reason TEXT       no run starts in ENV until it is unlocked
  /cutover unlock ENV                   lift the lock
  /cutover locks                        every lock, and the freezes in force now
  /cutover abort ENV --reason TEXT      roll back ENV's active run (final); in Slack,
                                        without --reason a form asks for the reason
  /cutover revert ENV --reason TEXT     undo ENV's last completed cutover (its restore
                                        and rollback steps, as a new run) within the
                                        runbook's revert window; approvers, by quorum;
                                        without --reason, Slack's form asks for it
  /cutover audit RUN                    the audit trail of run RUN
  /cutover logs RUN [PHASE/STEP[#N]]    the steps of run RUN that kept output, or the
                                        last lines one printed (attempt N of its phase)
  /cutover record RUN                   a link to run RUN's page: its timeline, who
                                        decided what, step output, audit verified
  /cutover schedule ENV TIME [ZONE] [--stakeholders #channel]
                                        schedule a cutover; TIME is ISO 8601 with a
                                        time zone, e.g. 2026-03-01T14:00Z, or a local
                                        time and its zone: 2026-03-01T15:00 Europe/Berlin
  /cutover schedule                     the same, in a form (date and time in your zone)
  /cutover schedule list                scheduled cutovers and their notices
  /cutover unschedule ID                cancel scheduled cutover ID
  /cutover signoff RUN CRITERION [--note TEXT]
                                        vouch for a success criterion of run RUN
  /cutover signoff RUN [--note TEXT]    sign off completed run RUN (the people its
                                        environment's signoff names)
  /cutover note RUN TEXT                add TEXT to run RUN's record notes
  /cutover deviation RUN TEXT           add TEXT to run RUN's Deviations from Runbook
  /cutover checklist TARGET             the pre-cutover items needed before Start;
                                        TARGET: a schedule number, or ENV
  /cutover tick TARGET ITEM [--note TEXT]
                                        an approver ticks ITEM (a bot-checked item:
                                        the bot checks it now)
  /cutover untick TARGET ITEM           undo a tick
  /cutover tick RUN TASK                mark post-cutover task TASK of completed run
                                        RUN done (its owner or an approver)
  /cutover help                         this text"""


class UsageError(ValueError):
    """A wrong or missing argument; the message says what to type instead."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}\n{USAGE}")
        self.problem = problem
