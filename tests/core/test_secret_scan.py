"""Secret recognition: every kind the product must keep out of logs, signals and commits.

Samples are assembled at run time so the repository itself holds no secret-shaped string.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.audit import AuditLog
from core.config import load_settings
from core.errors import ConfigError
from core.secret_scan import REDACTED, find_secrets, redact_text

BODY = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0"
SAMPLES = {
    "private key": "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE",
    "Google API key": "AI" + "za" + BODY[:35],
    "OAuth client secret": "GOC" + "SPX-" + BODY[:24],
    "Google refresh token": "1//" + "0" + BODY,
    "Google access token": "ya" + "29." + BODY,
    "Anthropic key": "sk-" + "ant-" + BODY,
    "AWS key": "AK" + "IA" + "ABCDEFGHIJKLMNOP",
    "GitHub token": "gh" + "p_" + BODY,
    "Slack token": "xo" + "xb-" + "1234567890-abcdef",
    "JWT": "ey" + "JhbGciOiJIUzI1NiJ9.ey" + "JzdWIiOiIxMjM0In0.abcdefghijkl",
    "secret assignment": "ODOO_" + "PASSWORD=hunter22",
    "Odoo API key": "api_key: " + "0123456789abcdef" * 2 + "01234567",
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_kind_is_found_and_redacted(kind: str) -> None:
    text = f"note before {SAMPLES[kind]} and after"
    assert kind in find_secrets(text)
    cleaned = redact_text(text)
    assert REDACTED in cleaned and find_secrets(cleaned) == []
    assert cleaned.startswith("note before")


def test_plain_business_text_is_not_a_secret() -> None:
    text = "Invoice 2026-0042 for 1,250.00 EUR, due 2026-12-01. Token of thanks: a box of tea."
    assert find_secrets(text) == []
    assert redact_text(text) == text


def test_audit_details_never_keep_a_secret(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, "local")
    log.append(
        actor="t",
        category="email",
        action="send",
        target="x",
        status="ok",
        dry_run=True,
        details={
            "note": "key " + SAMPLES["Anthropic key"],
            "pwd": "hunter2",
            "nested": [{"access_key": "quokka-vault-7"}, SAMPLES["Google access token"]],
        },
    )
    raw = log.path.read_text()
    for secret in (
        "hunter2",
        SAMPLES["Anthropic key"],
        SAMPLES["Google access token"],
        "quokka-vault-7",
    ):
        assert secret not in raw
    assert log.verify().ok


@pytest.mark.parametrize("var", ["ODOO_URL", "GMAIL_API_ENDPOINT", "SOCIAL_LINKEDIN_URL"])
def test_config_never_echoes_a_url_and_refuses_credentials_in_it(var: str) -> None:
    for value in ("https://admin:hunter2@odoo.example", "ftp://admin:hunter2@odoo"):
        with pytest.raises(ConfigError) as info:
            load_settings({var: value})
        assert "hunter2" not in str(info.value)
        assert var in str(info.value)
