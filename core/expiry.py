"""Expiry: a request not decided within a day moves to Rejected/ with ``status: expired``.

An expired request never runs, even when the CEO moves it to Approved/ late:
the executor sends it here with the reason "approved too late".
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from core import tasks
from core.approvals import STATE_FOLDERS, expires_at
from core.errors import TaskNotFoundError, VaultError
from core.fsutil import atomic_write
from core.vault import Vault


def expire(vault: Vault, rel: str, *, late: bool = False, now: datetime | None = None) -> Path:
    """Move an expired request (still pending, or approved too late) to Rejected/."""
    path = vault.resolve(rel)
    doc = tasks.read_task_file(path)
    expires = expires_at(doc.meta)
    moment = now or tasks.utc_now()
    if moment < expires:
        raise VaultError(f"{rel} has not expired (it expires {tasks.iso_utc(expires)})", "wait")
    why = f"expired at {tasks.iso_utc(expires)}" + (", approved too late" if late else "")
    changes = {"status": "expired", "expired_at": tasks.iso_utc(moment), "reject_reason": why}
    _, data = tasks.stamped(doc, **changes)
    vault.audit_ready()
    with vault.task_lock(path.name):
        try:
            target = vault.move_unique(path, vault.root / "Rejected")
        except FileNotFoundError:
            raise TaskNotFoundError(f"{rel} was moved meanwhile", "nothing to do") from None
        atomic_write(target, data)
    vault.record("approval", "expire", f"Rejected/{target.name}", request=doc.meta.id, why=why)
    return target


def expire_pending(vault: Vault, now: datetime | None = None) -> list[str]:
    """Reject every waiting request past its ``expires``; returns where they went."""
    moment = now or tasks.utc_now()
    moved: list[str] = []
    for folder in STATE_FOLDERS["pending"]:
        for entry in vault.list_tasks(folder, limit=None, newest_first=False):
            try:
                meta = tasks.read_task_file(vault.root / entry.rel).meta
                if meta.type == "approval_request" and moment >= expires_at(meta):
                    target = expire(vault, entry.rel, now=moment)
                    moved.append(str(target.relative_to(vault.root)))
            except (VaultError, FileNotFoundError):
                continue  # unreadable ones are shown by `status`; moved ones are gone
    return moved
