"""Handlers for init, status, approve, reject and run."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from core import approvals
from core.audit import AuditLog
from core.config import load_settings
from core.paths import relative_to_vault
from core.status import VaultStatus, vault_status
from core.vault import Vault, open_vault
from core.vault_init import init_vault
from daemons import approval_watcher, gmail_watcher


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
    mode = "DRY RUN (no outside actions)" if status.dry_run else "LIVE"
    print(f"Vault {status.vault}  zone={status.zone}  {mode}")
    print("\nFolders:")
    for folder, count in status.counts.items():
        print(f"  {folder:<30} {count:>7}")
    print(f"\nWaiting for approval: {len(status.pending_approvals)}")
    for item in status.pending_approvals:
        left = "no expiry" if item.hours_left is None else f"{item.hours_left:.1f} h left"
        if item.hours_left is not None and item.hours_left <= 0:
            left = "expired; moves to Rejected/ at the next executor pass"
        print(f"  {item.file}  ({item.action or '?'}, {left})")
    print(f"\nClaimed tasks: {len(status.claimed)}")
    for claim in status.claimed:
        age = f"{claim.age_minutes:.0f} min" if claim.age_minutes is not None else "unknown age"
        print(f"  {claim.file}  by {claim.claimed_by or '?'}, {age}")
    for name, problem in status.unreadable.items():
        print(f"  unreadable: {name}: {problem}")
    print("\nServices:")
    if not status.breakers:
        print("  no calls made yet")
    for snap in status.breakers:
        print(f"  {snap.name:<12} {snap.state.value}  failures={snap.failures}")
    print("\nLast audit entry:")
    if status.audit_problem:
        print(f"  PROBLEM: {status.audit_problem}")
    elif status.last_audit:
        entry = status.last_audit
        print(
            f"  {entry.ts}  {entry.actor} {entry.category}/{entry.action} {entry.target}"
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


DAEMONS = {"approval_watcher": approval_watcher.run, "gmail_watcher": gmail_watcher.run}


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.interval is None:
        return DAEMONS[args.daemon](settings, once=args.once)
    return DAEMONS[args.daemon](settings, once=args.once, interval=max(args.interval, 0.5))
