"""``Dashboard.md``: one writer (the local zone); the cloud zone leaves a note in Updates/.

The page is the vault's status as facts the code gathers, plus free notes from
the assistant, which are kept below the facts and can never replace them.
"""

from __future__ import annotations

from pathlib import Path

from core import tasks
from core.errors import AuditError, VaultError
from core.fsutil import atomic_write
from core.status import VaultStatus, vault_status
from core.vault import Vault

DASHBOARD = "Dashboard.md"
MAX_NOTES = 20_000


def render_dashboard(status: VaultStatus, notes: str) -> str:
    """The page: frontmatter, the facts, then the notes."""
    lines = [
        "# Dashboard",
        "",
        f"Updated {tasks.iso_utc()} by the local zone"
        + (" (dry run: no outside actions)" if status.dry_run else "")
        + ". Edits here are overwritten; run `ai-employee status` for the same facts.",
        "",
        "## Work",
        "",
        "| folder | files |",
        "|---|---|",
        *(f"| {folder} | {count} |" for folder, count in status.counts.items() if count),
        "",
        f"## Waiting for your approval ({len(status.pending_approvals)})",
        "",
    ]
    for item in status.pending_approvals:
        left = f"{item.hours_left:.1f} h left" if item.hours_left is not None else "no expiry"
        lines.append(f"- [[{item.file}]] {item.action or '?'} ({left})")
    if status.audit_problem:
        lines += ["", "## Problem", "", f"The audit trail needs attention: {status.audit_problem}"]
    if notes.strip():
        lines += ["", "## Notes from the assistant", "", notes.strip()]
    meta = {"type": "dashboard", "updated": tasks.iso_utc()}
    return tasks.render(meta, "\n".join(lines))


def update_dashboard(vault: Vault, *, zone: str, dry_run: bool, notes: str = "") -> Path:
    """Rewrite Dashboard.md (local zone), or write the notes to Updates/ (cloud zone)."""
    if len(notes) > MAX_NOTES:
        raise VaultError(
            f"the notes are {len(notes):,} characters, over {MAX_NOTES:,}", "keep them short"
        )
    if zone != "local":
        meta = tasks.TaskMeta(
            id=tasks.new_task_id("UPDATE"),
            type="dashboard_update",
            source=zone,
            created=tasks.utc_now(),
        )
        stem = f"DASHBOARD_UPDATE_{tasks.utc_now():%Y-%m-%dT%H%M%SZ}"
        return vault.create_unique("Updates", stem, meta, notes)
    status = vault_status(vault, zone=zone, dry_run=dry_run)
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
