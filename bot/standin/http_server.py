"""A loopback HTTP(S) server with settable routes and injectable faults (delay, status, down)."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.standin.certs import CertFiles, server_context

LOOPBACK = "127.0.0.1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_ms: int = 0  # on top of the server's delay_ms


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data), {"Content-Type": "application/json"})


def html_response(text: str, status: int = 200) -> Response:
    return Response(status, text, {"Content-Type": "text/html; charset=utf-8"})


Handler = Callable[[Request], Response]
Route = Handler | Response


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], owner: LoopbackHTTPServer) -> None:
        self.owner = owner
        if ":" in addr[0]:  # an IPv6 literal such as ::1
            self.address_family = socket.AF_INET6
        self.active: set[socket.socket] = set()
        self.active_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        context = self.owner.ssl_context
        conn = request
        if context is not None:
            request.settimeout(5)
            try:
                conn = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused our certificate, or went away
        with self.active_lock:
            self.active.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        finally:
            with self.active_lock:
                self.active.discard(conn)
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def drop_connections(self) -> None:
        with self.active_lock:
            conns = list(self.active)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # broken pipes and aborted handshakes are part of the faults we inject


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK
        # add ~40 ms to every keep-alive response
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        resp = owner.respond(req)
        delay = (owner.delay_ms + resp.delay_ms) / 1000
        if delay > 0 and owner._stopping.wait(delay):
            return  # the server went down while this request hung
        payload = resp.body.encode() if isinstance(resp.body, str) else resp.body
        try:
            self.send_response(resp.status)
            headers = {"Content-Type": "text/plain; charset=utf-8", **resp.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = _dispatch


class LoopbackHTTPServer:
    """A threaded HTTP (or HTTPS, with `tls`) server on 127.0.0.1.

    routes: {(method, path): handler(Request) -> Response, or a fixed Response}.
    Settable at any time: delay_ms (every response waits), fail_status (every
    route answers it), status_overrides {path: status}, down (True refuses
    connections and cuts open ones; False brings it back on the same port).
    """

    scheme = "http"

    def __init__(
        self,
        routes: dict[tuple[str, str], Route] | None = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        tls: CertFiles | tuple[str | Path, str | Path] | None = None,
    ) -> None:
        self.routes: dict[tuple[str, str], Route] = dict(routes or {})
        self.host = host
        self.port = port
        self.delay_ms = 0
        self.fail_status: int | None = None
        self.status_overrides: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) as received
        self.ssl_context: ssl.SSLContext | None = None
        if tls is not None:
            self.ssl_context = server_context(tls[0], tls[1])
            self.scheme = "https"
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    # lifecycle -----------------------------------------------------------------
    def start(self) -> LoopbackHTTPServer:
        with self._lock:
            if self._server is not None:
                return self
            self._stopping.clear()
            self._server = _HTTPServer((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"http-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None:
                return
            self._stopping.set()
            server.shutdown()
            server.server_close()
            server.drop_connections()
            if thread is not None:
                thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def down(self) -> bool:
        return not self.running

    @down.setter
    def down(self, value: bool) -> None:
        if value:
            self.stop()
        else:
            self.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def __enter__(self) -> LoopbackHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # routing -------------------------------------------------------------------
    def route(self, method: str, path: str, handler: Route) -> None:
        self.routes[(method.upper(), path)] = handler

    def respond(self, req: Request) -> Response:
        self.requests.append((req.method, req.path))
        if self.fail_status is not None:
            return json_response(
                {"statusCode": self.fail_status, "message": "injected"}, self.fail_status
            )
        if req.path in self.status_overrides:
            status = self.status_overrides[req.path]
            return json_response({"statusCode": status, "message": "injected"}, status)
        route = self.routes.get((req.method, req.path))
        if route is None and req.method == "HEAD":
            route = self.routes.get(("GET", req.path))
        if route is None:
            if any(p == req.path for _, p in self.routes):
                return json_response({"statusCode": 405, "message": "Method Not Allowed"}, 405)
            return json_response({"statusCode": 404, "message": "Not Found"}, 404)
        return route if isinstance(route, Response) else route(req)


def tls_server(
    files: CertFiles | tuple[str | Path, str | Path],
    routes: dict[tuple[str, str], Route] | None = None,
    *,
    host: str = LOOPBACK,
) -> LoopbackHTTPServer:
    """A started HTTPS server on `host` (127.0.0.1, or ::1) presenting `files` (GET / → 200 "ok").

    `files.cert` may hold a chain (leaf first): the server sends all of it.
    """
    all_routes: dict[tuple[str, str], Route] = {("GET", "/"): Response(200, "ok")}
    all_routes.update(routes or {})
    return LoopbackHTTPServer(all_routes, host=host, tls=files).start()
