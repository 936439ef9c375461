"""What a send came to, told to the model: from the executor's report or the AUTO ledger."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from core.action_handler import PassReport
from core.auto_actions import AutoOutcome
from core.errors import TaskFileError, VaultError
from core.vault import Vault
from servers.gmail_mcp.models import SendAnswer, SendStatus

CHECK_SENT = "check Gmail's Sent folder before anything else; do not send it again"


def auto_answer(outcome: AutoOutcome) -> SendAnswer:
    result = outcome.result
    fields: dict[str, Any] = {
        "via": "auto",
        "rule": outcome.rule,
        "gmail_id": result.get("id"),
        "thread_id": result.get("thread_id"),
        "message_id": result.get("message_id"),
        "error": outcome.error,
    }
    if outcome.phase == "done" and outcome.dry_run:
        return SendAnswer(status="dry_run", message="dry run: nothing was sent", **fields)
    if outcome.phase == "done" and outcome.repeated:
        said = "this exact email was sent before; nothing new was sent"
        return SendAnswer(status="already_sent", message=said, **fields)
    if outcome.phase == "done":
        return SendAnswer(status="sent", message="sent (the handbook allows it unasked)", **fields)
    if outcome.phase == "unknown":
        said = f"the outcome is unknown: {CHECK_SENT}"
        return SendAnswer(status="unknown", message=said, **fields)
    said = f"not sent: {outcome.error or 'Gmail refused it'}"
    return SendAnswer(status="failed", message=said, **fields)


def approved_answer(vault: Vault, name: str, request_id: str, report: PassReport) -> SendAnswer:
    """The outcome of running ``Approved/email/<name>`` (request ``request_id``), from the
    executor's report; files of other requests in the same report are never mistaken for it."""
    base: dict[str, Any] = {"via": "approved_request"}
    for rel, why in report.waiting.items():
        if rel in (f"Approved/email/{name}", f"In_Progress/local/{name}"):
            return SendAnswer(status="waiting", request=rel, error=why, message=why, **base)
    if (path := _mine(vault, name, request_id, report.done)) is not None:
        return _done_answer(vault, path, "sent", "sent as the CEO approved it")
    if (path := _mine(vault, name, request_id, report.failed)) is not None:
        return _failed_answer(vault, path)
    if _mine(vault, name, request_id, report.rejected) is not None:
        said = "the approval expired before it ran; nothing was sent: ask for a new request"
        return SendAnswer(status="expired", message=said, **base)
    raise ToolError(
        f"Approved/email/{name} was moved meanwhile and this call sent nothing; find it with "
        "mcp__vault__list_approvals"
    )


def whereabouts(vault: Vault, name: str) -> SendAnswer | None:
    """Where a request no longer in ``Approved/email/`` went, so it is never asked for again."""
    if (vault.root / "In_Progress" / "local" / name).is_file():
        said = (
            "it is being sent, or its sending was interrupted; the approval watcher finishes it. "
            "Do not ask for it again"
        )
        return SendAnswer(
            status="waiting",
            via="approved_request",
            request=f"In_Progress/local/{name}",
            message=said,
        )
    if (vault.root / "Done" / name).is_file():
        said = "it was already sent; nothing new was sent"
        return _done_answer(vault, f"Done/{name}", "already_sent", said)
    if (vault.root / "Failed" / name).is_file():
        return _failed_answer(vault, f"Failed/{name}")
    return None


def _done_answer(vault: Vault, path: str, status: SendStatus, said: str) -> SendAnswer:
    meta, result = _stamped(vault, path)
    dry = bool(meta.get("dry_run"))
    return SendAnswer(
        status="dry_run" if dry else status,
        via="approved_request",
        request=path,
        gmail_id=result.get("id"),
        thread_id=result.get("thread_id"),
        message_id=result.get("message_id"),
        message="dry run: nothing was sent" if dry else said,
    )


def _failed_answer(vault: Vault, path: str) -> SendAnswer:
    meta, _ = _stamped(vault, path)
    unknown = meta.get("outcome") == "unknown"
    said = (
        f"the outcome is unknown: {CHECK_SENT}"
        if unknown
        else "not sent; the request is in Failed/ with the reason"
    )
    return SendAnswer(
        status="unknown" if unknown else "failed",
        via="approved_request",
        request=path,
        error=meta.get("error"),
        message=said,
    )


def _mine(vault: Vault, name: str, request_id: str, paths: Iterable[str]) -> str | None:
    """The path in ``paths`` that is this request: its name (or a free ``stem_N`` variant of
    it) and its id."""
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    renamed = re.compile(rf"{re.escape(stem)}(_\d+)?{re.escape(suffix)}")
    for path in paths:
        if renamed.fullmatch(PurePosixPath(path).name) and _id(vault, path) == request_id:
            return path
    return None


def _id(vault: Vault, rel: str) -> str | None:
    try:
        return vault.read(rel).meta.id
    except (TaskFileError, FileNotFoundError, VaultError):
        return None


def _stamped(vault: Vault, rel: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        meta = vault.read(rel).meta.to_frontmatter()
    except (TaskFileError, FileNotFoundError, VaultError):
        return {}, {}
    result = meta.get("result")
    return meta, result if isinstance(result, dict) else {}
