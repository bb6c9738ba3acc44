"""The NostrMaxi endpoints the runbook's smoke tests hit, and a .env its secrets rules pass."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from pathlib import Path
from typing import Any

from bot.standin.certs import CertFiles
from bot.standin.http_server import (
    LOOPBACK,
    LoopbackHTTPServer,
    Request,
    Response,
    html_response,
    json_response,
)

DEFAULT_TIERS: list[dict[str, Any]] = [
    {"tier": "FREE", "name": "Free", "priceUsd": 0, "features": ["NIP-05 on shared domain"]},
    {"tier": "PRO", "name": "Pro", "priceUsd": 7, "features": ["Custom NIP-05", "Analytics"]},
    {"tier": "BUSINESS", "name": "Business", "priceUsd": 29, "features": ["Team seats"]},
    {"tier": "LIFETIME", "name": "Lifetime", "priceUsd": 199, "features": ["Everything, forever"]},
]

SWAGGER_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8"><title>Swagger UI</title>
<link rel="stylesheet" type="text/css" href="./swagger-ui.css"></head>
<body><div id="swagger-ui"></div><script src="./swagger-ui-bundle.js"></script></body></html>
"""


class NostrMaxiStandin(LoopbackHTTPServer):
    """The NostrMaxi endpoints the runbook's smoke tests hit.

    GET /health, GET /.well-known/nostr.json?name=, GET /api/docs,
    POST /api/v1/auth/challenge, GET /api/v1/subscriptions/tiers.
    Settable: delay_ms, fail_status, status_overrides, down, health_status,
    names {name: hex pubkey}, tiers, challenge_status (real NestJS @Post answers 201
    unless the controller says @HttpCode(200); the stand-in defaults to 200).
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        tls: CertFiles | tuple[str | Path, str | Path] | None = None,
    ) -> None:
        super().__init__(host=host, port=port, tls=tls)
        self.health_status = "ok"
        self.names: dict[str, str] = {}
        self.tiers: list[dict[str, Any]] = [dict(t) for t in DEFAULT_TIERS]
        self.challenge_status = 200
        self.challenges: list[str] = []
        self.started_at = time.monotonic()
        self.routes.update(
            {
                ("GET", "/health"): self._health,
                ("GET", "/.well-known/nostr.json"): self._nip05,
                ("GET", "/api/docs"): html_response(SWAGGER_HTML),
                ("POST", "/api/v1/auth/challenge"): self._challenge,
                ("GET", "/api/v1/subscriptions/tiers"): self._tiers,
            }
        )

    def _health(self, req: Request) -> Response:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = {
            "status": self.health_status,
            "timestamp": now,
            "uptime": round(time.monotonic() - self.started_at, 2),
        }
        return json_response(body, 200 if self.health_status == "ok" else 503)

    def _nip05(self, req: Request) -> Response:
        name = (req.query.get("name") or [""])[0].lower()
        names = {name: self.names[name]} if name in self.names else {}
        return json_response({"names": names})

    def _challenge(self, req: Request) -> Response:
        challenge = secrets.token_hex(32)
        self.challenges.append(challenge)
        return json_response(
            {"challenge": challenge, "expiresAt": int(time.time()) + 300}, self.challenge_status
        )

    def _tiers(self, req: Request) -> Response:
        return json_response(self.tiers)


def nostrmaxi_standin(port: int = 0, *, tls: CertFiles | None = None) -> NostrMaxiStandin:
    """A started NostrMaxi stand-in; use as `with nostrmaxi_standin() as app:` or stop() it."""
    app = NostrMaxiStandin(port=port, tls=tls)
    app.start()
    return app


def nostrmaxi_env_values(domain: str = "localhost") -> dict[str, str]:
    """A NostrMaxi .env with fresh random secrets that pass the runbook's secrets rules."""
    return {
        "DOMAIN": domain,
        "PAYMENTS_PROVIDER": "btcpay",
        "BTCPAY_URL": f"https://btcpay.{domain}",
        "BTCPAY_API_KEY": secrets.token_hex(20),
        "BTCPAY_STORE_ID": secrets.token_hex(22),
        "ADMIN_PUBKEYS": secrets.token_hex(32),
        "JWT_SECRET": secrets.token_urlsafe(64),
        "WEBHOOK_SECRET": secrets.token_urlsafe(32),
    }
