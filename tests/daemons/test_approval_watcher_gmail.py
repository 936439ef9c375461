"""The approval watcher sends an approved email through Gmail once, end to end.

The real console script runs against the Gmail stand-in over real HTTP, signed in with a
token file in SECRETS_DIR; without a token the request waits in Approved/. Killed (SIGKILL)
around the send, or with the send's connection dropped, the next pass finishes the request
by looking its Message-ID up in Sent: the mailbox holds exactly one copy, never two.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

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
# The installed console script, next to the interpreter running the tests (`make` installs it).
SCRIPT = Path(sys.executable).with_name("ai-employee")
KILLED = -signal.SIGKILL
IN_PROGRESS = "In_Progress/local"


def _approved(settings: Settings) -> Path:
    vault = Vault(settings.vault_path, audit=AuditLog(settings.vault_path, "local"), actor="ceo")
    email = SendEmail(to=["ana@client.example"], subject="Your invoice")
    path = create_request(vault, email, "Hello Ana,\n\nattached.", reason="asked for it")
    return approve(vault, str(path.relative_to(vault.root)))


def _env(settings: Settings, gmail: GmailStandIn, fault: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,  # product variables are already dropped (tests/conftest.py)
        "PYTHONPATH": str(REPO),
        "VAULT_PATH": str(settings.vault_path),
        "SECRETS_DIR": str(settings.secrets_dir),
        "GMAIL_API_ENDPOINT": gmail.url,
        "DRY_RUN": "false",
        "ZONE": "local",
    }
    if fault is not None:
        env["AI_EMPLOYEE_FAULT"] = fault
    return env


def _run(settings: Settings, gmail: GmailStandIn) -> subprocess.CompletedProcess[str]:
    env = _env(settings, gmail)
    return subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=120)


def _run_script(
    settings: Settings, gmail: GmailStandIn, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`ai-employee run approval_watcher --once`, the console script itself, in a new process."""
    assert SCRIPT.is_file(), f"{SCRIPT} is missing: install the package (make test does)"
    return subprocess.run(
        [str(SCRIPT), "run", "approval_watcher", "--once"],
        env=_env(settings, gmail, fault),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sends(requests: list[tuple[str, str, dict[str, Any], Any, str | None]]) -> int:
    """How many messages.send calls reached the stand-in."""
    return sum(1 for method, path, *_ in requests if method == "POST" and path.endswith("/send"))


def _lookups(requests: list[tuple[str, str, dict[str, Any], Any, str | None]]) -> int:
    """How many Sent searches by Message-ID (the executor's reconciliation) reached it."""
    return sum(1 for _, path, q, *_ in requests if "rfc822msgid:" in str(q.get("q", "")))


def _result(path: Path) -> dict[str, Any]:
    return frontmatter.loads(path.read_text()).metadata


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


@pytest.mark.parametrize(
    ("point", "sent_before_crash", "sends_after", "reconciled"),
    [
        # killed before the call: the second pass finds nothing in Sent and sends, once
        ("executor:after_intent", 0, 1, False),
        # killed after Gmail sent it, before the result was recorded: found in Sent, not resent
        ("executor:after_call", 1, 0, True),
        # killed after the result was recorded: the ledger finishes it, Gmail is not asked
        ("executor:after_result", 1, 0, False),
    ],
)
def test_killed_around_the_send_the_next_pass_finishes_it_once(
    tmp_path: Path,
    gmail: GmailStandIn,
    point: str,
    sent_before_crash: int,
    sends_after: int,
    reconciled: bool,
) -> None:
    settings = make_settings(tmp_path, gmail)
    write_token(settings, gmail)
    approved = _approved(settings)
    vault = settings.vault_path

    crashed = _run_script(settings, gmail, fault=point)
    assert crashed.returncode == KILLED, (crashed.returncode, crashed.stdout, crashed.stderr)
    assert len(gmail.sent) == sent_before_crash
    assert _sends(gmail.requests) == sent_before_crash  # one attempt, never a resend
    assert (vault / IN_PROGRESS / approved.name).is_file()
    assert not approved.exists() and not (vault / "Done" / approved.name).exists()

    before = len(gmail.requests)
    again = _run_script(settings, gmail)
    assert again.returncode == 0, again.stdout + again.stderr
    second = gmail.requests[before:]
    assert _sends(second) == sends_after
    if point == "executor:after_result":
        assert _lookups(second) == 0  # the ledger already knew: no need to ask Gmail
    else:
        assert _lookups(second) == 1
    [sent] = gmail.sent  # exactly one message in Sent, whatever happened
    done = vault / "Done" / approved.name
    assert done.is_file() and not (vault / IN_PROGRESS / approved.name).exists()
    meta = _result(done)
    assert meta["outcome"] == "done" and meta["status"] == "done" and meta["dry_run"] is False
    assert meta["result"]["message_id"] == sent["headers"]["Message-ID"]
    assert meta["result"]["message_id"] == f"<{meta['idempotency_key']}@ai-employee.invalid>"
    assert meta["result"].get("reconciled", False) is reconciled
    assert AuditLog(vault, "local").verify().ok

    last = len(gmail.requests)
    idle = _run_script(settings, gmail)  # and a third pass has nothing left to do
    assert idle.returncode == 0 and len(gmail.sent) == 1 and _sends(gmail.requests[last:]) == 0


@pytest.mark.parametrize("after", [True, False], ids=["dropped-after-sending", "dropped-before"])
def test_a_dropped_send_connection_is_resolved_by_looking_in_sent(
    tmp_path: Path, gmail: GmailStandIn, after: bool
) -> None:
    settings = make_settings(tmp_path, gmail)
    write_token(settings, gmail)
    approved = _approved(settings)
    gmail.inject_drop(
        "/messages/send", after=after
    )  # no answer; sent or not, the client can't tell

    proc = _run_script(settings, gmail)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _sends(gmail.requests) == 1  # the dropped POST was not repeated by any layer
    assert _lookups(gmail.requests) == 1
    if after:  # Gmail sent it: the lookup finds it, the request is done
        [sent] = gmail.sent
        meta = _result(settings.vault_path / "Done" / approved.name)
        assert meta["outcome"] == "done" and meta["result"]["reconciled"] is True
        assert meta["result"]["message_id"] == sent["headers"]["Message-ID"]
    else:  # nothing in Sent, but it cannot be known that Gmail never got it: not redone
        assert gmail.sent == []
        meta = _result(settings.vault_path / "Failed" / approved.name)
        assert meta["outcome"] == "unknown" and "not retried" in meta["error"]

    before = len(gmail.requests)
    again = _run_script(settings, gmail)  # a later pass leaves it alone either way
    assert again.returncode == 0 and _sends(gmail.requests[before:]) == 0
    assert len(gmail.sent) == (1 if after else 0)
