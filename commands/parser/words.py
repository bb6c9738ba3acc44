"""The argument words every verb reads: names, channels, git refs, numbers, `--note TEXT`."""

from __future__ import annotations

import re

from commands.parser.usage import UsageError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

# "#name", a channel id, or Slack's escaped mention "<#C024BE7LR|general>".
CHANNEL = re.compile(r"^(?:<#(?P<id>[A-Z0-9]+)(?:\|[^>]*)?>|(?P<plain>#?[A-Za-z0-9][\w.-]{0,79}))$")


def channel(value: str) -> str:
    m = CHANNEL.match(value)
    if not m:
        raise UsageError(f"{value!r} is not a channel; write --stakeholders #channel")
    return m.group("id") or m.group("plain")


def env_name(value: str) -> str:
    if not NAME.match(value):
        raise UsageError(
            f"{value!r} is not an environment name (lowercase letters, digits, - or _)"
        )
    return value


GIT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@-]{0,199}")


def git_ref(value: str) -> str:
    """A git branch, tag or commit name as `git check-ref-format` allows one (never starting
    with '-', so git cannot read it as an option)."""
    bad = (
        not GIT_REF.fullmatch(value)
        or ".." in value
        or "//" in value
        or "@{" in value
        or value.endswith((".", "/", ".lock"))
    )
    if bad:
        raise UsageError(
            f"ref={value!r} is not a git branch, tag or commit name (letters, digits, . _ / @ -; "
            "e.g. ref=main, ref=v1.4.2 or ref=3f2c1ab)"
        )
    return value


def number(word: str) -> int | None:
    """A run or schedule number: 1-9 ASCII digits (an id column holds no more), '#' allowed."""
    digits = word.removeprefix("#")
    return int(digits) if re.fullmatch(r"[0-9]{1,9}", digits) else None


def tick_target(word: str) -> str:
    found = number(word)
    return str(found) if found is not None else env_name(word)


def note_option(tail: list[str], after: str) -> str | None:
    """An optional `--note TEXT` (not blank), the only thing that may follow `after`."""
    if not tail:
        return None
    if tail[0] != "--note" or not " ".join(tail[1:]).strip():
        raise UsageError(f"after {after} only --note TEXT may follow")
    return " ".join(tail[1:])[:300]
