"""The approval executor: runs what the CEO approved, at most once, and nothing else.

For each file in ``Approved/<kind>/`` (oldest first): check it (parses, kind
matches its folder, not expired, the handbook does not DENY it, a handler is
set up, the hourly limit has room), claim it into ``In_Progress/local/``,
record intent in the ledger under the idempotency key, call the handler,
record the result, audit, and move it to ``Done/`` or ``Failed/``. A file found
in ``In_Progress/local/`` at the start of a pass was interrupted: its ledger
entry says whether to finish, reconcile with the service, or mark it unknown.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from core import tasks
from core.actions import RATE_CATEGORY
from core.approvals import (
    ApprovalRequest,
    attachment_sizes,
    expire,
    expire_pending,
    parse_request,
)
from core.errors import ActionRefusedError, RequestError, TaskFileError, VaultError, ZoneError
from core.faults import fault_point
from core.fsutil import atomic_write, locked, move_no_replace
from core.ledger import ActionLedger, LedgerEntry
from core.policy import Level, Policy, load_policy
from core.ratelimit import RateLimiter
from core.secret_scan import redact_text
from core.vault import APPROVAL_KINDS, Vault, stamped

IN_PROGRESS = "In_Progress/local"


class ActionHandler(ABC):
    """Performs one action at its service. Registered per action name."""

    action: ClassVar[str]
    # True if ``lookup`` can tell, after a crash, whether a call under a key happened.
    can_reconcile: ClassVar[bool] = False

    @abstractmethod
    def perform(self, request: ApprovalRequest, key: str) -> dict[str, Any]:
        """Do it under ``key``; raise ActionRefusedError when the service surely did nothing."""

    def lookup(self, request: ApprovalRequest, key: str) -> dict[str, Any] | None:
        """The result of an earlier call under ``key``, or None if the service has none."""
        raise NotImplementedError(f"{self.action} cannot be reconciled")


class PassReport(BaseModel):
    done: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)
    waiting: dict[str, str] = Field(default_factory=dict)


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
        self._noted: dict[str, str] = {}

    # -- one pass ----------------------------------------------------------------------
    def run_once(self) -> PassReport:
        """Expire, resume interrupted work, then run what is approved. PolicyError stops it."""
        with self._exclusive():
            self.policy: Policy = load_policy(self.vault.root)
            limits = self.policy.rate_limits_per_hour.model_dump()
            self.limiter = RateLimiter(
                self.vault.state_dir, limits, clock=self.clock, dry_run=self.dry_run
            )
            self.report = PassReport()
            self.report.rejected += expire_pending(self.vault, self.clock())
            for entry in self.vault.list_tasks(IN_PROGRESS, limit=None, newest_first=False):
                self._resume(entry.name)
            for kind in APPROVAL_KINDS:
                folder = f"Approved/{kind}"
                for entry in self.vault.list_tasks(folder, limit=None, newest_first=False):
                    self._take(kind, entry.name)
            return self.report

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        try:
            with locked(self.vault.state_dir / "locks" / "approval_executor.lock", wait=False):
                yield
        except BlockingIOError:
            raise VaultError(
                "another approval executor is running on this vault", "let it work, or stop it"
            ) from None

    # -- approved files ----------------------------------------------------------------
    def _take(self, kind: str, name: str) -> None:
        rel = f"Approved/{kind}/{name}"
        path = self.vault.root / rel
        try:
            data = tasks.read_bytes_safely(path)
            doc = tasks.parse_bytes(data, name=name)
        except FileNotFoundError:
            return
        except TaskFileError as exc:
            self._fail_unreadable(path, rel, str(exc))
            return
        try:
            request = self._valid(doc, rel, kind)
        except RequestError as exc:
            self._fail(path, doc, str(exc), moved_first=True)
            return
        if request.expired(self.clock()):
            target = expire(self.vault, rel, late=True, now=self.clock())
            self.report.rejected.append(self._rel(target))
            return
        if (why := self._refusal(request)) is not None:
            self._fail(path, doc, why, moved_first=True)
            return
        if (wait := self._wait_reason(request)) is not None:
            self._defer(rel, wait)
            return
        self._claim(path, rel, data, kind)

    def _valid(self, doc: tasks.TaskDoc, rel: str, kind: str) -> ApprovalRequest:
        request = parse_request(doc, rel)
        if request.kind != kind:
            raise RequestError(
                f"{rel} is a {request.kind} request approved in Approved/{kind}/",
                "ask for a new request; a request is approved in the folder of its kind",
            )
        return request

    def _refusal(self, request: ApprovalRequest) -> str | None:
        """Why the handbook refuses this request even though it was approved, or None."""
        try:
            sizes = attachment_sizes(self.vault, request.params)
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

    def _claim(self, path: Path, rel: str, seen: bytes, kind: str) -> None:
        target = self.vault.root / IN_PROGRESS / path.name
        with self.vault.task_lock(path.name):
            try:
                move_no_replace(path, target)
            except FileNotFoundError:
                return
            except FileExistsError:
                self._defer(rel, f"{IN_PROGRESS}/{path.name} exists; rename one of the two")
                return
        fault_point("executor:after_claim")
        self.vault.record("action", "claim", f"{IN_PROGRESS}/{path.name}", approved_from=kind)
        self._resume(path.name, approved_from=kind, seen=seen)

    # -- claimed files -----------------------------------------------------------------
    def _resume(self, name: str, *, approved_from: str | None = None, seen: bytes = b"") -> None:
        path = self.vault.root / IN_PROGRESS / name
        rel = f"{IN_PROGRESS}/{name}"
        try:
            data = tasks.read_bytes_safely(path)
            doc = tasks.parse_bytes(data, name=name)
        except (FileNotFoundError, TaskFileError):
            return  # not an approval request we can read: `status` shows it
        if doc.meta.type != "approval_request":
            return
        extra = doc.meta.model_extra or {}
        entry = self._stamped_entry(extra)
        try:
            request = parse_request(doc, rel)
            if seen and data != seen:  # edited between the check and the claim: check again
                request = self._valid(doc, rel, approved_from or request.kind)
        except RequestError as exc:
            if entry is not None and entry.phase == "intent":
                self._close(path, doc, self.ledger.finish(entry, "unknown", {}, str(exc)))
            else:
                self._fail(path, doc, str(exc))
            return
        if entry is None:
            self._start(path, doc, request, approved_from or str(extra.get("approved_from", "")))
            return
        if entry.phase == "intent":
            entry = self._reconcile(entry, request, rel)
        if entry is not None:
            self._close(path, doc, entry, request)

    def _stamped_entry(self, extra: dict[str, Any]) -> LedgerEntry | None:
        key = extra.get("idempotency_key")
        if not isinstance(key, str):
            return None
        return self.ledger.get(key, dry_run=extra.get("dry_run") is True)

    def _start(self, path: Path, doc: tasks.TaskDoc, request: ApprovalRequest, kind: str) -> None:
        rel = self._rel(path)
        if (why := self._refusal(request)) is not None:
            self._fail(path, doc, why)
            return
        if (wait := self._wait_reason(request)) is not None:
            self._defer(rel, wait)
            return
        key = request.key
        stamp = {
            "claimed_by": "local",
            "claimed_at": tasks.iso_utc(self.clock()),
            "status": "in_progress",
            "approved_from": kind or request.kind,
            "idempotency_key": key,
            "payload_sha256": request.payload_hash,
            "dry_run": self.dry_run,
        }
        doc, data = stamped(doc, **stamp)
        atomic_write(path, data)
        if not self.limiter.reserve(RATE_CATEGORY[request.kind], key):
            self._defer(rel, "the hourly limit filled up meanwhile; it runs later")
            return
        entry = self.ledger.intend(
            key, request_id=request.id, action=request.action, file=rel, dry_run=self.dry_run
        )
        fault_point("executor:after_intent")
        if entry.phase == "intent":
            entry = self._call(entry, request)
        self._close(path, doc, entry, request)

    def _call(self, entry: LedgerEntry, request: ApprovalRequest) -> LedgerEntry:
        phase, error = "done", None
        if entry.dry_run:
            result: dict[str, Any] = {"would": f"{request.action} to {request.params.target()}"}
        else:
            handler = self.handlers[request.action]
            try:
                result = handler.perform(request, entry.key)
            except ActionRefusedError as exc:
                phase, result, error = "failed", {}, str(exc)
            except Exception as exc:  # whatever broke, the outcome is unknown
                phase, result, error = self._after_break(handler, request, entry.key, exc)
        fault_point("executor:after_call")
        entry = self.ledger.finish(entry, phase, result, error)  # type: ignore[arg-type]
        fault_point("executor:after_result")
        return entry

    def _after_break(
        self, handler: ActionHandler, request: ApprovalRequest, key: str, exc: Exception
    ) -> tuple[str, dict[str, Any], str | None]:
        error = f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
        if handler.can_reconcile:
            try:
                found = handler.lookup(request, key)
            except Exception:  # the service is unreachable: we cannot tell
                found = None
            else:
                if found is not None:
                    return "done", {**found, "reconciled": True}, None
        return "unknown", {}, f"{error}; not retried: check the service before asking again"

    def _reconcile(
        self, entry: LedgerEntry, request: ApprovalRequest, rel: str
    ) -> LedgerEntry | None:
        """Finish an action whose process died between intent and result, without a blind redo."""
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
            why = "interrupted during the call and the service cannot be checked; not redone"
            return self.ledger.finish(entry, "unknown", {}, why)
        try:
            found = handler.lookup(request, entry.key)
        except Exception as exc:  # try again next pass
            self._defer(rel, f"interrupted; checking the service failed ({type(exc).__name__})")
            return None
        if found is not None:
            return self.ledger.finish(entry, "done", {**found, "reconciled": True})
        return self._call(entry, request)  # the service never got it

    def _close(
        self,
        path: Path,
        doc: tasks.TaskDoc,
        entry: LedgerEntry,
        request: ApprovalRequest | None = None,
    ) -> None:
        """Stamp the outcome, audit it, then move the file to Done/ or Failed/."""
        done = entry.phase == "done"
        changes = {
            "status": "done" if done else "failed",
            "outcome": entry.phase,
            "executed_at": tasks.iso_utc(self.clock()),
            "dry_run": entry.dry_run,
            "result": entry.result or None,
            "error": entry.error,
        }
        _, data = stamped(doc, **changes)
        atomic_write(path, data)
        folder = "Done" if done else "Failed"
        action = request.action if request else entry.action
        self.vault.record(
            "action",
            action,
            f"{folder}/{path.name}",
            status="ok" if done else entry.phase,
            dry_run=entry.dry_run,
            request=entry.request_id,
            key=entry.key,
            error=entry.error,
            result=entry.result,
        )
        target = self._move_to(path, folder)
        fault_point("executor:after_move")
        (self.report.done if done else self.report.failed).append(self._rel(target))

    # -- failures and waiting ----------------------------------------------------------
    def _fail(
        self, path: Path, doc: tasks.TaskDoc, error: str, *, moved_first: bool = False
    ) -> None:
        """To Failed/ with the error in frontmatter; nothing was executed."""
        changes = {"status": "failed", "outcome": "not_run", "error": error}
        changes["failed_at"] = tasks.iso_utc(self.clock())
        _, data = stamped(doc, **changes)
        self.vault.record("action", "refuse", self._rel(path), status="failed", error=error)
        if moved_first:  # never rewrite a file in Approved/: move it out, then stamp it
            target = self._move_to(path, "Failed")
            atomic_write(target, data)
        else:
            atomic_write(path, data)
            target = self._move_to(path, "Failed")
        self.report.failed.append(self._rel(target))

    def _fail_unreadable(self, path: Path, rel: str, error: str) -> None:
        """A file that is not a task at all: wrap its text with the error, or move it as is."""
        self.vault.record("action", "refuse", rel, status="failed", error=error)
        target = self._move_to(path, "Failed")
        self.report.failed.append(self._rel(target))
        try:
            text = tasks.read_bytes_safely(target).decode("utf-8")
        except (TaskFileError, UnicodeDecodeError, OSError):
            text = "\x00"
        if "\x00" in text:
            return  # not text: kept byte for byte; the audit entry says why
        meta = {
            "id": tasks.new_task_id("FAILED"),
            "type": "failed_request",
            "created": tasks.iso_utc(self.clock()),
            "status": "failed",
            "outcome": "not_run",
            "error": error,
            "original_file": rel,
        }
        note = "This file could not be read as an approval request; nothing was executed."
        atomic_write(
            target, tasks.render(meta, f"{note}\n\n{tasks.untrusted_block(text)}").encode()
        )

    def _defer(self, rel: str, why: str) -> None:
        self.report.waiting[rel] = why
        if self._noted.get(rel) != why:
            self._noted[rel] = why
            self.vault.record("action", "wait", rel, status="waiting", why=why)

    def _move_to(self, path: Path, folder: str) -> Path:
        with self.vault.task_lock(path.name):
            return self.vault.move_unique(path, self.vault.root / folder)

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.vault.root))
