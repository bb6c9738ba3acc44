"""A second, private Docker engine WITH a bridge network, for what the shared one cannot show.

The shared test engine (scripts/docker-engine.sh) runs with `--bridge=none`: its containers
have no network, so none can publish a port. This one gets its own Linux bridge (a /24 of
10.200-249.x.0 that no route of the host uses), no iptables, and Docker's userland proxy
(`docker-proxy`), which listens on each published host port and forwards to the container:
`-p 127.0.0.1:PORT:3000` then really answers on 127.0.0.1:PORT. It has its own socket, data
root and exec root under /tmp/cbr-<hex>, so it is also the "other host" of tests that need
two distinguishable engines. One per pytest worker (session scope), started in about a
second (the test image is copied from the shared engine with save/load), and stopped, its
bridge deleted and its folder removed at the end of the session.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.docker_fixtures import BASE_IMAGE, docker_client  # noqa: F401
from tests.require import unavailable

START_WAIT_S = 30.0
STOP_WAIT_S = 20.0


@dataclass(frozen=True)
class BridgedEngine:
    url: str  # unix:///tmp/cbr-…/docker.sock
    client: Any
    bridge: str
    gateway: str  # the bridge's address on the host


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _free_subnet() -> str:
    routes = subprocess.run(
        ["ip", "-4", "route"], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    for _ in range(50):
        prefix = f"10.{random.randint(200, 249)}.{random.randint(0, 255)}"  # noqa: S311
        if f"{prefix}." not in routes:
            return prefix
    raise RuntimeError("no free 10.200-249.x.0/24 subnet for the test bridge")


def _stop(proc: subprocess.Popen[bytes], client: Any) -> None:
    if client is not None:
        try:
            for c in client.containers.list(all=True):
                c.remove(force=True)
        except Exception:  # noqa: S110  (best effort: the engine may be gone)
            pass
        client.close()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def bridged_engine(docker_client: Any) -> Iterator[BridgedEngine]:  # noqa: F811
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("dockerd"):
        unavailable("the bridged test engine needs root, iproute2 and dockerd")
    import docker

    tag = uuid.uuid4().hex[:8]
    bridge, root = f"cbr{tag}", f"/tmp/cbr-{tag}"
    os.makedirs(root)
    prefix = _free_subnet()
    gateway = f"{prefix}.1"
    proc: subprocess.Popen[bytes] | None = None
    client: Any = None
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{gateway}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        url = f"unix://{root}/docker.sock"
        with open(f"{root}/dockerd.log", "wb") as log:
            proc = subprocess.Popen(  # noqa: S603
                [
                    "dockerd",
                    "--host",
                    url,
                    "--data-root",
                    f"{root}/data",
                    "--exec-root",
                    f"{root}/exec",
                    "--pidfile",
                    f"{root}/dockerd.pid",
                    "--storage-driver=vfs",
                    "--iptables=false",
                    "--ip-forward=false",
                    "--ip-masq=false",
                    f"--bridge={bridge}",
                    "--userland-proxy=true",
                    "--exec-opt",
                    "native.cgroupdriver=cgroupfs",
                ],  # fmt: skip
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_WAIT_S
        while True:
            try:
                client = docker.DockerClient(base_url=url, timeout=30)
                client.ping()
                break
            except Exception:
                if client is not None:
                    client.close()
                    client = None
                if proc.poll() is not None or time.monotonic() > deadline:
                    with open(f"{root}/dockerd.log", encoding="utf-8", errors="replace") as f:
                        tail = f.read()[-2000:]
                    unavailable(f"the bridged test engine did not start: {tail}")
                time.sleep(0.2)  # waiting on a real daemon, not on the bot's clock
        client.images.load(b"".join(docker_client.images.get(BASE_IMAGE).save(named=True)))
        yield BridgedEngine(url=url, client=client, bridge=bridge, gateway=gateway)
    finally:
        if proc is not None:
            _stop(proc, client)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
