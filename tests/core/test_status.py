"""The status snapshot: counts, waiting approvals with time left, claims, breakers, last audit."""

from __future__ import annotations

from datetime import timedelta

from core.resilience import CircuitBreaker
from core.status import vault_status
from core.tasks import iso_utc, utc_now
from core.vault import Vault
from tests.core.conftest import make_meta


def test_status_reports_what_is_there(vault: Vault) -> None:
    for i in range(3):
        vault.create("Needs_Action", f"EMAIL_{i}.md", make_meta())
    vault.claim("EMAIL_0.md", "cloud")
    old = utc_now() - timedelta(hours=5)
    vault.create(
        "Pending_Approval/email",
        "SEND_old.md",
        make_meta(
            "approval_request", action="send_email", expires=iso_utc(old + timedelta(hours=24))
        ).model_copy(update={"created": old}),
    )
    vault.create(
        "Pending_Approval/payments",
        "PAY_new.md",
        make_meta("approval_request", action="register_payment"),
    )
    (vault.root / "Pending_Approval/payments/BROKEN.md").write_bytes(b"\xff\xfe")
    breaker = CircuitBreaker("gmail", vault.state_dir)
    for _ in range(5):
        breaker.record_failure()

    status = vault_status(vault, zone="local", dry_run=True)

    assert status.counts["Needs_Action"] == 2
    assert status.counts["In_Progress/cloud"] == 1
    assert status.counts["Pending_Approval/payments"] == 2
    assert [p.file for p in status.pending_approvals] == [
        "Pending_Approval/email/SEND_old.md",
        "Pending_Approval/payments/PAY_new.md",
    ]
    oldest = status.oldest_pending_approval
    assert oldest is not None and oldest.action == "send_email"
    assert oldest.hours_left is not None and 18.9 < oldest.hours_left < 19.1
    assert [c.claimed_by for c in status.claimed] == ["cloud"]
    assert "Pending_Approval/payments/BROKEN.md" in status.unreadable
    assert [(b.name, b.state.value) for b in status.breakers] == [("gmail", "open")]
    assert status.last_audit is not None and status.last_audit.action == "create"
    assert status.audit_problem is None


def test_status_reports_a_tampered_audit_trail(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.create("Needs_Action", "EMAIL_2.md", make_meta())
    log = vault.root / "Logs/audit-local.jsonl"
    log.write_text(log.read_text().splitlines()[0] + "\n")
    status = vault_status(vault, zone="local", dry_run=True)
    assert status.audit_problem is not None and "truncated" in status.audit_problem
