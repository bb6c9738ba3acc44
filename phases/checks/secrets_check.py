"""`secrets`: the env file holds every secret the runbook requires, and they look random.

Runbook T-24h "Verify secrets provisioned": BTCPay (or LNbits) settings, at least
one valid admin pubkey, JWT_SECRET of 64+ and WEBHOOK_SECRET of 32+ random chars.
Evidence names the failing rules only; a value is never shown (every secret is
registered with the masker before anything else happens).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from typing import Literal

from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register
from phases.secrets import EnvFileError, parse_env_file

EVIDENCE_LIMIT = 200

PUBKEY_PATTERN = re.compile(r"[0-9a-fA-F]{64}")
URL_PATTERN = re.compile(r"https?://[^\s/]+.*")

# Lower-cased fragments that mark a value copied from an example file.
PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "change-this",
    "change_this",
    "your-",
    "your_",
    "yoursecret",
    "secret-here",
    "secret_here",
    "replace-me",
    "replace_me",
    "replaceme",
    "placeholder",
    "example",
    "dummy",
    "notsecret",
    "not-a-secret",
    "xxxxxx",
    "<",
    ">",
    "${",
)

# NostrMaxi registers LNbits only with LNBITS_URL and LNBITS_API_KEY; the other key names
# (LNbits' own wallet keys) do not configure it, but are secrets all the same (masked).
LNBITS_API_KEY = "LNBITS_API_KEY"
LNBITS_KEY_NAMES = (LNBITS_API_KEY, "LNBITS_ADMIN_KEY", "LNBITS_INVOICE_KEY")


class SecretsParams(StepParams):
    env_file: str = Field(min_length=1)
    provider: Literal["auto", "btcpay", "lnbits"] = "auto"
    min_jwt_len: int = Field(default=64, ge=1)
    min_webhook_len: int = Field(default=32, ge=1)
    min_entropy_bits: float = Field(default=3.0, ge=0, le=8)  # Shannon bits per character
    # Values the file must hold, e.g. {DOMAIN: "{domain}"}: the deployed .env is for this
    # environment (runbook Phase 2 "source .env; echo Domain: $DOMAIN"). A key the runbook
    # marks public is shown as it is; any other value only as "differs" (masked).
    expect: dict[str, str] = Field(default_factory=dict)


def shannon_entropy(value: str) -> float:
    """Bits per character of the value's own character distribution."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return abs(sum(c / n * math.log2(c / n) for c in counts.values()))


def is_repeated(value: str) -> bool:
    """True when the value is a shorter unit repeated (abcabcabc…, aaaa…)."""
    n = len(value)
    if n > 4096:
        return False
    for period in range(1, n // 2 + 1):
        if all(value[i] == value[i - period] for i in range(period, n)):
            return True
    return False


def is_sequential(value: str) -> bool:
    """True when most neighbouring characters step by one (abcdef…, 98765…)."""
    if len(value) < 4:
        return False
    steps = sum(1 for a, b in zip(value, value[1:], strict=False) if abs(ord(b) - ord(a)) == 1)
    return steps / (len(value) - 1) >= 0.5


def is_placeholder(value: str) -> bool:
    low = value.lower()
    return any(p in low for p in PLACEHOLDERS)


def random_secret_problems(
    name: str, value: str | None, min_len: int, min_entropy: float
) -> list[str]:
    """Rule failures for one secret that must be long and random; never includes the value."""
    if not value:
        return [f"{name} missing"]
    problems: list[str] = []
    if len(value) < min_len:
        problems.append(f"{name} too short ({len(value)} < {min_len} chars)")
    if is_placeholder(value):
        problems.append(f"{name} looks like a placeholder")
    if is_repeated(value):
        problems.append(f"{name} is a repeated pattern")
    elif is_sequential(value):
        problems.append(f"{name} is a sequential pattern")
    entropy = shannon_entropy(value)
    if entropy < min_entropy:
        problems.append(f"{name} low entropy ({entropy:.1f} < {min_entropy:g} bits/char)")
    return problems


def _pick_provider(params: SecretsParams, env: dict[str, str]) -> tuple[str | None, str | None]:
    """(provider, problem)."""
    if params.provider != "auto":
        return params.provider, None
    declared = env.get("PAYMENTS_PROVIDER", "").strip().lower()
    if declared:
        if declared in ("btcpay", "lnbits"):
            return declared, None
        return None, "PAYMENTS_PROVIDER is neither btcpay nor lnbits"
    if any(env.get(k) for k in ("BTCPAY_URL", "BTCPAY_API_KEY", "BTCPAY_STORE_ID")):
        return "btcpay", None
    if env.get("LNBITS_URL") or any(env.get(k) for k in LNBITS_KEY_NAMES):
        return "lnbits", None
    return None, "no payment provider settings (BTCPAY_* or LNBITS_*)"


def _provider_problems(provider: str, env: dict[str, str]) -> list[str]:
    problems: list[str] = []
    if provider == "btcpay":
        for key in ("BTCPAY_URL", "BTCPAY_API_KEY", "BTCPAY_STORE_ID"):
            if not env.get(key, "").strip():
                problems.append(f"{key} missing")
        url = env.get("BTCPAY_URL", "").strip()
        if url and not URL_PATTERN.fullmatch(url):
            problems.append("BTCPAY_URL is not an http(s) URL")
    else:
        url = env.get("LNBITS_URL", "").strip()
        if not url:
            problems.append("LNBITS_URL missing")
        elif not URL_PATTERN.fullmatch(url):
            problems.append("LNBITS_URL is not an http(s) URL")
        if not env.get(LNBITS_API_KEY, "").strip():
            others = [k for k in LNBITS_KEY_NAMES[1:] if env.get(k, "").strip()]
            problems.append(
                f"{LNBITS_API_KEY} missing"
                + (
                    f" ({', '.join(others)} is set, but NostrMaxi registers LNbits only with "
                    f"LNBITS_URL and {LNBITS_API_KEY}: put the key there)"
                    if others
                    else ""
                )
            )
    return problems


def _admin_pubkey_problems(raw: str | None) -> tuple[list[str], int]:
    """(problems, number of valid pubkeys); invalid entries are named by position only."""
    if raw is None or not raw.strip():
        return ["ADMIN_PUBKEYS missing"], 0
    entries = [e.strip() for e in raw.split(",")]
    valid = 0
    bad_positions: list[str] = []
    for position, entry in enumerate(entries, start=1):
        if not entry:
            continue
        if PUBKEY_PATTERN.fullmatch(entry):
            valid += 1
        else:
            bad_positions.append(str(position))
    problems: list[str] = []
    if bad_positions:
        problems.append(f"ADMIN_PUBKEYS entry {', '.join(bad_positions)} not 64-hex")
    if valid == 0:
        problems.append("ADMIN_PUBKEYS has no valid 64-hex pubkey")
    return problems, valid


def _resolve(path: str, ctx: StepContext) -> str:
    if ctx.workdir and not os.path.isabs(path):
        return os.path.join(ctx.workdir, path)
    return path


def _join(problems: list[str]) -> str:
    text = "; ".join(problems)
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


def run_secrets(params: SecretsParams, ctx: StepContext) -> StepResult:
    path = _resolve(params.env_file, ctx)
    if not os.path.isfile(path):
        return StepResult(Status.FAIL, f"env file {params.env_file} not found")
    try:
        env = parse_env_file(path)
    except EnvFileError as exc:
        return StepResult(Status.FAIL, f"env file unreadable: {exc}")
    # Before anything else, so no later message can carry a value. Keys the runbook marks
    # public (DOMAIN, PAYMENTS_PROVIDER) stay readable, as everywhere else the env is read.
    ctx.masker.add_env(env, public=ctx.public_env_keys)
    for key in ("JWT_SECRET", "WEBHOOK_SECRET", "BTCPAY_API_KEY", *LNBITS_KEY_NAMES):
        if env.get(key):
            ctx.masker.add(env[key])

    problems: list[str] = []
    provider, provider_problem = _pick_provider(params, env)
    if provider_problem:
        problems.append(provider_problem)
    if provider:
        problems += _provider_problems(provider, env)
    pubkey_problems, admin_count = _admin_pubkey_problems(env.get("ADMIN_PUBKEYS"))
    problems += pubkey_problems
    problems += random_secret_problems(
        "JWT_SECRET", env.get("JWT_SECRET"), params.min_jwt_len, params.min_entropy_bits
    )
    problems += random_secret_problems(
        "WEBHOOK_SECRET", env.get("WEBHOOK_SECRET"), params.min_webhook_len, params.min_entropy_bits
    )
    matched, mismatched = _expected(params.expect, env, ctx)
    problems = mismatched + problems  # the wrong environment's file first: it says the most
    details = {"provider": provider, "admin_pubkeys": admin_count, "failures": list(problems)}
    if problems:
        return StepResult(Status.FAIL, _join(problems), details=details)
    evidence = (
        "".join(f"{m}; " for m in matched)
        + f"secrets OK: {provider} settings, {admin_count} admin pubkey(s), "
        f"JWT_SECRET {len(env['JWT_SECRET'])} chars, "
        f"WEBHOOK_SECRET {len(env['WEBHOOK_SECRET'])} chars"
    )
    return StepResult(Status.PASS, _clip(evidence), details=details)


def _expected(
    expect: dict[str, str], env: dict[str, str], ctx: StepContext
) -> tuple[list[str], list[str]]:
    """("DOMAIN=nostrmaxi.com as expected" lines, mismatch lines); a value the runbook does
    not mark public is never shown, only whether it matched."""
    matched: list[str] = []
    wrong: list[str] = []
    for key, want in expect.items():
        public = key in ctx.public_env_keys
        got = env.get(key)
        if got is None:
            wrong.append(f"{key} not set (expected {want if public else 'a value'})")
        elif got != want:
            shown = f"{key}={got}, expected {want}" if public else f"{key} differs (masked)"
            wrong.append(ctx.masker.mask(shown))
        else:
            matched.append(f"{key}={got} as expected" if public else f"{key} as expected")
    return matched, wrong


def _clip(text: str) -> str:
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


KIND = register(StepKind(name="secrets", params=SecretsParams, run=run_secrets, mutates=False))
