"""The Monday briefing's data pass: facts from the vault, the audit trail and the goals.

Deterministic: the same vault, the same briefing date and the same clock give the same
facts. The period is the 7 days before the briefing date, in the configured time zone.
Current work (bottlenecks, approvals, health) is judged at ``now``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from core import tasks
from core.audit import AuditEntry, AuditLog
from core.config import ZONES
from core.errors import AuditError, TaskFileError
from core.goals import Goals, read_goals
from core.layout import APPROVAL_KINDS, DONE, NEEDS_ACTION
from core.resilience import BreakerState, breaker_snapshots
from core.status import claims, pending_approvals
from core.status_parts import daemon_health, title_of, waiting_tasks
from core.vault import Vault

PERIOD_DAYS = 7
NEEDS_ACTION_EXPECTED_HOURS = 24.0
APPROVAL_EXPECTED_HOURS = 12.0  # half of a request's 24 h life
DEADLINE_HORIZON_DAYS = 30
DONE_CLOCK_SKEW = timedelta(days=1)  # a file's mtime is never much earlier than its completion
BOOKKEEPING = frozenset({"claim", "wait"})
WAITING, CLAIMED, AWAITING = "waiting to start", "claimed", "awaiting approval"


class Period(BaseModel):
    day: date  # the briefing's date
    tz: str
    start: datetime  # the first day's midnight in tz, inclusive
    end: datetime  # the briefing day's midnight in tz, exclusive
    first_day: date
    last_day: date


class CompletedTask(BaseModel):
    file: str
    title: str
    type: str
    done_at: datetime
    note: str


class Activity(BaseModel):
    actions_done: int = 0
    actions_failed: int = 0
    emails_sent: int = 0
    emails_rehearsed: int = 0  # send_email in a dry run
    approved: int = 0
    rejected: int = 0
    expired: int = 0
    tasks_created: int = 0
    last_email: datetime | None = None
    problems: list[str] = []


class Bottleneck(BaseModel):
    file: str
    what: str
    stage: str
    age_hours: float
    expected_hours: float
    delay_hours: float
    note: str


class Deadline(BaseModel):
    due: date
    what: str
    file: str | None
    days_left: int


class Health(BaseModel):
    open_breakers: list[str]
    daemons: list[tuple[str, str, float]]  # (daemon, stale or failing, minutes since its pass)


class BriefingData(BaseModel):
    period: Period
    generated: datetime
    goals: Goals
    accounting_connected: bool
    completed: list[CompletedTask]
    unreadable_done: int
    activity: Activity
    waiting: dict[str, int]
    bottlenecks: list[Bottleneck]
    deadlines: list[Deadline]
    health: Health


def period_of(day: date, tz: str) -> Period:
    """The 7 days before ``day``, midnight to midnight in ``tz``."""
    zone = ZoneInfo(tz)
    end = datetime.combine(day, time(), tzinfo=zone)
    start = datetime.combine(day - timedelta(days=PERIOD_DAYS), time(), tzinfo=zone)
    return Period(
        day=day,
        tz=tz,
        start=start,
        end=end,
        first_day=start.date(),
        last_day=day - timedelta(days=1),
    )


def _done_files(vault: Vault, since: datetime) -> Iterator[tuple[str, int]]:
    """(name, mtime_ns) of the task files in Done/ modified since ``since``; never parsed."""
    floor = int(since.timestamp() * 1e9)
    with os.scandir(vault.folder(DONE)) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".md"):
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_mtime_ns >= floor:
                yield entry.name, st.st_mtime_ns


def _note(meta: tasks.TaskMeta) -> str:
    extra = meta.model_extra or {}
    if extra.get("summary"):
        return str(extra["summary"])
    if extra.get("outcome"):
        return str(extra["outcome"]) + (" (dry run)" if extra.get("dry_run") is True else "")
    return ""


def completed(vault: Vault, period: Period) -> tuple[list[CompletedTask], int]:
    """Tasks finished in the period (by ``completed_at``, ``executed_at``, else the file's
    time), newest first, and how many candidates could not be read."""
    found, unreadable = [], 0
    for name, mtime_ns in _done_files(vault, period.start - DONE_CLOCK_SKEW):
        try:
            meta = tasks.read_task_file(vault.root / DONE / name).meta
        except (TaskFileError, FileNotFoundError):
            unreadable += 1
            continue
        extra = meta.model_extra or {}
        stamped = tasks.parse_utc(extra.get("completed_at") or extra.get("executed_at"))
        done_at = stamped or tasks.from_ns(mtime_ns)
        if period.start <= done_at < period.end:
            rel = f"{DONE}/{name}"
            found.append(
                CompletedTask(
                    file=rel,
                    title=title_of(meta),
                    type=meta.type,
                    done_at=done_at,
                    note=_note(meta),
                )
            )
    found.sort(key=lambda item: (item.done_at, item.file), reverse=True)
    return found, unreadable


def _is_email_work(entry: AuditEntry) -> bool:
    return (
        (entry.category == "action" and entry.action == "send_email" and entry.status == "ok")
        or (entry.category == "gmail" and entry.action == "create_draft")
        or (entry.category == "vault" and entry.action == "complete" and "/EMAIL_" in entry.target)
    )


def _count(entry: AuditEntry, activity: Activity) -> None:
    if entry.category == "action" and entry.action not in BOOKKEEPING:
        if entry.status == "ok":
            activity.actions_done += 1
            if entry.action == "send_email":
                if entry.dry_run:
                    activity.emails_rehearsed += 1
                else:
                    activity.emails_sent += 1
        else:
            activity.actions_failed += 1
    elif entry.category == "approval" and entry.action in ("approve", "reject", "expire"):
        name = {"approve": "approved", "reject": "rejected", "expire": "expired"}[entry.action]
        setattr(activity, name, getattr(activity, name) + 1)
    elif entry.category == "vault" and entry.action == "create":
        activity.tasks_created += int(entry.target.startswith(f"{NEEDS_ACTION}/"))
    if _is_email_work(entry):
        when = tasks.parse_utc(entry.ts)
        if when and (activity.last_email is None or when > activity.last_email):
            activity.last_email = when


def activity(vault: Vault, period: Period) -> Activity:
    """What both zones' audit trails say happened in the period."""
    found = Activity()
    for zone in ZONES:
        try:
            entries = AuditLog(vault.root, zone).query(
                since=period.start, until=period.end, newest_first=False
            )
        except AuditError as exc:
            found.problems.append(f"the {zone} audit trail could not be read: {exc}")
            continue
        for entry in entries:
            _count(entry, found)
    return found


def _late(
    file: str, what: str, stage: str, age: float, expected: float, note: str = ""
) -> Bottleneck:
    return Bottleneck(
        file=file,
        what=what,
        stage=stage,
        age_hours=round(age, 2),
        expected_hours=expected,
        delay_hours=round(age - expected, 2),
        note=note,
    )


def bottlenecks(vault: Vault, now: datetime, lease: timedelta) -> list[Bottleneck]:
    """Work past its expected time: Needs_Action over 24 h, claims over the lease, approvals
    waiting over 12 h. Longest delay first."""
    unreadable: dict[str, str] = {}
    rows = [
        _late(t.file, t.title or "(unreadable)", WAITING, t.age_hours, NEEDS_ACTION_EXPECTED_HOURS)
        for t in waiting_tasks(vault, NEEDS_ACTION, None, now, unreadable)
        if t.age_hours > NEEDS_ACTION_EXPECTED_HOURS
    ]
    lease_hours = lease.total_seconds() / 3600
    for claim in claims(vault, unreadable, now):
        age = (claim.age_minutes or 0) / 60
        if claim.claimed_at is not None and age > lease_hours:
            what = f"claimed by {claim.claimed_by or '?'}"
            rows.append(_late(claim.file, what, CLAIMED, age, lease_hours, "past the claim lease"))
    for item in pending_approvals(vault, unreadable, now):
        age = (now - item.created).total_seconds() / 3600
        if age > APPROVAL_EXPECTED_HOURS:
            left = item.hours_left or 0.0
            note = f"expires in {left:.1f} h" if left > 0 else "expired"
            what = item.action or "?"
            rows.append(_late(item.file, what, AWAITING, age, APPROVAL_EXPECTED_HOURS, note))
    return sorted(rows, key=lambda row: (-row.delay_hours, row.file))


def deadlines(goals: Goals, vault: Vault, period: Period, now: datetime) -> list[Deadline]:
    """Goals due within 30 days of the briefing date (and overdue ones), and the requests
    that must be decided before they expire."""
    horizon = period.day + timedelta(days=DEADLINE_HORIZON_DAYS)
    found = [
        Deadline(due=goal.due, what=goal.text, file=None, days_left=(goal.due - period.day).days)
        for goal in goals.deadlines
        if goal.due is not None and goal.due <= horizon
    ]
    zone = ZoneInfo(period.tz)
    for item in pending_approvals(vault, {}, now):
        if item.expires is not None and item.expires > now:
            due = item.expires.astimezone(zone)
            what = f"decide {item.action or 'the request'} before {due:%H:%M} ({period.tz})"
            days = (due.date() - period.day).days
            found.append(Deadline(due=due.date(), what=what, file=item.file, days_left=days))
    return sorted(found, key=lambda d: (d.due, d.what, d.file or ""))


def health(vault: Vault, now: datetime) -> Health:
    snaps = breaker_snapshots(vault.state_dir, clock=now.timestamp)
    return Health(
        open_breakers=[snap.name for snap in snaps if snap.state is not BreakerState.CLOSED],
        daemons=[
            (item.daemon, item.state, item.age_minutes)
            for item in daemon_health(vault.state_dir, now)
            if item.state in ("stale", "failing")
        ],
    )


def waiting_counts(vault: Vault) -> dict[str, int]:
    return {
        "Needs_Action": vault.count(NEEDS_ACTION),
        "In_Progress": sum(vault.count(f"In_Progress/{zone}") for zone in ZONES),
        "Pending_Approval": sum(vault.count(f"Pending_Approval/{k}") for k in APPROVAL_KINDS),
        "Approved": sum(vault.count(f"Approved/{kind}") for kind in APPROVAL_KINDS),
        "Failed": vault.count("Failed"),
    }


def gather_briefing(
    vault: Vault,
    *,
    day: date,
    tz: str,
    now: datetime,
    lease: timedelta,
    accounting_connected: bool,
) -> BriefingData:
    """Every fact the briefing shows, for the week before ``day``, judged at ``now``."""
    period = period_of(day, tz)
    goals = read_goals(vault)
    done, unreadable = completed(vault, period)
    return BriefingData(
        period=period,
        generated=now,
        goals=goals,
        accounting_connected=accounting_connected,
        completed=done,
        unreadable_done=unreadable,
        activity=activity(vault, period),
        waiting=waiting_counts(vault),
        bottlenecks=bottlenecks(vault, now, lease),
        deadlines=deadlines(goals, vault, period, now),
        health=health(vault, now),
    )
