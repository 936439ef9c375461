"""The Monday CEO briefing: ``Briefings/<date>_Monday_Briefing.md``.

This is the data pass: facts (:mod:`core.briefing_data`) and short rule-based suggestions,
in the hackathon's sections and order, with a marked place where the ceo-briefing skill
writes the narrative. It never invents a number: without an accounting source, revenue is
said to be unknown. A briefing is never replaced: a second run for the same date refuses.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from core import tasks
from core.briefing_data import (
    AWAITING,
    CLAIMED,
    WAITING,
    BriefingData,
    gather_briefing,
)
from core.briefing_suggest import NO_EMAIL_DAYS, suggestions
from core.config import Settings
from core.errors import TargetExistsError
from core.goals import GOALS_FILE
from core.mdsafe import duration, link, moment, table, text
from core.vault import Vault

__all__ = ["NARRATIVE_MARKER", "NO_EMAIL_DAYS", "BriefingResult", "briefing_name", "write_briefing"]

BRIEFINGS = "Briefings"
SECTIONS = (
    "Executive Summary",
    "Revenue",
    "Completed Tasks",
    "Bottlenecks",
    "Proactive Suggestions",
    "Upcoming Deadlines",
)
NARRATIVE_MARKER = "> [!todo] Narrative pending"
MAX_COMPLETED_ROWS = 50
MAX_BOTTLENECK_ROWS = 30
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
GOALS_LINK = link(GOALS_FILE)


class BriefingResult(BaseModel):
    path: Path
    rel: str
    data: BriefingData
    suggestions: list[str]


def briefing_name(day: date) -> str:
    return f"{day.isoformat()}_Monday_Briefing.md"


def accounting_connected(settings: Settings) -> bool:
    """Odoo counts as connected only when every setting it needs is there."""
    return all((settings.odoo_url, settings.odoo_db, settings.odoo_user, settings.odoo_password))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _local(moment_: datetime, tz: str) -> str:
    return moment_.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _kinds(data: BriefingData) -> str:
    kinds: dict[str, int] = {}
    for item in data.completed:
        kinds[item.type] = kinds.get(item.type, 0) + 1
    by_kind = ", ".join(f"{n} {text(kind)}" for kind, n in sorted(kinds.items()))
    return f" ({by_kind})" if by_kind else ""


def _summary(data: BriefingData) -> list[str]:
    act, wait = data.activity, data.waiting
    rehearsed = f" ({act.emails_rehearsed} more in dry run)" if act.emails_rehearsed else ""
    lines = [
        NARRATIVE_MARKER,
        "> The ceo-briefing skill writes the narrative for the CEO as its own note in "
        "Briefings/, linking here. Below are the facts of the data pass.",
        "",
        f"- Completed: {_plural(len(data.completed), 'task')}{_kinds(data)}",
        f"- Actions: {act.actions_done} done, {act.actions_failed} failed or unknown; "
        f"emails sent: {act.emails_sent}{rehearsed}",
        f"- Approvals: {act.approved} approved, {act.rejected} rejected, {act.expired} expired",
        f"- New tasks: {act.tasks_created} arrived in Needs_Action",
        f"- Now: {wait['Needs_Action']} in Needs_Action, {wait['In_Progress']} claimed, "
        f"{wait['Pending_Approval']} waiting for approval, "
        f"{wait['Approved']} approved but not run yet, {wait['Failed']} in Failed/",
        f"- Bottlenecks: {len(data.bottlenecks)} (below)",
    ]
    lines += [f"- Problem: {text(problem, limit=400)}" for problem in act.problems]
    if data.unreadable_done:
        unread = _plural(data.unreadable_done, "file")
        lines.append(f"- Problem: {unread} in Done/ could not be read")
    return lines


def _revenue(data: BriefingData) -> list[str]:
    if data.accounting_connected:
        lines = [
            "Odoo is configured, but this data pass does not read accounting yet: "
            "revenue is not known."
        ]
    else:
        lines = ["No accounting source is connected: revenue is not known."]
    targets = data.goals.in_section("Revenue")
    if targets:
        lines += ["", f"Targets in {GOALS_LINK}:", ""]
        lines += [f"- {text(goal.text, limit=200)}" for goal in targets]
    if data.goals.metrics:
        lines += ["", "Key metrics (targets only; the data pass does not measure them):", ""]
        rows = [[text(m.name), text(m.target), text(m.alert)] for m in data.goals.metrics]
        lines += table(["metric", "target", "alert when"], rows)
    return lines


def _completed(data: BriefingData) -> list[str]:
    if not data.completed:
        return ["Nothing was completed in the period."]
    tz = data.period.tz
    rows = [
        [
            _local(item.done_at, tz),
            link(item.file),
            text(item.title, limit=80),
            text(item.type),
            text(item.note, limit=120),
        ]
        for item in data.completed[:MAX_COMPLETED_ROWS]
    ]
    lines = table([f"done ({text(tz)})", "task", "what", "type", "note"], rows)
    if len(data.completed) > MAX_COMPLETED_ROWS:
        lines += ["", f"The {MAX_COMPLETED_ROWS} newest are shown; the rest are in Done/."]
    return lines


def _bottlenecks(data: BriefingData) -> list[str]:
    rules = (
        f"Expected: a task is started within 24 h ({WAITING}), a claim is finished within the "
        f"claim lease ({CLAIMED}), and a request is decided within 12 h ({AWAITING}; it "
        "expires at 24 h). Ages are as of "
        f"{moment(data.generated)}."
    )
    if not data.bottlenecks:
        return ["Nothing is past its expected time.", "", rules]
    rows = [
        [
            link(row.file),
            text(row.what, limit=80),
            row.stage,
            duration(row.age_hours * 3600),
            duration(row.expected_hours * 3600),
            duration(row.delay_hours * 3600),
            text(row.note),
        ]
        for row in data.bottlenecks[:MAX_BOTTLENECK_ROWS]
    ]
    lines = table(["task", "what", "stage", "age", "expected", "delay", "note"], rows)
    if len(data.bottlenecks) > MAX_BOTTLENECK_ROWS:
        lines += ["", f"The {MAX_BOTTLENECK_ROWS} longest delays of {len(data.bottlenecks)}."]
    return [*lines, "", rules]


def _deadlines(data: BriefingData) -> list[str]:
    if not data.deadlines:
        return [f"No deadline in the next 30 days ({GOALS_LINK} and waiting approvals)."]
    rows = []
    for item in data.deadlines:
        left = item.days_left
        when = "today" if left == 0 else f"in {_plural(left, 'day')}" if left > 0 else "overdue"
        source = link(item.file) if item.file else GOALS_LINK
        rows.append([item.due.isoformat(), text(item.what, limit=160), when, source])
    return table(["due", "what", "when", "from"], rows)


def render_briefing(data: BriefingData, advice: list[str]) -> str:
    """The page's body: title, then the six sections in order."""
    period, day = data.period, data.period.day
    bodies = (
        _summary(data),
        _revenue(data),
        _completed(data),
        _bottlenecks(data),
        [f"- {line}" for line in advice],
        _deadlines(data),
    )
    lines = [
        f"# Monday Briefing: {_DAYS[day.weekday()]} {day.isoformat()}",
        "",
        f"Data pass for {period.first_day} to {period.last_day} ({text(period.tz)}), "
        f"generated {moment(data.generated)}. Facts come from the vault, the audit trail "
        f"and {GOALS_LINK}.",
    ]
    for title, body in zip(SECTIONS, bodies, strict=True):
        lines += ["", f"## {title}", "", *body]
    return "\n".join(lines) + "\n"


def _meta(data: BriefingData) -> tasks.TaskMeta:
    period = data.period
    return tasks.TaskMeta(
        id=f"BRIEFING_{period.day:%Y%m%d}",
        type="briefing",
        source="briefing",
        created=data.generated,
        status="draft",
        date=period.day.isoformat(),
        period_start=period.first_day.isoformat(),
        period_end=period.last_day.isoformat(),
        timezone=period.tz,
        generated=tasks.iso_utc(data.generated),
    )


def _exists(rel: str) -> TargetExistsError:
    return TargetExistsError(
        f"{rel} already exists; a briefing is never replaced",
        "open it, or move it out of Briefings/ and run `ai-employee briefing` again",
    )


def write_briefing(
    vault: Vault, settings: Settings, *, day: date, now: datetime | None = None
) -> BriefingResult:
    """Gather the facts for the week before ``day`` and create the briefing file."""
    now = now or tasks.utc_now()
    name = briefing_name(day)
    rel = f"{BRIEFINGS}/{name}"
    if os.path.lexists(vault.folder(BRIEFINGS) / name):
        raise _exists(rel)  # before the data pass: a refusal costs nothing
    data = gather_briefing(
        vault,
        day=day,
        tz=settings.tz,
        now=now,
        lease=timedelta(minutes=settings.claim_lease_minutes),
        accounting_connected=accounting_connected(settings),
    )
    advice = suggestions(data)
    try:
        path = vault.create(BRIEFINGS, name, _meta(data), render_briefing(data, advice))
    except TargetExistsError:
        raise _exists(rel) from None
    return BriefingResult(path=path, rel=rel, data=data, suggestions=advice)
