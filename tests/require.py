"""Skip locally when a real service is missing; in CI (CI=true) a missing service is a failure."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run against the real service: {reason}", pytrace=False)
    pytest.skip(reason)
