"""Approval requests: where they live and the CEO's decisions on them.

Only the CEO moves a request into ``Approved/`` or ``Rejected/``: by hand in
Obsidian, or through the CLI functions here. No MCP tool calls these.
"""

from __future__ import annotations

from pathlib import Path

from core import tasks
from core.errors import TargetExistsError, TaskFileError, VaultError
from core.fsutil import atomic_write, move_no_replace
from core.paths import split_relative
from core.vault import APPROVAL_KINDS, Vault

PENDING = "Pending_Approval"


def _pending_request(vault: Vault, rel: str) -> tuple[str, Path]:
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
    return parts[1], path


def approve(vault: Vault, rel: str) -> Path:
    """The CEO's approval: move the request, unchanged, to Approved/<kind>/."""
    kind, path = _pending_request(vault, rel)
    target = vault.root / "Approved" / kind / path.name
    try:
        move_no_replace(path, target)
    except FileExistsError:
        raise TargetExistsError(
            f"Approved/{kind}/{path.name} already exists",
            "the executor has not picked up the earlier one yet; wait or rename this request",
        ) from None
    vault.record("approval", "approve", f"Approved/{kind}/{path.name}")
    return target


def reject(vault: Vault, rel: str, reason: str = "") -> Path:
    """The CEO's rejection: move the request to Rejected/, then record when and why."""
    _, path = _pending_request(vault, rel)
    target = vault.root / "Rejected" / path.name
    try:
        move_no_replace(path, target)
    except FileExistsError:
        raise TargetExistsError(
            f"Rejected/{path.name} already exists", "rename this request, then reject it"
        ) from None
    doc = tasks.read_task_file(target)
    fields = {
        **doc.meta.to_frontmatter(),
        "status": "rejected",
        "rejected_at": tasks.iso_utc(),
        "reject_reason": reason or "rejected by the CEO",
    }
    atomic_write(target, tasks.render(fields, doc.body).encode())
    vault.record("approval", "reject", f"Rejected/{path.name}", reason=fields["reject_reason"])
    return target
