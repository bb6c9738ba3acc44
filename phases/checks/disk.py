"""Disk space (phase 9: "Monitor disk space: df -h").

On the bot's host by default; with `container` (a name, like the runbook's
`docker exec nostrmaxi-postgres`) or `project` + `service` (the compose project's db), `df`
runs inside that container through the Docker SDK's exec, on the production data volume
(`path`, e.g. /var/lib/postgresql/data), so the disk that fills is the one measured.

The runbook gives no threshold for disk space, so none is assumed: without
`max_used_percent` the usage is shown and the evidence says it was not judged.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from typing import Any

from pydantic import Field, model_validator

from phases.checks import docker_client
from phases.checks.base import Status, StepContext, StepKind, StepResult, register

NO_THRESHOLD = "no threshold (the runbook gives none): shown, not judged"
# df in the container came back with exit 0 and no output at all: the engine lost the exec's
# output (seen once on a loaded CI machine, in a monitoring round, which it failed). df
# changes nothing, so it is read again, up to this many reads in all; a non-zero exit or
# output that is not df's is said as it is, at once.
EMPTY_READS = 3


class DiskParams(docker_client.DockerHostParams):
    path: str = "/"
    # None: the runbook gives no threshold, so the usage is shown and not judged.
    max_used_percent: float | None = Field(default=None, gt=0, le=100)
    container: str | None = None  # df inside this container (its name)
    project: str | None = None  # or inside the running container of project + service
    service: str | None = None

    @model_validator(mode="after")
    def one_target(self) -> DiskParams:
        if self.container and (self.project or self.service):
            raise ValueError("give container, or project and service, not both")
        if bool(self.project) != bool(self.service):
            raise ValueError("project and service go together (the container to run df in)")
        return self


def _judge(where: str, used: float, free_bytes: int, p: DiskParams) -> StepResult:
    limit = NO_THRESHOLD if p.max_used_percent is None else f"max {p.max_used_percent:g}%"
    evidence = f"{where} {used:.0f}% used, {free_bytes / 2**30:.1f} GiB free ({limit})"
    ok = p.max_used_percent is None or used <= p.max_used_percent
    details: dict[str, Any] = {"used_percent": round(used, 1), "free_bytes": free_bytes}
    if p.max_used_percent is None:
        details["threshold"] = None
    return StepResult(Status.PASS if ok else Status.FAIL, evidence, details=details)


def _in_container(p: DiskParams, ctx: StepContext) -> StepResult:
    def go() -> StepResult:
        with docker_client._docker(ctx, p.docker_host) as client:
            if p.container:
                found = [c for c in client.containers.list() if c.name == p.container]
                label = f"container {p.container}"
            else:
                assert p.project is not None
                found = [
                    c
                    for c in docker_client._project_containers(client, p.project, all_states=False)
                    if docker_client._service(c) == p.service
                ]
                label = f"{p.project}/{p.service}"
            if not found:
                return StepResult(Status.ERROR, f"cannot run df: no running {label}")
            reads, code, rows = 0, 0, list[str]()
            while reads < EMPTY_READS and code == 0 and not rows:
                # Read again only after exit 0 with nothing at all: an answer, or a failure
                # said as it is, is never read again.
                reads += 1
                code, out = found[0].exec_run(["df", "-P", "-k", p.path])
                text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
                rows = text.strip().splitlines()
            if code != 0 or len(rows) < 2 or len(rows[-1].split()) < 6:
                last = rows[-1] if rows else f"no output ({reads} reads)"
                return StepResult(
                    Status.ERROR, f"df -P {p.path} in {label} failed (exit {code}): {last[:160]}"
                )
            _fs, _blocks, used_k, avail_k = rows[-1].split()[:4]
            used, avail = int(used_k), int(avail_k)
            # df's own Use%: used of what a non-root user could use, rounded up.
            pct = math.ceil(100 * used / (used + avail)) if used + avail else 0
            judged = _judge(f"{p.path} in {label}", float(pct), avail * 1024, p)
            if reads == 1:
                return judged
            said = f"{judged.evidence} (read {reads} times: the engine returned no output before)"
            return dataclasses.replace(judged, evidence=said)

    return docker_client._guarded(go)


def check_disk(p: DiskParams, ctx: StepContext) -> StepResult:
    if p.container or p.project:
        return _in_container(p, ctx)
    try:
        usage = shutil.disk_usage(p.path)
    except OSError as exc:
        return StepResult(Status.ERROR, f"cannot read disk usage of {p.path}: {exc.strerror}")
    used = 100.0 * usage.used / usage.total if usage.total else 0.0
    return _judge(p.path, used, usage.free, p)


register(StepKind(name="disk", params=DiskParams, run=check_disk))
