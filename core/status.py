"""A snapshot of the vault for people and scripts: counts, waiting approvals, claims, health."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from core import tasks
from core.approvals import expires_at
from core.audit import AuditEntry, AuditLog
from core.config import ZONES
from core.errors import AuditError, TaskFileError
from core.layout import APPROVAL_KINDS, FOLDERS
from core.resilience import BreakerSnapshot, breaker_snapshots
from core.vault import Vault


class PendingApproval(BaseModel):
    file: str
    action: str | None
    created: datetime
    expires: datetime | None
    hours_left: float | None


class Claim(BaseModel):
    file: str
    claimed_by: str | None
    claimed_at: datetime | None
    age_minutes: float | None


class VaultStatus(BaseModel):
    vault: str
    zone: str
    dry_run: bool
    counts: dict[str, int]
    pending_approvals: list[PendingApproval]
    oldest_pending_approval: PendingApproval | None
    claimed: list[Claim]
    unreadable: dict[str, str]
    breakers: list[BreakerSnapshot]
    last_audit: AuditEntry | None
    audit_problem: str | None


def _extra(meta: tasks.TaskMeta, key: str) -> Any:
    return (meta.model_extra or {}).get(key)


def _metas(
    vault: Vault, folders: list[str], unreadable: dict[str, str]
) -> Iterator[tuple[str, tasks.TaskMeta]]:
    """(file, frontmatter) of every task in ``folders``; unreadable files are noted, not fatal."""
    for folder in folders:
        for entry in vault.list_tasks(folder, limit=None, newest_first=False):
            try:
                yield entry.rel, tasks.read_task_file(vault.root / entry.rel).meta
            except (TaskFileError, FileNotFoundError) as exc:
                unreadable[entry.rel] = str(exc)


def _pending(vault: Vault, unreadable: dict[str, str]) -> list[PendingApproval]:
    now = tasks.utc_now()
    found: list[PendingApproval] = []
    folders = [f"Pending_Approval/{kind}" for kind in APPROVAL_KINDS]
    for rel, meta in _metas(vault, folders, unreadable):
        expires = expires_at(meta)
        left = (expires - now).total_seconds() / 3600
        action = _extra(meta, "action")
        found.append(
            PendingApproval(
                file=rel,
                action=str(action) if action else None,
                created=meta.created,
                expires=expires,
                hours_left=round(left, 2) if left is not None else None,
            )
        )
    return sorted(found, key=lambda p: p.created)


def _claims(vault: Vault, unreadable: dict[str, str]) -> list[Claim]:
    now = tasks.utc_now()
    found: list[Claim] = []
    for rel, meta in _metas(vault, [f"In_Progress/{zone}" for zone in ZONES], unreadable):
        age = (now - meta.claimed_at).total_seconds() / 60 if meta.claimed_at else None
        found.append(
            Claim(
                file=rel,
                claimed_by=meta.claimed_by,
                claimed_at=meta.claimed_at,
                age_minutes=round(age, 1) if age is not None else None,
            )
        )
    return found


def vault_status(vault: Vault, *, zone: str, dry_run: bool) -> VaultStatus:
    """Gather the status; unreadable files are reported, never fatal."""
    unreadable: dict[str, str] = {}
    pending = _pending(vault, unreadable)
    last: AuditEntry | None = None
    problem: str | None = None
    try:
        last = AuditLog(vault.root, zone).last()
    except AuditError as exc:
        problem = str(exc)
    return VaultStatus(
        vault=str(vault.root),
        zone=zone,
        dry_run=dry_run,
        counts={folder: vault.count(folder) for folder in FOLDERS if folder != "Logs"},
        pending_approvals=pending,
        oldest_pending_approval=pending[0] if pending else None,
        claimed=_claims(vault, unreadable),
        unreadable=unreadable,
        breakers=breaker_snapshots(vault.state_dir),
        last_audit=last,
        audit_problem=problem,
    )
