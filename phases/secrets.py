"""Env-file reading and secret masking.

The runbook says "Do NOT echo secrets": every string the bot shows (evidence,
command output, chat text, log lines) passes through a `Masker` that knows the
secret values of the target's env file, and their base64 forms.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from pathlib import Path

SECRET_KEY_PATTERN = re.compile(
    r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|APIKEY|PRIVATE|CREDENTIAL|DATABASE_URL|_KEY$|DSN)",
    re.IGNORECASE,
)
MASK = "[redacted]"
MIN_MASKED_LENGTH = 6  # shorter values would mask ordinary words


class EnvFileError(ValueError):
    pass


def parse_env_file(path: str | Path) -> dict[str, str]:
    """Reads KEY=VALUE lines as docker compose and `source` would; never logs values."""
    p = Path(path)
    if not p.is_file():
        raise EnvFileError(f"env file {p} does not exist or is not a file")
    values: dict[str, str] = {}
    for lineno, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise EnvFileError(f"{p}:{lineno}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY_PATTERN.search(key))


class Masker:
    """Replaces known secret values, and their base64 forms, with a marker."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._needles: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str) -> None:
        if len(secret) < MIN_MASKED_LENGTH:
            return
        raw = secret.encode()
        forms = {
            secret,
            base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode(),
            base64.b64encode(raw).decode().rstrip("="),
        }
        with self._lock:
            self._needles |= {f for f in forms if len(f) >= MIN_MASKED_LENGTH}
            ordered = sorted(self._needles, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(n) for n in ordered))

    def add_env(self, env: dict[str, str]) -> None:
        for key, value in env.items():
            if is_secret_key(key):
                self.add(value)

    def mask(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)


GLOBAL_MASKER = Masker()


_FORMATTER = logging.Formatter()


class MaskingFilter(logging.Filter):
    """Logging filter: no log line carries a known secret."""

    def __init__(self, masker: Masker = GLOBAL_MASKER) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.masker.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        # A traceback quotes its exception's message: mask the text a formatter would print
        # (formatters reuse exc_text once it is set).
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.masker.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.masker.mask(record.stack_info)
        return True


def install_log_masking(masker: Masker = GLOBAL_MASKER) -> None:
    root = logging.getLogger()
    for handler in root.handlers or []:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter(masker))
