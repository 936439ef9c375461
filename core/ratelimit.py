"""Hourly rate limits per category, counted durably in ``.state/`` across restarts.

Each use is recorded under the idempotency key of its action, so recording the
same action twice (a resumed run after a crash) counts once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from core.errors import VaultError
from core.fsutil import atomic_write, locked
from core.tasks import iso_utc, parse_utc, utc_now

WINDOW = timedelta(hours=1)
STATE_FILE = "rate_limits.json"

Uses = dict[str, dict[str, str]]  # category -> {key: ISO time of use}


class RateLimiter:
    """Sliding one-hour windows; the state file is read and written under a lock each time."""

    def __init__(
        self,
        state_dir: Path,
        limits: Mapping[str, int],
        *,
        clock: Callable[[], datetime] = utc_now,
        dry_run: bool = False,
    ) -> None:
        # Rehearsals are counted apart: a dry run never uses up the live hour.
        self.path = state_dir / (f"dry-{STATE_FILE}" if dry_run else STATE_FILE)
        self.lock = state_dir / "locks" / "rate_limits.lock"
        self.limits = dict(limits)
        self.clock = clock

    def _limit(self, category: str) -> int:
        if category not in self.limits:
            raise VaultError(f"no rate limit is set for {category!r}", "add it to the policy block")
        return self.limits[category]

    def _load(self) -> Uses:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            raw = None
        valid = isinstance(raw, dict) and all(
            isinstance(v, dict) and all(isinstance(t, str) for t in v.values())
            for v in raw.values()
        )
        if not valid:
            raise VaultError(
                f"the rate counter file .state/{self.path.name} is unreadable",
                "nothing is sent until it is fixed; check recent actions in the audit trail, "
                "then delete the file to start counting afresh",
            )
        return raw

    def _recent(self, uses: Uses, category: str, now: datetime) -> dict[str, str]:
        cutoff = now - WINDOW
        kept = {}
        for key, when in uses.get(category, {}).items():
            moment = parse_utc(when)
            if moment is None or moment > cutoff:  # an unreadable time counts, to be safe
                kept[key] = when
        return kept

    def remaining(self, category: str) -> int:
        limit = self._limit(category)
        with locked(self.lock):
            recent = self._recent(self._load(), category, self.clock())
        return max(limit - len(recent), 0)

    def free_again_at(self, category: str) -> datetime | None:
        """When the next use becomes possible (None if one is possible now)."""
        limit = self._limit(category)
        with locked(self.lock):
            recent = self._recent(self._load(), category, self.clock())
        if len(recent) < limit:
            return None
        times = sorted(t for t in (parse_utc(v) for v in recent.values()) if t is not None)
        index = len(recent) - limit
        return times[index] + WINDOW if index < len(times) else self.clock() + WINDOW

    def reserve(self, category: str, key: str) -> bool:
        """Count one use for ``key``; False (and nothing counted) if the window is full."""
        limit = self._limit(category)
        with locked(self.lock):
            now = self.clock()
            uses = self._load()
            recent = self._recent(uses, category, now)
            if key in recent:
                return True
            if len(recent) >= limit:
                return False
            recent[key] = iso_utc(now)
            uses[category] = recent
            atomic_write(self.path, json.dumps(uses, sort_keys=True).encode(), mode=0o600)
        return True
