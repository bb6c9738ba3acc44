"""The command line's exit codes, one per class of error (bot/cli/__init__.py lists them)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_CONFIG = 4
EXIT_RUNBOOK = 5
EXIT_SCHEMA = 6
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141

EXIT_CODES = """exit codes:
  0 ok                 1 problem found           2 bad usage or argument
  3 database down      4 bad configuration (URL) 5 runbook missing or invalid
  6 no schema: run `cutover db upgrade`          130 interrupted
  141 output closed early"""
