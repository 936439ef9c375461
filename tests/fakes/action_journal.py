"""A stand-in action service for executor tests, and handlers that use it.

The "service" is a JSONL journal on disk, appended under a lock with fsync, so
it survives a SIGKILL of the executor exactly like a real remote service does:
a call that reached it is in the journal whatever happens to the caller. Tests
count calls per idempotency key from the journal. The product never imports this.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from core.action_handler import ActionHandler
from core.approvals import ApprovalRequest
from core.errors import ActionRefusedError


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, key: str, request: ApprovalRequest) -> dict[str, Any]:
        line = {
            "key": key,
            "action": request.action,
            "request": request.id,
            "params": request.params.model_dump(mode="json"),
            "payload": request.payload,
        }
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return line

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def calls(self, key: str | None = None) -> int:
        return sum(1 for entry in self.entries() if key is None or entry["key"] == key)

    def find(self, key: str) -> dict[str, Any] | None:
        return next((entry for entry in self.entries() if entry["key"] == key), None)


class RecordingHandler(ActionHandler):
    """Performs by writing to the journal; reconciles by looking the key up there.

    ``mode`` makes it misbehave like a real service: ``refuse`` (service says no,
    nothing done), ``timeout_after`` (done, but the answer is lost),
    ``timeout_before`` (never reached the service), ``lookup_down`` (the lookup
    itself fails).
    """

    action: ClassVar[str] = "send_email"
    can_reconcile: ClassVar[bool] = True

    def __init__(self, journal: Journal, *, action: str | None = None, mode: str = "ok") -> None:
        self.journal = journal
        self.mode = mode
        if action is not None:
            self.action = action  # type: ignore[misc]

    def perform(self, request: ApprovalRequest, key: str) -> dict[str, Any]:
        if self.mode == "refuse":
            raise ActionRefusedError("the service refused the recipient", "check the address")
        if self.mode == "timeout_before":
            raise TimeoutError("connect timed out")
        self.journal.record(key, request)
        if self.mode == "timeout_after":
            raise TimeoutError("read timed out")
        return {"message_id": f"<{key}@journal.test>"}

    def lookup(self, request: ApprovalRequest, key: str) -> dict[str, Any] | None:
        if self.mode == "lookup_down":
            raise ConnectionError("service unreachable")
        found = self.journal.find(key)
        return None if found is None else {"message_id": f"<{key}@journal.test>"}


class BlindHandler(RecordingHandler):
    """Same service, but the handler cannot look anything up (like a social post)."""

    can_reconcile: ClassVar[bool] = False

    def lookup(self, request: ApprovalRequest, key: str) -> dict[str, Any] | None:
        raise AssertionError("a handler that cannot reconcile must never be asked to")
