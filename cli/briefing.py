"""``ai-employee briefing [--date YYYY-MM-DD]``: the Monday CEO briefing's data pass."""

from __future__ import annotations

import argparse
from datetime import date, datetime
from zoneinfo import ZoneInfo

from core.briefing import write_briefing
from core.config import load_settings
from core.vault import open_vault


def date_arg(raw: str) -> date:
    """A briefing date as YYYY-MM-DD; anything else is a usage error naming the format."""
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a date: give it as YYYY-MM-DD, for example 2026-11-23"
        ) from None


def cmd_briefing(args: argparse.Namespace) -> int:
    settings = load_settings()
    vault = open_vault(settings, actor="cli")
    day = args.date or datetime.now(ZoneInfo(settings.tz)).date()
    result = write_briefing(vault, settings, day=day)
    data, period = result.data, result.data.period
    act = data.activity
    print(f"Briefing written: {result.rel}")
    print(f"  period: {period.first_day} to {period.last_day} ({period.tz})")
    print(
        f"  tasks completed: {len(data.completed)}; actions: {act.actions_done} done, "
        f"{act.actions_failed} failed; emails sent: {act.emails_sent}"
    )
    print(f"  bottlenecks: {len(data.bottlenecks)}; deadlines ahead: {len(data.deadlines)}")
    if not data.accounting_connected:
        print("  revenue: not known (no accounting source is connected)")
    for problem in act.problems:
        print(f"  problem: {problem}")
    print(f"Suggestions ({len(result.suggestions)}):")
    for line in result.suggestions:
        print(f"  - {line}")
    print("Next: the ceo-briefing skill writes the narrative as its own note beside it.")
    return 0
