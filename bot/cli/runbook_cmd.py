"""`cutover runbook check`: validate a runbook, list its phases, or preflight an environment."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot import preflight
from bot.cli.config import load_runbook_file
from bot.cli.options import Parser, command
from bot.isolation import IsolationError, step_user
from bot.settings import Settings
from bot.text import in_words, plural
from phases.runbook import Runbook, RunbookError

COMMANDS = ("runbook",)


def add(sub: argparse._SubParsersAction[Parser], rb_only: Parser) -> None:
    rb = command(
        sub,
        "runbook",
        "validate a runbook and list its phases",
        "Work with runbook files.",
    )
    rb_sub = rb.add_subparsers(dest="runbook_command", required=True, metavar="ACTION")
    chk = command(
        rb_sub,
        "check",
        "validate a runbook; list phases, checks, decision points",
        "Validate a runbook file: every error names the file, the phase, the step and the "
        "field. When it is valid, list its phases with their actions, checks and manual steps.",
        [rb_only],
    )
    chk.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="the runbook to check (default: --runbook or $CUTOVER_RUNBOOK)",
    )
    chk.add_argument("--env", metavar="ENV", help="the environment to preflight")
    chk.add_argument(
        "--preflight",
        action="store_true",
        help="ask whether a cutover of --env could finish on this host: quorum, commands on "
        "PATH, folders, env files, database, newest backup restorable (exit 1 if not)",
    )


def step_user_item(settings: Settings, rb: Runbook) -> preflight.Item:
    """Preflight: who the runbook's programs would run as, or why the bot would refuse."""
    try:
        user = step_user(settings.step_user, rb, extra_groups=settings.step_groups)
    except IsolationError as exc:
        return preflight.Item("step user", "fail", str(exc))
    who = f"user {user.name} (uid {user.uid})" if user else "the bot's own user (not root)"
    return preflight.Item("step user", "pass", f"the runbook's programs run as {who}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    rb = load_runbook_file(settings)
    if getattr(args, "preflight", False):
        if not args.env:
            raise RunbookError(
                "--preflight needs --env ENV; this runbook defines: "
                + ", ".join(sorted(rb.environments))
            )
        items = preflight.preflight(rb, args.env) + [step_user_item(settings, rb)]
        print(preflight.report(items, args.env))
        return 1 if any(i.status == "fail" for i in items) else 0
    print(
        f"{settings.runbook}: OK — {rb.name} v{rb.version}, environments: "
        f"{', '.join(sorted(rb.environments))}"
    )
    for i, ph in enumerate(rb.phases):
        print(
            f"  {rb.phase_number(i)}. {ph.name} [{ph.estimate_minutes}] — "
            f"{plural(len(ph.actions), 'action')}, {plural(len(ph.checks), 'check')}"
            + (f" (+{len(ph.tick_checks)} after a tick)" if ph.tick_checks else "")
            + ", "
            f"{plural(len(ph.manual), 'manual step')}; on fail: {in_words(ph.on_fail)}"
        )
    gating = [
        f"{i.id} ({f'bot: {i.check}, passed within {i.fresh} min' if i.check else 'approver'})"
        for i in rb.start_items()
    ]
    if gating:
        print(f"  Needed before Start: {', '.join(gating)}")
    for warning in rb.warnings():
        print(f"  warning: {warning}")
    return 0
