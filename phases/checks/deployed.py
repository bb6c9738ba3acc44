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

from phases.checks import command, docker_client
from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # SHA-1 or SHA-256 object names


class DeployedParams(docker_client.DockerHostParams):
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
    import docker.errors  # when a step runs, not at import (phases/checks/__init__.py)

    with docker_client._docker(ctx, params.docker_host) as client:
        containers = docker_client._project_containers(client, params.project, all_states=False)
        names = docker_client._display_names(containers)
        out: list[dict[str, Any]] = []
        digests: dict[str, list[str]] = {}
        for c in sorted(containers, key=lambda c: names[c.id]):
            image_id = str(c.attrs.get("Image") or "")
            if image_id not in digests:
                try:
                    attrs = client.images.get(image_id).attrs
                    digests[image_id] = sorted(attrs.get("RepoDigests") or [])
                except docker.errors.ImageNotFound:  # removed while running
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

    seen = docker_client._guarded(look)
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


# --------------------------------------------------------------------------- git_commit


class GitCommitParams(StepParams):
    """Runbook Phase 2 "ensure on correct branch/commit": the checkout's HEAD is the commit
    `expect_ref` names. A branch means its tip at `remote` as last fetched (what `git pull`
    brought); a tag or a commit name means that commit. The ref comes from the run
    (`/cutover start prod ref=v1.4.2`) or the environment's default (the `ref` var)."""

    repo: str = Field(min_length=1)
    expect_ref: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/@-]*$")
    remote: str = Field(default="origin", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    git: list[str] = Field(default_factory=lambda: ["git"], min_length=1)  # argv prefix


def _git(params: GitCommitParams, ctx: StepContext, *args: str) -> tuple[int, str, str]:
    repo = Path(params.repo)
    if ctx.workdir and not repo.is_absolute():
        repo = Path(ctx.workdir) / repo
    proc = subprocess.run(  # noqa: S603  (argv from the runbook, no shell)
        [*params.git, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=max(1.0, min(ctx.timeout / 2, 20.0)),
        check=False,
        env=command.base_env(ctx.run_as),
        stdin=subprocess.DEVNULL,
        **command.as_user(ctx.run_as),
    )
    return proc.returncode, proc.stdout.strip(), proc.stderr.strip()


def _expected(params: GitCommitParams, ctx: StepContext) -> tuple[str, str] | None:
    """(what the ref names, its commit): the remote's branch, a tag, or a commit name."""
    ref = params.expect_ref
    for label, name in (
        (f"{params.remote}/{ref}", f"refs/remotes/{params.remote}/{ref}"),
        (f"tag {ref}", f"refs/tags/{ref}"),
        (f"commit {ref}", ref),
    ):
        code, out, _err = _git(
            params, ctx, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"
        )
        if code == 0 and _SHA.match(out):
            return label, out
    return None


def run_git_commit(params: GitCommitParams, ctx: StepContext) -> StepResult:
    head = DeployedParams(repo=params.repo, project="-", git=params.git)
    try:
        sha, why = _commit(head, ctx)
        expected = _expected(params, ctx) if sha is not None else None
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return StepResult(Status.ERROR, f"git: {type(exc).__name__}")
    if sha is None:
        return StepResult(Status.ERROR, f"no commit checked out in {params.repo}: {why}"[:200])
    details: dict[str, Any] = {"head": sha, "expect_ref": params.expect_ref}
    if expected is None:
        return StepResult(
            Status.FAIL,
            f"HEAD {sha[:12]}; {params.expect_ref!r} names no branch of {params.remote}, tag "
            "or commit in this checkout (fetched?)"[:200],
            details=details,
        )
    label, want = expected
    details.update(expected=want, resolved_as=label)
    _c, subject, _e = _git(params, ctx, "log", "-1", "--format=%s", sha)
    said = ctx.masker.mask(" ".join(subject.split()))[:60]
    if sha == want:
        return StepResult(
            Status.PASS, f"HEAD {sha[:12]} is {label} ({said})"[:200], details=details
        )
    return StepResult(
        Status.FAIL,
        f"HEAD {sha[:12]} ({said}) is not {label} ({want[:12]})"[:200],
        details=details,
    )


GIT_COMMIT = register(
    StepKind(
        "git_commit",
        GitCommitParams,
        run_git_commit,
        describe=lambda p: f"check HEAD of {p.repo} is {p.expect_ref}",
    )
)
