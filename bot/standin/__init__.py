"""Local stand-ins of a NostrMaxi deployment: an HTTP(S) server with its endpoints,
certificates from a throwaway CA, and a DNS server for its domain.

`cutover demo` runs the console against these so a newcomer can try a whole
cutover on one machine; the tests use the same servers as real loopback peers.
"""

from __future__ import annotations

from bot.standin.certs import CA, CertFiles, make_ca, make_cert, make_leaf, server_context
from bot.standin.dns_server import LoopbackDNSServer
from bot.standin.http_server import (
    LOOPBACK,
    Handler,
    LoopbackHTTPServer,
    Request,
    Response,
    Route,
    html_response,
    json_response,
    tls_server,
)
from bot.standin.nostrmaxi import (
    DEFAULT_TIERS,
    SWAGGER_HTML,
    NostrMaxiStandin,
    nostrmaxi_env_values,
    nostrmaxi_standin,
)

__all__ = [
    "CA",
    "DEFAULT_TIERS",
    "LOOPBACK",
    "SWAGGER_HTML",
    "CertFiles",
    "Handler",
    "LoopbackDNSServer",
    "LoopbackHTTPServer",
    "NostrMaxiStandin",
    "Request",
    "Response",
    "Route",
    "html_response",
    "json_response",
    "make_ca",
    "make_cert",
    "make_leaf",
    "nostrmaxi_env_values",
    "nostrmaxi_standin",
    "server_context",
    "tls_server",
]
