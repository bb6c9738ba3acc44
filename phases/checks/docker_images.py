"""`docker_images`: phase 3's built images present, and built by this run.

Images are named as asked, or as Compose names a service's build (v1 PROJECT_SERVICE, v2
PROJECT-SERVICE), or read from the compose file: every image it runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from pydantic import Field, model_validator

from phases.checks.base import Status, StepContext, StepKind, StepResult, register
from phases.checks.docker_client import (
    DockerHostParams,
    _docker,
    _engine_epoch,
    _guarded,
    _join,
)


class ImagesParams(DockerHostParams):
    # "repo:tag" matches exactly; a name without a tag matches every repo starting with it,
    # as `docker images | grep nostrmaxi` would.
    names: list[str] = Field(default_factory=list)
    # Images a `compose build` of this project made for these services, by either name
    # Compose gives them: v1 (`docker-compose`) PROJECT_SERVICE, v2 (`docker compose`)
    # PROJECT-SERVICE. The runbook may call either; the check accepts what was built.
    compose_project: str | None = Field(default=None, min_length=1)
    services: list[str] = Field(default_factory=list)
    # Phase 3 builds with --no-cache: an image older than this is a stale one, not this build.
    max_age_minutes: int | None = Field(default=None, ge=1)
    # The image was created after this run started: a build from yesterday is not this build.
    built_after_run_start: bool = False
    # Every image of this compose file (with compose_project): a service with `build:` by
    # the name Compose gives its build (its `image:`, else v1 PROJECT_SERVICE or v2
    # PROJECT-SERVICE, judged fresh as above); one with only `image:` by that name (pulled:
    # present is enough). Runbook Phase 3 "docker images | grep nostrmaxi", every image.
    compose_file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def something_to_look_for(self) -> ImagesParams:
        if (self.services or self.compose_file) and not self.compose_project:
            raise ValueError(
                "services and compose_file need compose_project (the -p of the compose build)"
            )
        if not self.names and not self.services and not self.compose_file:
            raise ValueError("give names, or compose_project and services or compose_file")
        return self


def compose_image_names(project: str, service: str) -> tuple[str, str]:
    """The image repository Compose v1 and v2 give a built service (v1 `_`, v2 `-`)."""
    return f"{project}_{service}", f"{project}-{service}"


def _repo(tag: str) -> str:
    repo = tag.rsplit(":", 1)[0] if _has_tag(tag) else tag
    for prefix in ("docker.io/library/", "docker.io/"):
        if repo.startswith(prefix):
            return repo[len(prefix) :]
    return repo


def _repo_in(repos: tuple[str, ...], tag: str) -> bool:
    return _repo(tag) in repos


def _wanted(params: ImagesParams) -> list[tuple[str, Callable[[str], bool]]]:
    """(what the evidence calls it, does a tag match it) for each image asked for."""
    out: list[tuple[str, Callable[[str], bool]]] = [
        (name, functools.partial(_matches, name)) for name in params.names
    ]
    for service in params.services:
        forms = compose_image_names(params.compose_project or "", service)
        out.append((" or ".join(forms), functools.partial(_repo_in, forms)))
    return out


class ComposeFileError(Exception):
    """The compose file could not be read; the message says why in one line."""


def _compose_images(
    params: ImagesParams, ctx: StepContext
) -> list[tuple[str, Callable[[str], bool], bool]]:
    """(name, matcher, built here) for every service of the compose file."""
    if params.compose_file is None:
        return []
    from phases.yaml_loader import RunbookError, load_yaml_file

    path = params.compose_file
    if ctx.workdir and not os.path.isabs(path):
        path = os.path.join(ctx.workdir, path)
    try:
        data = load_yaml_file(path)
    except (OSError, RunbookError) as exc:
        raise ComposeFileError(f"compose file {path}: {' '.join(str(exc).split())[:150]}") from None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict) or not services:
        raise ComposeFileError(f"compose file {path} names no services")
    out: list[tuple[str, Callable[[str], bool], bool]] = []
    for service, spec in services.items():
        spec = spec if isinstance(spec, dict) else {}
        image = spec.get("image")
        if image:
            out.append((str(image), functools.partial(_matches, str(image)), "build" in spec))
        elif "build" in spec:
            forms = compose_image_names(params.compose_project or "", str(service))
            out.append((" or ".join(forms), functools.partial(_repo_in, forms), True))
        else:
            raise ComposeFileError(f"compose file {path}: service {service} has no image or build")
    return out


def _has_tag(name: str) -> bool:
    return ":" in name.rsplit("/", 1)[-1]


def _matches(name: str, tag: str) -> bool:
    if _has_tag(name):
        return tag == name or tag == f"docker.io/library/{name}" or tag == f"docker.io/{name}"
    return tag.rsplit(":", 1)[0].startswith(name)


def present_images(client: Any) -> list[Any]:
    """Every image on the engine, inspected (its creation time to the nanosecond, which the
    list's whole seconds would not give `built_after_run_start`). One removed between the
    list and its inspect (a `docker image rm` or prune at the same moment) is gone, not an
    error: the docker SDK's own `images.list()` raised ImageNotFound for it."""
    import docker.errors  # when a step runs, not at import (phases/checks/__init__.py)

    found = []
    for row in client.api.images():
        try:
            found.append(client.images.get(row["Id"]))
        except docker.errors.ImageNotFound:
            continue
    return found


def run_images(params: ImagesParams, ctx: StepContext) -> StepResult:
    def go() -> StepResult:
        with _docker(ctx, params.docker_host) as client:
            images = present_images(client)
        now = ctx.clock.now()
        if params.built_after_run_start and ctx.run_started_at is None:
            return StepResult(Status.ERROR, "built_after_run_start needs a run (no start time)")
        found: dict[str, list[str]] = {}
        missing: list[str] = []
        stale: list[str] = []
        try:
            from_file = _compose_images(params, ctx)
        except ComposeFileError as exc:
            return StepResult(Status.ERROR, str(exc))
        wanted = [(n, m) for n, m in _wanted(params)]
        pulled = {n for n, _m, built in from_file if not built}
        wanted += [(n, m) for n, m, _b in from_file if n not in dict(wanted)]
        for name, matches in wanted:
            tags: list[str] = []
            fresh = False
            for image in images:
                hits = [t for t in (image.tags or []) if matches(t)]
                if not hits:
                    continue
                tags.extend(hits)
                created = _engine_epoch(image.attrs.get("Created"))
                young = (
                    name in pulled
                    or params.max_age_minutes is None
                    or (created is not None and now - created <= params.max_age_minutes * 60)
                )
                after = (
                    name in pulled
                    or not params.built_after_run_start
                    or (
                        created is not None
                        and ctx.run_started_at is not None
                        and created >= ctx.run_started_at
                    )
                )
                if young and after:
                    fresh = True
            found[name] = sorted(set(tags))
            if not tags:
                missing.append(name)
            elif not fresh:
                stale.append(name)
        details: dict[str, Any] = {"found": found, "missing": missing, "stale": stale}
        present = len(wanted) - len(missing)
        if missing or stale:
            parts = []
            if missing:
                parts.append(f"missing images: {_join(missing)}")
            if stale:
                limits = []
                if params.max_age_minutes is not None:
                    limits.append(f"older than {params.max_age_minutes} min")
                if params.built_after_run_start:
                    limits.append("built before this run started")
                parts.append(f"{' or '.join(limits)}: {_join(stale)}")
            return StepResult(
                Status.FAIL,
                f"{'; '.join(parts)} ({present}/{len(wanted)} present)",
                details=details,
            )
        shown = _join(t for name, _m in wanted for t in found[name][:3])
        return StepResult(
            Status.PASS,
            f"{len(wanted)}/{len(wanted)} images present: {shown}",
            details=details,
        )

    return _guarded(go)


DOCKER_IMAGES = register(
    StepKind(
        "docker_images",
        ImagesParams,
        run_images,
        describe=lambda p: f"check images present: {_join(name for name, _m in _wanted(p))}",
    )
)
