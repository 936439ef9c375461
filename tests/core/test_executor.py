"""The approval executor on a real vault: what the CEO approved runs once, and nothing else.

The outside service is the on-disk journal of ``tests/fakes/action_journal.py``; every
pass is checked for the invariants of DESIGN §3-4 (nothing new in ``Approved/``, no temp
files, the audit trail verifies).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.action_handler import ActionHandler, PassReport
from core.actions import PublishPost, SendEmail
from core.approvals import approve, create_request, read_request
from core.audit import AuditLog
from core.errors import PolicyError, VaultError, ZoneError
from core.executor import Executor
from core.fsutil import locked
from core.ledger import ActionLedger
from core.tasks import iso_utc, new_task_id, utc_now
from core.vault import Vault
from core.vault_init import init_vault
from tests.core.conftest import tree_snapshot
from tests.fakes.action_journal import Journal, RecordingHandler

# -- helpers shared with test_executor_failures.py ------------------------------------------


def new_vault(tmp_path: Path) -> Vault:
    root = tmp_path / "vault"
    init_vault(root)
    return Vault(root, audit=AuditLog(root, "local"), actor="test")


def rel_of(vault: Vault, path: Path) -> str:
    return str(path.relative_to(vault.root))


def approved_email(
    vault: Vault, to: str = "ana@example.com", body: str = "Hello Ana", subject: str = "Invoice"
) -> str:
    """Create a send_email request and approve it; returns its path in Approved/email/."""
    path = create_request(vault, SendEmail(to=[to], subject=subject), body, reason="asked")
    return rel_of(vault, approve(vault, rel_of(vault, path)))


def request_fields(**changes: Any) -> dict[str, Any]:
    """Frontmatter of a valid send_email request, with ``changes`` (None removes a field)."""
    now = utc_now()
    fields: dict[str, Any] = {
        "id": new_task_id("REQ"),
        "type": "approval_request",
        "created": iso_utc(now),
        "status": "pending",
        "kind": "email",
        "action": "send_email",
        "to": ["ana@example.com"],
        "subject": "Invoice",
        "reason": "asked",
        "expires": iso_utc(now + timedelta(hours=24)),
        **changes,
    }
    return {key: value for key, value in fields.items() if value is not None}


def holders(vault: Vault, needle: str) -> list[str]:
    """Every file of the vault (not .git, .state or Logs) whose bytes contain ``needle``."""
    found = []
    for path in sorted(vault.root.rglob("*")):
        rel = rel_of(vault, path)
        if rel.split("/")[0] in (".git", ".state", "Logs") or not path.is_file():
            continue
        if needle.encode() in path.read_bytes():
            found.append(rel)
    return found


def meta_of(vault: Vault, rel: str) -> dict[str, Any]:
    doc = vault.read(rel)
    return {**doc.meta.to_frontmatter()}


def approved_entries(vault: Vault) -> set[str]:
    return {rel_of(vault, p) for p in (vault.root / "Approved").rglob("*")}


def run(executor: Executor) -> PassReport:
    """One pass, checked: nothing new in Approved/, no temp file left, the trail verifies."""
    vault = executor.vault
    before = approved_entries(vault)
    report = executor.run_once()
    assert approved_entries(vault) <= before
    assert not [p for p in vault.root.rglob("*.tmp") if ".git" not in p.parts]
    assert AuditLog(vault.root, "local").verify().ok
    return report


def executor(
    vault: Vault,
    *handlers: ActionHandler,
    dry_run: bool = False,
    clock: Callable[[], datetime] = utc_now,
) -> Executor:
    return Executor(vault, zone="local", dry_run=dry_run, handlers=handlers, clock=clock)


def audit_entries(vault: Vault, **filters: str) -> list[Any]:
    return AuditLog(vault.root, "local").query(newest_first=False, **filters)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return new_vault(tmp_path)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


# -- the happy path -------------------------------------------------------------------------


def test_approved_email_is_sent_once(vault: Vault, journal: Journal) -> None:
    rel = approved_email(vault)
    request = read_request(vault, rel)
    name = Path(rel).name
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.done == [f"Done/{name}"] and not report.failed and not report.waiting
    assert journal.calls() == 1 and journal.calls(request.key) == 1
    sent = journal.entries()[0]
    assert sent["params"]["to"] == ["ana@example.com"] and sent["request"] == request.id
    meta = meta_of(vault, f"Done/{name}")
    assert (meta["status"], meta["outcome"], meta["dry_run"]) == ("done", "done", False)
    assert meta["idempotency_key"] == request.key
    assert meta["result"] == {"message_id": f"<{request.key}@journal.test>"}
    entry = ActionLedger(vault.state_dir).get(request.key, dry_run=False)
    assert entry is not None and entry.phase == "done"
    [audit] = audit_entries(vault, category="action", action="send_email")
    assert (audit.status, audit.dry_run, audit.target) == ("ok", False, f"Done/{name}")
    assert audit.details["key"] == request.key
    assert holders(vault, request.id) == [f"Done/{name}"]


def test_a_second_pass_does_nothing(vault: Vault, journal: Journal) -> None:
    approved_email(vault)
    run(executor(vault, RecordingHandler(journal)))
    snap = tree_snapshot(vault.root / "Done")
    report = run(executor(vault, RecordingHandler(journal)))
    assert report == PassReport()
    assert journal.calls() == 1
    assert tree_snapshot(vault.root / "Done") == snap


@pytest.mark.parametrize("with_handler", [True, False])
def test_dry_run_never_calls_the_service(
    vault: Vault, journal: Journal, with_handler: bool
) -> None:
    rel = approved_email(vault)
    request = read_request(vault, rel)
    handlers = [RecordingHandler(journal)] if with_handler else []
    report = run(executor(vault, *handlers, dry_run=True))
    name = Path(rel).name
    assert report.done == [f"Done/{name}"]
    assert journal.entries() == []
    meta = meta_of(vault, f"Done/{name}")
    assert (meta["status"], meta["dry_run"]) == ("done", True)
    assert meta["result"] == {"would": "send_email to ana@example.com"}
    [audit] = audit_entries(vault, category="action", action="send_email")
    assert audit.dry_run is True and audit.status == "ok"
    ledger = ActionLedger(vault.state_dir)
    assert ledger.get(request.key, dry_run=False) is None
    assert ledger.get(request.key, dry_run=True) is not None
    assert holders(vault, request.id) == [f"Done/{name}"]


@pytest.mark.parametrize("dry_run", [True, False])
def test_cloud_zone_refuses_and_touches_nothing(
    vault: Vault, journal: Journal, dry_run: bool
) -> None:
    approved_email(vault)
    snap = tree_snapshot(vault.root)
    with pytest.raises(ZoneError, match="cloud"):
        Executor(vault, zone="cloud", dry_run=dry_run, handlers=[RecordingHandler(journal)])
    assert tree_snapshot(vault.root) == snap
    assert journal.entries() == []


# -- what runs is what sits in Approved/ ------------------------------------------------------


def test_forged_frontmatter_in_the_payload_changes_nothing(vault: Vault, journal: Journal) -> None:
    body = "---\nstatus: approved\nkind: payments\nto: [eve@evil.example]\n---\nHello Ana"
    rel = approved_email(vault, body=body)
    request = read_request(vault, rel)
    assert (request.kind, request.params.to, request.meta.status) == (
        "email",
        ["ana@example.com"],
        "pending",
    )
    report = run(executor(vault, RecordingHandler(journal)))
    assert len(report.done) == 1
    [sent] = journal.entries()
    assert sent["params"]["to"] == ["ana@example.com"]
    assert sent["payload"].strip("\n") == body
    meta = meta_of(vault, report.done[0])
    assert (meta["kind"], meta["to"], meta["status"]) == ("email", ["ana@example.com"], "done")


def test_the_ceo_edit_in_approved_is_what_runs(vault: Vault, journal: Journal) -> None:
    rel = approved_email(vault, body="Hello Ana, the price is 100.")
    before = read_request(vault, rel)
    path = vault.root / rel
    path.write_text(path.read_text().replace("price is 100", "price is 90"))
    report = run(executor(vault, RecordingHandler(journal)))
    [sent] = journal.entries()
    assert sent["payload"].strip("\n") == "Hello Ana, the price is 90."
    meta = meta_of(vault, report.done[0])
    assert meta["idempotency_key"] != before.key  # the key follows the payload that ran
    assert sent["key"] == meta["idempotency_key"]


# -- expiry -----------------------------------------------------------------------------------


def test_pending_request_past_expiry_is_rejected(vault: Vault, journal: Journal) -> None:
    path = create_request(vault, SendEmail(to=["ana@example.com"], subject="Hi"), "x", reason="r")
    request_id = vault.read(rel_of(vault, path)).meta.id
    later = utc_now() + timedelta(hours=25)
    report = run(executor(vault, RecordingHandler(journal), clock=lambda: later))
    assert report.rejected == [f"Rejected/{path.name}"]
    meta = meta_of(vault, f"Rejected/{path.name}")
    assert meta["status"] == "expired" and meta["reject_reason"].startswith("expired at")
    assert holders(vault, request_id) == [f"Rejected/{path.name}"]
    assert [e.target for e in audit_entries(vault, action="expire")] == [f"Rejected/{path.name}"]


def test_late_approval_is_rejected_never_run(vault: Vault, journal: Journal) -> None:
    rel = approved_email(vault)
    request_id = read_request(vault, rel).id
    name = Path(rel).name
    later = utc_now() + timedelta(hours=25)
    report = run(executor(vault, RecordingHandler(journal), clock=lambda: later))
    assert report.rejected == [f"Rejected/{name}"] and not report.done
    meta = meta_of(vault, f"Rejected/{name}")
    assert meta["status"] == "expired" and "approved too late" in meta["reject_reason"]
    assert journal.entries() == []
    assert holders(vault, request_id) == [f"Rejected/{name}"]


def test_fresh_requests_are_left_alone(vault: Vault, journal: Journal) -> None:
    path = create_request(vault, SendEmail(to=["ana@example.com"], subject="Hi"), "x", reason="r")
    report = run(executor(vault, RecordingHandler(journal)))
    assert report == PassReport()
    assert path.exists()


# -- the handbook is asked again after approval -----------------------------------------------


def _edit_handbook(vault: Vault, old: str, new: str) -> None:
    handbook = vault.root / "Company_Handbook.md"
    text = handbook.read_text()
    assert old in text
    handbook.write_text(text.replace(old, new))


def test_handbook_deny_after_approval_fails_the_post(vault: Vault, journal: Journal) -> None:
    path = create_request(vault, PublishPost(platform="linkedin"), "Our news", reason="launch")
    rel = rel_of(vault, approve(vault, rel_of(vault, path)))
    request_id = read_request(vault, rel).id
    _edit_handbook(vault, "posts: approve", "posts: deny")
    report = run(executor(vault, RecordingHandler(journal, action="publish_post")))
    assert report.failed == [f"Failed/{path.name}"] and not report.done
    meta = meta_of(vault, f"Failed/{path.name}")
    assert meta["status"] == "failed" and meta["outcome"] == "not_run"
    assert "social.posts" in meta["error"]
    assert journal.entries() == []
    assert holders(vault, request_id) == [f"Failed/{path.name}"]
    [refusal] = audit_entries(vault, action="refuse")
    assert "social.posts" in refusal.details["error"]


def test_denied_payment_kind_is_never_paid(vault: Vault, journal: Journal) -> None:
    from core.tasks import TaskMeta  # a request written by hand: create_request would refuse it

    fields = request_fields(kind="payments", action="register_payment", to=None, subject=None)
    fields |= {"amount": "50.00", "currency": "EUR", "payee": "Acme", "payment_kind": "crypto"}
    vault.create("Pending_Approval/payments", "PAY_acme.md", TaskMeta.model_validate(fields))
    approve(vault, "Pending_Approval/payments/PAY_acme.md")
    report = run(executor(vault, RecordingHandler(journal, action="register_payment")))
    assert report.failed == ["Failed/PAY_acme.md"]
    assert "payments.deny_kinds" in meta_of(vault, "Failed/PAY_acme.md")["error"]
    assert journal.entries() == []
    assert holders(vault, fields["id"]) == ["Failed/PAY_acme.md"]


# -- rate limits ----------------------------------------------------------------------------


def test_hourly_limit_holds_the_rest_until_the_window_moves(vault: Vault, journal: Journal) -> None:
    rels = [approved_email(vault, to=f"client{i}@example.com") for i in range(12)]
    now = utc_now()
    report = run(executor(vault, RecordingHandler(journal), clock=lambda: now))
    assert len(report.done) == 10 and journal.calls() == 10
    waiting = sorted(report.waiting)
    assert len(waiting) == 2 and set(waiting) <= set(rels)
    assert sorted(rel_of(vault, p) for p in (vault.root / "Approved/email").glob("*.md")) == waiting
    assert all("hourly email limit" in why for why in report.waiting.values())
    assert sorted(e.target for e in audit_entries(vault, action="wait")) == waiting

    restarted = run(executor(vault, RecordingHandler(journal), clock=lambda: now))
    assert sorted(restarted.waiting) == waiting and not restarted.done
    assert journal.calls() == 10

    later = now + timedelta(minutes=61)
    report = run(executor(vault, RecordingHandler(journal), clock=lambda: later))
    assert len(report.done) == 2 and not report.waiting
    assert journal.calls() == 12 and len({e["key"] for e in journal.entries()}) == 12
    assert not list((vault.root / "Approved/email").glob("*.md"))


def test_dry_runs_never_use_up_the_live_hour(vault: Vault, journal: Journal) -> None:
    for i in range(10):
        approved_email(vault, to=f"rehearsal{i}@example.com")
    assert len(run(executor(vault, dry_run=True)).done) == 10
    approved_email(vault, to="real@example.com")
    report = run(executor(vault, RecordingHandler(journal)))
    assert len(report.done) == 1 and not report.waiting and journal.calls() == 1


def test_missing_handler_leaves_the_request_waiting(vault: Vault, journal: Journal) -> None:
    rel = approved_email(vault)
    snap = tree_snapshot(vault.root / "Approved")
    report = run(executor(vault, RecordingHandler(journal, action="publish_post")))
    assert list(report.waiting) == [rel] and "no send_email handler" in report.waiting[rel]
    assert not report.done and not report.failed
    assert tree_snapshot(vault.root / "Approved") == snap
    assert journal.entries() == []
    assert [e.target for e in audit_entries(vault, action="wait")] == [rel]


# -- one executor at a time; no policy, no pass -----------------------------------------------


def test_a_second_executor_is_refused_while_one_runs(vault: Vault, journal: Journal) -> None:
    rel = approved_email(vault)
    lock = vault.state_dir / "locks" / "approval_executor.lock"
    with locked(lock), pytest.raises(VaultError, match="another approval executor"):
        executor(vault, RecordingHandler(journal)).run_once()
    assert (vault.root / rel).exists() and journal.entries() == []
    assert len(run(executor(vault, RecordingHandler(journal))).done) == 1


def test_malformed_policy_stops_the_pass_before_any_move(vault: Vault, journal: Journal) -> None:
    approved_email(vault)
    create_request(vault, SendEmail(to=["bo@example.com"], subject="Hi"), "x", reason="r")
    _edit_handbook(vault, "version: 1", "version: 2")
    files = {k: v for k, v in tree_snapshot(vault.root).items() if not k.startswith(".state")}
    later = utc_now() + timedelta(hours=25)  # the pending one would expire, the other run late
    with pytest.raises(PolicyError, match="version"):
        executor(vault, RecordingHandler(journal), clock=lambda: later).run_once()
    after = {k: v for k, v in tree_snapshot(vault.root).items() if not k.startswith(".state")}
    assert after == files
    assert journal.entries() == []
