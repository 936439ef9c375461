"""Fixtures that isolate every test: temp HOME, temp SECRETS_DIR, no user config leaks in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.gmail import GmailStandIn

PRODUCT_ENV = (
    "VAULT_PATH",
    "ZONE",
    "DRY_RUN",
    "SECRETS_DIR",
    "GMAIL_API_ENDPOINT",
    "ODOO_URL",
    "ODOO_DB",
    "ODOO_USER",
    "ODOO_PASSWORD",
    "CHROMIUM_PATH",
    "AI_EMPLOYEE_ENV_FILE",
    "AI_EMPLOYEE_FAULT",
    "CLAIM_LEASE_MINUTES",
    "GMAIL_WATCH_QUERY",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and SECRETS_DIR at temp folders and drop every product variable."""
    for name in list(os.environ):
        if name in PRODUCT_ENV or name.startswith("SOCIAL_"):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SECRETS_DIR", str(secrets))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def gmail() -> Iterator[GmailStandIn]:
    """The Gmail stand-in on a free loopback port, for this test only."""
    with GmailStandIn() as stand_in:
        yield stand_in
