"""Recognise secrets in text, so they never reach the audit trail, a signal or a commit."""

from __future__ import annotations

import re

REDACTED = "[redacted]"
_SECRET_NAME = r"[A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY)[A-Za-z0-9_]*"
PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Google API key": re.compile(r"AIza[0-9A-Za-z_-]{35}"),
    "OAuth client secret": re.compile(r"GOCSPX-[0-9A-Za-z_-]{10,}"),
    "Google refresh token": re.compile(r"1//0[0-9A-Za-z_-]{20,}"),
    "Google access token": re.compile(r"ya29\.[0-9A-Za-z_-]{20,}"),
    "Anthropic key": re.compile(r"sk-ant-[0-9A-Za-z_-]{20,}"),
    "AWS key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "GitHub token": re.compile(r"(?:ghp_[0-9A-Za-z]{30,}|github_pat_[0-9A-Za-z_]{20,})"),
    "Slack token": re.compile(r"xox[abprs]-[0-9A-Za-z-]{10,}"),
    "JWT": re.compile(r"eyJ[0-9A-Za-z_-]{8,}\.eyJ[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}"),
    "secret assignment": re.compile(rf"(?i)\b{_SECRET_NAME}\s*=\s*\S+"),
    "Odoo API key": re.compile(r"(?i)(?:api[_ -]?key|password|odoo)\W{1,20}[0-9a-f]{40}\b"),
}


def find_secrets(text: str) -> list[str]:
    """The kinds of secret found in ``text`` (empty when it looks clean)."""
    return [kind for kind, pattern in PATTERNS.items() if pattern.search(text)]


def redact_text(text: str) -> str:
    """``text`` with every secret-looking part replaced by ``[redacted]``."""
    for pattern in PATTERNS.values():
        text = pattern.sub(REDACTED, text)
    return text
