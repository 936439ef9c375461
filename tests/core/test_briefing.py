"""The Monday briefing's data pass: sections in order, the week's facts, bottlenecks, goals,
revenue never invented, the same bytes for the same clock, never replaced."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import frontmatter
import pytest

from core.audit import AuditLog
from core.briefing import NARRATIVE_MARKER, SECTIONS, render_briefing, write_briefing
from core.briefing_data import gather_briefing
from core.briefing_suggest import NOTHING, suggestions
from core.config import Settings
from core.errors import AuditError, TargetExistsError
from core.goals import parse_goals
from core.resilience import CircuitBreaker
from core.tasks import iso_utc, render, utc_now
from core.vault import Vault
from core.vault_init import init_vault
from tests.core.conftest import make_meta
from tests.core.test_dashboard import HOSTILE_TITLE, cells

GOALS = """---
type: goals
---
# Business Goals

Prose with a date 2026-01-05 is not a goal.

## Revenue

- Monthly revenue target: 10,000
* Current focus: repeat customers

## Projects

1. Website relaunch, due {soon}
2) Old project, deadline: {past}
- [x] Hire a bookkeeper by {far}
- Bad date, due 2026-02-30

| Metric | Target | Alert when |
|---|---|---|
| Reply time | under 24 hours | over 48 hours |
| Costs \\| software | under 500 |

| What | Due |
|---|---|
| VAT return | {table} |

```
- not a goal, due {soon}
```
"""


@pytest.fixture
def now() -> datetime:
    """A fixed clock a little after the real one (audit entries carry the real time)."""
    return utc_now().replace(microsecond=0) + timedelta(minutes=1)


@pytest.fixture
def day(now: datetime) -> date:
    """Two days ahead, so the 7-day period holds today whatever the hour."""
    return now.date() + timedelta(days=2)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    root = Path(init_vault(tmp_path / "vault").vault)
    return Vault(root, audit=AuditLog(root, "local"), actor="test")


def settings(vault: Vault, **changes: object) -> Settings:
    base = Settings(vault_path=vault.root, secrets_dir=vault.root.parent / "secrets")
    return base.model_copy(update=changes)


def write(vault: Vault, day: date, now: datetime, **changes: object) -> str:
    result = write_briefing(vault, settings(vault, **changes), day=day, now=now)
    return result.path.read_text(encoding="utf-8")


def section(page: str, title: str) -> str:
    start = page.index(f"## {title}\n")
    end = page.find("\n## ", start + 1)
    return page[start : end if end != -1 else len(page)]


def done(vault: Vault, name: str, *, mtime: datetime, **fields: object) -> None:
    meta = make_meta(fields.pop("type", "email"), **fields)
    path = vault.root / "Done" / name
    path.write_text(render(meta.to_frontmatter()))
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def aged(vault: Vault, folder: str, name: str, created: datetime, **fields: object) -> None:
    meta = make_meta(fields.pop("type", "email"), **fields).model_copy(update={"created": created})
    (vault.root / folder / name).write_text(render(meta.to_frontmatter()))


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def test_sections_in_order_with_frontmatter_and_placeholder(
    vault: Vault, day: date, now: datetime
) -> None:
    page = write(vault, day, now)
    headings = re.findall(r"^## (.+)$", page, flags=re.MULTILINE)
    assert headings == list(SECTIONS)
    post = frontmatter.loads(page)
    assert (post["type"], post["status"], post["id"]) == (
        "briefing",
        "draft",
        f"BRIEFING_{day:%Y%m%d}",
    )
    assert post["period_start"] == (day - timedelta(days=7)).isoformat()
    assert post["period_end"] == (day - timedelta(days=1)).isoformat()
    assert post["generated"] == iso_utc(now) and post["date"] == day.isoformat()
    assert NARRATIVE_MARKER in section(page, "Executive Summary")
    assert (vault.root / "Briefings" / f"{day.isoformat()}_Monday_Briefing.md").is_file()


def test_completed_tasks_are_those_done_in_the_period(
    vault: Vault, day: date, now: datetime
) -> None:
    start, end = midnight(day - timedelta(days=7)), midnight(day)
    inside = start + timedelta(days=2)
    done(
        vault,
        "EMAIL_in.md",
        mtime=inside,
        completed_at=iso_utc(inside),
        subject="Quote",
        summary="Sent it",
    )
    ran = iso_utc(inside + timedelta(hours=1))
    done(vault, "SEND_run.md", mtime=inside, type="approval_request", action="send_email",
         executed_at=ran, outcome="done", dry_run=True)  # fmt: skip
    done(vault, "FILE_mtime.md", mtime=inside - timedelta(hours=1), type="file_drop", title="Scan")
    done(vault, "EMAIL_before.md", mtime=inside, completed_at=iso_utc(start - timedelta(minutes=1)))
    done(vault, "EMAIL_after.md", mtime=end, completed_at=iso_utc(end))
    done(vault, "EMAIL_ancient.md", mtime=start - timedelta(days=30))

    page = write(vault, day, now)

    rows = [cells(row) for row in section(page, "Completed Tasks").splitlines()[4:] if row]
    assert [row[1].strip() for row in rows] == [
        "[[Done/SEND_run]]",
        "[[Done/EMAIL_in]]",
        "[[Done/FILE_mtime]]",
    ]
    assert [row[4].strip() for row in rows] == ["done (dry run)", "Sent it", "-"]
    assert "- Completed: 3 tasks (1 approval_request, 1 email, 1 file_drop)" in page


def test_the_audit_trail_gives_the_weeks_activity(vault: Vault, day: date, now: datetime) -> None:
    vault.record("action", "claim", "In_Progress/local/SEND_1.md")
    vault.record("action", "send_email", "Done/SEND_1.md")
    vault.record("action", "send_email", "Done/SEND_2.md", dry_run=True)
    vault.record("action", "register_payment", "Done/PAY_1.md")
    vault.record("action", "refuse", "Failed/PAY_2.md", status="failed")
    vault.record("action", "wait", "Approved/email/SEND_3.md", status="waiting")
    for action in ("approve", "approve", "reject", "expire"):
        vault.record("approval", action, "Approved/email/X.md")
    vault.create("Needs_Action", "EMAIL_new.md", make_meta())

    page = write(vault, day, now)

    assert "- Actions: 3 done, 1 failed or unknown; emails sent: 1 (1 more in dry run)" in page
    assert "- Approvals: 2 approved, 1 rejected, 1 expired" in page
    assert "- New tasks: 1 arrived in Needs_Action" in page
    assert "No email handled" not in page  # a send this week counts as email handled


def test_bottlenecks_table_with_age_expected_and_delay(
    vault: Vault, day: date, now: datetime
) -> None:
    aged(vault, "Needs_Action", "EMAIL_late.md", now - timedelta(hours=30), subject="Late")
    aged(vault, "Needs_Action", "EMAIL_fresh.md", now - timedelta(hours=2))
    claimed = iso_utc(now - timedelta(hours=3))
    aged(vault, "In_Progress/local", "TASK_stuck.md", now - timedelta(hours=5),
         claimed_by="local", claimed_at=claimed, status="in_progress")  # fmt: skip
    aged(vault, "Pending_Approval/email", "SEND_slow.md", now - timedelta(hours=20),
         type="approval_request", action="send_email")  # fmt: skip
    aged(vault, "Pending_Approval/email", "SEND_new.md", now - timedelta(hours=1),
         type="approval_request", action="send_email")  # fmt: skip

    table = section(write(vault, day, now), "Bottlenecks").splitlines()
    assert table[2] == "| task | what | stage | age | expected | delay | note |"
    assert table[4:7] == [
        "| [[Pending_Approval/email/SEND_slow]] | send_email | awaiting approval | 20 h | 12 h "
        "| 8 h | expires in 4.0 h |",
        "| [[Needs_Action/EMAIL_late]] | Late | waiting to start | 1 d 6 h | 1 d | 6 h | - |",
        "| [[In_Progress/local/TASK_stuck]] | claimed by local | claimed | 3 h | 1 h | 2 h "
        "| past the claim lease |",
    ]
    assert table[7] == ""


def test_revenue_is_never_invented(vault: Vault, day: date, now: datetime) -> None:
    revenue = section(write(vault, day, now), "Revenue")
    assert "No accounting source is connected: revenue is not known." in revenue
    assert "- Monthly revenue target: 10,000" in revenue  # the CEO's own target, quoted


def test_revenue_with_odoo_configured_is_still_not_made_up(
    vault: Vault, day: date, now: datetime
) -> None:
    odoo = {"odoo_url": "https://odoo.example", "odoo_db": "d", "odoo_user": "u"}
    page = write(vault, day, now, **odoo, odoo_password="secret-pass")
    revenue = section(page, "Revenue")
    assert "Odoo is configured, but this data pass does not read accounting yet" in revenue
    assert "revenue is not known" in revenue and "secret-pass" not in page
    assert "Connect an accounting source" not in page


def test_goals_follow_the_template_convention(day: date) -> None:
    text = GOALS.format(soon="2026-12-01", past="2026-10-01", far="2027-06-30", table="2027-01-31")
    goals = parse_goals(text)
    assert [(g.section, g.text, g.due) for g in goals.goals] == [
        ("Revenue", "Monthly revenue target: 10,000", None),
        ("Revenue", "Current focus: repeat customers", None),
        ("Projects", "Website relaunch, due 2026-12-01", date(2026, 12, 1)),
        ("Projects", "Old project, deadline: 2026-10-01", date(2026, 10, 1)),
        ("Projects", "Hire a bookkeeper by 2027-06-30", date(2027, 6, 30)),
        ("Projects", "Bad date, due 2026-02-30", None),
        ("Projects", "VAT return · 2027-01-31", date(2027, 1, 31)),
    ]
    assert [(m.name, m.target, m.alert) for m in goals.metrics] == [
        ("Reply time", "under 24 hours", "over 48 hours"),
        ("Costs \\| software", "under 500", ""),
    ]
    assert [g.due for g in goals.deadlines] == [
        date(2026, 10, 1),
        date(2026, 12, 1),
        date(2027, 1, 31),
        date(2027, 6, 30),
    ]


def test_the_template_itself_parses() -> None:
    template = Path(__file__).parents[2] / "vault_template" / "Business_Goals.md"
    goals = parse_goals(template.read_text(encoding="utf-8"))
    assert goals.in_section("Revenue") and len(goals.metrics) == 3 and goals.deadlines


def test_upcoming_deadlines_and_suggestions(vault: Vault, day: date, now: datetime) -> None:
    dates = {
        "soon": day + timedelta(days=3),
        "past": day - timedelta(days=10),
        "far": day + timedelta(days=90),
        "table": day + timedelta(days=20),
    }
    (vault.root / "Business_Goals.md").write_text(GOALS.format(**dates))
    aged(vault, "Pending_Approval/payments", "PAY_x.md", now - timedelta(hours=2),
         type="approval_request", action="register_payment")  # fmt: skip
    page = write(vault, day, now)

    deadlines = section(page, "Upcoming Deadlines")
    assert (
        deadlines.index("Old project")
        < deadlines.index("Website relaunch")
        < deadlines.index("VAT return")
    )
    assert "| overdue | [[Business_Goals]] |" in deadlines and "in 3 days" in deadlines
    assert "Hire a bookkeeper" not in deadlines  # 90 days out
    assert (
        "decide register_payment before" in deadlines
        and "[[Pending_Approval/payments/PAY_x]]" in (deadlines)
    )
    advice = section(page, "Proactive Suggestions")
    assert f"Overdue since {dates['past']}: Old project" in advice
    assert f"Due {dates['soon']} (in 3 days): Website relaunch" in advice
    assert "VAT return" not in advice  # 20 days out: listed, not urged


def test_rule_based_suggestions(vault: Vault, day: date, now: datetime) -> None:
    for i in range(3):
        aged(vault, "Pending_Approval/email", f"SEND_{i}.md", now - timedelta(hours=13 + i),
             type="approval_request", action="send_email")  # fmt: skip
    breaker = CircuitBreaker("gmail", vault.state_dir, clock=now.timestamp)
    for _ in range(5):
        breaker.record_failure()
    (vault.root / "Failed" / "PAY_1.md").write_text(render(make_meta().to_frontmatter()))

    advice = section(write(vault, day, now), "Proactive Suggestions")

    assert "- 3 approvals waiting over 12 h: decide them before they expire" in advice
    assert "- No email handled in 5 days" in advice
    assert "- The gmail service is held off after repeated failures" in advice
    assert "- 1 file in Failed/ need a person" in advice
    assert "- Connect an accounting source (Odoo" in advice


def test_nothing_to_suggest_when_all_is_well(vault: Vault, day: date, now: datetime) -> None:
    vault.record("action", "send_email", "Done/SEND_1.md")
    (vault.root / "Business_Goals.md").write_text("## Revenue\n\n- Target: 10,000\n")
    data = gather_briefing(vault, day=day, tz="UTC", now=now, lease=timedelta(hours=1),
                           accounting_connected=True)  # fmt: skip
    assert suggestions(data) == [NOTHING]


def test_hostile_titles_cannot_break_the_tables(vault: Vault, day: date, now: datetime) -> None:
    inside = midnight(day - timedelta(days=3))
    done(vault, "EMAIL_evil.md", mtime=inside, completed_at=iso_utc(inside), subject=HOSTILE_TITLE,
         summary="a | b\n## c")  # fmt: skip
    aged(vault, "Needs_Action", "EMAIL_evil.md", now - timedelta(days=3), subject=HOSTILE_TITLE)
    (vault.root / "Needs_Action" / "EVIL|x]]\n## y.md").write_text(
        render(
            make_meta(subject=HOSTILE_TITLE).model_copy(update={"created": inside}).to_frontmatter()
        )
    )

    page = write(vault, day, now)

    assert re.findall(r"^#{1,6} .*$", page, flags=re.MULTILINE)[1:] == [f"## {s}" for s in SECTIONS]
    assert "[[Approved" not in page and "<b>" not in page
    for block in page.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({len(cells(row)) for row in rows}) <= 1, block
    assert len([r for r in section(page, "Bottlenecks").splitlines() if r.startswith("| [")]) == 2


def test_same_vault_same_clock_same_bytes(vault: Vault, day: date, now: datetime) -> None:
    aged(vault, "Needs_Action", "EMAIL_late.md", now - timedelta(hours=30))
    vault.record("action", "send_email", "Done/SEND_1.md")
    first = write(vault, day, now)
    moved = vault.root.parent / "first.md"
    shutil.move(vault.root / "Briefings" / f"{day.isoformat()}_Monday_Briefing.md", moved)
    second = write(vault, day, now)
    assert first.encode() == second.encode()
    data = gather_briefing(vault, day=day, tz="UTC", now=now, lease=timedelta(hours=1),
                           accounting_connected=False)  # fmt: skip
    assert render_briefing(data, suggestions(data)) == render_briefing(data, suggestions(data))


def test_never_replaces_a_briefing(vault: Vault, day: date, now: datetime) -> None:
    first = write(vault, day, now)
    with pytest.raises(TargetExistsError, match="already exists; a briefing is never replaced"):
        write(vault, day, now + timedelta(hours=1))
    path = vault.root / "Briefings" / f"{day.isoformat()}_Monday_Briefing.md"
    assert path.read_text(encoding="utf-8") == first
    other = day + timedelta(days=7)
    (vault.root / "Briefings" / f"{other.isoformat()}_Monday_Briefing.md").write_text("by hand")
    with pytest.raises(TargetExistsError):
        write(vault, other, now)


def test_a_missing_goals_page_is_said_not_fatal(vault: Vault, day: date, now: datetime) -> None:
    (vault.root / "Business_Goals.md").unlink()
    page = write(vault, day, now)
    assert "Business_Goals.md is missing: run \\`ai-employee init\\`" in section(
        page, "Proactive Suggestions"
    )


def test_an_unreadable_cloud_trail_is_reported(vault: Vault, day: date, now: datetime) -> None:
    (vault.root / "Logs" / "audit-cloud.jsonl").write_text("not an entry\n")
    page = write(vault, day, now)
    assert "- Problem: the cloud audit trail could not be read" in page


def test_a_broken_local_trail_stops_the_briefing(vault: Vault, day: date, now: datetime) -> None:
    vault.record("vault", "touch", "x")
    vault.record("vault", "touch", "y")
    log = vault.root / "Logs" / "audit-local.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    with pytest.raises(AuditError):
        write(vault, day, now)
    assert list((vault.root / "Briefings").glob("*.md")) == []
