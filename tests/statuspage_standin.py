"""A local server that answers like the Statuspage REST API's component update.

`PATCH /v1/pages/{page_id}/components/{component_id}` with `Authorization: OAuth <key>` and
`{"component": {"status": ...}}`: 401 `{"error": "Could not authenticate"}` for a missing or
wrong key, 404 for an unknown page or component, 422 for a status not in its list, else 200
with the component as it now is (id, page_id, name, status, updated_at).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bot.standin import LoopbackHTTPServer, Request, Response, json_response

STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
_PATH = re.compile(r"^/v1/pages/([^/]+)/components/([^/]+)$")


class StatuspageStandin(LoopbackHTTPServer):
    def __init__(self, page_id: str, components: dict[str, str], api_key: str) -> None:
        super().__init__()
        self.page_id = page_id
        self.api_key = api_key
        # component id -> {"name", "status"}; starts under maintenance, as during a cutover
        self.components: dict[str, dict[str, Any]] = {
            cid: {"name": name, "status": "under_maintenance"} for cid, name in components.items()
        }
        self.calls: list[tuple[str, str, str | None]] = []  # method, path, Authorization

    def respond(self, req: Request) -> Response:
        self.calls.append((req.method, req.path, req.headers.get("authorization")))
        m = _PATH.match(req.path)
        if m is None:
            return json_response({"error": "Not found"}, 404)
        if req.method not in ("PATCH", "PUT"):
            return json_response({"error": "Method not allowed"}, 405)
        if req.headers.get("authorization") != f"OAuth {self.api_key}":
            return json_response({"error": "Could not authenticate"}, 401)
        page_id, component_id = m.groups()
        component = self.components.get(component_id)
        if page_id != self.page_id or component is None:
            return json_response({"error": "The requested resource could not be found."}, 404)
        body = req.json()
        status = body.get("component", {}).get("status") if isinstance(body, dict) else None
        if status not in STATUSES:
            return json_response({"error": ["Status is not included in the list"]}, 422)
        component["status"] = status
        return json_response(
            {
                "id": component_id,
                "page_id": page_id,
                "name": component["name"],
                "status": status,
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
