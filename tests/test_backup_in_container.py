"""`backup` inside the database's container: pg_dump runs there through the Docker API (an
exec) and its output is streamed to the host, then verified there as a host backup is.

The container is the real Docker engine's, from an image made here out of the busybox test
image: its `pg_dump` is a script that writes what the test put in /dumps (a real
custom-format archive made by the host's pg_dump, an error, nothing, a big archive)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from phases.checks.base import Status, StepContext
from phases.checks.pg_dump_container import CHUNK
from phases.secrets import Masker
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.docker_fixtures import BASE_IMAGE, docker_client  # noqa: F401  (fixture)
from tests.require import unavailable
from tests.servers import run_check

PASSWORD = "s3cret-db-pw"
STAND_IN_PG_DUMP = """#!/bin/sh
# pg_dump stand-in: what the test put in /dumps decides what it does.
printf '%s\\n' "$*" > /dumps/argv
printf 'user=%s db=%s password=%s host=%s\\n' \\
    "$PGUSER" "$PGDATABASE" "${PGPASSWORD-}" "${PGHOST-}" > /dumps/env
tr '\\0' '\\n' < /proc/$$/environ > /dumps/environ  # what `ps e` shows of this process
if [ -n "${PGPASSFILE-}" ]; then
    echo "$PGPASSFILE" > /dumps/passfile
    stat -c '%a %u' "$PGPASSFILE" > /dumps/passfile.stat
    cat "$PGPASSFILE" > /dumps/passfile.content
fi
if [ -f /dumps/fail ]; then cat /dumps/fail >&2; exit 1; fi
cat /dumps/out.dump
"""


@pytest.fixture(scope="module")
def pg_dump_image(docker_client: Any) -> Iterator[str]:  # noqa: F811
    """The busybox test image with /usr/bin/pg_dump being the stand-in script."""
    tag = f"cutover-test/pgdump-standin:{uuid.uuid4().hex[:8]}"
    box = docker_client.containers.create(BASE_IMAGE, ["true"], network_mode="none")
    try:
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as tf:
            data = STAND_IN_PG_DUMP.encode()
            info = tarfile.TarInfo("pg_dump")
            info.size, info.mode = len(data), 0o755
            tf.addfile(info, io.BytesIO(data))
        box.put_archive("/usr/bin", tar.getvalue())
        box.commit(*tag.split(":"))
    finally:
        box.remove(force=True)
    yield tag
    docker_client.images.remove(tag, force=True)


class DbContainer:
    """A running container of service `db` in a compose project; /dumps is `folder`."""

    def __init__(self, client: Any, image: str, folder: Path) -> None:
        self.project = f"cutover-t{uuid.uuid4().hex[:8]}"
        self.folder = folder
        folder.mkdir()
        self.container = client.containers.run(
            image,
            ["sleep", "3600"],
            detach=True,
            network_mode="none",
            name=f"{self.project}-db-1",
            labels={
                "com.docker.compose.project": self.project,
                "com.docker.compose.service": "db",
            },
            volumes={str(folder): {"bind": "/dumps", "mode": "rw"}},
        )

    def emits(self, data: bytes) -> None:
        (self.folder / "out.dump").write_bytes(data)

    def params(self, url: str, out: Path) -> dict[str, Any]:
        return {"database_url": url, "dir": str(out), "project": self.project, "service": "db"}


@pytest.fixture
def db_container(
    docker_client: Any,  # noqa: F811
    pg_dump_image: str,
    tmp_path: Path,
) -> Iterator[DbContainer]:
    box = DbContainer(docker_client, pg_dump_image, tmp_path / "dumps")
    yield box
    box.container.remove(force=True)


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    if not postgres_reachable():
        unavailable("backup tests need the PostgreSQL server")
    with throwaway_pg_database("backup_in_container") as url:
        yield url.replace("postgresql+psycopg://", "postgresql://")


def real_dump(url: str, *, rows: int = 2) -> bytes:
    """A real custom-format archive of a table with `rows` rows (the host's pg_dump)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS users")
        conn.execute("CREATE TABLE users (id int PRIMARY KEY, pubkey text)")
        conn.execute(
            "INSERT INTO users SELECT i, repeat(md5(i::text), 16) FROM generate_series(1, %s) i",
            (rows,),
        )
    return subprocess.run(
        ["pg_dump", "--format=custom", "--compress=0", "--dbname", url],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout


def with_password(url: str) -> str:
    """The URL the runbook would hold: with a password (the stand-in never connects)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def test_backup_in_the_database_container_streams_verifies_and_records_sha256(
    pg: str, db_container: DbContainer, tmp_path: Path
) -> None:
    dump = real_dump(pg)
    db_container.emits(dump)
    result = run_check("backup", db_container.params(with_password(pg), tmp_path / "b"))
    assert result.status is Status.PASS, result.evidence
    artifact = result.details["artifact"]
    path = Path(artifact["path"])
    assert path.parent == tmp_path / "b" and path.read_bytes() == dump
    assert artifact["sha256"] == hashlib.sha256(dump).hexdigest()
    assert artifact["bytes"] == len(dump) and artifact["entries"] >= 2 and artifact["listed"]
    assert artifact["container"] == f"service db of {db_container.project}"
    assert f"pg_dump in service db of {db_container.project}" in result.evidence
    assert "pg_restore --list reads it" in result.evidence


def test_backup_in_a_container_passes_credentials_as_environment_never_as_arguments(
    pg: str, db_container: DbContainer, tmp_path: Path
) -> None:
    db_container.emits(real_dump(pg))
    result = run_check("backup", db_container.params(with_password(pg), tmp_path / "b"))
    assert result.status is Status.PASS, result.evidence
    dbname = pg.rsplit("/", 1)[-1]
    env = (db_container.folder / "env").read_text()
    # the password is in no environment: pg_dump reads it from its PGPASSFILE (below)
    assert env == f"user=postgres db={dbname} password= host=\n"
    argv = (db_container.folder / "argv").read_text()
    assert argv == "--format=custom --no-owner\n"
    assert PASSWORD not in result.evidence


def _gone(container: Any, path: str) -> bool:
    return container.exec_run(["test", "-e", path]).exit_code == 1


def test_backup_in_a_container_hands_the_password_in_a_file_of_its_own_removed_after(
    pg: str,
    db_container: DbContainer,
    tmp_path: Path,
    docker_client: Any,  # noqa: F811
) -> None:
    db_container.emits(real_dump(pg))
    result = run_check("backup", db_container.params(with_password(pg), tmp_path / "b"))
    assert result.status is Status.PASS, result.evidence
    folder = db_container.folder
    environ = (folder / "environ").read_text()  # the exec's process, as `ps e` would show it
    assert PASSWORD not in environ and "PGPASSWORD" not in environ
    passfile = (folder / "passfile").read_text().strip()
    assert f"PGPASSFILE={passfile}" in environ.splitlines()
    assert (folder / "passfile.stat").read_text() == "600 0\n"  # the exec's user (root) alone
    assert (folder / "passfile.content").read_text() == f"*:*:*:*:{PASSWORD}\n"
    assert _gone(db_container.container, passfile)
    # nor in what the Docker API says of the execs (dockerd logs the same)
    db_container.container.reload()
    for exec_id in db_container.container.attrs.get("ExecIDs") or []:
        assert PASSWORD not in json.dumps(docker_client.api.exec_inspect(exec_id))


def test_a_failing_dump_in_a_container_removes_the_password_file_too(
    pg: str, db_container: DbContainer, tmp_path: Path
) -> None:
    (db_container.folder / "fail").write_text("pg_dump: error: connection failed\n")
    result = run_check("backup", db_container.params(with_password(pg), tmp_path / "b"))
    assert result.status is Status.FAIL
    passfile = (db_container.folder / "passfile").read_text().strip()
    assert _gone(db_container.container, passfile)


def test_the_password_file_belongs_to_the_user_the_containers_execs_run_as() -> None:
    """(The test image's root folder is root's alone, so no non-root container runs here.)"""
    from phases.checks.pg_dump_container import _exec_ids

    def box(user: str) -> Any:
        return SimpleNamespace(id="c", attrs={"Config": {"User": user}})

    assert _exec_ids(None, box("")) == (0, 0)
    assert _exec_ids(None, box("999:998")) == (999, 998)
    assert _exec_ids(None, box("70")) == (70, 0)


def test_a_password_with_colons_and_backslashes_is_escaped_in_the_password_file() -> None:
    from phases.checks.pg_dump_container import _pgpass_line

    assert _pgpass_line("a:b\\c") == b"*:*:*:*:a\\:b\\\\c\n"


def test_backup_by_container_name_works_too(
    pg: str, db_container: DbContainer, tmp_path: Path
) -> None:
    db_container.emits(real_dump(pg))
    params = {
        "database_url": pg,
        "dir": str(tmp_path / "b"),
        "container": f"{db_container.project}-db-1",
    }
    result = run_check("backup", params)
    assert result.status is Status.PASS, result.evidence
    assert f"pg_dump in {db_container.project}-db-1" in result.evidence


def test_failing_pg_dump_in_the_container_fails_masked_and_leaves_no_file(
    pg: str, db_container: DbContainer, tmp_path: Path
) -> None:
    (db_container.folder / "fail").write_text(
        f'pg_dump: error: connection failed: password "{PASSWORD}" authentication failed\n'
    )
    out = tmp_path / "b"
    result = run_check(
        "backup",
        db_container.params(with_password(pg), out),
        StepContext(masker=Masker([PASSWORD])),
    )
    assert result.status is Status.FAIL
    assert "failed (exit 1): pg_dump: error: connection failed" in result.evidence
    assert PASSWORD not in result.evidence
    assert list(out.iterdir()) == []


def test_empty_dump_from_the_container_fails_verification(
    pg: str, db_container: DbContainer, tmp_path: Path
) -> None:
    db_container.emits(b"")
    result = run_check("backup", db_container.params(pg, tmp_path / "b"))
    assert result.status is Status.FAIL
    assert "is 0 bytes (min 100)" in result.evidence
    assert "pg_restore --list failed" in result.evidence


def test_backup_when_the_service_has_no_running_container_fails(
    pg: str, db_container: DbContainer, tmp_path: Path
) -> None:
    params = {**db_container.params(pg, tmp_path / "b"), "service": "postgres"}
    result = run_check("backup", params)
    assert result.status is Status.FAIL
    assert f"no running container of service postgres in {db_container.project}" in (
        result.evidence
    )
    assert list((tmp_path / "b").iterdir()) == []


def test_huge_dump_streams_to_disk_with_bounded_memory(
    pg: str, db_container: DbContainer, tmp_path: Path
) -> None:
    dump = real_dump(pg, rows=100_000)  # 100 000 rows of 512 characters, uncompressed
    assert len(dump) > 48 * 1024 * 1024
    db_container.emits(dump)
    digest = hashlib.sha256(dump).hexdigest()
    del dump
    tracemalloc.start()
    try:
        result = run_check(
            "backup", db_container.params(pg, tmp_path / "b"), StepContext(timeout=120)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is Status.PASS, result.evidence
    assert result.details["artifact"]["sha256"] == digest
    # The dump went through a few 64 KiB chunks at a time (hashing reads 1 MiB at a time).
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while streaming a ~50 MB dump"
    assert CHUNK <= 64 * 1024


def test_backup_params_name_one_container() -> None:
    from phases.checks.pg_backup import BackupParams

    with pytest.raises(ValueError, match="not both"):
        BackupParams(database_url="x", dir="d", container="db", project="p", service="db")
    with pytest.raises(ValueError, match="project and service go together"):
        BackupParams(database_url="x", dir="d", project="p")
