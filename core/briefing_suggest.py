"""Short rule-based suggestions for the briefing: each rule reads the facts and, when it
fires, says what it saw and what to do. Text from files is escaped where it is put in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from core.briefing_data import AWAITING, CLAIMED, WAITING, BriefingData
from core.mdsafe import duration, text

NO_EMAIL_DAYS = 5
SOON_DAYS = 7
NOTHING = "Nothing needs attention by the rules."


def _count(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _late_work(data: BriefingData) -> list[str]:
    found = []
    by_stage = {
        stage: [row for row in data.bottlenecks if row.stage == stage]
        for stage in (AWAITING, WAITING, CLAIMED)
    }
    if rows := by_stage[AWAITING]:
        found.append(
            f"{_count(len(rows), 'approval')} waiting over 12 h: decide them before they "
            "expire (24 h after they were made)."
        )
    if rows := by_stage[WAITING]:
        oldest = duration(max(row.age_hours for row in rows) * 3600)
        found.append(
            f"{_count(len(rows), 'task')} waiting in Needs_Action over 24 h; the oldest has "
            f"waited {oldest}."
        )
    if rows := by_stage[CLAIMED]:
        lease = duration(rows[0].expected_hours * 3600)
        found.append(
            f"{_count(len(rows), 'claim')} older than the {lease} claim lease: finish them or "
            "release them back to Needs_Action."
        )
    return found


def _failures(data: BriefingData) -> list[str]:
    found = []
    if failed := data.waiting["Failed"]:
        found.append(
            f"{_count(failed, 'file')} in Failed/ need a person: each says what went wrong."
        )
    if data.activity.actions_failed:
        found.append(
            f"{_count(data.activity.actions_failed, 'action')} failed or ended unknown this "
            "week: see `ai-employee status`."
        )
    if approved := data.waiting["Approved"]:
        found.append(
            f"{_count(approved, 'approved request')} not run yet: check that the approval "
            "watcher is running (`ai-employee status`, Daemons)."
        )
    return found


def _email(data: BriefingData) -> list[str]:
    handled = [item.done_at for item in data.completed if item.type == "email"]
    if data.activity.last_email is not None:
        handled.append(data.activity.last_email)
    reference = min(data.generated, data.period.end)
    if handled and reference - max(handled) <= timedelta(days=NO_EMAIL_DAYS):
        return []
    return [
        f"No email handled in {NO_EMAIL_DAYS} days: check the Gmail watcher with "
        "`ai-employee doctor`."
    ]


def _health(data: BriefingData) -> list[str]:
    found = [
        f"The {text(name)} service is held off after repeated failures: run `ai-employee doctor`."
        for name in data.health.open_breakers
    ]
    for daemon, state, minutes in data.health.daemons:
        found.append(
            f"The {text(daemon)} daemon is {state} (last pass {duration(minutes * 60)} ago): "
            "check its service."
        )
    return found


def _deadlines(data: BriefingData) -> list[str]:
    found = []
    for item in data.deadlines:
        if item.file is not None:
            continue  # approvals are covered above
        what = text(item.what, limit=120)
        if item.days_left < 0:
            found.append(
                f"Overdue since {item.due}: {what}. Act on it, or update Business_Goals.md."
            )
        elif item.days_left <= SOON_DAYS:
            found.append(f"Due {item.due} (in {_count(item.days_left, 'day')}): {what}.")
    return found


def _setup(data: BriefingData) -> list[str]:
    found = []
    if not data.accounting_connected:
        found.append(
            "Connect an accounting source (Odoo: ODOO_URL, ODOO_DB, ODOO_USER, ODOO_PASSWORD) "
            "so the briefing can report revenue."
        )
    if data.goals.problem:
        found.append(text(data.goals.problem, limit=300))
    elif not data.goals.goals and not data.goals.metrics:
        found.append("Business_Goals.md lists no goals: add a few so the briefing can compare.")
    return found


RULES: tuple[Callable[[BriefingData], list[str]], ...] = (
    _late_work,
    _failures,
    _email,
    _health,
    _deadlines,
    _setup,
)


def suggestions(data: BriefingData) -> list[str]:
    """Every rule's findings, in rule order; markdown-safe lines."""
    found = [line for rule in RULES for line in rule(data)]
    return found or [NOTHING]
