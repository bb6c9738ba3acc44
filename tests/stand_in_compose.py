#!/usr/bin/env python3
"""A tiny stand-in for `docker-compose` for the engine tests (no registry, no compose here).

    python tests/stand_in_compose.py -p PROJECT -f FILE up -d
    python tests/stand_in_compose.py -p PROJECT -f FILE down [--timeout N]
    python tests/stand_in_compose.py -p PROJECT -f FILE build
    python tests/stand_in_compose.py -p PROJECT -f FILE ps

FILE is a small compose-like YAML file:

    services:
      backend:
        build: .                      # `build` tags the base image as PROJECT-backend:latest
        command: ["sleep", "3600"]    # list or string (run by sh -c)
        healthcheck: {test: ["CMD", "true"], interval: 1s, retries: 3}
        mem_limit: 16m
      db:
        image: cutover-test/busybox:latest

Containers get the labels real compose sets (com.docker.compose.project / .service),
the compose v2 name PROJECT-SERVICE-1 and network_mode none. Talks to DOCKER_HOST.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

import docker
import docker.errors

from phases.yaml_loader import load_yaml_file

BASE_IMAGE = "cutover-test/busybox:latest"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
DEFAULT_COMMAND = ["sleep", "3600"]
_UNITS_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3}


def duration_ns(value: Any) -> int:
    """'1s', '500ms', '1m30s' or a number of seconds → nanoseconds."""
    if isinstance(value, int | float):
        return int(value * 10**9)
    text = str(value).strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise SystemExit(f"bad duration {value!r}")
    return int(sum(float(n) * _UNITS_NS[u] for n, u in parts))


def load(path: str) -> dict[str, dict[str, Any]]:
    data = load_yaml_file(path) or {}  # Compose refuses repeated keys too
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise SystemExit(f"{path}: no services")
    return {str(k): dict(v or {}) for k, v in services.items()}


def image_for(project: str, name: str, spec: dict[str, Any]) -> str:
    if "build" in spec:
        return str(spec.get("image") or f"{project}-{name}:latest")
    return str(spec.get("image") or BASE_IMAGE)


def healthcheck(spec: dict[str, Any]) -> dict[str, Any] | None:
    hc = spec.get("healthcheck")
    if not hc:
        return None
    test = hc["test"]
    out: dict[str, Any] = {"test": ["CMD-SHELL", test] if isinstance(test, str) else list(test)}
    for key in ("interval", "timeout", "start_period"):
        if key in hc:
            out[key] = duration_ns(hc[key])
    if "retries" in hc:
        out["retries"] = int(hc["retries"])
    return out


def project_containers(client: Any, project: str) -> list[Any]:
    return list(
        client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={project}"}, ignore_removed=True
        )
    )


def up(client: Any, project: str, services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        cname = f"{project}-{name}-1"
        try:
            existing = client.containers.get(cname)
        except docker.errors.NotFound:
            existing = None
        if existing is not None:
            if existing.status != "running":
                existing.start()
            print(f"Container {cname}  Running")
            continue
        command = spec.get("command", DEFAULT_COMMAND)
        if isinstance(command, str):
            command = ["sh", "-c", command]
        kwargs: dict[str, Any] = {
            "name": cname,
            "command": command,
            "detach": True,
            "network_mode": "none",
            "labels": {
                PROJECT_LABEL: project,
                SERVICE_LABEL: name,
                "com.docker.compose.container-number": "1",
                "com.docker.compose.oneoff": "False",
            },
        }
        hc = healthcheck(spec)
        if hc:
            kwargs["healthcheck"] = hc
        if spec.get("mem_limit"):
            kwargs["mem_limit"] = spec["mem_limit"]
        if spec.get("environment"):
            kwargs["environment"] = spec["environment"]
        client.containers.run(image_for(project, name, spec), **kwargs)
        print(f"Container {cname}  Started")


def down(client: Any, project: str, timeout: int) -> None:
    for c in project_containers(client, project):
        if c.status in ("running", "restarting", "paused"):
            c.stop(timeout=timeout)
            print(f"Container {c.name}  Stopped")
        c.remove()
        print(f"Container {c.name}  Removed")


def build(client: Any, project: str, services: dict[str, dict[str, Any]]) -> None:
    """A new image per service, as a real build makes: its creation time is now.

    (Tagging the base image would carry the base's age, and a freshness check of the
    images would then judge when the test engine started, not when this build ran.)
    """
    for name, spec in services.items():
        if "build" not in spec:
            continue
        repo, _, tag = image_for(project, name, spec).rpartition(":")
        scratch = client.containers.create(BASE_IMAGE, command=["true"], network_mode="none")
        try:
            scratch.commit(repository=repo, tag=tag, changes=[f"LABEL built-for={project}"])
        finally:
            scratch.remove(force=True)
        print(f"Image {repo}:{tag}  Built")


def ps(client: Any, project: str) -> None:
    print(f"{'NAME':<32} {'SERVICE':<12} STATUS")
    for c in sorted(project_containers(client, project), key=lambda c: c.name):
        state = c.attrs.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        status = "Up" if state.get("Running") else f"Exited ({state.get('ExitCode')})"
        if health and state.get("Running"):
            status += f" ({health})"
        print(f"{c.name:<32} {c.labels.get(SERVICE_LABEL, ''):<12} {status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stand_in_compose")
    parser.add_argument("-p", "--project-name", required=True)
    parser.add_argument("-f", "--file", required=True)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up_p = sub.add_parser("up")
    up_p.add_argument("-d", "--detach", action="store_true")
    down_p = sub.add_parser("down")
    down_p.add_argument("-t", "--timeout", type=int, default=10)
    sub.add_parser("build").add_argument("--no-cache", action="store_true")
    sub.add_parser("ps")
    args = parser.parse_args(argv)

    services = load(args.file)
    client = docker.from_env()
    try:
        if args.cmd == "up":
            if not args.detach:
                parser.error("only `up -d` is supported")
            up(client, args.project_name, services)
        elif args.cmd == "down":
            down(client, args.project_name, args.timeout)
        elif args.cmd == "build":
            build(client, args.project_name, services)
        else:
            ps(client, args.project_name)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
