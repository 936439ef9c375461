"""Approval requests: creating them, reading them back, expiry, and the CEO's decisions.

A request is ``Pending_Approval/<kind>/<ACTION>_<target>_<date>.md``. Its action
parameters are frontmatter fields written by the YAML dumper, its payload is the
body, so no payload text can set a field. Once written the product never
rewrites a request's parameters or payload: what sits in ``Approved/`` runs.
Only the CEO moves a request into ``Approved/`` or ``Rejected/`` (by hand, or
through ``approve``/``reject`` here); expiry is the one automatic way to
``Rejected/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from core import tasks
from core.actions import (
    ActionParams,
    action_model,
    idempotency_key,
    payload_sha256,
)
from core.errors import (
    PolicyDeniedError,
    RequestError,
    TargetExistsError,
    TaskFileError,
    TaskNotFoundError,
    VaultError,
)
from core.fsutil import atomic_write, move_no_replace
from core.layout import APPROVAL_KINDS
from core.paths import slug, split_relative
from core.policy import Level, Policy, load_policy
from core.vault import Vault

DEFAULT_TTL = timedelta(hours=24)
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
State = Literal["pending", "approved", "rejected", "done", "failed"]
# Fields of the request itself and of its lifecycle; every other field is an action parameter.
REQUEST_FIELDS = frozenset(
    {
        *tasks.TaskMeta.model_fields,
        "kind",
        "action",
        "reason",
        "task",
        "expires",
        "attachments_sha256",
        "idempotency_key",
        "payload_sha256",
        "approved_from",
        "executed_at",
        "outcome",
        "result",
        "error",
        "dry_run",
        "failed_at",
        "rejected_at",
        "reject_reason",
        "expired_at",
        "summary",
        "completed_at",
        "released_because",
    }
)


class ApprovalRequest(BaseModel):
    """A request read back and validated: the action's own model plus its payload."""

    file: str
    meta: tasks.TaskMeta
    kind: str
    action: str
    reason: str
    task: str | None
    expires: datetime
    params: ActionParams
    payload: str
    attachments_sha256: list[str] = []

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def payload_hash(self) -> str:
        return payload_sha256(
            self.action, self.kind, self.params, self.payload, self.attachments_sha256
        )

    @property
    def key(self) -> str:
        return idempotency_key(self.meta.id, self.payload_hash)

    def expired(self, now: datetime | None = None) -> bool:
        return (now or tasks.utc_now()) >= self.expires


def _extra(meta: tasks.TaskMeta) -> dict[str, Any]:
    return dict(meta.model_extra or {})


def expires_at(meta: tasks.TaskMeta) -> datetime:
    """``expires`` from the file, never later than created + 24 h (the default if it is
    missing or unreadable), so no hand-edited date keeps a request alive."""
    latest = meta.created + DEFAULT_TTL
    written = tasks.parse_utc(_extra(meta).get("expires"))
    return min(written, latest) if written else latest


def parse_request(doc: tasks.TaskDoc, file: str) -> ApprovalRequest:
    """Validate a task as an approval request; RequestError naming what is wrong."""
    fields = _extra(doc.meta)
    if doc.meta.type != "approval_request":
        raise RequestError(f"{file} has type {doc.meta.type!r}, not approval_request", "fix type")
    action, kind = fields.get("action"), fields.get("kind")
    try:
        model = action_model(str(action))
    except KeyError:
        raise RequestError(
            f"{file} names an unknown action {action!r}",
            "use one of send_email, publish_post, register_payment",
        ) from None
    if kind != model.KIND:
        raise RequestError(f"{file} has kind {kind!r}; {action} needs {model.KIND!r}", "fix kind")
    if not isinstance(fields.get("reason", ""), str) or not isinstance(
        fields.get("task"), str | None
    ):
        raise RequestError(f"{file} has a reason or task that is not text", "write them as text")
    params = {key: value for key, value in fields.items() if key not in REQUEST_FIELDS}
    try:
        parsed = model.model_validate(params)
    except ValidationError as exc:
        wrong = ", ".join(sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]}))
        raise RequestError(
            f"{file} has missing or invalid {action} fields: {wrong or 'all'}",
            "fix those fields (or reject the request and ask for a new one)",
        ) from None
    return ApprovalRequest(
        file=file,
        meta=doc.meta,
        kind=str(kind),
        action=model.ACTION,
        reason=str(fields.get("reason", "")),
        task=fields.get("task"),
        expires=expires_at(doc.meta),
        params=parsed,
        payload=doc.body,
        attachments_sha256=_digest_list(fields.get("attachments_sha256"), file),
    )


def _digest_list(value: Any, file: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{file} has a malformed attachments_sha256", "ask for a new request")
    return value


def read_request(vault: Vault, rel: str) -> ApprovalRequest:
    try:
        return parse_request(vault.read(rel), rel)
    except TaskFileError as exc:
        raise RequestError(exc.what, exc.next_step) from None


def attachment_sizes(vault: Vault, params: ActionParams) -> tuple[int, ...]:
    """Sizes of the files an action sends (vault paths, confined); VaultError for a bad one."""
    return tuple(vault.resolve(rel).stat().st_size for rel in params.files())


def attachment_digests(vault: Vault, params: ActionParams) -> list[str]:
    """``sha256:<hex>`` of each file the action sends, so a swapped file is caught later."""
    digests = []
    for rel in params.files():
        data = tasks.read_bytes_safely(vault.resolve(rel), limit=MAX_ATTACHMENT_BYTES)
        digests.append(f"sha256:{hashlib.sha256(data).hexdigest()}")
    return digests


def create_request(
    vault: Vault,
    params: ActionParams,
    payload: str,
    *,
    reason: str,
    task: str | None = None,
    policy: Policy | None = None,
    ttl: timedelta = DEFAULT_TTL,
    attachment_bytes: tuple[int, ...] = (),
) -> Path:
    """Write a new request to ``Pending_Approval/<kind>/``; refused if the policy DENYs it.

    Without ``policy`` the vault's handbook is read: no request skips the check.
    """
    policy = policy or load_policy(vault.root)
    sizes = attachment_bytes or attachment_sizes(vault, params)
    decision = policy.decide(params, payload, attachment_bytes=sizes)
    if decision.level is Level.DENY:
        raise PolicyDeniedError(
            f"the handbook denies this {params.ACTION} ({decision.rule}: {decision.reason})",
            "do not ask again; tell the CEO if the handbook should change",
        )
    digests = attachment_digests(vault, params)
    now = tasks.utc_now()
    fields = {
        "kind": params.KIND,
        "action": params.ACTION,
        **params.model_dump(mode="json", exclude_none=True),
        "reason": reason,
        **({"task": task} if task else {}),
        **({"attachments_sha256": digests} if digests else {}),
        "expires": tasks.iso_utc(now + min(ttl, DEFAULT_TTL)),
    }
    meta = tasks.TaskMeta.model_validate(
        {"id": tasks.new_task_id("REQ"), "type": "approval_request", "created": now, **fields}
    )
    folder = f"{PENDING}/{params.KIND}"
    stem = f"{params.ACTION.upper()}_{slug(params.target())}_{now:%Y-%m-%d}"
    return vault.create_unique(folder, stem, meta, payload)


STATE_FOLDERS: dict[str, list[str]] = {
    "pending": [f"Pending_Approval/{kind}" for kind in APPROVAL_KINDS],
    "approved": [f"Approved/{kind}" for kind in APPROVAL_KINDS],
    "rejected": ["Rejected"],
    "done": ["Done"],
    "failed": ["Failed"],
}


class RequestSummary(BaseModel):
    path: str
    id: str
    action: str | None
    kind: str | None
    status: str
    created: datetime
    expires: datetime
    hours_left: float
    reason: str | None


def list_requests(vault: Vault, state: State, *, limit: int = 50) -> list[RequestSummary]:
    """Newest requests in a state, from their frontmatter; unreadable files are skipped."""
    found: list[RequestSummary] = []
    for folder in STATE_FOLDERS[state]:
        found.extend(_summaries(vault, folder, limit))
    return sorted(found, key=lambda r: r.created, reverse=True)[:limit]


def _summaries(vault: Vault, folder: str, limit: int) -> Iterator[RequestSummary]:
    count = 0
    for entry in vault.list_tasks(folder, limit=None):
        if count >= limit:
            return
        try:
            meta = tasks.read_task_file(vault.root / entry.rel).meta
        except (TaskFileError, FileNotFoundError):
            continue
        if meta.type != "approval_request":
            continue
        extra = _extra(meta)
        count += 1
        expires = expires_at(meta)
        yield RequestSummary(
            path=entry.rel,
            id=meta.id,
            action=_text(extra.get("action")),
            kind=_text(extra.get("kind")),
            status=meta.status,
            created=meta.created,
            expires=expires,
            hours_left=round((expires - tasks.utc_now()).total_seconds() / 3600, 2),
            reason=_text(extra.get("reason")),
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


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
    kind, path, doc = _pending_request(vault, rel)
    if tasks.utc_now() >= (expires := expires_at(doc.meta)):
        raise VaultError(
            f"{rel} expired at {tasks.iso_utc(expires)}",
            "it moves to Rejected/ at the next executor pass; ask for a new request",
        )
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
    _, data = tasks.stamped(
        doc, **changes
    )  # rendered first: a request that cannot be is left alone
    target = vault.root / "Rejected" / path.name
    vault.audit_ready()
    with vault.task_lock(path.name):
        _move(path, target, rel)
        atomic_write(target, data)
    vault.record("approval", "reject", f"Rejected/{path.name}", reason=reason)
    return target
