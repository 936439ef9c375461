"""A snapshot of the vault for people and scripts: counts, waiting work, approvals, claims,
recent actions, failures and health. ``ai-employee status`` and ``Dashboard.md`` both show
this one data pass.

Counts come from directory entries; only the few files shown (the oldest waiting tasks,
the newest failures, approvals and claims) are opened, so a vault of 100,000 files is
summed up in well under a second. Everything time-dependent is measured against one
``now``, so the same vault and the same clock give the same snapshot.
"""

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
from core.layout import APPROVAL_KINDS, FOLDERS, NEEDS_ACTION
from core.resilience import BreakerSnapshot, breaker_snapshots
from core.status_parts import (
    DaemonHealth,
    FailedItem,
    RecentAction,
    WaitingTask,
    daemon_health,
    failures,
    recent_actions,
    waiting_tasks,
)
from core.vault import Vault

__all__ = [
    "Claim",
    "DaemonHealth",
    "FailedItem",
    "PendingApproval",
    "RecentAction",
    "VaultStatus",
    "WaitingTask",
    "vault_status",
]

SHOWN = 10  # oldest waiting tasks, newest failures and recent actions shown


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
    # Added with the dashboard; the keys above keep their meaning.
    generated_at: datetime
    waiting_tasks: list[WaitingTask]
    recent_actions: list[RecentAction]
    failures: list[FailedItem]
    daemons: list[DaemonHealth]


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


def pending_approvals(
    vault: Vault, unreadable: dict[str, str], now: datetime
) -> list[PendingApproval]:
    """Every request waiting in Pending_Approval/, oldest first, with the hours it has left."""
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
                hours_left=round(left, 2),
            )
        )
    return sorted(found, key=lambda p: (p.created, p.file))


def claims(vault: Vault, unreadable: dict[str, str], now: datetime) -> list[Claim]:
    """Every task in In_Progress/, with how long ago it was claimed."""
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


def _audit(vault: Vault, zone: str) -> tuple[AuditEntry | None, list[RecentAction], str | None]:
    log = AuditLog(vault.root, zone)
    try:
        return log.last(), recent_actions(log, SHOWN), None
    except AuditError as exc:
        return None, [], str(exc)


def vault_status(
    vault: Vault, *, zone: str, dry_run: bool, now: datetime | None = None
) -> VaultStatus:
    """Gather the status as of ``now`` (default: the clock); unreadable files are reported,
    never fatal."""
    now = now or tasks.utc_now()
    unreadable: dict[str, str] = {}
    pending = pending_approvals(vault, unreadable, now)
    claimed = claims(vault, unreadable, now)
    waiting = waiting_tasks(vault, NEEDS_ACTION, SHOWN, now, unreadable)
    last, actions, problem = _audit(vault, zone)
    return VaultStatus(
        vault=str(vault.root),
        zone=zone,
        dry_run=dry_run,
        counts={folder: vault.count(folder) for folder in FOLDERS if folder != "Logs"},
        pending_approvals=pending,
        oldest_pending_approval=pending[0] if pending else None,
        claimed=claimed,
        unreadable=unreadable,
        breakers=breaker_snapshots(vault.state_dir, clock=now.timestamp),
        last_audit=last,
        audit_problem=problem,
        generated_at=now,
        waiting_tasks=waiting,
        recent_actions=actions,
        failures=failures(vault, SHOWN),
        daemons=daemon_health(vault.state_dir, now),
    )
