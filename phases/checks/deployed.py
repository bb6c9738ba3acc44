"""`deployed`: what was deployed, for the record: the commit and the images that run.

Runbook Phase 2 deploys `git pull` of the production branch in the app's checkout, and
Phase 5 starts the compose project. Which code that was is `git rev-parse HEAD` of that
checkout, and which images are the containers the project runs after "start services":
each one's image id (sha256 of its config, what `docker inspect` shows as Image) and the
image's RepoDigests (registry digests; empty for an image built on this host, which is
said so). The result's `details["artifact"]` goes into the audit trail with the step
result (type "deployed"); the record and the stakeholders' final message show it.

A read-only check: it fails when there is no commit (not a git checkout) or no running
container of the project, since then the record could not say what was deployed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from pydantic import Field

from phases.checks import command, docker_steps
from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # SHA-1 or SHA-256 object names


class DeployedParams(StepParams):
    repo: str = Field(min_length=1)  # the environment's checkout (the deploy phase's cwd)
    project: str = Field(min_length=1)  # its compose project
    git: list[str] = Field(default_factory=lambda: ["git"], min_length=1)  # argv prefix


def _commit(params: DeployedParams, ctx: StepContext) -> tuple[str | None, str]:
    """(HEAD's object name, or None; why not)."""
    repo = Path(params.repo)
    if ctx.workdir and not repo.is_absolute():
        repo = Path(ctx.workdir) / repo
    if not repo.is_dir():
        return None, f"{repo} not found"
    try:
        proc = subprocess.run(  # noqa: S603  (argv from the runbook, no shell)
            [*params.git, "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=max(1.0, min(ctx.timeout / 2, 20.0)),
            check=False,
            env=command.base_env(ctx.run_as),  # a runbook's program: the step's trust, not ours
            stdin=subprocess.DEVNULL,
            **command.as_user(ctx.run_as),
        )
    except FileNotFoundError:
        return None, f"{params.git[0]} is not on PATH"
    except subprocess.TimeoutExpired:
        return None, "git rev-parse HEAD timed out"
    sha = proc.stdout.strip()
    if proc.returncode != 0 or not _SHA.match(sha):
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        return None, ctx.masker.mask(lines[-1] if lines else f"exit {proc.returncode}")[:160]
    return sha, ""


def _images(params: DeployedParams, ctx: StepContext) -> list[dict[str, Any]]:
    with docker_steps._docker(ctx) as client:
        containers = docker_steps._project_containers(client, params.project, all_states=False)
        names = docker_steps._display_names(containers)
        out: list[dict[str, Any]] = []
        digests: dict[str, list[str]] = {}
        for c in sorted(containers, key=lambda c: names[c.id]):
            image_id = str(c.attrs.get("Image") or "")
            if image_id not in digests:
                try:
                    attrs = client.images.get(image_id).attrs
                    digests[image_id] = sorted(attrs.get("RepoDigests") or [])
                except docker_steps.docker.errors.ImageNotFound:  # removed while running
                    digests[image_id] = []
            out.append(
                {
                    "service": names[c.id],
                    "image": str((c.attrs.get("Config") or {}).get("Image") or ""),
                    "id": image_id,
                    "repo_digests": digests[image_id],
                }
            )
        return out


def image_line(img: dict[str, Any]) -> str:
    """ "backend: nostrmaxi-backend:latest sha256:0123456789ab (built here, no registry digest)"."""
    digest = (
        ", ".join(img["repo_digests"])
        if img.get("repo_digests")
        else "built here, no registry digest"
    )
    return f"{img['service']}: {img['image']} {str(img['id'])[:19]} ({digest})"


def run_deployed(params: DeployedParams, ctx: StepContext) -> StepResult:
    sha, why = _commit(params, ctx)
    images: list[dict[str, Any]] = []

    def look() -> StepResult:
        images.extend(_images(params, ctx))
        return StepResult(Status.PASS, "")

    seen = docker_steps._guarded(look)
    artifact: dict[str, Any] = {
        "type": "deployed",
        "repo": params.repo,
        "commit": sha,
        "project": params.project,
        "images": images,
    }
    problems = []
    if sha is None:
        problems.append(f"no commit: {why}")
    if seen.status is not Status.PASS:
        problems.append(seen.evidence)
    elif not images:
        problems.append(f"no running container of {params.project}")
    if problems:
        return StepResult(Status.FAIL, "; ".join(problems)[:240], details={"artifact": artifact})
    assert sha is not None
    evidence = (
        f"commit {sha[:12]} of {params.repo}; {len(images)} container(s) of {params.project}: "
        + "; ".join(f"{i['service']} {str(i['id'])[7:19]}" for i in images)
    )
    return StepResult(
        Status.PASS,
        evidence if len(evidence) <= 240 else evidence[:239] + "…",
        details={"artifact": artifact},
    )


DEPLOYED = register(
    StepKind(
        "deployed",
        DeployedParams,
        run_deployed,
        describe=lambda p: f"record the commit of {p.repo} and the images {p.project} runs",
    )
)
