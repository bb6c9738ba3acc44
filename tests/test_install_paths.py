"""The documented install paths, from the files as shipped: manifest.yml, the compose file and
the env example agree on how Slack reaches the bot, in each mode."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.settings import Settings
from bot.slack.server import mode
from phases.secrets import parse_env_file

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PATH = "/slack/events"


def manifest(text: str | None = None) -> dict[str, Any]:
    return yaml.safe_load(text if text is not None else (ROOT / "manifest.yml").read_text())


def shipped_env() -> dict[str, str]:
    return parse_env_file(str(ROOT / "deploy" / "cutover.env.example"))


def settings_from(env: dict[str, str]) -> Settings:
    slack = {k: v for k, v in env.items() if k.startswith("SLACK_")}
    return Settings(_env_file=None, **slack)  # type: ignore[call-arg]


def http_manifest() -> dict[str, Any]:
    """The manifest as docs/slack.md's HTTP mode says to change it: socket mode off, every
    line marked "HTTP mode only" uncommented."""
    lines = (ROOT / "manifest.yml").read_text().splitlines()
    out: list[str] = []
    uncomment = False
    for line in lines:
        if uncomment and line.lstrip().startswith("# "):
            line = line.replace("# ", "", 1)
            uncomment = False
        elif "HTTP mode only" in line:
            uncomment = True
        out.append(line.replace("socket_mode_enabled: true", "socket_mode_enabled: false"))
    return manifest("\n".join(out))


def request_urls(m: dict[str, Any]) -> dict[str, str | None]:
    settings = m["settings"]
    return {
        "slash command": m["features"]["slash_commands"][0].get("url"),
        "interactivity": settings["interactivity"].get("request_url"),
        "events (Home tab)": settings["event_subscriptions"].get("request_url"),
    }


def test_the_shipped_manifest_env_example_and_bot_all_use_socket_mode() -> None:
    m = manifest()
    assert m["settings"]["socket_mode_enabled"] is True
    env = shipped_env()
    assert env.get("SLACK_APP_TOKEN", "").startswith("xapp-"), (
        "the manifest turns Socket Mode on: the env example must set SLACK_APP_TOKEN"
    )
    assert mode(settings_from(env)) == "socket"
    # Socket Mode needs no request URL; a stray one would make Slack call a host nobody set up.
    assert set(request_urls(m).values()) == {None}


def test_the_documented_http_mode_gives_slack_a_url_for_every_kind_of_request() -> None:
    m = http_manifest()
    assert m["settings"]["socket_mode_enabled"] is False
    urls = request_urls(m)
    assert all(u and u.startswith("https://") and u.endswith(EVENTS_PATH) for u in urls.values())
    assert len(set(urls.values())) == 1, urls  # one address serves them all
    env = {k: v for k, v in shipped_env().items() if k != "SLACK_APP_TOKEN"}
    assert mode(settings_from(env)) == "http"
    assert env.get("SLACK_SIGNING_SECRET"), "HTTP mode verifies Slack's signature"
    docs = (ROOT / "docs" / "slack.md").read_text()
    for key in ("interactivity.request_url", "event_subscriptions.request_url", "`url`"):
        assert key in docs, f"docs/slack.md's HTTP mode does not name {key}"


def test_the_compose_file_reads_the_env_example_and_publishes_the_events_port() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    bot = compose["services"]["bot"]
    assert bot["env_file"] in ("cutover.env", ["cutover.env"])
    port = str(bot["environment"]["CUTOVER_HTTP_PORT"])
    assert any(re.fullmatch(rf"(\d+:)?{port}", str(p)) for p in bot["ports"])


def test_the_manifest_never_enables_token_rotation_and_installs_in_one_workspace() -> None:
    settings = manifest()["settings"]
    assert settings["token_rotation_enabled"] is False  # irreversible; 12 h tokens
    assert settings["org_deploy_enabled"] is False
    docs = (ROOT / "docs" / "slack.md").read_text()
    assert "org_deploy_enabled: false" in docs and "token_rotation_enabled: false" in docs


def test_the_usage_hint_names_every_command_the_help_lists() -> None:
    from commands.parser import USAGE

    hint = manifest()["features"]["slash_commands"][0]["usage_hint"]
    listed = {line.split()[1] for line in USAGE.splitlines() if line.startswith("  /cutover ")}
    named: set[str] = set()
    for word in (w.strip() for w in hint.split("|")):  # "[un]lock" names lock and unlock
        named |= {word.replace("[un]", ""), word.replace("[un]", "un")}
    assert listed <= named, f"missing from the usage hint: {sorted(listed - named)}"
    assert len(hint) <= 120  # one line in Slack's command picker
