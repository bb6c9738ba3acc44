"""Web API calls go over kept-alive connections: one TCP (and, against slack.com, TLS)
handshake for many posts, not one per call. A connection Slack closes is replaced, and
Slack's errors still reach the bot as they did through urllib."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest

from bot.slack.outbox import RateLimited, Refused
from bot.slack.transport import SlackTransport, make_client, retry_handlers
from bot.standin.certs import make_ca, make_leaf, server_context
from phases.checks.base import SystemClock

TOKEN = "xoxb-keepalive-test-token"  # noqa: S105 (a local server's)


class _Slack(ThreadingHTTPServer):
    """An HTTP/1.1 server that counts its connections and answers what a test queued (else
    `ok`): the transport's view of Slack, to see connections reused and errors mapped. It
    is not a stand-in for Slack's rules; standins/slack.py is, and the whole suite's Slack
    tests run the kept-alive client against it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.calls: list[str] = []
        self.answers: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # as Slack's edge: connections are kept alive
    server: _Slack

    def setup(self) -> None:
        super().setup()
        # As a web server does: the answer's body is not held back behind its headers
        # (Nagle's algorithm, against the client's delayed ACK: 40 ms per kept-alive call).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections += 1

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.calls.append(self.path)
            status, answer, headers = (
                self.server.answers.pop(0)
                if self.server.answers
                else (200, {"ok": True, "channel": "C0KEEPALIVE", "ts": "1.000100"}, {})
            )
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        if headers.get("Connection") == "close":
            self.close_connection = True

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def slack(tls: ssl.SSLContext | None = None) -> Iterator[tuple[_Slack, SlackTransport]]:
    server = _Slack()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    url = f"{scheme}://127.0.0.1:{server.server_address[1]}/api/"
    client = make_client(TOKEN, url, retry_handlers(backoff=0.01))
    try:
        yield server, SlackTransport(client, SystemClock())
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_web_api_calls_share_one_connection() -> None:
    with slack() as (server, transport):
        for n in range(5):
            answer = transport.call("chat_postMessage", channel="C0KEEPALIVE", text=f"post {n}")
            assert answer["ok"] is True
    assert server.calls == ["/api/chat.postMessage"] * 5
    assert server.connections == 1


def test_a_connection_slack_closes_is_replaced_by_the_next_call() -> None:
    with slack() as (server, transport):
        server.answers.append((200, {"ok": True, "ts": "1.1"}, {"Connection": "close"}))
        assert transport.call("chat_postMessage", channel="C0KEEPALIVE", text="one")["ts"] == "1.1"
        assert transport.call("chat_postMessage", channel="C0KEEPALIVE", text="two")["ok"] is True
    assert len(server.calls) == 2 and server.connections == 2


def test_a_429_still_says_how_long_to_wait() -> None:
    with slack() as (server, transport):
        server.answers.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}))
        with pytest.raises(RateLimited) as caught:
            transport.call("chat_postMessage", channel="C0KEEPALIVE", text="one")
    assert caught.value.retry_after == 7
    assert len(server.calls) == 1  # never retried inside `call` (a lock may be held)


def test_an_error_slack_answers_is_still_a_refusal() -> None:
    with slack() as (server, transport):
        server.answers.append((200, {"ok": False, "error": "msg_blocks_too_long"}, {}))
        with pytest.raises(Refused, match="msg_blocks_too_long"):
            transport.call("chat_postMessage", channel="C0KEEPALIVE", text="one")


def test_a_server_error_is_retried_on_the_kept_connection() -> None:
    with slack() as (server, transport):
        server.answers.append((500, {"ok": False, "error": "internal_error"}, {}))
        assert transport.call("chat_postMessage", channel="C0KEEPALIVE", text="one")["ok"] is True
    assert len(server.calls) == 2 and server.connections == 1


def test_tls_is_verified_against_the_systems_ca_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As urllib's default context did: the system's store (SSL_CERT_FILE honoured), so a CA
    a company installed there is trusted, and a server no trusted CA signed is refused."""
    ca = make_ca(tmp_path)
    leaf = make_leaf(tmp_path, ca, "127.0.0.1", 30, sans=["127.0.0.1"])
    with (
        slack(server_context(leaf.cert, leaf.key)) as (server, transport),
        pytest.raises(URLError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        transport.call("chat_postMessage", channel="C0KEEPALIVE", text="untrusted")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
    with slack(server_context(leaf.cert, leaf.key)) as (server, transport):
        assert transport.call("chat_postMessage", channel="C0KEEPALIVE", text="one")["ok"]
        assert transport.call("chat_postMessage", channel="C0KEEPALIVE", text="two")["ok"]
    assert server.connections == 1
