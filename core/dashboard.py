"""``Dashboard.md``: one writer (the local zone); the cloud zone leaves a note in Updates/.

The page is the status snapshot (:mod:`core.status`) as facts, plus free notes from the
assistant, which are kept below the facts and can never replace them. It is a pure
function of the snapshot and the notes: the same vault and the same clock give the same
bytes. Every name and text from outside goes through :mod:`core.mdsafe`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core import tasks
from core.errors import AuditError, VaultError
from core.fsutil import atomic_write
from core.layout import FOLDERS, NEEDS_ACTION
from core.mdsafe import duration, link, moment, table, text
from core.status import VaultStatus, vault_status
from core.vault import Vault

DASHBOARD = "Dashboard.md"
MAX_NOTES = 20_000
_TOP_FOLDERS = frozenset(folder.split("/")[0] for folder in FOLDERS)


def _ago(then: datetime | None, now: datetime) -> str:
    return duration((now - then).total_seconds()) if then else "-"


def _target(value: str) -> str:
    """A vault file named by an audit entry is linked; anything else is shown as text."""
    if value.endswith(".md") and value.split("/")[0] in _TOP_FOLDERS:
        return link(value)
    return text(value, limit=80)


def _header(status: VaultStatus) -> list[str]:
    mode = " (dry run: no outside actions)" if status.dry_run else ""
    lines = [
        "# Dashboard",
        "",
        f"Updated {moment(status.generated_at)} by the {status.zone} zone{mode}. "
        "Edits here are overwritten; run `ai-employee status` for the same facts.",
    ]
    if status.audit_problem:
        problem = text(status.audit_problem, limit=500)
        lines += ["", "## Problem", "", f"The audit trail needs attention: {problem}"]
    return lines


def _work(status: VaultStatus) -> list[str]:
    rows = [[folder, str(count)] for folder, count in status.counts.items() if count]
    if not rows:
        return ["## Work", "", "Every folder is empty."]
    return ["## Work", "", *table(["folder", "files"], rows)]


def _waiting(status: VaultStatus) -> list[str]:
    total, now = status.counts.get(NEEDS_ACTION, 0), status.generated_at
    lines = [f"## Waiting tasks ({total})", ""]
    if not status.waiting_tasks:
        return [*lines, "Nothing is waiting in Needs_Action."]
    rows = [
        [
            link(task.file),
            text(task.title, limit=80) if task.title is not None else "(unreadable)",
            text(task.priority or "-"),
            _ago(task.created, now) if task.created else duration(task.age_hours * 3600),
        ]
        for task in status.waiting_tasks
    ]
    lines += table(["task", "title", "priority", "waiting"], rows)
    if total > len(rows):
        lines += ["", f"The {len(rows)} oldest of {total} are shown."]
    return lines


def _time_left(expires: datetime | None, now: datetime) -> str:
    if expires is None:
        return "no expiry"
    if expires <= now:
        return "expired: moves to Rejected/ at the next executor pass"
    return f"{duration((expires - now).total_seconds())} left"


def _approvals(status: VaultStatus) -> list[str]:
    now = status.generated_at
    lines = [f"## Waiting for your approval ({len(status.pending_approvals)})", ""]
    if not status.pending_approvals:
        return [*lines, "No request is waiting."]
    rows = [
        [
            link(item.file),
            text(item.action or "?"),
            _ago(item.created, now),
            _time_left(item.expires, now),
        ]
        for item in status.pending_approvals
    ]
    lines += table(["request", "action", "waiting", "time left"], rows)
    return [*lines, "", "Approve by moving a request to `Approved/<kind>/`; reject to `Rejected/`."]


def _claims(status: VaultStatus) -> list[str]:
    if not status.claimed:
        return []
    now = status.generated_at
    rows = [
        [link(claim.file), text(claim.claimed_by or "?"), _ago(claim.claimed_at, now)]
        for claim in status.claimed
    ]
    return [f"## Claimed ({len(status.claimed)})", "", *table(["task", "by", "claimed"], rows)]


def _actions(status: VaultStatus) -> list[str]:
    lines = ["## Recent actions", ""]
    if not status.recent_actions:
        return [*lines, "No action has run yet."]
    rows = [
        [
            moment(tasks.parse_utc(item.ts)),
            text(item.action),
            _target(item.target),
            text(item.status) + (f": {text(item.error, limit=120)}" if item.error else ""),
            "yes" if item.dry_run else "no",
        ]
        for item in status.recent_actions
    ]
    return [*lines, *table(["when", "action", "target", "status", "dry run"], rows)]


def _failures(status: VaultStatus) -> list[str]:
    total = status.counts.get("Failed", 0)
    lines = [f"## Failures ({total})", ""]
    if not status.failures:
        return [*lines, "Nothing has failed."]
    rows = [
        [
            link(item.file),
            moment(item.failed_at),
            text(item.outcome or "-"),
            text(item.error or "-", limit=160),
        ]
        for item in status.failures
    ]
    lines += table(["file", "failed", "outcome", "error"], rows)
    if total > len(rows):
        lines += ["", f"The {len(rows)} newest of {total} are shown."]
    return [*lines, "", "Each needs a person: read the error, then act on the service by hand."]


def _breakers(status: VaultStatus) -> list[str]:
    lines = ["## Services", ""]
    if not status.breakers:
        return [*lines, "No outside service has been called yet."]
    rows = []
    for snap in status.breakers:
        retry = datetime.fromtimestamp(snap.retry_at, UTC) if snap.retry_at else None
        rows.append([text(snap.name), snap.state.value, str(snap.failures), moment(retry)])
    return [*lines, *table(["service", "breaker", "failures in a row", "next try"], rows)]


def _daemons(status: VaultStatus) -> list[str]:
    lines = ["## Daemons", ""]
    if not status.daemons:
        return [*lines, "No daemon has run on this machine yet."]
    now = status.generated_at
    rows = [
        [
            text(item.daemon),
            text(item.zone),
            item.state,
            f"{_ago(item.last_pass, now)} ago",
            text(item.detail or "-", limit=160),
        ]
        for item in status.daemons
    ]
    return [*lines, *table(["daemon", "zone", "state", "last pass", "detail"], rows)]


def _unreadable(status: VaultStatus) -> list[str]:
    if not status.unreadable:
        return []
    rows = [[link(name), text(why, limit=160)] for name, why in status.unreadable.items()]
    return ["## Unreadable files", "", *table(["file", "problem"], rows)]


SECTIONS: tuple[Callable[[VaultStatus], list[str]], ...] = (
    _header,
    _work,
    _waiting,
    _approvals,
    _claims,
    _actions,
    _failures,
    _breakers,
    _daemons,
    _unreadable,
)


def render_dashboard(status: VaultStatus, notes: str) -> str:
    """The page: frontmatter, the facts, then the notes."""
    blocks = [section(status) for section in SECTIONS]
    lines = [line for block in blocks if block for line in [*block, ""]]
    if notes.strip():
        lines += ["## Notes from the assistant", "", notes.strip(), ""]
    meta = {"type": "dashboard", "updated": tasks.iso_utc(status.generated_at)}
    return tasks.render(meta, "\n".join(lines))


def _cloud_note(vault: Vault, zone: str, notes: str, now: datetime) -> Path:
    meta = tasks.TaskMeta(
        id=tasks.new_task_id("UPDATE"), type="dashboard_update", source=zone, created=now
    )
    return vault.create_unique("Updates", f"DASHBOARD_UPDATE_{now:%Y-%m-%dT%H%M%SZ}", meta, notes)


def update_dashboard(
    vault: Vault, *, zone: str, dry_run: bool, notes: str = "", now: datetime | None = None
) -> Path:
    """Rewrite Dashboard.md (local zone), or write the notes to Updates/ (cloud zone)."""
    if len(notes) > MAX_NOTES:
        raise VaultError(
            f"the notes are {len(notes):,} characters, over {MAX_NOTES:,}", "keep them short"
        )
    now = now or tasks.utc_now()
    if zone != "local":
        return _cloud_note(vault, zone, notes, now)
    status = vault_status(vault, zone=zone, dry_run=dry_run, now=now)
    path = vault.root / DASHBOARD
    page = render_dashboard(status, notes).encode()
    try:
        vault.audit_ready()
    except AuditError:
        atomic_write(path, page)  # the page is how the CEO learns the trail needs attention
        raise
    atomic_write(path, page)
    vault.record("vault", "update_dashboard", DASHBOARD, pending=len(status.pending_approvals))
    return path
