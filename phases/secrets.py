"""Env-file reading, secret masking and the neutralising of untrusted text.

The runbook says "Do NOT echo secrets": every string the bot shows (evidence,
command output, chat text, log lines, audit rows) passes through a `Masker` that
knows the secret values the bot has seen, in every form a target may echo them:
raw, base64 (standard, URL-safe, unpadded), URL-encoded and JSON-escaped. Values
shorter than `WHOLE_TOKEN_BELOW` are masked only where they stand as whole tokens
(a 4-character password inside an ordinary word is left alone). Some secrets are
recognised by shape without registration: the userinfo of any URL, Slack tokens,
Slack response_url/webhook URLs.

Logging is masked at the one place every record is made (`install_log_masking`
replaces the log record factory): every handler, every logger, tracebacks too.

Text the bot did not author (abort reasons, a target's error bodies) is also
neutralised (`neutralise`): no `<@U…>`, `<!subteam^…>`, `<!channel>`, `<link|…>`
or `T1:U…` in it can become a ping or a disguised link.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from dotenv.parser import parse_stream

SECRET_KEY_PATTERN = re.compile(
    r"(SECRET|PASSWORD|PASSWD|PASS$|TOKEN|API_KEY|APIKEY|PRIVATE|CREDENTIAL|DATABASE_URL|_KEY$|"
    r"DSN|NSEC|_URL$)",
    re.IGNORECASE,
)
MASK = "[redacted]"
MIN_MASKED_LENGTH = 3  # one or two characters cannot be told from ordinary text
WHOLE_TOKEN_BELOW = 12  # shorter values are masked only as whole tokens
# Values that are configuration words, never secrets: masking them would blank ordinary text.
NOT_SECRET = frozenset({"true", "false", "yes", "no", "on", "off", "null", "none"})

# Recognised by shape, registered or not.
_SHAPES: list[tuple[re.Pattern[str], str]] = [
    # the userinfo of any URL (scheme://user:password@host)
    (re.compile(r"(?<=://)[^\s/?#@\"'<>]+@"), MASK + "@"),
    # Slack tokens (bot, user, app-level, refresh)
    (re.compile(r"\b(?:xox[abposre]|xapp)-[A-Za-z0-9-]{6,}"), MASK),
    # Slack webhook and response_url addresses: anyone holding one may post as the bot
    (re.compile(r"https://hooks\.slack\.com/[^\s\"'<>]+"), "https://hooks.slack.com/" + MASK),
    # a response_url field in a logged request body (JSON or form)
    (re.compile(r"(response_url[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"), r"\1" + MASK),
]


class EnvFileError(ValueError):
    pass


_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def parse_env_file(path: str | Path) -> dict[str, str]:
    """The values Docker Compose gives a service from this env file; never logs a value.

    Read with python-dotenv (maintained, and the grammar Compose documents: `export`,
    single quotes literal but for `\\'`, double quotes with `\\n \\t \\" \\\\`, values over
    several lines in quotes, ` # comment` after an unquoted value, none inside quotes) with
    interpolation off: `${OTHER}` stays as written. What Compose refuses is refused here
    with its line: an unterminated quote, text after a closing quote, a line with no `=`
    (Compose would take that value from whoever runs it, which the bot cannot know).
    """
    p = Path(path)
    if not p.is_file():
        raise EnvFileError(f"env file {p} does not exist or is not a file")
    values: dict[str, str] = {}
    with p.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            line = binding.original.line
            if binding.error:
                # python-dotenv's statement may begin with the blank lines before it
                lines = binding.original.string.split("\n")
                blank = next((i for i, text in enumerate(lines) if text.strip()), 0)
                line += blank
                first = lines[blank]
                hint = (
                    "an unterminated quote"
                    if first.count('"') % 2 or first.count("'") % 2
                    else "expected KEY=VALUE"
                )
                raise EnvFileError(f"{p}:{line}: {hint} (as Docker Compose reads env files)")
            if binding.key is None:  # a blank line or a comment
                continue
            if not _ENV_KEY.fullmatch(binding.key):
                raise EnvFileError(f"{p}:{line}: {binding.key!r} is not a variable name")
            if binding.value is None:
                raise EnvFileError(
                    f"{p}:{line}: {binding.key} has no '=': write {binding.key}=VALUE (Compose "
                    "would take the value from the environment of whoever runs it)"
                )
            values[binding.key] = binding.value
    return values


def is_secret_key(key: str) -> bool:
    """Names that look secret; used to name weak values, not to decide what is masked."""
    return bool(SECRET_KEY_PATTERN.search(key))


def url_userinfo(value: str) -> list[str]:
    """The password of every URL in `value` (decoded and as written), to mask wherever it
    appears. A user name is masked only inside a URL (by shape): names like `postgres` or
    `app` are also database names and ordinary words."""
    found: list[str] = []
    for m in re.finditer(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+", value):
        try:
            parts = urlsplit(m.group(0))
            password = parts.password
        except ValueError:
            continue
        if password:
            found += {password, unquote(password)}
    return found


def forms(secret: str) -> set[str]:
    """Every form in which a target may echo `secret` back."""
    raw = secret.encode()
    b64 = base64.b64encode(raw).decode()
    json_escaped = json.dumps(secret)[1:-1]
    return {
        secret,
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json_escaped,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json_escaped.replace("/", "\\/"),
    }


_ALL_MASKERS: weakref.WeakSet[Masker] = weakref.WeakSet()


class Masker:
    """Replaces known secret values, in every form, and secret-shaped text with a marker."""

    def __init__(self, secrets: Iterable[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._needles: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for s in secrets or []:
            self.add(s)
        _ALL_MASKERS.add(self)

    def add(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < MIN_MASKED_LENGTH or secret.lower() in NOT_SECRET:
            return
        new = {f for f in forms(secret) if len(f) >= MIN_MASKED_LENGTH} - self._needles
        # A password inside a URL is a secret of its own, echoed back in any of its forms.
        new |= {
            f for u in url_userinfo(secret) for f in forms(u) if len(f) >= MIN_MASKED_LENGTH
        } - self._needles
        if not new:
            return
        with self._lock:
            self._needles |= new
            ordered = sorted(self._needles, key=len, reverse=True)
            self._pattern = re.compile(
                "|".join(
                    re.escape(n)
                    if len(n) >= WHOLE_TOKEN_BELOW
                    else rf"(?<![A-Za-z0-9]){re.escape(n)}(?![A-Za-z0-9])"
                    for n in ordered
                )
            )

    def add_all(self, values: Iterable[str]) -> None:
        for value in values:
            self.add(value)

    def add_env(self, env: Mapping[str, str], public: Iterable[str] = ()) -> None:
        """Every value of an env file is a secret, unless the runbook marks its key public."""
        open_keys = set(public)
        for key, value in env.items():
            if key not in open_keys:
                self.add(value)

    def mask(self, text: str) -> str:
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        for shape, replacement in _SHAPES:
            text = shape.sub(replacement, text)
        return text

    def untrusted(self, text: str) -> str:
        """Text the bot did not author: masked, and unable to ping anyone or disguise a link."""
        return neutralise(self.mask(text))


_ACTOR_ID = re.compile(r"\b([TE][A-Z0-9]+):([UW][A-Z0-9]+)\b")
_MARKUP = re.compile(r"<(?=[@!#]|[A-Za-z][A-Za-z0-9+.-]*:)")  # <@U…> <!here> <#C…> <http…|…>
_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def neutralise(text: str) -> str:
    """No Slack mention, broadcast or link markup survives: its `<` becomes a look-alike,
    TEAM:USER ids and @channel get an invisible joiner the mention syntax does not match."""
    if not text:
        return text
    text = _MARKUP.sub("‹", text)
    text = _ACTOR_ID.sub(rf"\1:{WORD_JOINER}\2", text)
    return _BROADCAST.sub("@" + WORD_JOINER, text)


GLOBAL_MASKER = Masker()


def mask_everywhere(text: str) -> str:
    """Masks with every live masker (the engine's and the global one) that knows a secret,
    then the secret shapes once."""
    if not text:
        return text
    for masker in list(_ALL_MASKERS):
        pattern = masker._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    return text


_FORMATTER = logging.Formatter()


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Masks a log record's message, traceback and stack in place."""
    if getattr(record, "_cutover_masked", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it; keep nothing unmasked
        message = str(record.msg)
    masked = mask_everywhere(message)
    if masked != message or record.args:
        record.msg, record.args = masked, None
    # A traceback quotes its exception's message: mask the text a formatter would print
    # (formatters reuse exc_text once it is set).
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_everywhere(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_everywhere(record.stack_info)
    record._cutover_masked = True
    return record


class MaskingFilter(logging.Filter):
    """Logging filter: no log line carries a known secret (kept for handlers set up early)."""

    def __init__(self, masker: Masker = GLOBAL_MASKER) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


_install_lock = threading.Lock()
_installed = False


def install_log_masking(masker: Masker = GLOBAL_MASKER) -> None:
    """Masks every log record where it is made: every logger and handler, present or later."""
    global _installed
    with _install_lock:
        if _installed:
            return
        base = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return mask_record(base(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True
    root = logging.getLogger()
    for handler in root.handlers or []:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter(masker))
