"""The action ledger: intent before an outside call, result after it, one file per key.

An entry in ``intent`` with no result means the process died around the call;
the executor then reconciles with the service instead of calling again.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from core.errors import RequestError, VaultError
from core.fsutil import atomic_create, atomic_write
from core.tasks import read_bytes_safely, utc_now

Phase = Literal["intent", "done", "failed", "unknown"]
_KEY = re.compile(r"[0-9a-f]{16,64}")


class LedgerEntry(BaseModel):
    key: str
    request_id: str
    action: str
    file: str
    dry_run: bool
    phase: Phase
    intent_at: datetime
    finished_at: datetime | None = None
    result: dict[str, Any] = {}
    error: str | None = None


class ActionLedger:
    """``.state/ledger/<key>.json``; dry runs use ``dry-<key>.json`` and never block live ones."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "ledger"

    def _path(self, key: str, dry_run: bool) -> Path:
        if not _KEY.fullmatch(key):
            raise VaultError(f"{key!r} is not an idempotency key", "derive it with idempotency_key")
        return self.folder / (f"dry-{key}.json" if dry_run else f"{key}.json")

    def get(self, key: str, *, dry_run: bool) -> LedgerEntry | None:
        path = self._path(key, dry_run)
        try:
            return LedgerEntry.model_validate_json(read_bytes_safely(path))
        except FileNotFoundError:
            return None
        except (ValidationError, VaultError):
            raise VaultError(
                f"the ledger entry {path.name} is unreadable",
                "the action may or may not have run: check the service by hand, then move the "
                "entry out of .state/ledger/",
            ) from None

    def intend(
        self, key: str, *, request_id: str, action: str, file: str, dry_run: bool
    ) -> LedgerEntry:
        """Record the intent (durably, before the call); an existing entry is returned as is.

        One request runs under one key only: a request id already used with another payload
        raises RequestError, so an edited copy of a request that ran never runs again.
        """
        entry = LedgerEntry(
            key=key,
            request_id=request_id,
            action=action,
            file=file,
            dry_run=dry_run,
            phase="intent",
            intent_at=utc_now(),
        )
        path = self._path(key, dry_run)
        self._bind(request_id, key, dry_run)
        try:
            atomic_create(path, _dump(entry), mode=0o600)
        except FileExistsError:
            existing = self.get(key, dry_run=dry_run)
            if existing is None:
                raise VaultError(f"the ledger entry for {key} vanished", "check .state/") from None
            return existing
        return entry

    def _bind(self, request_id: str, key: str, dry_run: bool) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = self.folder / "requests"
        folder.mkdir(mode=0o700, exist_ok=True)
        digest = hashlib.sha256(request_id.encode()).hexdigest()[:32]
        path = folder / (f"dry-{digest}" if dry_run else digest)
        try:
            atomic_create(path, key.encode(), mode=0o600)
        except FileExistsError:
            if read_bytes_safely(path).decode(errors="replace") != key:
                raise RequestError(
                    f"request {request_id} already ran, or began to, with other contents",
                    "an approval is used once; ask for a new request if it must run again",
                ) from None

    def finish(
        self, entry: LedgerEntry, phase: Phase, result: dict[str, Any], error: str | None = None
    ) -> LedgerEntry:
        done = entry.model_copy(
            update={"phase": phase, "result": result, "error": error, "finished_at": utc_now()}
        )
        atomic_write(self._path(entry.key, entry.dry_run), _dump(done), mode=0o600)
        return done


def _dump(entry: LedgerEntry) -> bytes:
    return json.dumps(entry.model_dump(mode="json"), sort_keys=True, indent=1).encode()


class ClaimRecord(BaseModel):
    """What the executor took from ``Approved/``: written before the move, checked on resume."""

    name: str
    request_id: str
    key: str
    kind: str
    dry_run: bool
    claimed_at: datetime


class ClaimBook:
    """``.state/claims/``: only a file with a record here was claimed by the executor."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "claims"

    def _path(self, name: str) -> Path:
        return self.folder / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.json"

    def save(self, record: ClaimRecord) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps(record.model_dump(mode="json"), sort_keys=True).encode()
        atomic_write(self._path(record.name), data, mode=0o600)

    def get(self, name: str) -> ClaimRecord | None:
        try:
            record = ClaimRecord.model_validate_json(read_bytes_safely(self._path(name)))
        except FileNotFoundError:
            return None
        except (ValidationError, VaultError):
            raise VaultError(
                f"the executor's claim record for {name} is unreadable",
                "the action may or may not have run: check the service by hand",
            ) from None
        return record if record.name == name else None

    def drop(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
