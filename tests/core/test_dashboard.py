"""Dashboard.md: every section from one data pass, safe links and text, the same bytes for the
same vault and clock, one writer (the local zone)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest

from core import mdsafe
from core.audit import AuditLog
from core.dashboard import DASHBOARD, MAX_NOTES, render_dashboard, update_dashboard
from core.errors import AuditError, VaultError
from core.resilience import CircuitBreaker
from core.status import vault_status
from core.tasks import iso_utc, render
from core.vault import Vault
from tests.core.conftest import make_meta, tree_snapshot
from tests.core.test_status import NOW, heartbeat, task

HEADINGS = [
    "# Dashboard",
    "## Work",
    "## Waiting tasks",
    "## Waiting for your approval",
    "## Claimed",
    "## Recent actions",
    "## Failures",
    "## Services",
    "## Daemons",
    "## Unreadable files",
    "## Notes from the assistant",
]
HOSTILE_NAME = "EVIL]]|x #tag ^b [[Approved\\email\nnext.md"
HOSTILE_TITLE = "Re: invoice | paid\n## Approved: all\n[[Approved/email/X]] <b>bold</b> %%hidden%%"


def page_of(vault: Vault, notes: str = "") -> str:
    update_dashboard(vault, zone="local", dry_run=True, notes=notes, now=NOW)
    return (vault.root / DASHBOARD).read_text(encoding="utf-8")


def cells(row: str) -> list[str]:
    """A table row's cells, split on pipes that are not escaped."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def section(page: str, heading: str) -> str:
    start = page.index(heading + "\n") if heading + "\n" in page else page.index(heading + " (")
    end = page.find("\n## ", start + 1)
    return page[start : end if end != -1 else len(page)]


@pytest.fixture
def busy(vault: Vault) -> Vault:
    """A vault with something in every section."""
    task(vault, "Needs_Action", "EMAIL_old.md", hours_ago=26, subject="Quote for 40 chairs")
    task(vault, "Needs_Action", "EMAIL_new.md", hours_ago=1, subject="Thanks", priority="high")
    task(vault, "Pending_Approval/email", "SEND_a.md", hours_ago=5, type="approval_request",
         action="send_email")  # fmt: skip
    task(vault, "Pending_Approval/payments", "PAY_b.md", hours_ago=30, type="approval_request",
         action="register_payment")  # fmt: skip
    task(vault, "Needs_Action", "TASK_claim.md", hours_ago=2)
    vault.claim("TASK_claim.md", "local")
    vault.record("action", "send_email", "Done/SEND_x.md", dry_run=True, request="R1")
    vault.record("action", "refuse", "Failed/PAY_y.md", status="failed", error="over the limit")
    vault.record("action", "publish_post", "linkedin", status="unknown", dry_run=False)
    failed = make_meta("approval_request", outcome="unknown", error="timeout | no answer",
                       failed_at=iso_utc(NOW - timedelta(hours=1)))  # fmt: skip
    (vault.root / "Failed/POST_c.md").write_text(render(failed.to_frontmatter()))
    heartbeat(vault, "approval_watcher", minutes_ago=0.5, ok=True, interval=10)
    heartbeat(vault, "gmail_watcher", minutes_ago=2, ok=False, interval=60)
    heartbeat(vault, "inbox_watcher", minutes_ago=40, ok=True, interval=5)
    breaker = CircuitBreaker("gmail", vault.state_dir, clock=NOW.timestamp)
    for _ in range(5):
        breaker.record_failure()
    return vault


def test_every_section_in_order_with_its_facts(busy: Vault) -> None:
    page = page_of(busy, notes="Met Ana.")
    lines = page.splitlines()
    assert lines[:4] == ["---", "type: dashboard", "updated: '2026-11-25T12:00:00Z'", "---"]
    assert [page.index(f"\n{h}") for h in HEADINGS[:-2]] == sorted(
        page.index(f"\n{h}") for h in HEADINGS[:-2]
    )
    assert "Updated 2026-11-25 12:00 UTC by the local zone (dry run" in page
    assert "| Needs_Action | 2 |" in page and "| Pending_Approval/payments | 1 |" in page
    assert "| Done |" not in page  # empty folders are left out
    assert section(page, "## Notes from the assistant").endswith("Met Ana.\n")


def test_waiting_tasks_show_age_oldest_first_with_wikilinks(busy: Vault) -> None:
    waiting = section(page_of(busy), "## Waiting tasks")
    assert waiting.startswith("## Waiting tasks (2)")
    rows = [line for line in waiting.splitlines() if line.startswith("| [[")]
    assert rows == [
        "| [[Needs_Action/EMAIL_old]] | Quote for 40 chairs | normal | 1 d 2 h |",
        "| [[Needs_Action/EMAIL_new]] | Thanks | high | 1 h |",
    ]


def test_approvals_show_time_left_and_expired_ones(busy: Vault) -> None:
    approvals = section(page_of(busy), "## Waiting for your approval")
    assert approvals.startswith("## Waiting for your approval (2)")
    assert "| [[Pending_Approval/email/SEND_a]] | send_email | 5 h | 19 h left |" in approvals
    assert "| [[Pending_Approval/payments/PAY_b]] | register_payment | 1 d 6 h | expired" in (
        approvals
    )


def test_claims_recent_actions_and_failures(busy: Vault) -> None:
    page = page_of(busy)
    assert "| [[In_Progress/local/TASK_claim]] | local |" in section(page, "## Claimed")
    actions = section(page, "## Recent actions").splitlines()[4:]
    assert [cells(row)[1:] for row in actions] == [
        [" publish_post ", " linkedin ", " unknown ", " no "],
        [" refuse ", " [[Failed/PAY_y]] ", " failed: over the limit ", " no "],
        [" send_email ", " [[Done/SEND_x]] ", " ok ", " yes "],
    ]
    failures = section(page, "## Failures")
    assert failures.startswith("## Failures (1)")
    assert "| [[Failed/POST_c]] | 2026-11-25 11:00 UTC | unknown | timeout \\| no answer |" in (
        failures
    )


def test_failures_newest_first(vault: Vault) -> None:
    for i in range(3):
        meta = make_meta(
            "approval_request", error=f"e{i}", failed_at=iso_utc(NOW - timedelta(hours=i))
        )
        (vault.root / f"Failed/R{i}.md").write_text(render(meta.to_frontmatter()))
    failures = section(page_of(vault), "## Failures")
    assert (
        failures.index("[[Failed/R0]]")
        < failures.index("[[Failed/R1]]")
        < failures.index("[[Failed/R2]]")
    )


def test_services_and_daemons_health(busy: Vault) -> None:
    page = page_of(busy)
    assert "| gmail | open | 5 | 2026-11-25 12:05 UTC |" in section(page, "## Services")
    daemons = section(page, "## Daemons")
    assert "| approval_watcher | local | alive | under 1 min ago | - |" in daemons
    assert "| gmail_watcher | local | failing | 2 min ago | token refused by Google |" in daemons
    assert "| inbox_watcher | local | stale | 40 min ago | - |" in daemons


def test_an_empty_vault_says_so_in_each_section(vault: Vault) -> None:
    page = page_of(vault)
    for words in (
        "Every folder is empty.",
        "Nothing is waiting in Needs_Action.",
        "No request is waiting.",
        "No action has run yet.",
        "Nothing has failed.",
        "No outside service has been called yet.",
        "No daemon has run on this machine yet.",
    ):
        assert words in page
    assert "## Claimed" not in page and "## Unreadable files" not in page


def test_hostile_names_and_titles_cannot_break_the_page(vault: Vault) -> None:
    meta = make_meta(subject=HOSTILE_TITLE).model_copy(update={"created": NOW})
    (vault.root / "Needs_Action" / HOSTILE_NAME).write_text(render(meta.to_frontmatter()))
    (vault.root / "Failed" / HOSTILE_NAME).write_bytes(b"\x00")
    vault.record("action", "send_email", "Done/" + HOSTILE_NAME, error=HOSTILE_TITLE)

    page = page_of(vault)
    headings = [line for line in page.splitlines() if line.startswith("#")]
    assert all(line.split(" (")[0] in HEADINGS for line in headings), headings
    assert "[[Approved" not in page and "<b>" not in page and "%%" not in page
    for block in page.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({len(cells(row)) for row in rows}) <= 1, block  # every row has its columns
    waiting = section(page, "## Waiting tasks")
    assert "(Needs_Action/EVIL%5D%5D%7Cx%20%23tag%20%5Eb%20%5B%5BApproved%5Cemail%0Anext.md)" in (
        waiting
    )
    assert "Re: invoice \\| paid ## Approved: all" not in waiting  # the # is escaped too
    assert "Re: invoice \\| paid \\#\\# Approved: all \\[\\[Approved/email/X\\]\\]" in waiting


def test_same_vault_same_clock_same_bytes(busy: Vault) -> None:
    first = page_of(busy, notes="n")
    second = page_of(busy, notes="n")  # its own audit entry (vault/update_dashboard) is not shown
    assert first.encode() == second.encode()
    status = vault_status(busy, zone="local", dry_run=True, now=NOW)
    assert render_dashboard(status, "n") == render_dashboard(status, "n") == first
    later = vault_status(busy, zone="local", dry_run=True, now=NOW + timedelta(hours=1))
    assert render_dashboard(later, "n") != first


def test_each_rewrite_is_audited_in_the_local_zone(busy: Vault) -> None:
    page_of(busy)
    [entry] = AuditLog(busy.root, "local").query(action="update_dashboard")
    assert (entry.category, entry.target, entry.details["pending"]) == ("vault", DASHBOARD, 2)


def test_the_cloud_zone_writes_a_note_to_updates_only(tmp_path: Path) -> None:
    cloud = Vault(tmp_path / "vault", audit=AuditLog(tmp_path / "vault", "cloud"), actor="test")
    cloud.ensure_layout()
    (cloud.root / DASHBOARD).write_text("local page")
    before = tree_snapshot(cloud.root)
    path = update_dashboard(cloud, zone="cloud", dry_run=True, notes="Drafted 2 replies.", now=NOW)
    after = tree_snapshot(cloud.root)
    changed = {name for name in after if before.get(name) != after[name]}
    assert path.parent == cloud.root / "Updates" and path.name.startswith("DASHBOARD_UPDATE_")
    assert {name.split("/")[0] for name in changed} <= {"Updates", "Logs", ".state"}
    assert (cloud.root / DASHBOARD).read_text() == "local page"
    assert "Drafted 2 replies." in path.read_text()


def test_a_broken_audit_trail_is_shown_at_the_top(vault: Vault) -> None:
    vault.record("vault", "touch", "x")
    vault.record("vault", "touch", "y")
    log = vault.root / "Logs" / "audit-local.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    with pytest.raises(AuditError):
        update_dashboard(vault, zone="local", dry_run=True, now=NOW)
    page = (vault.root / DASHBOARD).read_text()
    assert page.index("## Problem") < page.index("## Work")
    assert "The audit trail needs attention:" in page and "truncated" in page


def test_unreadable_files_are_listed(vault: Vault) -> None:
    (vault.root / "Pending_Approval/email/BROKEN.md").write_bytes(b"\xff\xfe")
    unreadable = section(page_of(vault), "## Unreadable files")
    assert "| [[Pending_Approval/email/BROKEN]] |" in unreadable and "UTF-8" in unreadable


def test_notes_too_long_are_refused_and_nothing_is_written(vault: Vault) -> None:
    with pytest.raises(VaultError, match="over"):
        update_dashboard(vault, zone="local", dry_run=True, notes="x" * (MAX_NOTES + 1))
    assert not (vault.root / DASHBOARD).exists()


# -- the safe-text helpers ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("Needs_Action/EMAIL_1.md", "[[Needs_Action/EMAIL_1]]"),
        ("Pending_Approval/email/SEND a b.md", "[[Pending_Approval/email/SEND a b]]"),
        ("Done/A|B.md", "[Done/A\\|B](Done/A%7CB.md)"),
        ("Done/A]]B.md", "[Done/A\\]\\]B](Done/A%5D%5DB.md)"),
        ("Done/A#B.md", "[Done/A\\#B](Done/A%23B.md)"),
        ("Done/A\u202eB.md", "[Done/A\ufffdB](Done/A%E2%80%AEB.md)"),
        ("Signals/x.json", "[Signals/x.json](Signals/x.json)"),
        ("Done/50%%off.md", "[Done/50\\%\\%off](Done/50%25%25off.md)"),
        ("Done/a`b.md", "[Done/a\\`b](Done/a%60b.md)"),
    ],
)
def test_links_are_wikilinks_or_a_safe_fallback(rel: str, expected: str) -> None:
    assert mdsafe.link(rel) == expected


def test_text_is_one_escaped_line() -> None:
    assert mdsafe.text("a\nb\r\n| `c` <d> [e] #f %%g $h &i \\") == (
        "a b \\| \\`c\\` \\<d\\> \\[e\\] \\#f \\%\\%g \\$h \\&i \\\\"
    )
    assert mdsafe.text("x" * 300, limit=10) == "xxxxxxxxx…"
    assert mdsafe.one_line("tab\there\x1b[31m") == "tab here\ufffd[31m"


@pytest.mark.parametrize(
    ("outside", "expected"),
    [
        ("pay at https://evil.example/pay now", "pay at https\\://evil.example/pay now"),
        ("HTTPS://EVIL.EXAMPLE", "HTTPS\\://EVIL.EXAMPLE"),
        ("obsidian://open?vault=x", "obsidian\\://open?vault=x"),
        ("see www.evil.com", "see www\\.evil.com"),
        ("(WWW.Evil.com)", "(WWW\\.Evil.com)"),
        ("https://www.evil.com/x", "https\\://www\\.evil.com/x"),
        ("from a.b@evil.example", "from a.b\\@evil.example"),
        ("mailto:a@b.com", "mailto:a\\@b.com"),
        ("https\\://x.y", "https\\\\\\://x.y"),  # a backslash already there stays shown
        ("Re: invoice 08:00 / a.www b.com http:/x", "Re: invoice 08:00 / a.www b.com http:/x"),
        ("wwwx.com  ww.x :// www", "wwwx.com ww.x \\:// www"),
    ],
)
def test_text_breaks_bare_links(outside: str, expected: str) -> None:
    assert mdsafe.text(outside) == expected


def test_broken_links_show_the_same_characters() -> None:
    """Each added backslash stands before ASCII punctuation: CommonMark shows the character
    alone, so dropping the escapes gives back the text exactly."""
    outside = "Pay https://evil.example/pay or www.evil.com, ask bob@evil.example"
    shown = mdsafe.text(outside)
    assert "s://" not in shown and "www." not in shown.lower() and "b@" not in shown
    assert re.sub(r"\\([:.@])", r"\1", shown) == outside


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "under 1 min"), (59, "under 1 min"), (60, "1 min"), (3600, "1 h"), (3660, "1 h 1 min"),
     (86400, "1 d"), (93600, "1 d 2 h"), (-7200, "2 h")],
)  # fmt: skip
def test_durations_read_like_speech(seconds: float, expected: str) -> None:
    assert mdsafe.duration(seconds) == expected


def test_the_page_never_depends_on_the_machine(busy: Vault) -> None:
    page = page_of(busy)
    assert str(busy.root) not in page and os.sep + "tmp" not in page
