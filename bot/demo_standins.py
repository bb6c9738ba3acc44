"""What `cutover demo` adds to the NostrMaxi stand-ins to show Phases 8 and 9 with no Docker.

- `DemoClock`: the demo's clock, the wall's plus the minutes `wait N` let pass, so a
  30-minute monitoring window is watched in seconds. The bot, its steps and these stand-ins
  all read it, so every time the bot prints (rounds, the record's durations) is on it.
- `BackendLogs`: the Docker Engine API, as far as the `logs` check reads it (version,
  containers of a compose project, one container's log since a time): one running
  container, `PROJECT-backend-1`, whose log holds NostrMaxi's own lines, written when the
  backend stand-in gets a payment webhook (src/payments/payments.service.ts,
  src/common/middleware/security.middleware.ts of github.com/imp0stor/nostrmaxi).
- `statuspage_standin`: a Statuspage API (PATCH a component's status, OAuth key) that
  answers the component as it now is.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
import time
import uuid
from typing import Any

from bot.standin import (
    LoopbackHTTPServer,
    NostrMaxiStandin,
    Request,
    Response,
    json_response,
)

API_VERSION = "1.41"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class DemoClock:
    """The wall clock plus the minutes `advance` let pass; waits are real."""

    def __init__(self) -> None:
        self._ahead = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._ahead

    def monotonic(self) -> float:
        return time.monotonic() + self._ahead

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def advance(self, minutes: float) -> None:
        with self._lock:
            self._ahead += minutes * 60


class BackendLogs(LoopbackHTTPServer):
    """One running backend container of `project` and its log, over the Docker Engine API."""

    def __init__(self, project: str, clock: DemoClock) -> None:
        super().__init__()
        self.project, self.clock = project, clock
        self.name = f"{project}-backend-1"
        self.id = uuid.uuid4().hex + uuid.uuid4().hex
        self.labels = {PROJECT_LABEL: project, SERVICE_LABEL: "backend"}
        self.lines: list[tuple[float, str]] = []
        self._lines_lock = threading.Lock()

    def nest(self, level: str, context: str, text: str) -> None:
        """A line as NestJS's Logger prints it."""
        at = dt.datetime.fromtimestamp(self.clock.now()).strftime("%m/%d/%Y, %I:%M:%S %p")
        self.write(f"[Nest] 1  - {at} {level:>7} [{context}] {text}")

    def write(self, line: str) -> None:
        with self._lines_lock:
            self.lines.append((self.clock.now(), line))

    def respond(self, req: Request) -> Response:
        path = re.sub(r"^/v[0-9.]+", "", req.path)
        if path == "/_ping":
            return Response(200, "OK", {"Content-Type": "text/plain"})
        if path == "/version":
            return json_response(
                {"ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "Version": "demo"}
            )
        if path == "/containers/json":
            wanted = json.loads((req.query.get("filters") or ["{}"])[0]).get("label", [])
            mine = {f"{k}={v}" for k, v in self.labels.items()} | set(self.labels)
            if not all(w in mine for w in wanted):
                return json_response([])
            return json_response([{"Id": self.id, "Names": [f"/{self.name}"], **self._state()}])
        if path == f"/containers/{self.id}/json":
            return json_response(
                {
                    "Id": self.id,
                    "Name": f"/{self.name}",
                    "Config": {"Labels": self.labels, "Tty": True, "Image": "nostrmaxi-backend"},
                    "HostConfig": {},
                    "State": {"Status": "running", "Running": True},
                }
            )
        if path == f"/containers/{self.id}/logs":
            since = float((req.query.get("since") or ["0"])[0])
            with self._lines_lock:
                lines = [text for at, text in self.lines if at >= since]
            tail = (req.query.get("tail") or ["all"])[0]
            if tail.isdigit():
                lines = lines[-int(tail) :] if int(tail) else []
            body = "".join(f"{line}\n" for line in lines)
            return Response(200, body, {"Content-Type": "application/vnd.docker.raw-stream"})
        return json_response({"message": f"page not found: {req.path}"}, 404)

    def _state(self) -> dict[str, Any]:
        return {"Labels": self.labels, "State": "running", "Status": "Up", "Image": "backend"}


def payment_webhook(app: NostrMaxiStandin, logs: BackendLogs, secret: str) -> None:
    """POST /api/v1/payments/webhook on the backend stand-in, as NostrMaxi answers it: a
    delivery signed with `secret` confirms a PRO payment (PaymentsService.processPayment's
    line); any other is turned down (handleWebhook's WARN, the request log's 400)."""

    def handle(req: Request) -> Response:
        if req.headers.get("x-webhook-signature") != secret:
            logs.nest("WARN", "PaymentsService", "Invalid webhook signature")
            at = dt.datetime.fromtimestamp(logs.clock.now(), dt.UTC)
            stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            logs.write(f"[{stamp}] POST /api/v1/payments/webhook 400 3ms")
            return json_response({"statusCode": 400, "message": "Invalid signature"}, 400)
        until = dt.datetime.fromtimestamp(logs.clock.now() + 30 * 86400, dt.UTC)
        payment = "cl" + secrets.token_hex(11)
        logs.nest(
            "LOG",
            "PaymentsService",
            f"Payment {payment} processed: PRO tier until {until:%a %b %d %Y %H:%M:%S} GMT+0000 "
            "(Coordinated Universal Time)",
        )
        return json_response({"success": True}, 201)

    app.route("POST", "/api/v1/payments/webhook", handle)


def statuspage_standin(page: str, component: str, name: str, key: str) -> LoopbackHTTPServer:
    """A started Statuspage API with one component; the demo's Phase 8 marks it operational."""
    server = LoopbackHTTPServer()
    state = {"id": component, "name": name, "status": "major_outage"}

    def patch(req: Request) -> Response:
        if req.headers.get("authorization") != f"OAuth {key}":
            return json_response({"error": "Could not authenticate"}, 401)
        asked = (req.json() or {}).get("component", {}).get("status")
        state["status"] = str(asked)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return json_response({**state, "updated_at": now})

    server.route("PATCH", f"/v1/pages/{page}/components/{component}", patch)
    server.start()
    return server
