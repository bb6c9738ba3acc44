"""The long-running commands: `console`, `demo` and `serve` (the Slack bot)."""

from __future__ import annotations

import argparse

from bot.cli.config import load_runbook_file
from bot.cli.options import Parser, command
from bot.settings import Settings

COMMANDS = ("console", "demo", "serve")


def add(sub: argparse._SubParsersAction[Parser], both: Parser) -> None:
    con = command(
        sub,
        "console",
        "run cutovers at this terminal (no Slack needed)",
        "Run cutovers at this terminal: /cutover commands at a prompt, checkpoints printed, "
        "decisions typed. You act as console:NAME.",
        [both],
    )
    con.add_argument("--as", dest="as_user", help="your console name (default: your login)")

    demo = command(
        sub,
        "demo",
        "start a local stand-in of NostrMaxi; open the console",
        "Start local stand-ins of a NostrMaxi deployment (HTTP, HTTPS, DNS, env file, backup) "
        "and open the console on runbooks/demo.yml.",
    )
    demo.add_argument("--as", dest="as_user", help="your console name (default: your login)")

    sv = command(
        sub,
        "serve",
        "run the Slack bot: Socket Mode if SLACK_APP_TOKEN is set, else HTTP",
        "Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else an HTTP server "
        "(/slack/events, /healthz). See docs/slack.md.",
        [both],
    )
    sv.add_argument("--port", type=int, help="HTTP port (default: $CUTOVER_HTTP_PORT or 3000)")
    sv.add_argument("--host", help="HTTP address (default: $CUTOVER_HTTP_HOST or 0.0.0.0)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "console":
        from bot.app import run_console

        return run_console(settings, load_runbook_file(settings), args.as_user)
    if args.command == "serve":
        from bot.app import serve

        if args.port is not None:
            settings.http_port = args.port
        if args.host:
            settings.http_host = args.host
        return serve(settings)
    if args.command == "demo":
        from bot.demo import run_demo

        return run_demo(settings, args.as_user)
    raise AssertionError(args.command)
