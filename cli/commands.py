"""Handlers for init, status, approve, reject and run."""

from __future__ import annotations

import argparse
import importlib
import json
from datetime import datetime

from core import approvals
from core.audit import AuditLog
from core.config import load_settings
from core.mdsafe import duration, one_line
from core.paths import relative_to_vault
from core.status import VaultStatus, vault_status
from core.vault import Vault, open_vault
from core.vault_init import init_vault


def cmd_init(args: argparse.Namespace) -> int:
    settings = load_settings()
    result = init_vault(args.path or settings.vault_path)
    vault = Vault(result.vault, audit=AuditLog(result.vault, settings.zone), actor="cli")
    vault.record("vault", "init", ".", created=len(result.created))
    print(f"Vault ready at {result.vault}")
    print(f"  files created: {len(result.created)}, existing files kept: {len(result.kept)}")
    print(f"  git: {result.git}")
    print(f"Open it in Obsidian, or run: VAULT_PATH={result.vault} ai-employee status")
    return 0


def _age(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def print_status(status: VaultStatus) -> None:
    """The snapshot for a terminal; every name from the vault is printed as one plain line."""
    now, safe = status.generated_at, one_line
    mode = "DRY RUN (no outside actions)" if status.dry_run else "LIVE"
    print(f"Vault {status.vault}  zone={status.zone}  {mode}  at {_age(now)}")
    print("\nFolders:")
    for folder, count in status.counts.items():
        print(f"  {folder:<30} {count:>7}")
    print(f"\nWaiting in Needs_Action: {status.counts.get('Needs_Action', 0)} (oldest first)")
    for task in status.waiting_tasks:
        title = safe(task.title, 60) if task.title is not None else "(unreadable)"
        print(f"  {safe(task.file)}  {title}  waiting {duration(task.age_hours * 3600)}")
    print(f"\nWaiting for approval: {len(status.pending_approvals)}")
    for item in status.pending_approvals:
        left = "no expiry" if item.hours_left is None else f"{item.hours_left:.1f} h left"
        if item.hours_left is not None and item.hours_left <= 0:
            left = "expired; moves to Rejected/ at the next executor pass"
        print(f"  {safe(item.file)}  ({safe(item.action or '?')}, {left})")
    print(f"\nClaimed tasks: {len(status.claimed)}")
    for claim in status.claimed:
        age = f"{claim.age_minutes:.0f} min" if claim.age_minutes is not None else "unknown age"
        print(f"  {safe(claim.file)}  by {safe(claim.claimed_by or '?')}, {age}")
    for name, problem in status.unreadable.items():
        print(f"  unreadable: {safe(name)}: {safe(problem)}")
    print("\nRecent actions:")
    if not status.recent_actions:
        print("  none yet")
    for act in status.recent_actions:
        mode = " (dry run)" if act.dry_run else ""
        why = f": {safe(act.error, 100)}" if act.error else ""
        print(f"  {act.ts[:19]}Z  {safe(act.action)} {safe(act.target)} -> {act.status}{why}{mode}")
    print(f"\nFailed (needs a person): {status.counts.get('Failed', 0)} (newest first)")
    for failed in status.failures:
        outcome = safe(failed.outcome or "-")
        print(f"  {safe(failed.file)}  {_age(failed.failed_at)}  outcome={outcome}")
        if failed.error:
            print(f"    {safe(failed.error, 160)}")
    print("\nServices:")
    if not status.breakers:
        print("  no calls made yet")
    for snap in status.breakers:
        print(f"  {snap.name:<12} {snap.state.value}  failures={snap.failures}")
    print("\nDaemons:")
    if not status.daemons:
        print("  none has run on this machine yet")
    for daemon in status.daemons:
        ago = duration((now - daemon.last_pass).total_seconds())
        detail = f"  {safe(daemon.detail, 100)}" if daemon.detail else ""
        print(f"  {daemon.daemon:<18} {daemon.state:<8} last pass {ago} ago{detail}")
    print("\nLast audit entry:")
    if status.audit_problem:
        print(f"  PROBLEM: {status.audit_problem}")
    elif status.last_audit:
        entry = status.last_audit
        print(
            f"  {entry.ts}  {entry.actor} {entry.category}/{entry.action} {safe(entry.target)}"
            f" -> {entry.status}"
        )
    else:
        print("  none yet")


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    vault = open_vault(settings, actor="cli")
    status = vault_status(vault, zone=settings.zone, dry_run=settings.dry_run)
    if args.json:
        print(json.dumps(status.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        print_status(status)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    settings = load_settings()
    vault = open_vault(settings, actor="ceo")
    target = approvals.approve(vault, relative_to_vault(vault.root, args.file))
    print(f"Approved: {target.relative_to(vault.root)} (the executor picks it up from there)")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    settings = load_settings()
    vault = open_vault(settings, actor="ceo")
    target = approvals.reject(vault, relative_to_vault(vault.root, args.file), args.reason)
    print(f"Rejected: {target.relative_to(vault.root)}")
    return 0


# Each module has ``run(settings, *, once, interval=<its default>) -> int``; imported when run.
DAEMONS = ("approval_watcher", "gmail_watcher", "inbox_watcher", "scheduler")


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    run = importlib.import_module(f"daemons.{args.daemon}").run
    if args.interval is None:
        return run(settings, once=args.once)
    return run(settings, once=args.once, interval=max(args.interval, 0.5))
