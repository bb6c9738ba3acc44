"""What the engine refuses with."""

from __future__ import annotations

from bot.domain.errors import CutoverError


class EngineError(CutoverError):
    """A request the engine refuses; the message says why and what to do."""


class LeaseLost(EngineError):
    """A write of a holder whose lease epoch was superseded (or whose run another process
    owns now): refused, so a stale holder never records over the new one."""
