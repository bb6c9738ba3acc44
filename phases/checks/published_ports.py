"""`published_ports`: Phase 5's ports as `docker-compose ps` shows them, and answering.

The runbook's expected `docker-compose ps` lists `0.0.0.0:3000->3000/tcp` for the backend
and `0.0.0.0:80->80/tcp, 0.0.0.0:443->443/tcp` for nginx. This check verifies two facts
for each port it is given, and its evidence names both:

1. Docker publishes it: the running container of the service has the binding in its
   `NetworkSettings.Ports` (where `docker-compose ps` reads its PORTS column);
2. something answers on the host: a TCP connection to the host port (on the engine's host,
   or the binding's own address) is accepted and stays open for `hold_ms`. A port Docker
   published while nothing listens behind it (Docker's userland proxy accepts, then closes
   at once) fails, as does a refused or unanswered connection.

Each port is written `SERVICE [HOST_PORT:]CONTAINER_PORT[/tcp]` ("backend 3000:3000").
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from phases.checks.base import Status, StepContext, StepKind, StepResult, pause, register
from phases.checks.docker_client import (
    DockerHostParams,
    _budget,
    _display_names,
    _docker,
    _engine_url,
    _guarded,
    _project_containers,
    _service,
)

_SPEC = re.compile(
    r"^(?P<service>[A-Za-z0-9][A-Za-z0-9_.-]*) +(?:(?P<host>\d{1,5}):)?(?P<port>\d{1,5})(?:/tcp)?$"
)
_WILDCARD = ("", "0.0.0.0", "::")  # noqa: S104  (read from Docker, never bound here)
POLL_INTERVAL = 1.0


@dataclass(frozen=True)
class PortSpec:
    service: str
    host_port: int
    container_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/tcp"


def parse_spec(text: str) -> PortSpec:
    m = _SPEC.match(text.strip())
    if m is None:
        raise ValueError(
            f"{text!r} is not a published port: write SERVICE HOST_PORT:CONTAINER_PORT "
            "(e.g. 'backend 3000:3000'; only tcp ports are checked)"
        )
    port = int(m["port"])
    host = int(m["host"]) if m["host"] else port
    for n in (port, host):
        if not 1 <= n <= 65535:
            raise ValueError(f"{text!r}: port {n} is out of range")
    return PortSpec(m["service"], host, port)


class PublishedPortsParams(DockerHostParams):
    project: str = Field(min_length=1)
    # "SERVICE HOST_PORT:CONTAINER_PORT" each; empty: nothing asked (the check says so).
    ports: list[str] = Field(default_factory=list)
    # Where to connect; empty: the engine's host (127.0.0.1 for a local socket) for a
    # binding on every address, else the binding's own address.
    probe_host: str | None = None
    wait_seconds: int = Field(default=10, ge=0, le=600)
    connect_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    hold_ms: int = Field(default=300, ge=50, le=5000)

    @field_validator("ports")
    @classmethod
    def specs_parse(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_spec(text)
        return value

    def specs(self) -> list[PortSpec]:
        return [parse_spec(t) for t in self.ports]


def engine_host(url: str) -> str | None:
    """The host an engine address names: 127.0.0.1 for a local socket; None if unknown."""
    if url.startswith(("unix://", "npipe://")):
        return "127.0.0.1"
    return urlsplit(url).hostname


def probe(address: str, port: int, timeout: float, hold: float) -> str | None:
    """None when a TCP connection is accepted and stays open `hold` seconds (or the peer
    speaks first); else why not, in a few words."""
    try:
        conn = socket.create_connection((address, port), timeout=timeout)
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return " ".join((exc.strerror or str(exc)).split()).lower()
    with conn:
        conn.settimeout(hold)
        try:
            data = conn.recv(1)
        except TimeoutError:
            return None  # held open: something listens behind the port
        except ConnectionResetError:
            data = b""
        except OSError as exc:
            return " ".join((exc.strerror or str(exc)).split()).lower()
        if data:
            return None
        return "accepted, then closed at once: nothing listens behind it"


def _published(container: Any) -> dict[str, list[dict[str, str]]]:
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {k: list(v) for k, v in ports.items() if v}


def _ps_text(host_ip: str, host_port: str, key: str) -> str:
    """One binding as `docker-compose ps` writes it: 0.0.0.0:3000->3000/tcp."""
    ip = host_ip or "0.0.0.0"  # noqa: S104
    ip = f"[{ip}]" if ":" in ip else ip
    return f"{ip}:{host_port}->{key}"


def _listing(published: dict[str, list[dict[str, str]]]) -> str:
    shown = [
        _ps_text(b.get("HostIp", ""), b.get("HostPort", ""), key)
        for key, bindings in sorted(published.items())
        for b in bindings
    ]
    return ", ".join(shown) or "nothing"


def _evaluate(
    client: Any, params: PublishedPortsParams, ctx: StepContext, where: str
) -> tuple[list[str], list[str], dict[str, Any]]:
    """(problems, what passed, details) for one look."""
    containers = [
        c
        for c in _project_containers(client, params.project, all_states=False)
        if (c.attrs.get("State") or {}).get("Status", "running") == "running"
    ]
    names = _display_names(containers)
    problems: list[str] = []
    good: list[str] = []
    details: dict[str, Any] = {"project": params.project, "probe_host": where, "ports": []}
    probed: dict[tuple[str, int], str | None] = {}
    for spec in params.specs():
        mine = [c for c in containers if _service(c) == spec.service]
        if not mine:
            problems.append(f"{spec.service}: no running container")
            details["ports"].append({"service": spec.service, "published": None})
            continue
        for c in mine:
            name = names[c.id]
            published = _published(c)
            binding = next(
                (
                    b
                    for b in published.get(spec.key, [])
                    if b.get("HostPort") == str(spec.host_port)
                ),
                None,
            )
            row: dict[str, Any] = {"service": name, "want": f"{spec.host_port}->{spec.key}"}
            details["ports"].append(row)
            if binding is None:
                row["published"] = None
                problems.append(
                    f"{name} does not publish {spec.key} on host port {spec.host_port} "
                    f"(it publishes: {_listing(published)})"
                )
                continue
            shown = _ps_text(binding.get("HostIp", ""), str(spec.host_port), spec.key)
            row["published"] = shown
            host_ip = binding.get("HostIp", "")
            address = params.probe_host or (where if host_ip in _WILDCARD else host_ip)
            target = (address, spec.host_port)
            if target not in probed:
                probed[target] = probe(
                    address,
                    spec.host_port,
                    min(params.connect_timeout_seconds, max(0.5, ctx.timeout - 1)),
                    params.hold_ms / 1000,
                )
            why = probed[target]
            row["probe"] = f"{address}:{spec.host_port}"
            row["answered"] = why is None
            if why is None:
                good.append(f"{name} {shown}")
            else:
                problems.append(f"{name} {shown} published, but {address}:{spec.host_port}: {why}")
    return problems, good, details


def run_published_ports(params: PublishedPortsParams, ctx: StepContext) -> StepResult:
    if not params.ports:
        return StepResult(
            Status.SKIPPED, "no published ports asked for (ports is empty): none checked"
        )

    def go() -> StepResult:
        with _docker(ctx, params.docker_host) as client:
            url = params.docker_host or _engine_url(client)
            where = params.probe_host or engine_host(url)
            if where is None:
                return StepResult(
                    Status.ERROR, f"cannot tell the host of engine {url}: set probe_host"
                )
            start = ctx.clock.monotonic()
            budget = _budget(params.wait_seconds, ctx)
            while True:
                problems, good, details = _evaluate(client, params, ctx, where)
                remaining = budget - (ctx.clock.monotonic() - start)
                if not problems or remaining <= 0:
                    break
                pause(ctx, min(POLL_INTERVAL, remaining))
        details["waited_s"] = round(ctx.clock.monotonic() - start, 1)
        if problems:
            return StepResult(Status.FAIL, "; ".join(problems), details=details)
        hold = f"{params.hold_ms / 1000:g} s"
        hosts = dict.fromkeys(str(r["probe"]).rsplit(":", 1)[0] for r in details["ports"])
        return StepResult(
            Status.PASS,
            f"{len(good)}/{len(params.ports)} ports published as docker-compose ps shows them "
            f"and answering: {', '.join(good)} (a TCP connection to each host port on "
            f"{', '.join(hosts)} "
            f"was accepted and held open {hold})",
            details=details,
        )

    return _guarded(go)


PUBLISHED_PORTS = register(
    StepKind(
        "published_ports",
        PublishedPortsParams,
        run_published_ports,
        describe=lambda p: f"check ports published and answering: {', '.join(p.ports)}",
    )
)
