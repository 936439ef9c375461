"""Daemon heartbeats: when each loop last finished a pass, and whether the pass went well.

One small JSON file per daemon in ``.state/heartbeats/`` (per machine, never synced). The
dashboard and ``status`` read them to say which daemons are alive, quiet or failing.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from core.errors import AIEmployeeError
from core.fsutil import atomic_write
from core.tasks import read_bytes_safely, utc_now

FOLDER = "heartbeats"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")
GRACE = timedelta(seconds=60)


class Heartbeat(BaseModel):
    daemon: str
    zone: str
    pid: int
    at: datetime
    ok: bool
    detail: str = ""
    interval: float  # seconds between passes; 0 for a single pass (--once)

    def stale(self, now: datetime | None = None) -> bool:
        """True when the next pass is overdue (three intervals and a minute of grace)."""
        if self.interval <= 0:
            return False
        return (now or utc_now()) - self.at > timedelta(seconds=3 * self.interval) + GRACE


def beat(
    state_dir: Path,
    daemon: str,
    *,
    zone: str,
    ok: bool,
    interval: float,
    detail: str = "",
) -> Heartbeat:
    """Record that ``daemon`` finished a pass now."""
    if not _NAME.fullmatch(daemon):
        raise ValueError(f"{daemon!r} is not a daemon name")
    heartbeat = Heartbeat(
        daemon=daemon,
        zone=zone,
        pid=os.getpid(),
        at=utc_now(),
        ok=ok,
        detail=" ".join(detail.split())[:300],
        interval=interval,
    )
    folder = state_dir / FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(folder / f"{daemon}.json", heartbeat.model_dump_json().encode(), mode=0o600)
    return heartbeat


def read_heartbeats(state_dir: Path) -> list[Heartbeat]:
    """Every readable heartbeat, by daemon name; unreadable files are left out."""
    found = []
    try:
        paths = sorted((state_dir / FOLDER).glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            found.append(Heartbeat.model_validate(json.loads(read_bytes_safely(path))))
        except (OSError, ValueError, AIEmployeeError):  # a torn or foreign file: left out
            continue
    return found
