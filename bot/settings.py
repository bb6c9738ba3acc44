"""Every knob, from environment variables or a .env file (pydantic-settings)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RUNBOOK = Path(__file__).resolve().parent.parent / "runbooks" / "nostrmaxi.yml"

URL_FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class DatabaseURLError(ValueError):
    """A database URL that is malformed or names a database the bot does not run on."""


# A database URL as SQLAlchemy reads one (sqlalchemy.engine.url._parse_url), parsed here with
# the standard library so that settings, and what imports them (the run page's tokens), need
# no database library: the same pattern, the same unquoting, the same rendering.
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


class _Unparsable(ValueError):
    """Not a database URL at all (SQLAlchemy's ArgumentError)."""


@dataclass(frozen=True)
class DatabaseURL:
    """The parts of a database URL (`drivername://username:password@host:port/database?query`)."""

    drivername: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        """Raises _Unparsable when `url` is no URL, ValueError when its port is no number
        (an empty one included, as SQLAlchemy does)."""
        m = _URL.match(url)
        if m is None:
            raise _Unparsable("Could not parse SQLAlchemy URL from given URL string")
        parts = m.groupdict()
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(parts["query"] or ""):
            query.setdefault(key, []).append(value)
        text = {k: unquote(parts[k]) if parts[k] is not None else None for k in _QUOTED}
        return cls(
            parts["name"],
            text["username"],
            text["password"],
            parts["ipv4host"] or parts["ipv6host"],
            int(parts["port"]) if parts["port"] is not None else None,  # "": ValueError
            text["database"],
            query,
        )

    def masked(self) -> str:
        """The URL with its password replaced by *** (as SQLAlchemy renders it)."""
        s = self.drivername + "://"
        if self.username is not None:
            s += quote(self.username, safe=" +")
            if self.password is not None:
                s += ":***"
            s += "@"
        if self.host is not None:
            s += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            s += f":{self.port}"
        if self.database is not None:
            s += "/" + quote(self.database, safe=" +/")
        if self.query:
            s += "?" + "&".join(
                f"{quote_plus(k)}={quote_plus(v)}"
                for k in sorted(self.query)
                for v in self.query[k]
            )
        return s


_QUOTED = ("username", "password", "database")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, also when the URL does not parse."""
    try:
        return DatabaseURL.parse(url).masked()
    except ValueError:
        masked = re.sub(r"^([^:/@]*://[^:/@]*:).*@", r"\1***@", url)
        return re.sub(r"(password=)\S+", r"\1***", masked)


def normalize_database_url(url: str) -> str:
    """The SQLAlchemy URL the bot uses for `url`; DatabaseURLError when it cannot use it.

    postgres://… and postgresql://… (what most hosts hand out) become postgresql+psycopg://…,
    the driver the bot ships with; sqlite:///PATH stays as it is.
    """
    url = url.strip()
    fix = f"write it as {URL_FORMS} (--database-url or CUTOVER_DATABASE_URL)"
    if "://" not in url:
        raise DatabaseURLError(f"database URL {mask_url(url)!r} is malformed: {fix}")
    try:
        parsed = DatabaseURL.parse(url)
    except _Unparsable:
        raise DatabaseURLError(f"database URL {mask_url(url)!r} is malformed: {fix}") from None
    except ValueError:  # the port is not a number
        raise DatabaseURLError(
            f"database URL {mask_url(url)!r} is malformed (the port must be a number): {fix}"
        ) from None
    scheme = parsed.drivername
    backend, _, driver = scheme.partition("+")
    if backend in ("postgres", "postgresql") and driver in ("", "psycopg"):
        return "postgresql+psycopg" + url[url.index("://") :]
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return url
    if backend in ("postgres", "postgresql"):
        raise DatabaseURLError(
            f"database URL {mask_url(url)!r}: driver {driver!r} is not installed; "
            "use postgresql:// (the bot connects with psycopg 3)"
        )
    raise DatabaseURLError(
        f"database URL {mask_url(url)!r}: {backend!r} is not supported; the bot runs on "
        f"SQLite or PostgreSQL: {fix}"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CUTOVER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///cutover.db",
        description="sqlite:///file.db (embedded default) or postgresql://… (postgres:// too)",
    )
    runbook: Path = Field(default=DEFAULT_RUNBOOK, description="Path of the runbook YAML file")
    http_port: int = Field(default=3000, description="Port of `cutover serve` in HTTP mode")
    http_host: str = Field(default="0.0.0.0", description="Address `cutover serve` listens on")
    socket_down_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Socket Mode: /healthz answers 503 once the connection to Slack has been "
        "down longer than this (the client reconnects by itself; Slack recycles connections)",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address /metrics listens on: loopback by default, never the Slack port "
        "(Prometheus on another host or container: an address it reaches, never published)",
    )
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of /metrics; 0 turns it off"
    )
    log_level: str = Field(default="INFO", description="One of " + ", ".join(LOG_LEVELS))
    log_format: str = Field(
        default="text", description="text (one line each) or json (one JSON object each)"
    )
    workers: int = Field(default=4, ge=1, le=32, description="Phases executing at once")
    scheduler_enabled: bool = Field(
        default=True, description="Run the scheduler (notices, gate timeouts, monitoring)"
    )
    scheduler_tick_seconds: float = Field(
        default=30.0, gt=0, le=300, description="How often the leader scans for due work"
    )
    scheduler_elect_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How often a standby tries to become leader"
    )
    notice_lease_seconds: float = Field(
        default=300.0, gt=0, description="A claimed notice not confirmed this long is re-sent"
    )
    replica_id: str | None = Field(
        default=None,
        description="This replica's name, stable across its restarts (default: the hostname). "
        "Give each `cutover serve` sharing one database its own",
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A replica executing a phase renews its lease this often ×3; another "
        "replica takes over a phase whose lease lapsed (within about 2× this)",
    )
    notice_grace_seconds: float = Field(
        default=120.0, ge=0, description="A notice sent later than this after its time says so"
    )

    audit_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) that signs every audit row; make one with "
        "`cutover audit keygen`. Keep it outside the database, readable by the bot's user only",
    )
    audit_checkpoint_file: Path | None = Field(
        default=None,
        description="Where the bot keeps the last audit chain head it signed and posted, to "
        "refuse a trail cut shorter (default: the key file's name + .head, next to it); the "
        "bot's user must be able to write its folder",
    )
    audit_checkpoint_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="How often the checkpoint moves forward"
    )
    audit_allow_unsigned: bool = Field(
        default=False,
        description="Start without CUTOVER_AUDIT_KEY_FILE although the trail was signed (the "
        "dropped key is recorded in the trail; later rows are reported unsigned)",
    )

    step_user: str | None = Field(
        default=None,
        description="The unprivileged user (name or uid) a runbook's run/command steps run "
        "as, so they cannot read the bot's environment, memory, key file or settings. Needs "
        "the bot started as root; a root bot refuses to run steps without one",
    )

    step_groups: str | None = Field(
        default=None,
        description="Extra groups (names or gids, comma-separated) of the step user, e.g. the "
        "Docker socket's group when the runbook's programs run `docker compose` (which makes "
        "them root on the host: docs/hardening.md)",
    )

    public_url: str | None = Field(
        default=None,
        description="The address people reach `cutover serve` at, e.g. https://cutover.example"
        ".com (behind a reverse proxy: docs/run-page.md). Set, with CUTOVER_RUNPAGE_SECRET, "
        "Slack messages carry a signed link to each run's page",
    )
    runpage_secret: SecretStr | None = Field(
        default=None,
        description="The secret that signs run page links (HMAC-SHA256), at least 32 "
        "characters; unset, GET /runs/N answers 403 to everyone. Changing it revokes every link",
    )
    runpage_link_days: float = Field(
        default=7.0, gt=0, le=366, description="How long a run page link opens its page"
    )

    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "CUTOVER_SLACK_BOT_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "CUTOVER_SLACK_SIGNING_SECRET"),
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "CUTOVER_SLACK_APP_TOKEN")
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        validation_alias=AliasChoices("SLACK_API_URL", "CUTOVER_SLACK_API_URL"),
    )

    @field_validator("public_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
            raise ValueError(
                f"{value!r} is not an http(s) URL; write e.g. https://cutover.example.com"
            )
        return value.strip().rstrip("/")

    @field_validator("runpage_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "too short: use at least 32 random characters, e.g. `openssl rand -hex 32`"
            )
        return value

    @field_validator("log_format")
    @classmethod
    def _known_log_format(cls, value: str) -> str:
        if value.lower() not in ("text", "json"):
            raise ValueError(f"{value!r} is not a log format; use text or json")
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return value.upper()


def secret_settings(settings: Settings) -> list[str]:
    """The bot's own secrets: its Slack tokens and signing secret, the run page secret, its
    database password."""
    found = [
        v.get_secret_value()
        for v in (
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.runpage_secret,
        )
        if v is not None
    ]
    try:
        password = DatabaseURL.parse(settings.database_url).password
    except Exception:  # a malformed URL is reported where it is opened
        password = None
    if password:
        found.append(str(password))
    return found
