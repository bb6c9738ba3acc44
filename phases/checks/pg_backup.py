"""`backup` and `restore`: the bot takes the database backup itself and restores exactly it.

Runbook T-24h / T-1h "./scripts/backup-db.sh … Fresh backup <1 hour old" and Phase 4
"FAIL → ABORT and restore from backup". A backup is `pg_dump --format=custom` of the
environment's database, then verified before anyone relies on it: `pg_restore --list`
reads its table of contents, its size is at least `min_bytes`, and its SHA-256 is
computed. The result's `details["artifact"]` (path, SHA-256, size, entries) goes into the
audit trail, and the restore of the same run uses that file and refuses any other bytes
(the SHA-256 must match): never "the newest file in a folder".

The URL is a secret: it is passed to pg_dump/pg_restore as PG* environment variables,
never on a command line or in evidence (which names host and database only).

With `container` (a container's name or id) or `project` + `service` (a compose service),
pg_dump runs *inside* the database's container through the Docker API (an exec, as
`docker exec DB pg_dump` would): its output is streamed to the file on the host in chunks of
at most `CHUNK` bytes (a dump of any size holds no more than that in memory), then verified
on the host as above. Only user and database name of the URL go to the exec, as its PG*
environment; pg_dump connects to the server in its own container (no PGHOST). The password
never does (an exec's environment is in dockerd's debug log and in `ps e` inside the
container): it goes into a password file written into the container for this dump alone
(`put_archive`, mode 600, owned by the user the exec runs as), named by PGPASSFILE and
removed when the dump ends, whatever its outcome.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import select
import socket
import struct
import subprocess
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, model_validator

from phases.checks import docker_client  # the Docker client and its errors, shared
from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register
from phases.checks.postgres_check import libpq_url

EVIDENCE_LIMIT = 240
_PG_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
}
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class BackupParams(docker_client.DockerHostParams):
    database_url: str = Field(min_length=1)
    dir: str = Field(min_length=1)  # where backups are kept (created if missing)
    prefix: str = Field(default="cutover", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    min_bytes: int = Field(default=100, ge=1)  # an empty custom-format dump is ~1 KB
    # pg_dump inside the database's container (Docker API exec), not on the host:
    container: str | None = Field(default=None, min_length=1)  # a container name or id
    project: str | None = Field(default=None, min_length=1)  # or a compose project's
    service: str | None = Field(default=None, min_length=1)  # service (e.g. db)
    pg_dump: str = Field(default="pg_dump", min_length=1)  # the command in the container

    @model_validator(mode="after")
    def one_container(self) -> BackupParams:
        if self.container and (self.project or self.service):
            raise ValueError("name the database's container or its project and service, not both")
        if bool(self.project) != bool(self.service):
            raise ValueError(
                "project and service go together (the compose service of the database)"
            )
        return self

    @property
    def in_container(self) -> bool:
        return bool(self.container or self.service)

    def where_dumped(self) -> str:
        """The container pg_dump runs in, for evidence and dry runs."""
        return self.container or f"service {self.service} of {self.project}"


class RestoreParams(StepParams):
    database_url: str = Field(min_length=1)
    file: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256_PATTERN)  # the bytes this run verified, and no others
    # Schemas emptied first, so tables made after the backup (a half-applied migration's)
    # go too: pg_restore --clean only drops what the dump itself holds.
    reset_schemas: list[str] = Field(default_factory=lambda: ["public"])


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


def pg_env(url: str) -> tuple[dict[str, str], str]:
    """(environment for pg_dump/pg_restore, "host/db" for evidence) from any Postgres URL."""
    conninfo, _schema = libpq_url(url)
    parts = conninfo_to_dict(conninfo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, var in _PG_ENV.items():
        if parts.get(key):
            env[var] = str(parts[key])
    where = f"{parts.get('host') or 'localhost'}/{parts.get('dbname') or '?'}"
    return env, where


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (argv from the step's own parameters, no shell)
        argv, env=env, capture_output=True, text=True, timeout=max(1.0, timeout), check=False
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def verify_backup(
    path: Path, min_bytes: int, timeout: float, *, require_listing: bool = True
) -> tuple[list[str], dict[str, Any]]:
    """(problems, facts) of a custom-format dump: readable by pg_restore, big enough, hashed.

    `require_listing=False` (a dump taken in the database's container, where the host may
    have no PostgreSQL client): with no pg_restore on the host, size and SHA-256 still
    count and `facts["listed"]` says the archive was not listed."""
    problems: list[str] = []
    if not path.is_file():
        return [f"{path} not found"], {}
    size = path.stat().st_size
    facts: dict[str, Any] = {"path": str(path), "bytes": size}
    if size < min_bytes:
        problems.append(f"is {size} bytes (min {min_bytes})")
    try:
        listing = _run(["pg_restore", "--list", str(path)], dict(os.environ), timeout)
    except FileNotFoundError:
        if require_listing:
            return ["pg_restore is not on PATH"], facts
        facts["listed"] = False
        facts["sha256"] = sha256_of(path)
        return problems, facts
    except subprocess.TimeoutExpired:
        return [f"pg_restore --list timed out after {timeout:g}s"], facts
    if listing.returncode != 0:
        problems.append(f"pg_restore --list failed: {_last_line(listing.stderr)}")
    else:
        entries = [x for x in listing.stdout.splitlines() if x.strip() and not x.startswith(";")]
        facts["entries"] = len(entries)  # 0: an empty database, still a restorable archive
        facts["listed"] = True
    facts["sha256"] = sha256_of(path)
    return problems, facts


def _backup_path(params: BackupParams, ctx: StepContext, where: str) -> Path | StepResult:
    folder = Path(params.dir)
    if ctx.workdir and not folder.is_absolute():
        folder = Path(ctx.workdir) / folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return StepResult(Status.ERROR, _clip(f"cannot create {params.dir}: {exc.strerror}"))
    stamp = datetime.fromtimestamp(ctx.clock.now(), UTC).strftime("%Y%m%dT%H%M%SZ")
    db = re.sub(r"[^A-Za-z0-9_.-]", "_", where.rsplit("/", 1)[-1])
    path = folder / f"{params.prefix}-{db}-{stamp}.dump"
    n = 1
    while path.exists():  # two backups in one second keep both
        n += 1
        path = path.with_name(f"{params.prefix}-{db}-{stamp}-{n}.dump")
    return path


def _dump_on_host(
    path: Path, env: dict[str, str], where: str, ctx: StepContext
) -> StepResult | None:
    """pg_dump on the host into `path`; None when it succeeded."""
    try:
        dump = _run(
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(path)], env, ctx.timeout - 2
        )
    except FileNotFoundError:
        return StepResult(Status.ERROR, "pg_dump is not on PATH")
    except subprocess.TimeoutExpired:
        path.unlink(missing_ok=True)
        return StepResult(Status.ERROR, f"pg_dump of {where} timed out after {ctx.timeout:g}s")
    if dump.returncode != 0:
        path.unlink(missing_ok=True)
        reason = ctx.masker.mask(_last_line(dump.stderr))
        return StepResult(Status.FAIL, _clip(f"pg_dump of {where} failed: {reason}"))
    return None


def run_backup(params: BackupParams, ctx: StepContext) -> StepResult:
    env, where = pg_env(params.database_url)
    path = _backup_path(params, ctx, where)
    if isinstance(path, StepResult):
        return path
    start = ctx.clock.monotonic()
    if params.in_container:
        failed = _dump_in_container(params, env, path, where, ctx)
    else:
        failed = _dump_on_host(path, env, where, ctx)
    if failed is not None:
        return failed
    remaining = ctx.timeout - (ctx.clock.monotonic() - start)
    problems, facts = verify_backup(
        path, params.min_bytes, max(remaining - 1, 5), require_listing=not params.in_container
    )
    artifact = {"type": "backup", "database": where, **facts}
    if params.in_container:
        artifact["container"] = params.where_dumped()
    details: dict[str, Any] = {"artifact": artifact}
    inside = f" (pg_dump in {params.where_dumped()})" if params.in_container else ""
    if problems:
        return StepResult(
            Status.FAIL,
            _clip(f"backup {path.name} of {where}{inside} " + "; ".join(problems)),
            details=details,
        )
    listed = (
        f"{facts.get('entries')} entries, " if facts.get("listed") else ""
    ) + f"sha256 {facts['sha256'][:12]}…"
    how = (
        "pg_restore --list reads it"
        if facts.get("listed")
        else "pg_restore is not on this host: size and SHA-256 checked, the archive not listed"
    )
    evidence = f"backed up {where}{inside} to {path.name} ({facts['bytes']} bytes, {listed}); {how}"
    return StepResult(Status.PASS, _clip(evidence), details=details)


# --------------------------------------------------------------------------- in the container

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
    try:
        exec_id = client.api.exec_create(container.id, ["rm", "-f", pgpass], stdout=True)["Id"]
        output = client.api.exec_start(exec_id)
        code = client.api.exec_inspect(exec_id).get("ExitCode")
    except docker_client.docker.errors.DockerException as exc:
        return str(exc)
    if code != 0:
        return f"rm exit {code}: {_last_line(output.decode('utf-8', 'replace'))}"
    return None


def _dump_in_container(
    params: BackupParams, env: dict[str, str], path: Path, where: str, ctx: StepContext
) -> StepResult | None:
    """pg_dump in the database's container, streamed into `path`; None when it succeeded."""
    inner: dict[str, str] = {k: env[k] for k in ("PGUSER", "PGDATABASE") if k in env}
    password = env.get("PGPASSWORD")
    deadline = ctx.clock.monotonic() + max(1.0, ctx.timeout - 2)
    label = params.where_dumped()

    def work() -> StepResult | None:
        with docker_client._docker(ctx, params.docker_host) as client:
            if params.container:
                try:
                    container = client.containers.get(params.container)
                except docker_client.docker.errors.NotFound:
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
                    _clip(
                        f"the password file {pgpass} could not be removed from {label} "
                        f"({ctx.masker.mask(left)}): remove it by hand"
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
            reason = ctx.masker.mask(_last_line(err.decode("utf-8", "replace")))
            return StepResult(
                Status.FAIL,
                _clip(f"pg_dump of {where} in {label} failed (exit {code}): {reason}"),
            )
        return None

    done = StepResult(Status.PASS, "dumped")
    try:
        result = docker_client._guarded(lambda: work() or done)
    except OSError as exc:
        result = StepResult(Status.ERROR, _clip(f"backup {path.name}: {exc.strerror or exc}"))
    if result is done:
        return None
    path.unlink(missing_ok=True)
    return result


def run_restore(params: RestoreParams, ctx: StepContext) -> StepResult:
    env, where = pg_env(params.database_url)
    path = Path(params.file)
    if not path.is_file():
        return StepResult(Status.FAIL, _clip(f"backup {params.file} not found; nothing restored"))
    actual = sha256_of(path)
    if actual != params.sha256:
        return StepResult(
            Status.FAIL,
            _clip(
                f"backup {path.name} has sha256 {actual[:12]}…, this run verified "
                f"{params.sha256[:12]}…; the file changed since, nothing restored"
            ),
        )
    conninfo, _schema = libpq_url(params.database_url)
    try:
        with psycopg.connect(conninfo, connect_timeout=10, autocommit=True) as conn:
            for schema in params.reset_schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}").format(
                        s=sql.Identifier(schema)
                    )
                )
    except psycopg.Error as exc:
        reason = ctx.masker.mask(_last_line(str(exc)))
        return StepResult(Status.ERROR, _clip(f"cannot reset {where} before restore: {reason}"))
    try:
        done = _run(
            ["pg_restore", "--no-owner", "--no-acl", "--dbname", env.get("PGDATABASE", "")]
            + [str(path)],
            env,
            ctx.timeout - 2,
        )
    except FileNotFoundError:
        return StepResult(Status.ERROR, "pg_restore is not on PATH")
    except subprocess.TimeoutExpired:
        return StepResult(Status.ERROR, f"pg_restore into {where} timed out after {ctx.timeout:g}s")
    # pg_restore exits 1 for warnings it ignored too ("schema public already exists").
    errors = [x for x in done.stderr.splitlines() if "error:" in x and "already exists" not in x]
    if done.returncode != 0 and errors:
        reason = ctx.masker.mask(errors[0])
        return StepResult(Status.FAIL, _clip(f"pg_restore into {where} failed: {reason}"))
    return StepResult(
        Status.PASS,
        _clip(f"restored {where} from {path.name} (sha256 {actual[:12]}… as verified)"),
        details={"artifact": {"type": "restore", "path": str(path), "sha256": actual}},
    )


BACKUP = register(
    StepKind(
        "backup",
        BackupParams,
        run_backup,
        mutates=True,
        describe=lambda p: (
            f"pg_dump the database{f' in {p.where_dumped()}' if p.in_container else ''} "
            f"into {p.dir} and verify it"
        ),
    )
)
RESTORE = register(
    StepKind(
        "restore",
        RestoreParams,
        run_restore,
        mutates=True,
        describe=lambda p: f"restore the database from {p.file} (sha256 {p.sha256[:12]}…)",
    )
)
