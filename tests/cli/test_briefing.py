"""``ai-employee briefing [--date]`` through the command's own entry point."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import frontmatter
import pytest

from cli.main import main
from core.audit import AuditLog
from core.vault import Vault
from core.vault_init import init_vault
from tests.core.conftest import make_meta


@pytest.fixture
def vault_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh vault and an isolated environment: no .env, no user settings."""
    root = Path(init_vault(tmp_path / "vault").vault)
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    monkeypatch.setenv("VAULT_PATH", str(root))
    monkeypatch.setenv("SECRETS_DIR", os.environ["SECRETS_DIR"])
    monkeypatch.setenv("AI_EMPLOYEE_ENV_FILE", str(env_file))
    return root


def briefing(root: Path, day: date) -> Path:
    return root / "Briefings" / f"{day.isoformat()}_Monday_Briefing.md"


def test_writes_the_briefing_and_says_where(
    vault_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["briefing", "--date", "2026-11-23"]) == 0
    out = capsys.readouterr().out
    assert "Briefing written: Briefings/2026-11-23_Monday_Briefing.md" in out
    assert "period: 2026-11-16 to 2026-11-22 (UTC)" in out
    assert "revenue: not known (no accounting source is connected)" in out
    assert "Suggestions (" in out and "ceo-briefing skill" in out
    post = frontmatter.loads(briefing(vault_root, date(2026, 11, 23)).read_text(encoding="utf-8"))
    assert (post["type"], post["period_start"], post["period_end"]) == (
        "briefing",
        "2026-11-16",
        "2026-11-22",
    )


def test_the_default_date_is_today_in_the_configured_time_zone(
    vault_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: often a day ahead of UTC
    before = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    assert main(["briefing"]) == 0
    after = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    written = [day for day in (before, after) if briefing(vault_root, day).exists()]
    assert written and "(Pacific/Kiritimati)" in capsys.readouterr().out


def test_a_second_run_for_the_same_date_refuses(
    vault_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["briefing", "--date", "2026-11-23"]) == 0
    first = briefing(vault_root, date(2026, 11, 23)).read_bytes()
    capsys.readouterr()
    assert main(["briefing", "--date", "2026-11-23"]) == 1
    err = capsys.readouterr().err
    assert "already exists; a briefing is never replaced" in err
    assert "move it out of Briefings/" in err
    assert briefing(vault_root, date(2026, 11, 23)).read_bytes() == first


@pytest.mark.parametrize("raw", ["2026-13-01", "23/11/2026", "monday", ""])
def test_a_bad_date_is_a_usage_error(
    vault_root: Path, capsys: pytest.CaptureFixture[str], raw: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["briefing", "--date", raw])
    assert exit_.value.code == 2
    assert "is not a date: give it as YYYY-MM-DD" in capsys.readouterr().err
    assert list((vault_root / "Briefings").glob("*.md")) == []


def test_without_a_vault_it_says_run_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    monkeypatch.setenv("VAULT_PATH", str(tmp_path / "nowhere"))
    monkeypatch.setenv("AI_EMPLOYEE_ENV_FILE", str(env_file))
    assert main(["briefing", "--date", "2026-11-23"]) == 1
    err = capsys.readouterr().err
    assert "no vault at" in err and "ai-employee init" in err
    assert not (tmp_path / "nowhere").exists()


def test_with_odoo_configured_revenue_is_still_not_invented(
    vault_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "ODOO_URL": "https://odoo.example",
        "ODOO_DB": "main",
        "ODOO_USER": "ceo",
        "ODOO_PASSWORD": "not-printed-anywhere",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["briefing", "--date", "2026-11-23"]) == 0
    out = capsys.readouterr().out
    page = briefing(vault_root, date(2026, 11, 23)).read_text(encoding="utf-8")
    assert "no accounting source" not in out and "not-printed-anywhere" not in out + page
    assert "revenue is not known" in page


def test_this_weeks_work_shows_in_the_summary(
    vault_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vault = Vault(vault_root, audit=AuditLog(vault_root, "local"), actor="test")
    vault.create("Needs_Action", "EMAIL_1.md", make_meta(subject="Quote"))
    vault.claim("EMAIL_1.md", "local")
    vault.complete("EMAIL_1.md", "local", summary="Quoted 40 chairs")
    vault.record("action", "send_email", "Done/SEND_1.md")
    day = datetime.now(UTC).date() + timedelta(days=2)  # the period then holds today
    assert main(["briefing", "--date", day.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "tasks completed: 1; actions: 1 done, 0 failed; emails sent: 1" in out
    page = briefing(vault_root, day).read_text(encoding="utf-8")
    assert "[[Done/EMAIL_1]] | Quote | email | Quoted 40 chairs |" in page
