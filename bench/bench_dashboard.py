"""Dashboard benchmark: generating Dashboard.md for a vault of 100,000 files.

The vault is built by writing small task files straight to disk (not through the vault
API), mostly in Done/. The baseline, measured in the same run on the same disk, is a bare
``os.scandir`` count of the same folders: the least any page with per-folder counts must do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.table import Row, best_of, print_table
from core import tasks
from core.audit import AuditLog
from core.dashboard import update_dashboard
from core.heartbeat import beat
from core.layout import FOLDERS
from core.resilience import CircuitBreaker
from core.status import vault_status
from core.vault import Vault

TOTAL = 100_000
# Where the files go; Done/ takes whatever the others leave of TOTAL.
SPREAD = {
    "Needs_Action": 3_000,
    "In_Progress/local": 100,
    "In_Progress/cloud": 100,
    "Pending_Approval/email": 100,
    "Pending_Approval/payments": 100,
    "Pending_Approval/social_media": 100,
    "Plans": 1_500,
    "Rejected": 2_000,
    "Failed": 500,
    "Updates": 1_000,
    "Signals": 1_000,
    "Inbox": 500,
}
AUDIT_ENTRIES = 200
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BENCH_TMP = Path(__file__).resolve().parent.parent / ".bench_tmp"


def _page(folder: str) -> bytes:
    created = tasks.iso_utc(NOW - timedelta(hours=3))
    meta: dict[str, object] = {"id": "BENCH_1", "type": "email", "created": created}
    if folder.startswith("Pending_Approval/"):
        meta.update(type="approval_request", action="send_email", status="pending")
    if folder == "Failed":
        meta.update(status="failed", outcome="not_run", error="bench: refused")
    if folder.startswith("In_Progress/"):
        meta.update(claimed_by=folder.split("/")[1], claimed_at=created, status="in_progress")
    return tasks.render(meta, "A small task body.").encode()


def _write(folder: Path, count: int, data: bytes, suffix: str = ".md") -> None:
    for i in range(count):
        with open(folder / f"TASK_{i:06d}{suffix}", "wb") as handle:
            handle.write(data)


def build(root: Path) -> Vault:
    """A vault of TOTAL files, an audit trail, heartbeats and a breaker."""
    vault = Vault(root, audit=AuditLog(root, "local"), actor="bench")
    vault.ensure_layout()
    spread = {**SPREAD, "Done": TOTAL - sum(SPREAD.values())}
    for folder, count in spread.items():
        suffix = ".json" if folder == "Signals" else ".md"
        _write(root / folder, count, b"{}" if suffix == ".json" else _page(folder), suffix)
    for i in range(AUDIT_ENTRIES):
        vault.record("action", "send_email", f"Done/TASK_{i:06d}.md", dry_run=True)
    for name in ("approval_watcher", "gmail_watcher"):
        beat(vault.state_dir, name, zone="local", ok=True, interval=60)
    CircuitBreaker("gmail", vault.state_dir).record_failure()
    return vault


def _scandir_count(root: Path) -> int:
    total = 0
    for folder in FOLDERS:
        with os.scandir(root / folder) as entries:
            total += sum(1 for _ in entries)
    return total


def bench_dashboard(base: Path) -> list[Row]:
    vault = build(base / "big")
    assert _scandir_count(vault.root) >= TOTAL, "the vault was not built"
    status = vault_status(vault, zone="local", dry_run=True, now=NOW)
    assert sum(status.counts.values()) == TOTAL, "the counts disagree with what was written"
    page = lambda: update_dashboard(vault, zone="local", dry_run=True, now=NOW)  # noqa: E731
    ours = best_of(5, page) * 1000
    gather = best_of(5, lambda: vault_status(vault, zone="local", dry_run=True, now=NOW)) * 1000
    bare = best_of(5, lambda: _scandir_count(vault.root)) * 1000
    name = "bare os.scandir count, same folders"
    return [
        Row(
            "Dashboard.md for 100k files (gather, render, write, audit)",
            ours,
            "ms",
            name,
            bare,
            "≤ 1,000 ms",
            ours <= 1000,
        ),
        Row("status snapshot alone (the shared data pass)", gather, "ms", name, bare, "-", True),
    ]


def run() -> list[Row]:
    BENCH_TMP.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(dir=BENCH_TMP, prefix="dashboard-"))
    try:
        return bench_dashboard(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    print_table("Dashboard", run())
