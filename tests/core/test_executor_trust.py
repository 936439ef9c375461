"""The executor trusts only what it took from Approved/ itself, byte for byte.

Hostile cases: requests that never were approved, edits after approval, forged
lifecycle fields, re-used approvals, stretched expiry, swapped attachments,
secrets in errors, and files that vanish mid-pass.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core import tasks
from core.actions import SendEmail
from core.approvals import approve, create_request, read_request
from core.errors import ActionRefusedError, VaultError
from core.fsutil import atomic_write, move_no_replace
from core.ledger import ActionLedger, ClaimBook, ClaimRecord
from core.secret_scan import REDACTED
from core.tasks import iso_utc, utc_now
from core.vault import Vault
from tests.core.conftest import make_meta
from tests.core.test_executor import (
    approved_email,
    executor,
    holders,
    meta_of,
    new_vault,
    rel_of,
    request_fields,
    run,
)
from tests.fakes.action_journal import Journal, RecordingHandler


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return new_vault(tmp_path)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


def _write(vault: Vault, rel: str, fields: dict[str, Any], body: str = "Hello") -> Path:
    path = vault.root / rel
    path.write_text(tasks.render(fields, body))
    return path


# -- never approved ------------------------------------------------------------------------


def test_a_request_written_straight_into_in_progress_never_runs(
    vault: Vault, journal: Journal
) -> None:
    fields = request_fields(to=["mallory@evil.example"])
    _write(vault, "In_Progress/local/SEND_EMAIL_x.md", fields)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == ["Failed/SEND_EMAIL_x.md"] and journal.calls() == 0
    meta = meta_of(vault, "Failed/SEND_EMAIL_x.md")
    assert meta["outcome"] == "not_run" and "never approved" in meta["error"]


def test_a_request_cannot_be_claimed_released_or_completed_by_hand(vault: Vault) -> None:
    _write(vault, "Needs_Action/SEND_EMAIL_y.md", request_fields())
    with pytest.raises(VaultError, match="approval requests are not claimed"):
        vault.claim("SEND_EMAIL_y.md", "local")  # what claim_task would do
    assert (vault.root / "Needs_Action/SEND_EMAIL_y.md").exists()
    _write(vault, "In_Progress/local/SEND_EMAIL_w.md", request_fields())
    for step in (vault.complete, vault.release):
        with pytest.raises(VaultError, match="approval requests are not claimed"):
            step("SEND_EMAIL_w.md", "local")
    assert (vault.root / "In_Progress/local/SEND_EMAIL_w.md").exists()


def test_ordinary_claimed_work_is_left_alone(vault: Vault, journal: Journal) -> None:
    vault.create("Needs_Action", "TASK_1.md", make_meta("task"), "work")
    vault.claim("TASK_1.md", "local")
    report = run(executor(vault, RecordingHandler(journal)))
    assert report == type(report)() and (vault.root / "In_Progress/local/TASK_1.md").exists()


def test_a_stamped_request_whose_records_are_gone_is_unknown(
    vault: Vault, journal: Journal
) -> None:
    fields = request_fields(idempotency_key="ab" * 16, status="in_progress")
    _write(vault, "In_Progress/local/SEND_EMAIL_z.md", fields)
    run(executor(vault, RecordingHandler(journal)))
    meta = meta_of(vault, "Failed/SEND_EMAIL_z.md")
    assert meta["outcome"] == "unknown" and journal.calls() == 0


# -- changed after approval ----------------------------------------------------------------


def _claimed_then_edited(vault: Vault, *, intent: bool) -> str:
    """Run a pass that claims but is stopped before the call, then edit the claimed file."""
    rel = approved_email(vault)
    name = Path(rel).name
    waiting = run(executor(vault))  # live, no handler: it waits in Approved/, not claimed
    assert rel in waiting.waiting
    request = read_request(vault, rel)
    record = ClaimRecord(
        name=name, request_id=request.id, key=request.key, kind="email", dry_run=False,
        claimed_at=utc_now(),
    )  # fmt: skip
    ClaimBook(vault.state_dir).save(record)
    claimed = vault.root / "In_Progress/local" / name
    move_no_replace(vault.root / rel, claimed)
    if intent:
        ActionLedger(vault.state_dir).intend(
            request.key, request_id=request.id, action="send_email", file=rel, dry_run=False
        )
    doc = vault.read(f"In_Progress/local/{name}")
    _, data = tasks.stamped(doc, bcc=["mallory@evil.example"])
    atomic_write(claimed, data)
    return name


def test_an_edit_after_the_claim_is_never_run(vault: Vault, journal: Journal) -> None:
    name = _claimed_then_edited(vault, intent=False)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == [f"Failed/{name}"] and journal.calls() == 0
    meta = meta_of(vault, f"Failed/{name}")
    assert meta["outcome"] == "not_run" and "changed after it was approved" in meta["error"]


def test_an_edit_during_an_interrupted_call_is_unknown_not_redone(
    vault: Vault, journal: Journal
) -> None:
    name = _claimed_then_edited(vault, intent=True)
    run(executor(vault, RecordingHandler(journal)))
    meta = meta_of(vault, f"Failed/{name}")
    assert meta["outcome"] == "unknown" and journal.calls() == 0


# -- forged lifecycle fields and re-used approvals -----------------------------------------


def test_forged_lifecycle_fields_never_steer_a_run(vault: Vault, journal: Journal) -> None:
    first = approved_email(vault, to="ana@example.com")
    run(executor(vault, RecordingHandler(journal)))
    done_key = meta_of(vault, f"Done/{Path(first).name}")["idempotency_key"]
    forged = request_fields(
        to=["bob@example.com"], idempotency_key=done_key, dry_run=True, approved_from="email"
    )
    _write(vault, "Approved/email/FORGED.md", forged)
    poison = request_fields(to=["cy@example.com"], idempotency_key="not-a-key")
    _write(vault, "Approved/email/POISON.md", poison)
    report = run(executor(vault, RecordingHandler(journal)))
    assert sorted(report.done) == ["Done/FORGED.md", "Done/POISON.md"]
    assert journal.calls() == 3 and len({entry["key"] for entry in journal.entries()}) == 3
    assert [e["params"]["to"] for e in journal.entries()][1:] == [
        ["bob@example.com"],
        ["cy@example.com"],
    ]


def test_an_edited_copy_of_a_request_that_ran_never_runs(vault: Vault, journal: Journal) -> None:
    rel = approved_email(vault)
    original = (vault.root / rel).read_bytes()
    run(executor(vault, RecordingHandler(journal)))
    copy = original.replace(b"Hello Ana", b"Hello Ana, and also pay me")
    (vault.root / "Approved/email/COPY.md").write_bytes(copy)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == ["Failed/COPY.md"] and journal.calls() == 1
    assert "already ran" in meta_of(vault, "Failed/COPY.md")["error"]


def test_expires_can_never_be_stretched_past_a_day(vault: Vault, journal: Journal) -> None:
    created = utc_now() - timedelta(days=30)
    fields = request_fields(created=iso_utc(created), expires="2099-01-01T00:00:00Z")
    _write(vault, "Approved/email/OLD.md", fields)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.rejected == ["Rejected/OLD.md"] and journal.calls() == 0


def test_an_expired_request_cannot_be_approved(vault: Vault) -> None:
    created = utc_now() - timedelta(hours=25)
    _write(vault, "Pending_Approval/email/LATE.md", request_fields(created=iso_utc(created)))
    with pytest.raises(VaultError, match="expired"):
        approve(vault, "Pending_Approval/email/LATE.md")
    assert (vault.root / "Pending_Approval/email/LATE.md").exists()


# -- attachments ---------------------------------------------------------------------------


def test_a_swapped_attachment_is_never_sent(vault: Vault, journal: Journal) -> None:
    vault.create("Plans", "PLAN_invoice.md", make_meta("plan"), "Invoice 42: 100 EUR")
    email = SendEmail(
        to=["ana@example.com"], subject="Invoice", attachments=["Plans/PLAN_invoice.md"]
    )
    path = create_request(vault, email, "attached", reason="asked")
    assert read_request(vault, rel_of(vault, path)).attachments_sha256[0].startswith("sha256:")
    approved = approve(vault, rel_of(vault, path))
    atomic_write(
        vault.root / "Plans/PLAN_invoice.md",
        b"---\nid: X\ntype: plan\ncreated: 2026-01-01\n---\nPay 9000 EUR to me",
    )
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == [f"Failed/{approved.name}"] and journal.calls() == 0
    assert "not the one that was approved" in meta_of(vault, f"Failed/{approved.name}")["error"]


# -- secrets and vanishing files -----------------------------------------------------------


class LeakyRefusal(RecordingHandler):
    def perform(self, request: Any, key: str) -> dict[str, Any]:
        token = "ya29." + "a1B2c3D4" * 6
        raise ActionRefusedError(f"rejected with access_token={token}", "check the token")


def test_a_refusal_never_stores_a_secret(vault: Vault, journal: Journal) -> None:
    rel = approved_email(vault)
    run(executor(vault, LeakyRefusal(journal)))
    stored = (vault.root / "Failed" / Path(rel).name).read_text()
    ledger = "".join(p.read_text() for p in (vault.root / ".state/ledger").glob("*.json"))
    assert "ya29." not in stored and "ya29." not in ledger
    assert REDACTED in stored


class DragsTheNextOneAway(RecordingHandler):
    """While sending the first request, the CEO drags the second one out of Approved/."""

    def __init__(self, journal: Journal, victim: Path) -> None:
        super().__init__(journal)
        self.victim = victim

    def perform(self, request: Any, key: str) -> dict[str, Any]:
        self.victim.rename(self.victim.parent.parent.parent / "Plans" / self.victim.name)
        return super().perform(request, key)


def test_a_file_that_vanishes_mid_pass_is_skipped(vault: Vault, journal: Journal) -> None:
    first = approved_email(vault, to="a@example.com")
    second = vault.root / approved_email(vault, to="b@example.com")
    report = run(executor(vault, DragsTheNextOneAway(journal, second)))
    assert report.done == [f"Done/{Path(first).name}"] and not report.failed
    assert holders(vault, read_request(vault, f"Plans/{second.name}").id) == [
        f"Plans/{second.name}"
    ]


def test_a_leftover_claim_record_never_touches_ordinary_work(
    vault: Vault, journal: Journal
) -> None:
    record = ClaimRecord(
        name="TASK_9.md", request_id="REQ_old", key="ab" * 16, kind="email", dry_run=False,
        claimed_at=utc_now(),
    )  # fmt: skip
    ClaimBook(vault.state_dir).save(record)  # left behind by a crash long ago
    vault.create("Needs_Action", "TASK_9.md", make_meta("task"), "work")
    vault.claim("TASK_9.md", "local")
    report = run(executor(vault, RecordingHandler(journal)))
    assert not report.failed and (vault.root / "In_Progress/local/TASK_9.md").exists()
