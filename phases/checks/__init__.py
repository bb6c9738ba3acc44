"""The step library: read-only checks and state-changing actions, by kind name.

Every kind is imported to load a runbook (its params validate each step), so a kind imports
its network library (httpx, the docker SDK, dnspython) inside the functions that run it,
not at the top of its module: `cutover runbook check`, `audit verify` and the other
commands that run no step start ~0.3 s sooner (tests/test_cli_imports.py keeps it so).
"""

from phases.checks.base import REGISTRY, Status, StepContext, StepKind, StepResult, register

# Importing a module registers its kinds.
from phases.checks import (  # noqa: E402,F401  isort: skip
    backup,
    pg_backup,
    pg_restore,
    pg_rows,
    command,
    compose_up,
    deployed,
    disk,
    dns_check,
    docker_containers,
    docker_images,
    docker_stats,
    docker_stop,
    http_check,
    logs_check,
    nip05_claim,
    tick_log_line,
    postgres_check,
    prometheus_check,
    published_ports,
    secrets_check,
    statuspage,
    tls_check,
)

__all__ = ["REGISTRY", "StepContext", "StepKind", "StepResult", "Status", "register"]
