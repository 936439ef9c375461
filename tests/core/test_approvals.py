"""The CEO's moves: approve and reject only requests waiting in Pending_Approval/."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core import approvals
from core.audit import AuditLog
from core.errors import (
    AuditTamperedError,
    TargetExistsError,
    TaskFileError,
    UnsafePathError,
    VaultError,
)
from core.tasks import iso_utc, utc_now
from core.vault import Vault
from tests.core.conftest import make_meta, tree_snapshot


def _request(vault: Vault, kind: str = "email", name: str = "SEND_EMAIL_ana_2026-11-25.md"):
    meta = make_meta(
        "approval_request",
        kind=kind,
        action="send_email",
        to="ana@example.com",
        expires=iso_utc(utc_now() + timedelta(hours=24)),
    )
    vault.create(f"Pending_Approval/{kind}", name, meta, "Hello Ana")
    return f"Pending_Approval/{kind}/{name}"


def test_approve_moves_unchanged(vault: Vault) -> None:
    rel = _request(vault)
    before = (vault.root / rel).read_bytes()
    target = approvals.approve(vault, rel)
    assert target == vault.root / "Approved/email/SEND_EMAIL_ana_2026-11-25.md"
    assert target.read_bytes() == before
    assert not (vault.root / rel).exists()
    last = AuditLog(vault.root, "local").last()
    assert last is not None and (last.category, last.action) == ("approval", "approve")


def test_reject_records_reason(vault: Vault) -> None:
    rel = _request(vault, "payments", "PAY_acme_2026-11-25.md")
    target = approvals.reject(vault, rel, "too expensive")
    meta = vault.read("Rejected/PAY_acme_2026-11-25.md").meta
    assert target.parent.name == "Rejected"
    assert not (vault.root / rel).exists()
    assert meta.status == "rejected"
    assert meta.model_extra["reject_reason"] == "too expensive"
    last = AuditLog(vault.root, "local").last()
    assert last is not None and (last.category, last.action) == ("approval", "reject")
    assert last.details == {"reason": "too expensive"}


def test_a_tampered_trail_stops_the_decision_before_the_move(vault: Vault) -> None:
    rel = _request(vault)
    log = vault.root / "Logs/audit-local.jsonl"
    log.write_text("")
    for decide in (approvals.approve, approvals.reject):
        with pytest.raises(AuditTamperedError):
            decide(vault, rel)
        assert (vault.root / rel).exists()


def test_kind_field_must_match_the_folder(vault: Vault) -> None:
    meta = make_meta("approval_request", kind="payments", action="register_payment")
    vault.create("Pending_Approval/email", "PAY_x.md", meta)
    with pytest.raises(TaskFileError, match="kind"):
        approvals.approve(vault, "Pending_Approval/email/PAY_x.md")
    assert (vault.root / "Pending_Approval/email/PAY_x.md").exists()


@pytest.mark.parametrize(
    "rel",
    [
        "Needs_Action/EMAIL_1.md",
        "Approved/email/SEND_x.md",
        "Pending_Approval/SEND_x.md",
        "Pending_Approval/other/SEND_x.md",
        "Pending_Approval/email/../../Done/x.md",
        "Pending_Approval/email/sub/SEND_x.md",
    ],
)
def test_only_pending_requests_can_be_decided(vault: Vault, rel: str) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    snap = tree_snapshot(vault.root)
    with pytest.raises(VaultError):
        approvals.approve(vault, rel)
    with pytest.raises(VaultError):
        approvals.reject(vault, rel)
    assert tree_snapshot(vault.root) == snap


def test_a_task_that_is_not_a_request_is_refused(vault: Vault) -> None:
    vault.create("Pending_Approval/email", "NOTE.md", make_meta("note"))
    with pytest.raises(TaskFileError, match="approval_request"):
        approvals.approve(vault, "Pending_Approval/email/NOTE.md")
    assert (vault.root / "Pending_Approval/email/NOTE.md").exists()


def test_malformed_request_is_left_in_place(vault: Vault) -> None:
    path = vault.root / "Pending_Approval/email/BAD.md"
    path.write_text("---\n: : :\n---\n")
    with pytest.raises(TaskFileError, match="BAD"):
        approvals.approve(vault, "Pending_Approval/email/BAD.md")
    assert path.read_text() == "---\n: : :\n---\n"


def test_symlinked_request_is_refused(vault: Vault, tmp_path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("x")
    (vault.root / "Pending_Approval/email/LINK.md").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        approvals.approve(vault, "Pending_Approval/email/LINK.md")
    assert not (vault.root / "Approved/email/LINK.md").exists()


def test_approve_never_overwrites(vault: Vault) -> None:
    rel = _request(vault)
    approvals.approve(vault, rel)
    rel = _request(vault)
    with pytest.raises(TargetExistsError):
        approvals.approve(vault, rel)
    assert (vault.root / rel).exists()
