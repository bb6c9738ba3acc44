"""`secrets`: T-24h "Verify secrets provisioned" rules, and no secret ever in evidence."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from phases.checks import REGISTRY
from phases.checks.base import Status, StepContext
from phases.checks.secrets_check import is_repeated, is_sequential, shannon_entropy
from phases.secrets import MASK, Masker
from tests.servers import run_check

PUBKEY_A = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
PUBKEY_B = "82341f882b6eabcd2ba7f1ef90aad961cf074af15b9ef44a09f9d2a8fbfbe6a2"


def good_env() -> dict[str, str]:
    return {
        "DOMAIN": "nostrmaxi.example",
        "PAYMENTS_PROVIDER": "btcpay",
        "BTCPAY_URL": "https://btcpay.example",
        "BTCPAY_API_KEY": secrets.token_hex(20),
        "BTCPAY_STORE_ID": secrets.token_urlsafe(32),
        "ADMIN_PUBKEYS": f"{PUBKEY_A},{PUBKEY_B}",
        "JWT_SECRET": secrets.token_urlsafe(64),  # 86 chars
        "WEBHOOK_SECRET": secrets.token_urlsafe(32),  # 43 chars
        "DATABASE_URL": f"postgresql://nostrmaxi:{secrets.token_hex(12)}@db:5432/nostrmaxi",
    }


def write_env(tmp_path: Path, env: dict[str, str], name: str = ".env.prod") -> Path:
    path = tmp_path / name
    path.write_text("# production\n" + "".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def check(path: Path | str, **params: object) -> tuple[Status, str, StepContext]:
    ctx = StepContext(masker=Masker())
    result = run_check("secrets", {"env_file": str(path), **params}, ctx)
    assert len(result.evidence) <= 200
    return result.status, result.evidence, ctx


def test_kind_is_registered_read_only() -> None:
    assert REGISTRY["secrets"].mutates is False


def test_fully_provisioned_btcpay_env_passes(tmp_path: Path) -> None:
    status, evidence, _ = check(write_env(tmp_path, good_env()))
    assert status is Status.PASS, evidence
    assert "btcpay" in evidence and "2 admin pubkey" in evidence
    assert "JWT_SECRET 86 chars" in evidence


def test_missing_env_file_fails_with_its_name(tmp_path: Path) -> None:
    status, evidence, _ = check(tmp_path / ".env.prod")
    assert status is Status.FAIL
    assert evidence == f"env file {tmp_path / '.env.prod'} not found"


def test_jwt_secret_shorter_than_64_chars_fails(tmp_path: Path) -> None:
    env = good_env() | {"JWT_SECRET": secrets.token_hex(20)}  # 40 random chars
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == "JWT_SECRET too short (40 < 64 chars)"


def test_webhook_secret_shorter_than_32_chars_fails(tmp_path: Path) -> None:
    env = good_env() | {"WEBHOOK_SECRET": secrets.token_urlsafe(16)}  # 22 chars
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == "WEBHOOK_SECRET too short (22 < 32 chars)"


def test_repeated_webhook_secret_is_not_random(tmp_path: Path) -> None:
    env = good_env() | {"WEBHOOK_SECRET": "a" * 40}
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert "WEBHOOK_SECRET is a repeated pattern" in evidence
    assert "WEBHOOK_SECRET low entropy (0.0 < 3 bits/char)" in evidence


def test_repeated_high_entropy_unit_is_still_a_pattern(tmp_path: Path) -> None:
    env = good_env() | {"JWT_SECRET": "Xk9#qL2$vB7!" * 6}  # 72 chars, 3.6 bits/char
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == "JWT_SECRET is a repeated pattern"


def test_sequential_jwt_secret_fails(tmp_path: Path) -> None:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
    env = good_env() | {"JWT_SECRET": alphabet}
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == "JWT_SECRET is a sequential pattern"


@pytest.mark.parametrize(
    "value",
    [
        "your-super-secret-jwt-key-at-least-64-characters-long-for-production-use",
        "changeme-Q3v8ZP1x7LkR2m9N4bT6yW0cF5hJ8sD1gA3eU7iO2pK9lM4nB6vC0xZ5",
        "<generate with openssl rand -hex 32 and paste the output right here>",
    ],
)
def test_placeholder_jwt_secret_from_example_file_fails(tmp_path: Path, value: str) -> None:
    env = good_env() | {"JWT_SECRET": value}
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert "JWT_SECRET looks like a placeholder" in evidence


def test_missing_btcpay_store_id_fails(tmp_path: Path) -> None:
    env = good_env()
    env["BTCPAY_STORE_ID"] = ""
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == "BTCPAY_STORE_ID missing"


def test_lnbits_url_and_api_key_satisfy_the_payment_rule(tmp_path: Path) -> None:
    env = good_env()
    for key in ("BTCPAY_URL", "BTCPAY_API_KEY", "BTCPAY_STORE_ID"):
        del env[key]
    env |= {
        "PAYMENTS_PROVIDER": "lnbits",
        "LNBITS_URL": "https://legend.lnbits.com",
        "LNBITS_API_KEY": secrets.token_hex(16),
    }
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.PASS, evidence
    assert "lnbits" in evidence


@pytest.mark.parametrize("key", ["LNBITS_ADMIN_KEY", "LNBITS_INVOICE_KEY"])
def test_an_lnbits_key_nostrmaxi_does_not_read_fails_and_says_where_the_key_goes(
    tmp_path: Path, key: str
) -> None:
    """NostrMaxi registers LNbits only with LNBITS_URL and LNBITS_API_KEY: another key name
    leaves payments unconfigured, so the rule must not pass it."""
    env = good_env()
    for name in ("BTCPAY_URL", "BTCPAY_API_KEY", "BTCPAY_STORE_ID"):
        del env[name]
    value = secrets.token_hex(16)
    env |= {"PAYMENTS_PROVIDER": "lnbits", "LNBITS_URL": "https://legend.lnbits.com", key: value}
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == (
        f"LNBITS_API_KEY missing ({key} is set, but NostrMaxi registers LNbits only with "
        "LNBITS_URL and LNBITS_API_KEY: put the key there)"
    )
    assert value not in evidence


def test_auto_provider_without_payments_provider_picks_the_set_present(tmp_path: Path) -> None:
    env = good_env()
    for key in ("PAYMENTS_PROVIDER", "BTCPAY_URL", "BTCPAY_API_KEY", "BTCPAY_STORE_ID"):
        del env[key]
    env |= {"LNBITS_URL": "https://lnbits.example"}  # no key
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence.startswith("LNBITS_API_KEY missing")


def test_no_payment_provider_at_all_fails(tmp_path: Path) -> None:
    env = good_env()
    for key in ("PAYMENTS_PROVIDER", "BTCPAY_URL", "BTCPAY_API_KEY", "BTCPAY_STORE_ID"):
        del env[key]
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == "no payment provider settings (BTCPAY_* or LNBITS_*)"


def test_explicit_provider_overrides_payments_provider(tmp_path: Path) -> None:
    status, evidence, _ = check(write_env(tmp_path, good_env()), provider="lnbits")
    assert status is Status.FAIL
    assert "LNBITS_URL missing" in evidence


def test_admin_pubkeys_invalid_entry_reported_by_position_not_value(tmp_path: Path) -> None:
    npub = "npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m"
    env = good_env() | {"ADMIN_PUBKEYS": f"{PUBKEY_A}, {npub}, deadbeef"}
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == "ADMIN_PUBKEYS entry 2, 3 not 64-hex"
    assert npub not in evidence and "deadbeef" not in evidence


def test_admin_pubkeys_without_any_valid_key_fails(tmp_path: Path) -> None:
    env = good_env() | {"ADMIN_PUBKEYS": "npub1abc"}
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert "ADMIN_PUBKEYS has no valid 64-hex pubkey" in evidence


def test_several_failures_are_listed_by_rule_name(tmp_path: Path) -> None:
    env = good_env() | {"JWT_SECRET": secrets.token_hex(20), "WEBHOOK_SECRET": "b" * 33}
    del env["ADMIN_PUBKEYS"]
    status, evidence, _ = check(write_env(tmp_path, env))
    assert status is Status.FAIL
    assert evidence == (
        "ADMIN_PUBKEYS missing; JWT_SECRET too short (40 < 64 chars); "
        "WEBHOOK_SECRET is a repeated pattern; WEBHOOK_SECRET low entropy (0.0 < 3 bits/char)"
    )


def test_evidence_never_contains_a_seeded_secret_or_its_base64(tmp_path: Path) -> None:
    jwt = "sk-" + secrets.token_hex(18)  # too short: the rule fires, the value stays hidden
    webhook = "whsec_changeme_" + secrets.token_hex(4)
    api_key = secrets.token_hex(20)
    env = good_env() | {"JWT_SECRET": jwt, "WEBHOOK_SECRET": webhook, "BTCPAY_API_KEY": api_key}
    path = write_env(tmp_path, env)
    ctx = StepContext(masker=Masker())
    result = run_check("secrets", {"env_file": str(path)}, ctx)
    assert result.status is Status.FAIL
    shown = result.evidence + repr(result.details)
    for value in (jwt, webhook, api_key, env["DATABASE_URL"]):
        raw = value.encode()
        for form in (
            value,
            base64.b64encode(raw).decode(),
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode(),
        ):
            assert form not in shown
        # registered before anything else: the masker now hides it everywhere
        assert ctx.masker.mask(f"x {value} y") == f"x {MASK} y"
        assert value not in ctx.masker.mask(base64.b64encode(raw).decode())


def test_env_file_path_is_relative_to_the_workdir(tmp_path: Path) -> None:
    write_env(tmp_path, good_env(), name=".env")
    result = run_check("secrets", {"env_file": ".env"}, workdir=str(tmp_path))
    assert result.status is Status.PASS, result.evidence


def test_params_reject_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        REGISTRY["secrets"].params.model_validate({"env_file": ".env", "strict": True})


def test_randomly_generated_secrets_pass_the_randomness_rules() -> None:
    for _ in range(200):
        for value in (secrets.token_hex(32), secrets.token_urlsafe(48)):
            assert shannon_entropy(value) >= 3.0
            assert not is_repeated(value)
            assert not is_sequential(value)
