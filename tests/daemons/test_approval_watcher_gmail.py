"""The approval watcher sends an approved email through Gmail once, end to end.

The real console script runs against the Gmail stand-in over real HTTP, signed in with a
token file in SECRETS_DIR; without a token the request waits in Approved/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import frontmatter
import pytest

from core.actions import SendEmail
from core.approvals import approve, create_request
from core.audit import AuditLog
from core.config import Settings
from core.vault import Vault
from tests.fakes.gmail import GmailStandIn
from tests.servers.test_gmail_client import make_settings, write_token

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "cli", "run", "approval_watcher", "--once"]


@pytest.fixture
def gmail() -> Iterator[GmailStandIn]:
    with GmailStandIn() as stand_in:
        yield stand_in


def _approved(settings: Settings) -> Path:
    vault = Vault(settings.vault_path, audit=AuditLog(settings.vault_path, "local"), actor="ceo")
    email = SendEmail(to=["ana@client.example"], subject="Your invoice")
    path = create_request(vault, email, "Hello Ana,\n\nattached.", reason="asked for it")
    return approve(vault, str(path.relative_to(vault.root)))


def _run(settings: Settings, gmail: GmailStandIn) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VAULT_PATH": str(settings.vault_path),
        "SECRETS_DIR": str(settings.secrets_dir),
        "GMAIL_API_ENDPOINT": gmail.url,
        "DRY_RUN": "false",
        "ZONE": "local",
    }
    return subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=120)


def test_an_approved_email_is_sent_once_through_gmail(tmp_path: Path, gmail: GmailStandIn) -> None:
    settings = make_settings(tmp_path, gmail)
    write_token(settings, gmail)
    approved = _approved(settings)
    proc = _run(settings, gmail)
    assert proc.returncode == 0, proc.stderr
    [sent] = gmail.sent
    assert sent["headers"]["To"] == "ana@client.example"
    done = frontmatter.loads((settings.vault_path / "Done" / approved.name).read_text())
    assert done["outcome"] == "done" and done["dry_run"] is False
    assert done["result"]["message_id"] == sent["headers"]["Message-ID"]
    again = _run(settings, gmail)  # nothing is sent twice
    assert again.returncode == 0 and len(gmail.sent) == 1


def test_without_a_gmail_token_the_request_waits(tmp_path: Path, gmail: GmailStandIn) -> None:
    settings = make_settings(tmp_path, gmail)
    approved = _approved(settings)
    proc = _run(settings, gmail)
    assert proc.returncode == 0, proc.stderr
    assert "no send_email handler" in proc.stdout
    assert approved.exists() and gmail.sent == [] and gmail.requests == []
