"""Actions the handbook allows without asking, done at most once per identical call.

A tool may act directly only when the handbook says AUTO for exactly this action. It is then
kept to the same rules as an approved request: the local zone only, the hourly limit, the
ledger (intent before the call, result after), reconciliation instead of a blind redo after a
crash, and an audit entry. The key comes from the action's contents, so the same call twice
does the action once and answers the second time with the first result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from core import outcomes
from core.actions import RATE_CATEGORY, ActionParams, idempotency_key, payload_sha256
from core.approvals import attachment_digests, attachment_sizes
from core.errors import ActionRefusedError, PolicyDeniedError, ZoneError
from core.faults import fault_point
from core.fsutil import locked
from core.ledger import ActionLedger, LedgerEntry
from core.policy import Decision, Level, Policy, load_policy
from core.ratelimit import RateLimiter
from core.tasks import iso_utc
from core.vault import Vault

Perform = Callable[[str], dict[str, Any]]
Lookup = Callable[[str], dict[str, Any] | None]


class ApprovalNeededError(ActionRefusedError):
    """The handbook does not allow this action unasked; nothing was done."""


class AutoOutcome(BaseModel):
    key: str
    phase: str  # done, failed or unknown
    dry_run: bool
    repeated: bool  # this exact action had run before: nothing new was done
    rule: str
    result: dict[str, Any] = {}
    error: str | None = None


def check_auto(vault: Vault, params: ActionParams, payload: str, policy: Policy) -> Decision:
    """The handbook's AUTO decision for exactly this action, or the error saying what to do."""
    sizes = attachment_sizes(vault, params)
    decision = policy.decide(params, payload, attachment_bytes=sizes)
    if decision.level is Level.DENY:
        raise PolicyDeniedError(
            f"the handbook denies this ({decision.rule}: {decision.reason}); nothing was done",
            "do not ask again; tell the CEO in a task if it matters",
        )
    if decision.level is not Level.AUTO:
        raise ApprovalNeededError(
            f"the handbook needs the CEO's approval for this ({decision.rule}: "
            f"{decision.reason}); nothing was done",
            "call mcp__vault__request_approval with the same params and text, and wait for the "
            f"CEO to move it to Approved/{params.KIND}/",
        )
    return decision


def run_auto(
    vault: Vault,
    params: ActionParams,
    payload: str,
    *,
    zone: str,
    dry_run: bool,
    perform: Perform,
    lookup: Lookup | None = None,
) -> AutoOutcome:
    """Do ``params`` once if the handbook says AUTO; ``perform(key)`` makes the outside call."""
    if zone != "local":
        raise ZoneError(
            f"the {zone} zone never sends, posts or pays; nothing was done",
            "write a draft or an approval request; the local zone acts",
        )
    policy = load_policy(vault.root)
    decision = check_auto(vault, params, payload, policy)
    digests = attachment_digests(vault, params)
    content = payload_sha256(params.ACTION, params.KIND, params, payload, digests)
    request_id, key = auto_key(content)
    ledger = ActionLedger(vault.state_dir)
    with locked(vault.state_dir / "locks" / f"auto-{key[:16]}.lock"):
        entry = ledger.get(key, dry_run=dry_run)
        if entry is not None and entry.phase in ("done", "unknown"):
            return _outcome(entry, decision, repeated=True)
        if entry is None or entry.phase == "failed":  # a refusal did nothing: it may be tried again
            _reserve(vault, policy, params, key, dry_run)
            if entry is None:
                entry = ledger.intend(
                    key, request_id=request_id, action=params.ACTION, file="(auto)", dry_run=dry_run
                )
            else:
                entry = ledger.finish(entry, "intent", {})
            entry = _call(ledger, entry, params, perform, lookup)
        else:
            entry = _resume(ledger, entry, params, perform, lookup)
    vault.record(
        "action",
        params.ACTION,
        params.target(),
        status="ok" if entry.phase == "done" else entry.phase,
        dry_run=dry_run,
        request=request_id,
        key=key,
        rule=decision.rule,
        params=params.model_dump(mode="json"),
        error=entry.error,
        result=entry.result,
    )
    return _outcome(entry, decision, repeated=False)


def auto_key(content: str) -> tuple[str, str]:
    """The request id and idempotency key an action with this content hash runs under unasked."""
    request_id = f"AUTO-{content[:24]}"
    return request_id, idempotency_key(request_id, content)


def remember_done(ledger: ActionLedger, action: str, content: str, done: LedgerEntry) -> None:
    """Record that an action with this content was done another way (an approved request), so
    the same action asked for unasked later is answered as already done, not done twice."""
    request_id, key = auto_key(content)
    entry = ledger.intend(key, request_id=request_id, action=action, file=done.file, dry_run=False)
    if entry.phase == "intent":
        ledger.finish(entry, "done", {**done.result, "via": done.request_id})


def _reserve(vault: Vault, policy: Policy, params: ActionParams, key: str, dry_run: bool) -> None:
    limits = policy.rate_limits_per_hour.model_dump()
    limiter = RateLimiter(vault.state_dir, limits, dry_run=dry_run)
    category = RATE_CATEGORY[params.KIND]
    if not limiter.reserve(category, key):
        when = limiter.free_again_at(category)
        raise ActionRefusedError(
            f"the hourly {category} limit is reached; nothing was done",
            f"try again after {iso_utc(when) if when else 'an hour'}",
        )


def _call(
    ledger: ActionLedger,
    entry: LedgerEntry,
    params: ActionParams,
    perform: Perform,
    lookup: Lookup | None,
) -> LedgerEntry:
    if entry.dry_run:
        return ledger.finish(entry, "done", {"would": f"{params.ACTION} to {params.target()}"})
    try:
        result = perform(entry.key)
        fault_point("auto:after_call")
    except ActionRefusedError as exc:
        return ledger.finish(entry, "failed", {}, outcomes.clean_error(str(exc)))
    except Exception as exc:  # no clear answer: look it up once, never redo blindly
        found = _look(lookup, entry.key)
        if found is not None:
            return ledger.finish(entry, "done", {**found, "reconciled": True})
        why = outcomes.clean_error(f"{type(exc).__name__}: {exc}")
        return ledger.finish(entry, "unknown", {}, f"{why}; not retried: check the service first")
    return ledger.finish(entry, "done", _clean(result))


def _resume(
    ledger: ActionLedger,
    entry: LedgerEntry,
    params: ActionParams,
    perform: Perform,
    lookup: Lookup | None,
) -> LedgerEntry:
    """An earlier identical call died between intent and result: find it, or do it once."""
    if entry.dry_run:
        return _call(ledger, entry, params, perform, lookup)
    if lookup is None:
        why = "an earlier identical call was interrupted and cannot be checked; not redone"
        return ledger.finish(entry, "unknown", {}, why)
    found = lookup(entry.key)  # an error here leaves the intent for the next try
    if found is not None:
        return ledger.finish(entry, "done", {**found, "reconciled": True})
    return _call(ledger, entry, params, perform, lookup)


def _look(lookup: Lookup | None, key: str) -> dict[str, Any] | None:
    if lookup is None:
        return None
    try:
        return lookup(key)
    except Exception:  # the service is unreachable: we cannot tell
        return None


def _clean(result: dict[str, Any]) -> dict[str, Any]:
    return {k: outcomes.clean_error(v) if isinstance(v, str) else v for k, v in result.items()}


def _outcome(entry: LedgerEntry, decision: Decision, *, repeated: bool) -> AutoOutcome:
    return AutoOutcome(
        key=entry.key,
        phase=entry.phase,
        dry_run=entry.dry_run,
        repeated=repeated,
        rule=decision.rule,
        result=entry.result,
        error=entry.error,
    )
