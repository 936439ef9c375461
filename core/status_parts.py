"""Parts of the status snapshot: the oldest waiting tasks, the newest failures, recent
actions from the audit trail, and daemon health from heartbeats.

Each reads only what it shows: a folder is listed from its directory entries and just the
chosen few files are opened.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from core import tasks
from core.audit import AuditLog
from core.errors import TaskFileError
from core.heartbeat import read_heartbeats
from core.vault import TaskEntry, Vault

FAILED = "Failed"
# Executor bookkeeping: every run claims first, so these would crowd out the outcomes.
NOT_SHOWN_ACTIONS = frozenset({"claim"})
Health = Literal["alive", "stale", "failing", "once"]


class WaitingTask(BaseModel):
    file: str
    title: str | None
    priority: str | None
    created: datetime | None  # None when the file cannot be read (age then from its mtime)
    age_hours: float


class FailedItem(BaseModel):
    file: str
    failed_at: datetime  # failed_at or executed_at from the file, else its modification time
    outcome: str | None
    error: str | None


class RecentAction(BaseModel):
    ts: str
    action: str
    target: str
    status: str
    dry_run: bool
    error: str | None


class DaemonHealth(BaseModel):
    """``alive``: passes on time and the last one went well; ``failing``: on time but the last
    pass failed; ``stale``: the next pass is overdue; ``once``: a single pass (--once)."""

    daemon: str
    zone: str
    state: Health
    last_pass: datetime
    age_minutes: float
    interval: float
    detail: str


def _field(meta: tasks.TaskMeta, *keys: str) -> Any:
    extra = meta.model_extra or {}
    return next((extra[key] for key in keys if extra.get(key) not in (None, "")), None)


def title_of(meta: tasks.TaskMeta) -> str:
    """What a person calls the task: its title, an email's subject, an action, else its id."""
    found = _field(meta, "title", "subject", "action")
    return str(found) if found is not None else meta.id


def _waiting(
    entry: TaskEntry, vault: Vault, now: datetime, unreadable: dict[str, str]
) -> WaitingTask:
    try:
        meta = tasks.read_task_file(vault.root / entry.rel).meta
    except (TaskFileError, FileNotFoundError) as exc:
        unreadable[entry.rel] = str(exc) or "moved meanwhile"
        age = (now - entry.modified).total_seconds() / 3600
        return WaitingTask(
            file=entry.rel, title=None, priority=None, created=None, age_hours=round(age, 2)
        )
    age = (now - meta.created).total_seconds() / 3600
    return WaitingTask(
        file=entry.rel,
        title=title_of(meta),
        priority=meta.priority,
        created=meta.created,
        age_hours=round(age, 2),
    )


def waiting_tasks(
    vault: Vault, folder: str, limit: int | None, now: datetime, unreadable: dict[str, str]
) -> list[WaitingTask]:
    """The ``limit`` oldest files of ``folder`` (by modification time; None: all of them),
    oldest first by age."""
    entries = vault.list_tasks(folder, limit=limit, newest_first=False)
    found = [_waiting(entry, vault, now, unreadable) for entry in entries]
    return sorted(found, key=lambda task: (-task.age_hours, task.file))


def _failed(entry: TaskEntry, vault: Vault) -> FailedItem:
    try:
        meta = tasks.read_task_file(vault.root / entry.rel).meta
    except (TaskFileError, FileNotFoundError) as exc:
        why = str(exc) or "moved meanwhile"
        return FailedItem(file=entry.rel, failed_at=entry.modified, outcome=None, error=why)
    when = tasks.parse_utc(_field(meta, "failed_at", "executed_at", "expired_at"))
    outcome, error = _field(meta, "outcome"), _field(meta, "error")
    return FailedItem(
        file=entry.rel,
        failed_at=when or entry.modified,
        outcome=str(outcome) if outcome is not None else None,
        error=str(error) if error is not None else None,
    )


def failures(vault: Vault, limit: int) -> list[FailedItem]:
    """The ``limit`` newest files in Failed/ with their outcome and error, newest first."""
    found = [_failed(entry, vault) for entry in vault.list_tasks(FAILED, limit=limit)]
    return sorted(found, key=lambda item: (item.failed_at, item.file), reverse=True)


def recent_actions(log: AuditLog, limit: int) -> list[RecentAction]:
    """The newest ``action`` entries of the trail (claims left out), newest first."""
    found = []
    for entry in log.query(category="action", limit=4 * limit, newest_first=True):
        if entry.action in NOT_SHOWN_ACTIONS:
            continue
        error = entry.details.get("error")
        found.append(
            RecentAction(
                ts=entry.ts,
                action=entry.action,
                target=entry.target,
                status=entry.status,
                dry_run=entry.dry_run,
                error=str(error) if error else None,
            )
        )
    return found[:limit]


def health_of(beat_ok: bool, stale: bool, interval: float) -> Health:
    if stale:
        return "stale"
    if not beat_ok:
        return "failing"
    return "alive" if interval > 0 else "once"


def daemon_health(state_dir: Path, now: datetime) -> list[DaemonHealth]:
    """Each daemon's last heartbeat judged at ``now``, by daemon name."""
    return [
        DaemonHealth(
            daemon=beat.daemon,
            zone=beat.zone,
            state=health_of(beat.ok, beat.stale(now), beat.interval),
            last_pass=beat.at,
            age_minutes=round((now - beat.at).total_seconds() / 60, 1),
            interval=beat.interval,
            detail=beat.detail,
        )
        for beat in read_heartbeats(state_dir)
    ]
