"""What a send came to, told to the model: from the executor's report or the AUTO ledger."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from core.auto_actions import AutoOutcome
from core.errors import TaskFileError
from core.executor import PassReport
from core.vault import Vault
from servers.gmail_mcp.models import SendAnswer

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
    return SendAnswer(status="failed", message="Gmail refused it; nothing was sent", **fields)


def approved_answer(vault: Vault, name: str, report: PassReport) -> SendAnswer:
    """The outcome of running ``Approved/email/<name>``, found in the executor's report."""
    base: dict[str, Any] = {"via": "approved_request"}
    if (path := _mine(name, report.done)) is not None:
        meta, result = _stamped(vault, path)
        dry = bool(meta.get("dry_run"))
        said = "dry run: nothing was sent" if dry else "sent as the CEO approved it"
        return SendAnswer(
            status="dry_run" if dry else "sent",
            request=path,
            gmail_id=result.get("id"),
            thread_id=result.get("thread_id"),
            message_id=result.get("message_id"),
            message=said,
            **base,
        )
    if (path := _mine(name, report.failed)) is not None:
        meta, _ = _stamped(vault, path)
        if meta.get("outcome") == "unknown":
            said = f"the outcome is unknown: {CHECK_SENT}"
            return SendAnswer(
                status="unknown", request=path, error=meta.get("error"), message=said, **base
            )
        said = "not sent; the request is in Failed/ with the reason"
        return SendAnswer(
            status="failed", request=path, error=meta.get("error"), message=said, **base
        )
    if (path := _mine(name, report.rejected)) is not None:
        said = "the approval expired before it ran; nothing was sent: ask for a new request"
        return SendAnswer(status="expired", request=path, message=said, **base)
    for rel, why in report.waiting.items():
        if PurePosixPath(rel).name == name:
            return SendAnswer(status="waiting", request=rel, error=why, message=why, **base)
    raise ToolError(
        f"Approved/email/{name} was moved meanwhile and this call sent nothing; find it with "
        "mcp__vault__list_approvals"
    )


def _mine(name: str, paths: Iterable[str]) -> str | None:
    """The path in ``paths`` that is ``name``, or ``name`` renamed to a free ``stem_N`` name."""
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    renamed = re.compile(rf"{re.escape(stem)}(_\d+)?{re.escape(suffix)}")
    return next((p for p in paths if renamed.fullmatch(PurePosixPath(p).name)), None)


def _stamped(vault: Vault, rel: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        meta = vault.read(rel).meta.to_frontmatter()
    except (TaskFileError, FileNotFoundError):
        return {}, {}
    result = meta.get("result")
    return meta, result if isinstance(result, dict) else {}
