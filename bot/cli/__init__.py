"""`cutover`: the command line.

Every user error is one line on stderr and an exit code for its class, never a traceback:

    0    ok
    1    problem found (`audit verify`: the chain is broken; `serve`/`console`: the trail is
         shorter than, or differs from, the last head this bot signed and posted)
    2    bad usage: an unknown flag, a missing or malformed argument, an unknown environment,
         a refused argument (`audit lockdown` on a role it must not lock down), a run or
         step `logs` does not know
    3    database unavailable: the server is down, the file cannot be opened
    4    bad configuration: a malformed database URL or one of an unsupported database
         (postgres:// and postgresql:// are taken as postgresql+psycopg://), an invalid setting
    5    runbook unusable: the file is missing or unreadable, or it is not a valid runbook
    6    database not ready: no cutover schema there (a wrong URL or path?), or an older one;
         `cutover db upgrade` makes or upgrades it. Read commands never create tables.
    130  interrupted (Ctrl-C)
    141  output closed early (`cutover audit export | head -1`): stops quietly
"""

from bot.cli.entry import main
from bot.cli.exits import (
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_PROBLEM,
    EXIT_RUNBOOK,
    EXIT_SCHEMA,
    EXIT_USAGE,
)
from bot.cli.parser import package_version

__all__ = [
    "EXIT_CODES",
    "EXIT_CONFIG",
    "EXIT_DATABASE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_PROBLEM",
    "EXIT_RUNBOOK",
    "EXIT_SCHEMA",
    "EXIT_USAGE",
    "main",
    "package_version",
]
