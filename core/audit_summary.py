"""Counts of audit entries per category and status over a period, problems first."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from pydantic import BaseModel

from core.audit import AuditEntry, AuditLog
from core.tasks import utc_now

OK_STATUSES = frozenset({"ok"})


class SummaryRow(BaseModel):
    category: str
    status: str
    count: int


class AuditSummary(BaseModel):
    zone: str
    since: datetime
    total: int
    rows: list[SummaryRow]
    recent_problems: list[AuditEntry]


def summarize(log: AuditLog, zone: str, *, days: int, problems: int = 10) -> AuditSummary:
    """Rows sorted with every status other than ok first, then by count."""
    since = utc_now() - timedelta(days=days)
    entries = log.query(since=since, newest_first=True)
    counts = Counter((entry.category, entry.status) for entry in entries)
    rows = [SummaryRow(category=c, status=s, count=n) for (c, s), n in counts.items()]
    rows.sort(key=lambda row: (row.status in OK_STATUSES, -row.count, row.category, row.status))
    bad = [entry for entry in entries if entry.status not in OK_STATUSES][:problems]
    return AuditSummary(zone=zone, since=since, total=len(entries), rows=rows, recent_problems=bad)
