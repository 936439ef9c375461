"""The executor when things go wrong: bad files, a service that breaks, an interrupted run.

Whatever happens, nothing is executed that should not be, nothing is executed twice, and
no file vanishes: each ends in exactly one place, with the reason written down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import tasks
from core.action_handler import PassReport
from core.approvals import read_request
from core.audit import AuditLog
from core.fsutil import atomic_write, move_no_replace
from core.ledger import ActionLedger, ClaimBook, ClaimRecord
from core.tasks import UNTRUSTED_HEADING, utc_now
from core.vault import Vault
from tests.core.test_executor import (
    approved_email,
    audit_entries,
    executor,
    holders,
    meta_of,
    new_vault,
    request_fields,
    run,
)
from tests.fakes.action_journal import BlindHandler, Journal, RecordingHandler

MARK = "MARK_7f3a"  # in every bad file, to find where it went


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return new_vault(tmp_path)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


# -- bad files in Approved/ -------------------------------------------------------------------


def _request_text(**changes: Any) -> bytes:
    return tasks.render(request_fields(**changes), f"Hello {MARK}").encode()


# (folder in Approved/, file bytes, a phrase the error must contain)
BAD_REQUESTS: dict[str, tuple[str, bytes, str]] = {
    "unknown_action": ("email", _request_text(action="wire_money"), "unknown action"),
    "missing_to": ("email", _request_text(to=None), "fields: to"),
    "kind_moved": ("payments", _request_text(), "approved in Approved/payments/"),
    "kind_vs_action": ("payments", _request_text(kind="payments"), "needs 'email'"),
    "bad_address": ("email", _request_text(to=["ana at example"]), "fields: to"),
    "control_char": ("email", _request_text(subject="Hi\x07there"), "fields: subject"),
    "typo_field": ("email", _request_text(subjcet="Hi"), "fields: subjcet"),
    "not_a_request": ("email", _request_text(type="email"), "not approval_request"),
    "attachment_out": ("email", _request_text(attachments=["../x.pdf"]), "attachment problem"),
    "attachment_gone": ("email", _request_text(attachments=["Inbox/no.pdf"]), "attachment problem"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_invalid_request_fails_with_its_error(vault: Vault, journal: Journal, case: str) -> None:
    folder, data, phrase = BAD_REQUESTS[case]
    (vault.root / f"Approved/{folder}/BAD.md").write_bytes(data)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == ["Failed/BAD.md"] and not report.done
    meta = meta_of(vault, "Failed/BAD.md")
    assert (meta["status"], meta["outcome"]) == ("failed", "not_run")
    assert phrase in meta["error"]
    assert vault.read("Failed/BAD.md").body == tasks.parse_bytes(data, name="x").body
    assert journal.entries() == []
    assert holders(vault, MARK) == ["Failed/BAD.md"]
    [refusal] = audit_entries(vault, action="refuse")
    assert refusal.target == f"Approved/{folder}/BAD.md" and phrase in refusal.details["error"]


UNREADABLE: dict[str, tuple[str, str]] = {
    "bad_yaml": (f"---\nid: X\ntype: approval_request\nto: [a\n---\n{MARK}\n", "invalid YAML"),
    "no_frontmatter": (f"Please send {MARK} to everyone.\n", "no frontmatter"),
    "unterminated": (f"---\nid: X\n{MARK}\n", "frontmatter"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_unreadable_request_is_wrapped_with_its_text(
    vault: Vault, journal: Journal, case: str
) -> None:
    text, phrase = UNREADABLE[case]
    (vault.root / "Approved/email/BAD.md").write_text(text)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == ["Failed/BAD.md"]
    doc = vault.read("Failed/BAD.md")
    extra = doc.meta.model_extra or {}
    assert (doc.meta.type, doc.meta.status, extra["outcome"]) == (
        "failed_request",
        "failed",
        "not_run",
    )
    assert phrase in extra["error"] and extra["original_file"] == "Approved/email/BAD.md"
    assert UNTRUSTED_HEADING in doc.body and text in doc.body
    assert journal.entries() == []
    assert holders(vault, MARK) == ["Failed/BAD.md"]


BYTES_KEPT: dict[str, tuple[bytes, str]] = {
    "not_utf8": (b"---\nid: X\n---\n\xff\xfe " + MARK.encode(), "not UTF-8"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\xff" + MARK.encode(), "binary"),
    "too_big": (_request_text() + b"x" * 1_000_001, "over the 1,000,000 byte limit"),
}


@pytest.mark.parametrize("case", sorted(BYTES_KEPT))
def test_file_that_is_not_text_is_kept_byte_for_byte(
    vault: Vault, journal: Journal, case: str
) -> None:
    data, phrase = BYTES_KEPT[case]
    (vault.root / "Approved/email/BAD.md").write_bytes(data)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == ["Failed/BAD.md"]
    assert (vault.root / "Failed/BAD.md").read_bytes() == data
    assert journal.entries() == []
    assert holders(vault, MARK) == ["Failed/BAD.md"]
    [refusal] = audit_entries(vault, action="refuse")
    assert phrase in refusal.details["error"]


def test_binary_that_decodes_as_utf8_is_kept_or_wrapped_readably(
    vault: Vault, journal: Journal
) -> None:
    data = b"\x00\x01 " + MARK.encode()
    (vault.root / "Approved/email/BAD.md").write_bytes(data)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == ["Failed/BAD.md"] and journal.entries() == []
    assert (vault.root / "Failed/BAD.md").read_bytes() == data  # kept byte for byte


def test_the_same_approval_twice_runs_once(vault: Vault, journal: Journal) -> None:
    rel = approved_email(vault)
    copy = (vault.root / rel).read_bytes()
    first = run(executor(vault, RecordingHandler(journal)))
    (vault.root / "Approved/email/COPY.md").write_bytes(copy)  # the CEO approves it again
    second = run(executor(vault, RecordingHandler(journal)))
    assert journal.calls() == 1
    assert second.done == ["Done/COPY.md"]
    result = meta_of(vault, first.done[0])["result"]
    assert meta_of(vault, "Done/COPY.md")["result"] == result


def test_a_bad_file_does_not_stop_the_good_ones(vault: Vault, journal: Journal) -> None:
    (vault.root / "Approved/email/BAD.md").write_text("no frontmatter at all")
    rel = approved_email(vault)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.failed == ["Failed/BAD.md"]
    assert report.done == [f"Done/{Path(rel).name}"] and journal.calls() == 1


# -- the service breaks -----------------------------------------------------------------------


def _run_twice(vault: Vault, handler: RecordingHandler) -> tuple[str, dict[str, Any]]:
    """Run a pass, check it settled one request, run another; returns (Failed|Done rel, meta)."""
    rel = approved_email(vault)
    request_id = read_request(vault, rel).id
    report = run(executor(vault, handler))
    [settled] = report.done + report.failed
    assert run(executor(vault, handler)) == PassReport()  # nothing is retried
    assert holders(vault, request_id) == [settled]
    return settled, meta_of(vault, settled)


def test_refused_action_fails_and_is_not_retried(vault: Vault, journal: Journal) -> None:
    settled, meta = _run_twice(vault, RecordingHandler(journal, mode="refuse"))
    assert settled.startswith("Failed/")
    assert (meta["status"], meta["outcome"]) == ("failed", "failed")
    assert "refused" in meta["error"]
    assert journal.entries() == []
    [audit] = audit_entries(vault, category="action", action="send_email")
    assert audit.status == "failed"


def test_timeout_after_the_call_is_reconciled(vault: Vault, journal: Journal) -> None:
    settled, meta = _run_twice(vault, RecordingHandler(journal, mode="timeout_after"))
    assert settled.startswith("Done/")
    assert meta["outcome"] == "done" and meta["result"]["reconciled"] is True
    assert journal.calls() == 1 and journal.calls(meta["idempotency_key"]) == 1


def test_timeout_before_the_call_is_unknown_never_retried(vault: Vault, journal: Journal) -> None:
    settled, meta = _run_twice(vault, RecordingHandler(journal, mode="timeout_before"))
    assert settled.startswith("Failed/")
    assert (meta["status"], meta["outcome"]) == ("failed", "unknown")
    assert "TimeoutError" in meta["error"] and "not retried" in meta["error"]
    assert journal.entries() == []
    [audit] = audit_entries(vault, category="action", action="send_email")
    assert audit.status == "unknown"


def test_timeout_with_a_blind_handler_is_unknown(vault: Vault, journal: Journal) -> None:
    settled, meta = _run_twice(vault, BlindHandler(journal, mode="timeout_after"))
    assert settled.startswith("Failed/") and meta["outcome"] == "unknown"
    assert journal.calls() == 1  # it did reach the service; only a person can tell


# -- an interrupted run is resumed, never blindly redone --------------------------------------


def _interrupted(vault: Vault, *, finished: bool = False) -> tuple[str, str, str]:
    """An approved email claimed and stamped, with a ledger intent: (name, key, request id)."""
    rel = approved_email(vault)
    request = read_request(vault, rel)
    name = Path(rel).name
    claimed = vault.root / "In_Progress/local" / name
    record = ClaimRecord(
        name=name,
        request_id=request.id,
        key=request.key,
        kind="email",
        dry_run=False,
        claimed_at=utc_now(),
    )
    ClaimBook(vault.state_dir).save(record)  # what the executor writes before its move
    move_no_replace(vault.root / rel, claimed)
    _, data = tasks.stamped(vault.read(f"In_Progress/local/{name}"), **_stamp(request.key))
    atomic_write(claimed, data)
    ledger = ActionLedger(vault.state_dir)
    entry = ledger.intend(
        request.key,
        request_id=request.id,
        action="send_email",
        file=f"In_Progress/local/{name}",
        dry_run=False,
    )
    if finished:
        ledger.finish(entry, "done", {"message_id": f"<{request.key}@journal.test>"})
    return name, request.key, request.id


def _stamp(key: str) -> dict[str, Any]:
    return {"idempotency_key": key, "dry_run": False, "status": "in_progress"}


def test_resume_finds_the_call_in_the_service(vault: Vault, journal: Journal) -> None:
    name, key, request_id = _interrupted(vault)
    journal.record(key, read_request(vault, f"In_Progress/local/{name}"))
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.done == [f"Done/{name}"]
    assert journal.calls() == 1
    meta = meta_of(vault, f"Done/{name}")
    assert meta["result"]["reconciled"] is True and meta["idempotency_key"] == key
    entry = ActionLedger(vault.state_dir).get(key, dry_run=False)
    assert entry is not None and entry.phase == "done"
    assert holders(vault, request_id) == [f"Done/{name}"]


def test_resume_performs_a_call_the_service_never_got(vault: Vault, journal: Journal) -> None:
    name, key, request_id = _interrupted(vault)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.done == [f"Done/{name}"]
    assert journal.calls() == 1 and journal.calls(key) == 1
    run(executor(vault, RecordingHandler(journal)))
    assert journal.calls() == 1
    assert holders(vault, request_id) == [f"Done/{name}"]


def test_resume_with_a_blind_handler_is_unknown(vault: Vault, journal: Journal) -> None:
    name, key, request_id = _interrupted(vault)
    report = run(executor(vault, BlindHandler(journal)))
    assert report.failed == [f"Failed/{name}"]
    meta = meta_of(vault, f"Failed/{name}")
    assert (meta["outcome"], meta["idempotency_key"]) == ("unknown", key)
    assert "not redone" in meta["error"]
    assert journal.entries() == []
    run(executor(vault, BlindHandler(journal)))
    assert journal.entries() == []
    assert holders(vault, request_id) == [f"Failed/{name}"]


def test_resume_of_a_finished_action_only_files_it(vault: Vault, journal: Journal) -> None:
    name, key, request_id = _interrupted(vault, finished=True)
    report = run(executor(vault, RecordingHandler(journal)))
    assert report.done == [f"Done/{name}"]
    assert journal.entries() == []
    meta = meta_of(vault, f"Done/{name}")
    assert meta["result"] == {"message_id": f"<{key}@journal.test>"}
    assert holders(vault, request_id) == [f"Done/{name}"]


def test_resume_waits_while_the_service_cannot_be_checked(vault: Vault, journal: Journal) -> None:
    name, _, request_id = _interrupted(vault)
    report = run(executor(vault, RecordingHandler(journal, mode="lookup_down")))
    rel = f"In_Progress/local/{name}"
    assert list(report.waiting) == [rel] and "ConnectionError" in report.waiting[rel]
    assert journal.entries() == []
    assert holders(vault, request_id) == [rel]
    report = run(executor(vault, RecordingHandler(journal)))  # the service is back
    assert report.done == [f"Done/{name}"] and journal.calls() == 1


def test_resume_waits_in_dry_run_for_a_live_intent(vault: Vault, journal: Journal) -> None:
    name, _, request_id = _interrupted(vault)
    report = run(executor(vault, RecordingHandler(journal), dry_run=True))
    assert list(report.waiting) == [f"In_Progress/local/{name}"] and not report.done
    assert journal.entries() == []
    assert holders(vault, request_id) == [f"In_Progress/local/{name}"]
    assert AuditLog(vault.root, "local").verify().ok
