"""A run's step context and template values, and the secrets an environment must never show
(registered with the masker from the moment the engine exists)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from bot.engine.core import ContextFactory, uses_run_backup
from bot.store.models import Run
from bot.store.unit import Database
from phases.checks.base import StepContext
from phases.runbook import EnvironmentSpec, Runbook, RunbookError, StepSpec, Value
from phases.secrets import EnvFileError, Masker, parse_env_file


class Contexts:
    def __init__(
        self,
        db: Database,
        runbook: Runbook,
        masker: Masker,
        context_factory: ContextFactory,
        run_backup: Callable[[int], dict[str, Any] | None],
        run_ref: Callable[[int | None], str | None],
    ) -> None:
        self.db = db
        self.runbook = runbook
        self.masker = masker
        self.context_factory = context_factory  # replaceable while the engine runs (tests)
        self.run_backup = run_backup
        self.run_ref = run_ref
        self._env_files: dict[str, int] = {}  # env file path -> mtime when last registered

    def environment(self, name: str) -> EnvironmentSpec:
        return self.runbook.environment(name)

    def register_secrets(self, env_name: str, *, strict: bool = False) -> None:
        """Registers what an environment must never show: its ${VAR} values, the userinfo of
        its URLs, every value of its env file but the keys the runbook marks public.

        `strict`: a missing or malformed env file raises EnvFileError (starting a run);
        otherwise it is left to the secrets check to report."""
        env = self.environment(env_name)
        self.masker.add_all(self.runbook.secret_values(env_name))
        if not env.env_file:
            return
        try:
            path = str(self.runbook.values_for(env_name)["env_file"])
            stamp = os.stat(path).st_mtime_ns if os.path.exists(path) else None
            if not strict and stamp is not None and self._env_files.get(path) == stamp:
                return  # registered already, and the file has not changed since
            self.masker.add_env(parse_env_file(path), public=env.public_env_keys)
            if stamp is not None:
                self._env_files[path] = stamp
        except (EnvFileError, RunbookError):  # a ${VAR} unset: starting a run reports it
            if strict:
                raise

    def context(
        self, run: Run, steps: Sequence[StepSpec] | None = None
    ) -> tuple[StepContext, dict[str, Value]]:
        """The step context and template values of a run (its secrets registered).

        `steps`: the only steps these values are for; the run's backup (an audit query) is
        looked up only if one of them names `run_backup` (every phase of most runbooks
        never does, and a click waits for this)."""
        env = self.environment(run.environment)
        values = self.runbook.values_for(run.environment)
        self.register_secrets(run.environment)
        run_id = run.reverts_run_id or run.id  # a revert restores the backup of what it undoes
        wanted = steps is None or any(uses_run_backup(st.params) for st in steps)
        backup = (
            # Background work retries a dropped connection rather than failing the phase.
            self.db.retrying(lambda: self.run_backup(run_id), f"run #{run_id}: its backup")
            if run_id is not None and wanted
            else None
        )
        if backup is not None:
            values["run_backup"] = str(backup["path"])
            values["run_backup_sha256"] = str(backup["sha256"])
        if (
            run.id is not None
            and "ref" in values
            and (
                steps is None or any("{ref}" in json.dumps(st.params, default=str) for st in steps)
            )
        ):
            given = self.db.retrying(lambda: self.run_ref(run_id), f"run #{run_id}: its ref")
            if given is not None:
                values["ref"] = given
        ctx = self.context_factory(env, run.dry_run, self.masker)
        ctx.public_env_keys = frozenset(env.public_env_keys)
        if run.started_at is not None:
            ctx = dataclasses.replace(ctx, run_started_at=run.started_at.timestamp())
        return ctx, values
