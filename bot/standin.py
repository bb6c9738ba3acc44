"""Local stand-ins of a NostrMaxi deployment: an HTTP(S) server with its endpoints,
certificates from a throwaway CA, and a DNS server for its domain.

`cutover demo` runs the console against these so a newcomer can try a whole
cutover on one machine; the tests use the same servers as real loopback peers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import re
import secrets
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- HTTP


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


# --------------------------------------------------------------------------- NostrMaxi

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


# --------------------------------------------------------------------------- TLS


class CertFiles(NamedTuple):
    cert: Path
    key: Path


class CA(NamedTuple):
    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "cert"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cutover-bot tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_ca(
    tmp_path: Path, cn: str = "Cutover Test CA", days: int = 3650, issuer: CA | None = None
) -> CA:
    """A CA; pass it as `issuer` to make_cert / make_leaf, its .cert as ca_file.

    Self-signed (a root) when issuer is None, else an intermediate signed by `issuer`.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    signer_key = issuer.private_key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.certificate.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
            critical=True,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    stem = f"{_slug(cn)}-{uuid.uuid4().hex[:6]}"
    cert_path, key_path = tmp_path / f"{stem}.crt", tmp_path / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return CA(cert_path, key_path, cert, key)


def make_cert(
    tmp_path: Path,
    cn: str,
    days: int,
    issuer: CA | None = None,
    *,
    sans: list[str] | None = None,
) -> CertFiles:
    """A server certificate for `cn` valid for `days` more days (negative: expired that long ago).

    Self-signed when issuer is None. SANs default to [cn]; IP literals become IP SANs.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=days)
    not_before = min(now, not_after) - dt.timedelta(days=30)
    alt_names: list[x509.GeneralName] = []
    for san in sans if sans is not None else [cn]:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            alt_names.append(x509.DNSName(san))
    signer_key: ec.EllipticCurvePrivateKey = issuer.private_key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.certificate.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    cert = builder.sign(signer_key, hashes.SHA256())
    stem = f"{_slug(cn)}-{days}d-{uuid.uuid4().hex[:6]}"
    cert_path, key_path = tmp_path / f"{stem}.pem", tmp_path / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return CertFiles(cert_path, key_path)


def make_leaf(
    tmp_path: Path, ca: CA, cn: str, days: int, *, sans: list[str] | None = None
) -> CertFiles:
    return make_cert(tmp_path, cn, days, issuer=ca, sans=sans)


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return context


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


# --------------------------------------------------------------------------- DNS


class LoopbackDNSServer:
    """An authoritative-style DNS server over UDP and TCP on one loopback port.

    records: {name: ip or [ips]} (A or AAAA by address family; names without the
    final dot, any case). Names in `servfail` answer SERVFAIL, names in `drop`
    get no answer at all (the client times out); "*" in either set means every
    name. Unknown names answer NXDOMAIN. All are settable while running.
    """

    def __init__(
        self,
        records: dict[str, str | list[str]] | None = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        ttl: int = 60,
    ) -> None:
        self.records: dict[str, str | list[str]] = dict(records or {})
        self.servfail: set[str] = set()
        self.drop: set[str] = set()
        self.host = host
        self.port = port
        self.ttl = ttl
        self.queries: list[tuple[str, str, str]] = []  # (transport, name, type)
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def address(self) -> str:
        """The resolver entry for the `dns` check: "127.0.0.1:PORT"."""
        return f"{self.host}:{self.port}"

    def start(self) -> LoopbackDNSServer:
        if self._udp is not None:
            return self
        self._stopping.clear()
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                if self.port:
                    raise
                continue
            break
        else:  # pragma: no cover
            raise RuntimeError("no free port for UDP and TCP")
        tcp.listen(16)
        udp.settimeout(0.05)
        tcp.settimeout(0.05)
        self._udp, self._tcp, self.port = udp, tcp, port
        self._threads = [
            threading.Thread(target=self._serve_udp, name=f"dns-udp-{port}", daemon=True),
            threading.Thread(target=self._serve_tcp, name=f"dns-tcp-{port}", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        if self._udp is None:
            return
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=2)
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()
        self._udp = self._tcp = None

    def __enter__(self) -> LoopbackDNSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _lookup(self, name: str) -> list[str] | None:
        value = self.records.get(name)
        if value is None:
            for key, v in self.records.items():
                if key.lower().rstrip(".") == name:
                    value = v
                    break
        if value is None:
            return None
        return [value] if isinstance(value, str) else list(value)

    def answer(self, wire: bytes, transport: str = "udp") -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((transport, name, rdtype))
        if name in self.drop or "*" in self.drop:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if name in self.servfail or "*" in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        addresses = self._lookup(name)
        if addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        want = {"A": 4, "AAAA": 6}.get(rdtype)
        matching = [a for a in addresses if want and ipaddress.ip_address(a).version == want]
        if matching:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, self.ttl, dns.rdataclass.IN, question.rdtype, matching
                )
            )
        return response.to_wire()

    def _serve_udp(self) -> None:
        assert self._udp is not None
        sock = self._udp
        while not self._stopping.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(wire, "udp")
            if reply is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        assert self._tcp is not None
        sock = self._tcp
        while not self._stopping.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            try:
                while not self._stopping.is_set():
                    header = _recv_exact(conn, 2)
                    if header is None:
                        return
                    (length,) = struct.unpack("!H", header)
                    wire = _recv_exact(conn, length)
                    if wire is None:
                        return
                    reply = self.answer(wire, "tcp")
                    if reply is None:
                        # dropped: hold the connection open and silent until stop/timeout
                        self._stopping.wait(5)
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


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
