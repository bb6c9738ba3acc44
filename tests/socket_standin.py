"""Slack's Socket Mode side, locally: `apps.connections.open` on the Web API stand-in answers
with a ws:// URL of this server, which says hello, sends envelopes and collects their acks.

Envelopes as Slack sends them (python-slack-sdk's Socket Mode tests and bolt-python's mocks):
`{"envelope_id", "type": "slash_commands" | "interactive", "payload", "accepts_response_payload"}`;
the app answers each with `{"envelope_id", "payload"?}` on the same socket.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from standins.slack import SlackStandIn
from tests.slack_harness import wait_for


class SocketModeStandIn:
    def __init__(self, web: SlackStandIn, app_token: str) -> None:
        self.web = web
        self.acks: dict[str, dict[str, Any]] = {}
        self._connections: list[ServerConnection] = []
        self._lock = threading.Lock()
        self._server: Server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        port = self._server.socket.getsockname()[1]
        web.app_token, web.socket_url = app_token, f"ws://127.0.0.1:{port}/link"

    def start(self) -> SocketModeStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def drop(self) -> None:
        """Slack's side goes away: every connection closed, no new one accepted here (a
        client that asks apps.connections.open again is sent to this dead address)."""
        self._server.shutdown()
        self._server.socket.close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            conn.close()

    def connected(self) -> bool:
        with self._lock:
            return bool(self._connections)

    def _handle(self, conn: ServerConnection) -> None:
        conn.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "standin", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": "ASTANDIN"},
                }
            )
        )
        with self._lock:
            self._connections.append(conn)
        try:
            for raw in conn:
                msg = json.loads(raw)
                if isinstance(msg, dict) and "envelope_id" in msg:
                    with self._lock:
                        self.acks[msg["envelope_id"]] = msg
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.remove(conn)

    def send(self, kind: str, payload: dict[str, Any], *, response: bool = False) -> dict[str, Any]:
        """Sends one envelope and returns the app's ack (waited for, as Slack does 3 s)."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": response,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        with self._lock:
            conn = self._connections[-1]
        conn.send(json.dumps(envelope))
        return wait_for(lambda: self.acks.get(envelope_id), f"the ack of {kind}", timeout=3.0)
