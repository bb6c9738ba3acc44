"""Phase 2 "source .env; echo Domain: $DOMAIN": the deployed .env's DOMAIN is compared with the
environment's domain, so staging's file copied to production fails the gate (the shipped
steps: the real `install -m 600` action, then the secrets check of the deployed file)."""

from __future__ import annotations

from pathlib import Path

from bot.standin import nostrmaxi_env_values
from phases.checks.base import Status, StepContext
from phases.secrets import MASK, Masker
from tests.nostrmaxi_lines import run_shipped, shipped

PUBLIC = frozenset(shipped().environment("prod").public_env_keys)


def deploy(
    tmp_path: Path, domain: str, public: frozenset[str] = PUBLIC
) -> tuple[StepContext, dict[str, str]]:
    """Writes .env.prod for `domain`, installs it as the deployed .env (Phase 2's action)."""
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    env_file = tmp_path / ".env.prod"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in nostrmaxi_env_values(domain).items()), encoding="utf-8"
    )
    ctx = StepContext(timeout=10.0, masker=Masker(), public_env_keys=public)
    values = {"app_dir": str(app), "env_file": str(env_file)}
    installed = run_shipped("deploy-config", "install-env", ctx, **values)
    assert installed.status is Status.PASS, installed.evidence
    return ctx, values


def test_the_deployed_env_for_this_domain_passes_and_says_so(tmp_path: Path) -> None:
    ctx, values = deploy(tmp_path, "nostrmaxi.com")
    result = run_shipped("deploy-config", "secrets", ctx, domain="nostrmaxi.com", **values)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith("DOMAIN=nostrmaxi.com as expected; secrets OK: ")


def test_another_environments_env_file_fails_phase_2_naming_both_domains(tmp_path: Path) -> None:
    ctx, values = deploy(tmp_path, "staging.nostrmaxi.com")
    result = run_shipped("deploy-config", "secrets", ctx, domain="nostrmaxi.com", **values)
    assert result.status is Status.FAIL
    assert result.evidence == "DOMAIN=staging.nostrmaxi.com, expected nostrmaxi.com"


def test_a_domain_the_runbook_does_not_mark_public_is_never_shown(tmp_path: Path) -> None:
    ctx, values = deploy(tmp_path, "secret-host.internal", public=frozenset())
    result = run_shipped("deploy-config", "secrets", ctx, domain="nostrmaxi.com", **values)
    assert result.status is Status.FAIL
    assert result.evidence == "DOMAIN differs (masked)"
    assert ctx.masker.mask("host secret-host.internal") == f"host {MASK}"
    (Path(values["app_dir"]) / ".env").write_text("JWT_SECRET=x\n", encoding="utf-8")
    missing = run_shipped("deploy-config", "secrets", ctx, domain="nostrmaxi.com", **values)
    assert missing.evidence.startswith("DOMAIN not set (expected a value); ")
