"""pg_dump inside the database's container via the Docker API, streamed to a host file."""

from __future__ import annotations

import io
import select
import socket
import struct
import tarfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phases.checks import docker_client  # the Docker client and its errors, shared
from phases.checks.base import Status, StepContext, StepResult, clip
from phases.checks.pg_tools import EVIDENCE_LIMIT, last_line

if TYPE_CHECKING:
    from phases.checks.pg_backup import BackupParams

CHUNK = 64 * 1024  # the most of a dump held in memory at once
STDERR_KEPT = 4096  # the tail of pg_dump's stderr kept for the evidence


class _ExecTimeout(Exception):
    pass


def _recv_exact(sock: socket.socket, n: int, deadline: float, clock: Any) -> bytes:
    """Up to `n` bytes (fewer only at end of stream), waiting no later than `deadline`."""
    parts: list[bytes] = []
    while n > 0:
        left = deadline - clock.monotonic()
        if left <= 0:
            raise _ExecTimeout
        ready, _, _ = select.select([sock], [], [], min(left, 5.0))
        if not ready:
            continue
        data = sock.recv(min(n, CHUNK))
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def _stream_exec(sock: socket.socket, out: Any, deadline: float, clock: Any) -> tuple[int, bytes]:
    """Copies the exec's stdout frames into `out` chunk by chunk; (bytes written, the tail
    of stderr). Docker multiplexes the streams as frames: 8-byte header (stream, 0, 0, 0,
    big-endian length), then the payload."""
    written, err = 0, b""
    while True:
        header = _recv_exact(sock, 8, deadline, clock)
        if len(header) < 8:
            return written, err
        stream, length = header[0], struct.unpack(">I", header[4:])[0]
        while length > 0:
            data = _recv_exact(sock, min(length, CHUNK), deadline, clock)
            if not data:
                return written, err
            length -= len(data)
            if stream == 1:
                out.write(data)
                written += len(data)
            else:
                err = (err + data)[-STDERR_KEPT:]


def _pgpass_line(password: str) -> bytes:
    """A .pgpass line matching any server, database and user (`:` and `\\` escaped)."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n".encode()


def _exec_ids(client: Any, container: Any) -> tuple[int, int]:
    """The uid and gid an exec in `container` runs as (its configured user; root if none)."""
    user = str((container.attrs.get("Config") or {}).get("User") or "")
    if not user:
        return 0, 0
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return int(uid), int(gid or 0)
    ids = []
    for flag in ("-u", "-g"):  # a user name: ask the container what it stands for
        exec_id = client.api.exec_create(container.id, ["id", flag], stdout=True, stderr=False)
        ids.append(int(client.api.exec_start(exec_id["Id"]).strip() or 0))
    return ids[0], ids[1]


def _put_pgpass(client: Any, container: Any, password: str) -> str:
    """Writes a one-line password file into the container (mode 600, owned by the exec's
    user) and returns its path."""
    uid, gid = _exec_ids(client, container)
    name = f"tmp/.cutover-pgpass-{uuid.uuid4().hex}"
    data = _pgpass_line(password)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o600, uid, gid
        tar.addfile(info, io.BytesIO(data))
    if not client.api.put_archive(container.id, "/", archive.getvalue()):
        raise OSError(f"could not write a password file into {container.name}")
    return "/" + name


def _remove_pgpass(client: Any, container: Any, pgpass: str) -> str | None:
    """Removes the password file; None when it is gone, else why not."""
    import docker.errors  # when a step runs, not at import (phases/checks/__init__.py)

    try:
        exec_id = client.api.exec_create(container.id, ["rm", "-f", pgpass], stdout=True)["Id"]
        output = client.api.exec_start(exec_id)
        code = client.api.exec_inspect(exec_id).get("ExitCode")
    except docker.errors.DockerException as exc:
        return str(exc)
    if code != 0:
        return f"rm exit {code}: {last_line(output.decode('utf-8', 'replace'))}"
    return None


def dump_in_container(
    params: BackupParams, env: dict[str, str], path: Path, where: str, ctx: StepContext
) -> StepResult | None:
    """pg_dump in the database's container, streamed into `path`; None when it succeeded."""
    import docker.errors  # when a step runs, not at import (phases/checks/__init__.py)

    inner: dict[str, str] = {k: env[k] for k in ("PGUSER", "PGDATABASE") if k in env}
    password = env.get("PGPASSWORD")
    deadline = ctx.clock.monotonic() + max(1.0, ctx.timeout - 2)
    label = params.where_dumped()

    def work() -> StepResult | None:
        with docker_client._docker(ctx, params.docker_host) as client:
            if params.container:
                try:
                    container = client.containers.get(params.container)
                except docker.errors.NotFound:
                    return StepResult(Status.FAIL, f"container {params.container} not found")
            else:
                assert params.project and params.service
                found = [
                    c
                    for c in docker_client._project_containers(
                        client, params.project, all_states=False
                    )
                    if docker_client._service(c) == params.service
                ]
                if not found:
                    return StepResult(
                        Status.FAIL,
                        f"no running container of service {params.service} in {params.project}",
                    )
                container = found[0]
            pgpass = _put_pgpass(client, container, password) if password else None
            try:
                result = dump(client, container, pgpass)
            except BaseException:
                if pgpass:
                    _remove_pgpass(client, container, pgpass)
                raise
            left = _remove_pgpass(client, container, pgpass) if pgpass else None
            if left is not None:  # a password left behind outranks a good dump
                path.unlink(missing_ok=True)
                return StepResult(
                    Status.FAIL,
                    clip(
                        f"the password file {pgpass} could not be removed from {label} "
                        f"({ctx.masker.mask(left)}): remove it by hand",
                        EVIDENCE_LIMIT,
                    ),
                )
            return result

    def dump(client: Any, container: Any, pgpass: str | None) -> StepResult | None:
        environment: dict[str, str] = dict(inner)
        if pgpass:
            environment["PGPASSFILE"] = pgpass  # a path; the password is in the file only
        argv = [params.pg_dump, "--format=custom", "--no-owner"]
        exec_id = client.api.exec_create(
            container.id, argv, environment=environment, stdout=True, stderr=True
        )["Id"]
        raw = client.api.exec_start(exec_id, socket=True)
        sock = getattr(raw, "_sock", raw)
        try:
            with path.open("wb") as out:
                written, err = _stream_exec(sock, out, deadline, ctx.clock)
        except _ExecTimeout:
            path.unlink(missing_ok=True)
            return StepResult(
                Status.ERROR, f"pg_dump of {where} in {label} timed out after {ctx.timeout:g}s"
            )
        finally:
            raw.close()
        code = client.api.exec_inspect(exec_id).get("ExitCode")
        if code != 0:
            path.unlink(missing_ok=True)
            reason = ctx.masker.mask(last_line(err.decode("utf-8", "replace")))
            return StepResult(
                Status.FAIL,
                clip(
                    f"pg_dump of {where} in {label} failed (exit {code}): {reason}", EVIDENCE_LIMIT
                ),
            )
        return None

    done = StepResult(Status.PASS, "dumped")
    try:
        result = docker_client._guarded(lambda: work() or done)
    except OSError as exc:
        result = StepResult(
            Status.ERROR, clip(f"backup {path.name}: {exc.strerror or exc}", EVIDENCE_LIMIT)
        )
    if result is done:
        return None
    path.unlink(missing_ok=True)
    return result
