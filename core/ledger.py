"""The action ledger: intent before an outside call, result after it, one file per key.

An entry in ``intent`` with no result means the process died around the call;
the executor then reconciles with the service instead of calling again.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from core.errors import VaultError
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
        """Record the intent (durably, before the call); an existing entry is returned as is."""
        entry = LedgerEntry(
            key=key,
            request_id=request_id,
            action=action,
            file=file,
            dry_run=dry_run,
            phase="intent",
            intent_at=utc_now(),
        )
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            atomic_create(self._path(key, dry_run), _dump(entry), mode=0o600)
        except FileExistsError:
            existing = self.get(key, dry_run=dry_run)
            assert existing is not None
            return existing
        return entry

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
