"""One exception hierarchy for everything the bot refuses or cannot do.

    CutoverError                 root: catch this to catch them all; str() says what to do
    ├── InvalidInput             the request itself is wrong (bad argument, no reason given)
    ├── NotFound                 no such run, gate, environment or schedule
    ├── Refused                  an authorization rule said no (audited as action.refused)
    ├── Conflict                 the state moved first (run already active, gate decided)
    │   └── IllegalTransition    a move the state machine does not have (bot.domain.states)
    └── Unavailable              a dependency is down; nothing was changed
        └── bot.store.db.DatabaseUnavailable

Subclasses elsewhere: bot.engine.EngineError (a request the engine refuses, e.g. a missing
env file) and bot.schedules.ScheduleError (bot/schedules/errors.py, which imports nothing of
the store, so a surface can catch it). Outside the tree, on purpose:
phases.runbook.RunbookError (a ValueError: the runbook layer knows nothing of the bot) for a
malformed runbook or an unknown environment; surfaces catch it beside CutoverError.

Messages are written for the person who asked: they say what happened and what to do,
and never carry a secret (callers mask before raising).
"""

from __future__ import annotations


class CutoverError(RuntimeError):
    """Root of the bot's own errors; the message is safe to show to the person."""


class InvalidInput(CutoverError):
    """The request is malformed or incomplete."""


class NotFound(CutoverError):
    """The thing named does not exist."""


class Refused(CutoverError):
    """The actor may not do this; nothing was changed."""


class Conflict(CutoverError):
    """Someone or something else changed the state first."""


class IllegalTransition(Conflict):
    """The state machine has no such move from the current state."""


class Unavailable(CutoverError):
    """A dependency (the database) cannot be reached; nothing was changed."""
