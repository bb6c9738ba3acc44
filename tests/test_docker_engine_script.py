"""scripts/docker-engine.sh: each checkout derives its own engine directory (no engine started)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "docker-engine.sh"
SUN_PATH_MAX = 107  # a unix socket path is at most 108 bytes including the NUL
LONGEST_SOCKET = "/exec/containerd/containerd.sock.ttrpc"


def engine_script(*args: str, docker_dir: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CUTOVER_DOCKER_DIR"}
    if docker_dir is not None:
        env["CUTOVER_DOCKER_DIR"] = docker_dir
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30
    )


def engine_dir(*args: str, docker_dir: str | None = None) -> str:
    done = engine_script("dir", *args, docker_dir=docker_dir)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_two_checkout_paths_get_different_engine_dirs() -> None:
    assert engine_dir("/srv/clone-a/cutover-bot") != engine_dir("/srv/clone-b/cutover-bot")


def test_one_checkout_path_always_gets_the_same_engine_dir() -> None:
    assert engine_dir("/srv/clone-a/cutover-bot") == engine_dir("/srv/clone-a/cutover-bot/")


def test_this_checkout_uses_the_dir_derived_from_its_own_path() -> None:
    assert engine_dir() == engine_dir(str(REPO))


def test_derived_engine_dir_is_not_the_shared_legacy_dir() -> None:
    assert engine_dir().startswith("/tmp/cutover-docker-")
    assert engine_dir() != "/tmp/cutover-docker"


def test_sockets_fit_the_unix_path_limit_for_a_very_long_checkout_path() -> None:
    deep = "/srv/" + "/".join(["a-rather-long-directory-name"] * 12) + "/cutover-bot"
    assert len((engine_dir(deep) + LONGEST_SOCKET).encode()) <= SUN_PATH_MAX


def test_cutover_docker_dir_overrides_the_derived_dir() -> None:
    assert engine_dir(docker_dir="/tmp/my-engine") == "/tmp/my-engine"


def test_an_override_too_long_for_unix_sockets_is_refused() -> None:
    done = engine_script("dir", docker_dir="/tmp/" + "x" * 80)
    assert done.returncode == 2
    assert "108-byte unix socket path limit" in done.stderr
