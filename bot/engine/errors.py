"""What the engine refuses with."""

from __future__ import annotations

from bot.domain.errors import EngineError as EngineError  # re-exported: surfaces raise it too


class LeaseLost(EngineError):
    """A write of a holder whose lease epoch was superseded (or whose run another process
    owns now): refused, so a stale holder never records over the new one."""
