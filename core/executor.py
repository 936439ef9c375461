"""The approval executor: runs what the CEO approved, at most once, and nothing else.

For each file in ``Approved/<kind>/`` (oldest first): check it (parses, kind
matches its folder, not expired, the handbook does not DENY it, a handler is
set up, the hourly limit has room), write a claim record, move it into
``In_Progress/local/``, record intent in the ledger under the idempotency key,
call the handler, record the result, audit, and move it to ``Done/`` or
``Failed/``. A request found in ``In_Progress/local/`` runs only if its claim
record says the executor took exactly these contents from ``Approved/``; the
ledger then says whether to start, reconcile with the service, or finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from core import outcomes, tasks
from core.action_handler import ActionHandler, PassReport
from core.actions import RATE_CATEGORY
from core.approvals import (
    ApprovalRequest,
    attachment_digests,
    attachment_sizes,
    parse_request,
)
from core.auto_actions import remember_done
from core.errors import (
    ActionRefusedError,
    AIEmployeeError,
    ExecutorBusyError,
    RequestError,
    TaskFileError,
    VaultError,
    ZoneError,
)
from core.expiry import expire, expire_pending
from core.faults import fault_point
from core.fsutil import atomic_write, locked, move_no_replace
from core.layout import APPROVAL_KINDS
from core.ledger import ActionLedger, ClaimBook, ClaimRecord, LedgerEntry
from core.policy import Level, Policy, load_policy
from core.ratelimit import RateLimiter
from core.vault import Vault

IN_PROGRESS = "In_Progress/local"


class Executor:
    def __init__(
        self,
        vault: Vault,
        *,
        zone: str,
        dry_run: bool,
        handlers: Iterable[ActionHandler] = (),
        clock: Callable[[], datetime] = tasks.utc_now,
    ) -> None:
        if zone != "local":
            raise ZoneError(
                f"the approval executor does not run in the {zone} zone: that zone never "
                "sends, posts or pays",
                "run it on the owner's machine with ZONE=local",
            )
        self.vault, self.dry_run, self.clock = vault, dry_run, clock
        self.handlers = {handler.action: handler for handler in handlers}
        self.ledger = ActionLedger(vault.state_dir)
        self.claims = ClaimBook(vault.state_dir)
        self._noted: dict[str, str] = {}

    # -- one pass ----------------------------------------------------------------------
    def run_once(self) -> PassReport:
        """Expire, resume interrupted work, then run what is approved. PolicyError stops it."""
        with self._exclusive():
            self._begin()
            for entry in self.vault.list_tasks(IN_PROGRESS, limit=None, newest_first=False):
                self._guarded(entry.rel, self._resume, entry.name)
            for kind in APPROVAL_KINDS:
                folder = f"Approved/{kind}"
                for entry in self.vault.list_tasks(folder, limit=None, newest_first=False):
                    self._guarded(entry.rel, self._take, kind, entry.name)
            return self.report

    def run_request(self, kind: str, name: str) -> PassReport:
        """Run the one request ``Approved/<kind>/<name>`` now, exactly as a pass would."""
        if kind not in APPROVAL_KINDS:
            raise RequestError(f"{kind!r} is not a kind of request", "use email, social or payment")
        self.vault.resolve(f"Approved/{kind}/{name}")  # confined, a plain file, or VaultError
        with self._exclusive():
            self._begin()
            self._guarded(f"Approved/{kind}/{name}", self._take, kind, name)
            return self.report

    def _begin(self) -> None:
        self.policy: Policy = load_policy(self.vault.root)
        limits = self.policy.rate_limits_per_hour.model_dump()
        self.limiter = RateLimiter(
            self.vault.state_dir, limits, clock=self.clock, dry_run=self.dry_run
        )
        self.report = PassReport()
        self.report.rejected += expire_pending(self.vault, self.clock())

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                stack.enter_context(
                    locked(self.vault.state_dir / "locks" / "approval_executor.lock", wait=False)
                )
            except BlockingIOError:
                raise ExecutorBusyError(
                    "another approval executor is running on this vault", "let it work, or stop it"
                ) from None
            yield

    def _guarded(self, rel: str, step: Callable[..., None], *args: str) -> None:
        """One file's trouble never stops the pass: it waits, with the reason on record."""
        try:
            step(*args)
        except FileNotFoundError:
            return  # moved by someone else meanwhile
        except (AIEmployeeError, OSError) as exc:
            self._defer(rel, f"could not be handled this pass: {outcomes.clean_error(str(exc))}")

    # -- approved files ----------------------------------------------------------------
    def _take(self, kind: str, name: str) -> None:
        path = self.vault.root / "Approved" / kind / name
        now = self.clock()
        try:
            data = tasks.read_bytes_safely(path)
            doc = tasks.parse_bytes(data, name=name)
        except TaskFileError as exc:
            self._report(outcomes.fail_unreadable(self.vault, path, str(exc), now), failed=True)
            return
        try:
            request = self._valid(doc, f"Approved/{kind}/{name}", kind)
        except RequestError as exc:
            self._report(outcomes.fail(self.vault, path, doc, str(exc), now, in_approved=True))
            return
        if request.expired(now):
            target = expire(self.vault, request.file, late=True, now=now)
            self.report.rejected.append(outcomes.rel(self.vault, target))
        elif (why := self._refusal(request)) is not None:
            self._report(outcomes.fail(self.vault, path, doc, why, now, in_approved=True))
        elif (wait := self._wait_reason(request)) is not None:
            self._defer(request.file, wait)
        else:
            self._claim(path, request, kind)

    def _valid(self, doc: tasks.TaskDoc, rel: str, kind: str) -> ApprovalRequest:
        request = parse_request(doc, rel)
        if request.kind != kind:
            raise RequestError(
                f"{rel} is a {request.kind} request approved in Approved/{kind}/",
                "ask for a new request; a request is approved in the folder of its kind",
            )
        return request

    def _refusal(self, request: ApprovalRequest) -> str | None:
        """Why this approved request must not run after all, or None."""
        try:
            sizes = attachment_sizes(self.vault, request.params)
            if attachment_digests(self.vault, request.params) != request.attachments_sha256:
                return "an attached file is not the one that was approved; ask for a new request"
        except VaultError as exc:
            return f"attachment problem: {exc}"
        decision = self.policy.decide(request.params, request.payload, attachment_bytes=sizes)
        if decision.level is Level.DENY:
            return f"the handbook denies it ({decision.rule}: {decision.reason})"
        return None

    def _wait_reason(self, request: ApprovalRequest) -> str | None:
        if not self.dry_run and request.action not in self.handlers:
            return f"no {request.action} handler is set up here yet; it waits"
        category = RATE_CATEGORY[request.kind]
        if self.limiter.remaining(category) == 0:
            when = self.limiter.free_again_at(category)
            at = tasks.iso_utc(when) if when else "soon"
            return f"the hourly {category} limit is reached; it runs after {at}"
        return None

    def _claim(self, path: Path, request: ApprovalRequest, kind: str) -> None:
        target = self.vault.root / IN_PROGRESS / path.name
        if self.claims.get(path.name) is not None or os.path.lexists(target):
            self._defer(request.file, f"{IN_PROGRESS}/{path.name} is still open; it runs after")
            return
        record = ClaimRecord(
            name=path.name,
            request_id=request.id,
            key=request.key,
            kind=kind,
            dry_run=self.dry_run,
            claimed_at=self.clock(),
        )
        self.claims.save(record)  # before the move: no record, no run
        with self.vault.task_lock(path.name):
            try:
                move_no_replace(path, target)
            except FileExistsError:
                self._defer(request.file, f"{IN_PROGRESS}/{path.name} exists; rename one")
                return
        fault_point("executor:after_claim")
        self.vault.record("action", "claim", f"{IN_PROGRESS}/{path.name}", approved_from=kind)
        self._resume(path.name)

    # -- claimed files -----------------------------------------------------------------
    def _resume(self, name: str) -> None:
        path = self.vault.root / IN_PROGRESS / name
        record = self.claims.get(name)
        entry = self.ledger.get(record.key, dry_run=record.dry_run) if record else None
        try:
            doc = tasks.read_task_file(path)
        except TaskFileError as exc:
            if record is not None:  # ours, but no longer readable
                entry = self._unknown(entry, str(exc)) if entry else None
                outcome = entry.phase if entry else "not_run"
                now = self.clock()
                target = outcomes.fail_unreadable(self.vault, path, str(exc), now, outcome=outcome)
                self._finished(name, target)
            return
        if doc.meta.type != "approval_request" and entry is None:
            return  # ordinary claimed work (a leftover record of the same name is no claim)
        if record is None:
            self._not_ours(path, doc)
            return
        try:
            request = parse_request(doc, f"{IN_PROGRESS}/{name}")
            if request.key != record.key:
                raise RequestError(f"{name} changed after it was approved", "ask for a new request")
        except RequestError as exc:
            if entry is None:
                self._finished(name, outcomes.fail(self.vault, path, doc, str(exc), self.clock()))
            else:
                self._close(path, doc, self._unknown(entry, str(exc)))
            return
        if entry is None:
            self._start(path, doc, request, record)
            return
        if entry.phase == "intent":
            entry = self._reconcile(entry, request)
        if entry is not None:
            self._close(path, doc, entry)

    def _not_ours(self, path: Path, doc: tasks.TaskDoc) -> None:
        """A request in In_Progress/local that the executor never took from Approved/."""
        stamped_before = "idempotency_key" in (doc.meta.model_extra or {})
        why = (
            "its executor records are gone, so it may have run: check before asking again"
            if stamped_before
            else "it was never approved (it did not come from Approved/); nothing was run"
        )
        outcome = "unknown" if stamped_before else "not_run"
        self._report(outcomes.fail(self.vault, path, doc, why, self.clock(), outcome=outcome))

    def _start(
        self, path: Path, doc: tasks.TaskDoc, request: ApprovalRequest, record: ClaimRecord
    ) -> None:
        rel = outcomes.rel(self.vault, path)
        if record.dry_run != self.dry_run:
            mode = "dry-run" if record.dry_run else "live"
            self._defer(rel, f"claimed by a {mode} pass; run the executor that way to finish it")
            return
        if request.expired(self.clock()):
            target = expire(self.vault, rel, late=True, now=self.clock())
            self.claims.drop(path.name)
            self.report.rejected.append(outcomes.rel(self.vault, target))
            return
        if (why := self._refusal(request)) is not None:
            self._finished(path.name, outcomes.fail(self.vault, path, doc, why, self.clock()))
            return
        if (wait := self._wait_reason(request)) is not None:
            self._defer(rel, wait)
            return
        stamp = {
            "claimed_by": "local",
            "claimed_at": tasks.iso_utc(record.claimed_at),
            "status": "in_progress",
            "approved_from": record.kind,
            "idempotency_key": record.key,
            "dry_run": record.dry_run,
        }
        doc, data = tasks.stamped(doc, **stamp)
        atomic_write(path, data)
        if not self.limiter.reserve(RATE_CATEGORY[request.kind], record.key):
            self._defer(rel, "the hourly limit filled up meanwhile; it runs later")
            return
        try:
            entry = self.ledger.intend(
                record.key,
                request_id=request.id,
                action=request.action,
                file=rel,
                dry_run=self.dry_run,
            )
        except RequestError as exc:
            self._finished(path.name, outcomes.fail(self.vault, path, doc, str(exc), self.clock()))
            return
        fault_point("executor:after_intent")
        if entry.phase == "intent":
            entry = self._call(entry, request)
        self._close(path, doc, entry)

    def _call(self, entry: LedgerEntry, request: ApprovalRequest) -> LedgerEntry:
        phase, error = "done", None
        if entry.dry_run:
            result: dict[str, Any] = {"would": f"{request.action} to {request.params.target()}"}
        else:
            handler = self.handlers[request.action]
            try:
                result = handler.perform(request, entry.key)
            except ActionRefusedError as exc:
                phase, result, error = "failed", {}, outcomes.clean_error(str(exc))
            except Exception as exc:  # whatever broke, the outcome is unknown
                phase, result, error = self._after_break(handler, request, entry.key, exc)
        fault_point("executor:after_call")
        result = {key: _clean(value) for key, value in result.items()}
        entry = self.ledger.finish(entry, phase, result, error)  # type: ignore[arg-type]
        fault_point("executor:after_result")
        return entry

    def _after_break(
        self, handler: ActionHandler, request: ApprovalRequest, key: str, exc: Exception
    ) -> tuple[str, dict[str, Any], str | None]:
        error = outcomes.clean_error(f"{type(exc).__name__}: {exc}")
        if handler.can_reconcile:
            try:
                found = handler.lookup(request, key)
            except Exception:  # the service is unreachable: we cannot tell
                found = None
            if found is not None:
                return "done", {**found, "reconciled": True}, None
        return "unknown", {}, f"{error}; not retried: check the service before asking again"

    def _reconcile(self, entry: LedgerEntry, request: ApprovalRequest) -> LedgerEntry | None:
        """Finish an action whose process died between intent and result, without a blind redo."""
        rel = request.file
        if entry.dry_run:
            return self._call(entry, request)  # no outside call was ever made
        if self.dry_run:
            self._defer(rel, "interrupted during a live run; run the executor live to check it")
            return None
        handler = self.handlers.get(request.action)
        if handler is None:
            self._defer(rel, f"interrupted; it waits for the {request.action} handler to check it")
            return None
        if not handler.can_reconcile:
            return self._unknown(entry, "interrupted during the call; it cannot be checked")
        try:
            found = handler.lookup(request, entry.key)
        except Exception as exc:  # try again next pass
            self._defer(rel, f"interrupted; checking the service failed ({type(exc).__name__})")
            return None
        if found is not None:
            return self.ledger.finish(entry, "done", {**found, "reconciled": True})
        if (why := self._refusal(request)) is not None:  # never reached the service: check again
            return self.ledger.finish(entry, "failed", {}, why)
        return self._call(entry, request)

    def _unknown(self, entry: LedgerEntry, why: str) -> LedgerEntry:
        """An interrupted action that can no longer be checked: outcome unknown, never redone."""
        if entry.phase != "intent":
            return entry
        error = outcomes.clean_error(f"{why}; not redone: check the service before asking again")
        return self.ledger.finish(entry, "unknown", {}, error)

    def _close(self, path: Path, doc: tasks.TaskDoc, entry: LedgerEntry) -> None:
        if entry.phase == "done" and not entry.dry_run:  # the same content is not redone unasked
            with suppress(RequestError):  # an edited file: its content is not what was done
                request = parse_request(doc, outcomes.rel(self.vault, path))
                remember_done(self.ledger, request.action, request.payload_hash, entry)
        target = outcomes.close(self.vault, path, doc, entry, self.clock())
        self._finished(path.name, target, failed=entry.phase != "done")

    # -- bookkeeping -------------------------------------------------------------------
    def _finished(self, name: str, target: Path | None, *, failed: bool = True) -> None:
        self._report(target, failed=failed)
        if target is not None:
            self.claims.drop(name)

    def _report(self, target: Path | None, *, failed: bool = True) -> None:
        if target is not None:
            (self.report.failed if failed else self.report.done).append(
                outcomes.rel(self.vault, target)
            )

    def _defer(self, rel: str, why: str) -> None:
        self.report.waiting[rel] = why
        if self._noted.get(rel) != why:
            self._noted[rel] = why
            self.vault.record("action", "wait", rel, status="waiting", why=why)


def _clean(value: Any) -> Any:
    return outcomes.clean_error(value) if isinstance(value, str) else value
