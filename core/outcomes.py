"""Where a request ends: ``Done/`` or ``Failed/``, with its outcome stamped and audited.

A file is never rewritten inside ``Approved/``: a refused request is moved out
first and stamped where it lands. A claimed one is stamped in
``In_Progress/local/`` first, so a crash before its move leaves the outcome on
the file for the next pass to finish.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from core import tasks
from core.errors import TaskFileError
from core.faults import fault_point
from core.fsutil import atomic_write
from core.ledger import LedgerEntry
from core.secret_scan import redact_text
from core.vault import Vault

MAX_ERROR_CHARS = 500


def clean_error(text: str) -> str:
    """An error as it may be stored: secrets redacted, one paragraph, bounded."""
    return redact_text(" ".join(text.split()))[:MAX_ERROR_CHARS]


def rel(vault: Vault, path: Path) -> str:
    return str(path.relative_to(vault.root))


def move_to(vault: Vault, path: Path, folder: str) -> Path | None:
    """Move into ``folder`` under a free name; None if someone moved the file meanwhile."""
    with vault.task_lock(path.name):
        try:
            return vault.move_unique(path, vault.root / folder)
        except FileNotFoundError:
            return None


def close(
    vault: Vault, path: Path, doc: tasks.TaskDoc, entry: LedgerEntry, now: datetime
) -> Path | None:
    """Stamp what the ledger says happened, audit it, move the file to Done/ or Failed/."""
    done = entry.phase == "done"
    changes = {
        "status": "done" if done else "failed",
        "outcome": entry.phase,
        "executed_at": tasks.iso_utc(now),
        "dry_run": entry.dry_run,
        "result": entry.result or None,
        "error": entry.error,
    }
    atomic_write(path, tasks.stamped(doc, **changes)[1])
    folder = "Done" if done else "Failed"
    vault.record(
        "action",
        entry.action,
        f"{folder}/{path.name}",
        status="ok" if done else entry.phase,
        dry_run=entry.dry_run,
        request=entry.request_id,
        key=entry.key,
        error=entry.error,
        result=entry.result,
    )
    target = move_to(vault, path, folder)
    fault_point("executor:after_move")
    return target


def fail(
    vault: Vault,
    path: Path,
    doc: tasks.TaskDoc,
    error: str,
    now: datetime,
    *,
    in_approved: bool = False,
    outcome: str = "not_run",
) -> Path | None:
    """To Failed/ with the error in frontmatter (``outcome`` says whether anything ran)."""
    error = clean_error(error)
    changes = {"status": "failed", "outcome": outcome, "error": error}
    _, data = tasks.stamped(doc, **changes, failed_at=tasks.iso_utc(now))
    vault.record("action", "refuse", rel(vault, path), status="failed", error=error)
    if in_approved:
        target = move_to(vault, path, "Failed")
        if target is not None:
            atomic_write(target, data)
        return target
    atomic_write(path, data)
    return move_to(vault, path, "Failed")


def fail_unreadable(
    vault: Vault, path: Path, error: str, now: datetime, *, outcome: str = "not_run"
) -> Path | None:
    """A file that is not a task at all: wrap its text with the error, or move it as is."""
    error = clean_error(error)
    vault.record("action", "refuse", rel(vault, path), status="failed", error=error)
    original = rel(vault, path)
    target = move_to(vault, path, "Failed")
    if target is None:
        return None
    try:
        text = tasks.read_bytes_safely(target).decode("utf-8")
    except (TaskFileError, UnicodeDecodeError, OSError):
        text = "\x00"
    if "\x00" in text:
        return target  # not text: kept byte for byte; the audit entry says why
    meta = {
        "id": tasks.new_task_id("FAILED"),
        "type": "failed_request",
        "created": tasks.iso_utc(now),
        "status": "failed",
        "outcome": outcome,
        "error": error,
        "original_file": original,
    }
    note = "This file could not be read as an approval request."
    body = f"{note}\n\n{tasks.untrusted_block(text)}"
    atomic_write(target, tasks.render(meta, body).encode())
    return target
