"""A loopback DNS server (UDP and TCP) for the deployment's domain, with SERVFAIL and drops."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from bot.standin.http_server import LOOPBACK


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
