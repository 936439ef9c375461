"""The status snapshot: counts, waiting approvals with time left, claims, breakers, last audit."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from core.heartbeat import Heartbeat
from core.resilience import CircuitBreaker
from core.status import vault_status
from core.tasks import iso_utc, render, utc_now
from core.vault import Vault
from tests.core.conftest import make_meta


def test_status_reports_what_is_there(vault: Vault) -> None:
    for i in range(3):
        vault.create("Needs_Action", f"EMAIL_{i}.md", make_meta())
    vault.claim("EMAIL_0.md", "cloud")
    old = utc_now() - timedelta(hours=5)
    vault.create(
        "Pending_Approval/email",
        "SEND_old.md",
        make_meta(
            "approval_request", action="send_email", expires=iso_utc(old + timedelta(hours=24))
        ).model_copy(update={"created": old}),
    )
    vault.create(
        "Pending_Approval/payments",
        "PAY_new.md",
        make_meta("approval_request", action="register_payment"),
    )
    (vault.root / "Pending_Approval/payments/BROKEN.md").write_bytes(b"\xff\xfe")
    breaker = CircuitBreaker("gmail", vault.state_dir)
    for _ in range(5):
        breaker.record_failure()

    status = vault_status(vault, zone="local", dry_run=True)

    assert status.counts["Needs_Action"] == 2
    assert status.counts["In_Progress/cloud"] == 1
    assert status.counts["Pending_Approval/payments"] == 2
    assert [p.file for p in status.pending_approvals] == [
        "Pending_Approval/email/SEND_old.md",
        "Pending_Approval/payments/PAY_new.md",
    ]
    oldest = status.oldest_pending_approval
    assert oldest is not None and oldest.action == "send_email"
    assert oldest.hours_left is not None and 18.9 < oldest.hours_left < 19.1
    assert [c.claimed_by for c in status.claimed] == ["cloud"]
    assert "Pending_Approval/payments/BROKEN.md" in status.unreadable
    assert [(b.name, b.state.value) for b in status.breakers] == [("gmail", "open")]
    assert status.last_audit is not None and status.last_audit.action == "create"
    assert status.audit_problem is None


def test_status_reports_a_tampered_audit_trail(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.create("Needs_Action", "EMAIL_2.md", make_meta())
    log = vault.root / "Logs/audit-local.jsonl"
    log.write_text(log.read_text().splitlines()[0] + "\n")
    status = vault_status(vault, zone="local", dry_run=True)
    assert status.audit_problem is not None and "truncated" in status.audit_problem


# -- the parts the dashboard shows, measured against one injected clock ----------------------
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def task(vault: Vault, folder: str, name: str, hours_ago: float, **extra: object) -> None:
    """A task created ``hours_ago`` before NOW, whose file time says the same."""
    created = NOW - timedelta(hours=hours_ago)
    meta = make_meta(extra.pop("type", "email"), **extra).model_copy(update={"created": created})
    path = vault.create(folder, name, meta)
    os.utime(path, (created.timestamp(), created.timestamp()))


def heartbeat(vault: Vault, daemon: str, *, minutes_ago: float, ok: bool, interval: float) -> None:
    """A heartbeat written as the loop writes it, but at a chosen moment."""
    beat = Heartbeat(
        daemon=daemon,
        zone="local",
        pid=1,
        at=NOW - timedelta(minutes=minutes_ago),
        ok=ok,
        detail="" if ok else "token refused by Google",
        interval=interval,
    )
    folder = vault.state_dir / "heartbeats"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{daemon}.json").write_text(beat.model_dump_json())


def test_the_oldest_waiting_tasks_come_first_with_their_age(vault: Vault) -> None:
    for i in range(12):
        task(vault, "Needs_Action", f"EMAIL_{i:02d}.md", hours_ago=i, subject=f"Mail {i}")
    (vault.root / "Needs_Action/BROKEN.md").write_bytes(b"no frontmatter")
    old = (NOW - timedelta(hours=100)).timestamp()
    os.utime(vault.root / "Needs_Action/BROKEN.md", (old, old))

    status = vault_status(vault, zone="local", dry_run=True, now=NOW)

    assert status.counts["Needs_Action"] == 13 and status.generated_at == NOW
    assert [t.file.removeprefix("Needs_Action/") for t in status.waiting_tasks] == [
        "BROKEN.md",
        *(f"EMAIL_{i:02d}.md" for i in range(11, 2, -1)),
    ]
    broken, oldest = status.waiting_tasks[0], status.waiting_tasks[1]
    assert (broken.title, broken.created, broken.age_hours) == (None, None, 100)
    assert "Needs_Action/BROKEN.md" in status.unreadable
    assert (oldest.title, oldest.priority, oldest.age_hours) == ("Mail 11", "normal", 11)


def test_recent_actions_are_the_newest_action_entries_without_claims(vault: Vault) -> None:
    for i in range(12):
        vault.record("action", "claim", f"In_Progress/local/SEND_{i}.md")
        vault.record("action", "send_email", f"Done/SEND_{i}.md", dry_run=i % 2 == 0)
    vault.record("action", "refuse", "Failed/PAY.md", status="failed", error="over the limit")
    vault.record("vault", "create", "Needs_Action/X.md")

    actions = vault_status(vault, zone="local", dry_run=True, now=NOW).recent_actions

    assert len(actions) == 10
    assert (actions[0].action, actions[0].status, actions[0].error) == (
        "refuse",
        "failed",
        "over the limit",
    )
    assert [a.target for a in actions[1:4]] == [
        "Done/SEND_11.md",
        "Done/SEND_10.md",
        "Done/SEND_9.md",
    ]
    assert [a.dry_run for a in actions[1:3]] == [False, True]


def test_failures_newest_first_with_outcome_and_error(vault: Vault) -> None:
    for i, outcome in enumerate(["not_run", "unknown", "failed"]):
        failed_at = iso_utc(NOW - timedelta(hours=3 - i))
        meta = make_meta(
            "approval_request", outcome=outcome, error=f"error {i}", failed_at=failed_at
        )
        (vault.root / f"Failed/REQ_{i}.md").write_text(render(meta.to_frontmatter()))
    (vault.root / "Failed/RAW.md").write_bytes(b"\x00binary")
    os.utime(vault.root / "Failed/RAW.md", (NOW.timestamp() - 60, NOW.timestamp() - 60))

    failures = vault_status(vault, zone="local", dry_run=True, now=NOW).failures

    assert [f.file for f in failures] == [
        "Failed/RAW.md",
        *(f"Failed/REQ_{i}.md" for i in (2, 1, 0)),
    ]
    assert failures[0].outcome is None and "binary" in (failures[0].error or "")
    assert (failures[2].outcome, failures[2].error) == ("unknown", "error 1")
    assert failures[3].failed_at == NOW - timedelta(hours=3)


def test_daemon_health_alive_stale_failing_once(vault: Vault) -> None:
    heartbeat(vault, "approval_watcher", minutes_ago=0.5, ok=True, interval=10)
    heartbeat(vault, "gmail_watcher", minutes_ago=1, ok=False, interval=60)
    heartbeat(vault, "inbox_watcher", minutes_ago=30, ok=True, interval=5)
    heartbeat(vault, "scheduler", minutes_ago=60 * 24 * 3, ok=True, interval=0)

    daemons = vault_status(vault, zone="local", dry_run=True, now=NOW).daemons

    assert [(d.daemon, d.state) for d in daemons] == [
        ("approval_watcher", "alive"),
        ("gmail_watcher", "failing"),
        ("inbox_watcher", "stale"),
        ("scheduler", "once"),
    ]
    assert daemons[1].detail == "token refused by Google" and daemons[2].age_minutes == 30


def test_breakers_are_judged_at_the_injected_clock(vault: Vault) -> None:
    breaker = CircuitBreaker("gmail", vault.state_dir, clock=NOW.timestamp)
    for _ in range(5):
        breaker.record_failure()
    soon = vault_status(vault, zone="local", dry_run=True, now=NOW + timedelta(seconds=10))
    later = vault_status(vault, zone="local", dry_run=True, now=NOW + timedelta(minutes=6))
    assert [b.state.value for b in soon.breakers] == ["open"]
    assert [b.state.value for b in later.breakers] == ["half_open"]


def test_same_vault_same_clock_same_snapshot(vault: Vault) -> None:
    task(vault, "Needs_Action", "EMAIL_1.md", hours_ago=30)
    task(vault, "Pending_Approval/email", "SEND_1.md", hours_ago=2, type="approval_request")
    heartbeat(vault, "gmail_watcher", minutes_ago=2, ok=True, interval=60)
    first = vault_status(vault, zone="local", dry_run=True, now=NOW)
    second = vault_status(vault, zone="local", dry_run=True, now=NOW)
    assert first.model_dump_json() == second.model_dump_json()
    assert first.pending_approvals[0].hours_left == 22


def test_status_json_keeps_its_keys_and_adds_the_dashboard_parts(vault: Vault) -> None:
    data = vault_status(vault, zone="local", dry_run=True, now=NOW).model_dump(mode="json")
    assert set(data) >= {
        "vault",
        "zone",
        "dry_run",
        "counts",
        "pending_approvals",
        "oldest_pending_approval",
        "claimed",
        "unreadable",
        "breakers",
        "last_audit",
        "audit_problem",
    }
    added = {"generated_at", "waiting_tasks", "recent_actions", "failures", "daemons"}
    assert added <= set(data)
    assert data["generated_at"] == "2026-11-25T12:00:00Z"


def test_the_terminal_view_shows_the_new_parts_as_plain_lines(
    vault: Vault, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.commands import print_status  # the CLI's view of this snapshot

    task(vault, "Needs_Action", "EMAIL_1.md", hours_ago=26, subject="Hi\x1b[2J\nthere")
    vault.record("action", "send_email", "Done/SEND_1.md", dry_run=True)
    (vault.root / "Failed/REQ.md").write_text(
        render(make_meta("approval_request", outcome="unknown", error="timeout").to_frontmatter())
    )
    heartbeat(vault, "inbox_watcher", minutes_ago=30, ok=True, interval=5)

    print_status(vault_status(vault, zone="local", dry_run=True, now=NOW))

    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "Needs_Action/EMAIL_1.md  Hi\ufffd[2J there  waiting 1 d 2 h" in out
    assert "send_email Done/SEND_1.md -> ok (dry run)" in out
    assert "Failed/REQ.md" in out and "outcome=unknown" in out and "    timeout" in out
    assert "inbox_watcher      stale    last pass 30 min ago" in out
