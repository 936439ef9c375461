"""Approval requests: where they live and the CEO's decisions on them.

Only the CEO moves a request into ``Approved/`` or ``Rejected/``: by hand in
Obsidian, or through the CLI functions here. No MCP tool calls these.
"""

from __future__ import annotations

from pathlib import Path

from core import tasks
from core.errors import TargetExistsError, TaskFileError, TaskNotFoundError, VaultError
from core.fsutil import atomic_write, move_no_replace
from core.paths import split_relative
from core.vault import APPROVAL_KINDS, Vault, stamped

PENDING = "Pending_Approval"


def _pending_request(vault: Vault, rel: str) -> tuple[str, Path, tasks.TaskDoc]:
    """Confine ``rel`` and check it names a request waiting in Pending_Approval/<kind>/."""
    parts = split_relative(rel)
    if len(parts) != 3 or parts[0] != PENDING or parts[1] not in APPROVAL_KINDS:
        kinds = "|".join(APPROVAL_KINDS)
        raise VaultError(
            f"{rel} is not a request waiting for approval",
            f"give a file in {PENDING}/<{kinds}>/, for example {PENDING}/email/SEND_x.md",
        )
    path = vault.resolve(rel)
    doc = tasks.read_task_file(path)
    if doc.meta.type != "approval_request":
        raise TaskFileError(
            f"{rel} has type {doc.meta.type!r}, not approval_request",
            "only approval requests can be approved or rejected",
        )
    kind = (doc.meta.model_extra or {}).get("kind", parts[1])
    if kind != parts[1]:
        raise TaskFileError(
            f"{rel} says kind {kind!r} but sits in {PENDING}/{parts[1]}/",
            "move it back to the folder of its kind, or reject it",
        )
    return parts[1], path, doc


def _move(path: Path, target: Path, rel: str) -> None:
    try:
        move_no_replace(path, target)
    except FileNotFoundError:
        raise TaskNotFoundError(
            f"{rel} was moved by someone else meanwhile", "run `ai-employee status`"
        ) from None
    except FileExistsError:
        raise TargetExistsError(
            f"{target.parent.name}/{target.name} already exists",
            "the earlier one has not been picked up yet; wait, or rename this request",
        ) from None


def approve(vault: Vault, rel: str) -> Path:
    """The CEO's approval: move the request, unchanged, to Approved/<kind>/."""
    kind, path, _ = _pending_request(vault, rel)
    target = vault.root / "Approved" / kind / path.name
    vault.audit_ready()
    with vault.task_lock(path.name):
        _move(path, target, rel)
    vault.record("approval", "approve", f"Approved/{kind}/{path.name}")
    return target


def reject(vault: Vault, rel: str, reason: str = "") -> Path:
    """The CEO's rejection: record when and why, and move the request to Rejected/."""
    _, path, doc = _pending_request(vault, rel)
    reason = reason or "rejected by the CEO"
    changes = {"status": "rejected", "rejected_at": tasks.iso_utc(), "reject_reason": reason}
    _, data = stamped(doc, **changes)  # rendered first: a request that cannot be is left alone
    target = vault.root / "Rejected" / path.name
    vault.audit_ready()
    with vault.task_lock(path.name):
        _move(path, target, rel)
        atomic_write(target, data)
    vault.record("approval", "reject", f"Rejected/{path.name}", reason=reason)
    return target
