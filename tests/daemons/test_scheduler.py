"""The scheduler on a real vault with injected clocks: once per period across restarts, missed
runs, DST, lost state, two processes, bad schedules; and ``ai-employee run scheduler --once``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core import tasks
from core.config import Settings, load_settings
from core.heartbeat import read_heartbeats
from core.schedule_config import ScheduleError
from core.schedule_runs import STATE_FILE, Fired, JobFailedError, Scheduler
from core.vault import Vault, open_vault
from core.vault_init import init_vault
from daemons.scheduler import main, run

REPO = Path(__file__).resolve().parents[2]
COMMAND = shutil.which("ai-employee", path=str(Path(sys.executable).parent)) or "ai-employee"
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
FRIDAY_1600 = datetime(2026, 11, 27, 15, tzinfo=UTC)  # 16:00 in Berlin
MONDAY_0900 = datetime(2026, 11, 30, 8, tzinfo=UTC)  # 09:00 in Berlin
TASK_FOLDERS = ("Needs_Action", "In_Progress/cloud", "In_Progress/local", "Done", "Failed")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_vault(tmp_path / "vault")
    return tmp_path / "vault"


def make_settings(root: Path, tz: str = BERLIN, zone: str = "local") -> Settings:
    env = {"VAULT_PATH": str(root), "SECRETS_DIR": os.environ["SECRETS_DIR"], "TZ": tz}
    return load_settings({**env, "ZONE": zone})


def scheduler(root: Path, tz: str = BERLIN, zone: str = "local") -> Scheduler:
    """A fresh scheduler object each time, as a restarted process would make."""
    settings = make_settings(root, tz, zone)
    vault = open_vault(settings, actor="scheduler")
    return Scheduler(vault, tz=settings.tz, zone=settings.zone, say=lambda _: None)


def pass_at(root: Path, now: datetime, tz: str = BERLIN, zone: str = "local") -> list[Fired]:
    return scheduler(root, tz, zone).run_pass(now)


def task_files(root: Path) -> dict[str, str]:
    """Every TASK_*.md anywhere in a task's life, by name, with the folder it is in."""
    return {p.name: folder for folder in TASK_FOLDERS for p in (root / folder).glob("TASK_*.md")}


def write_schedule(root: Path, jobs: str) -> None:
    block = "version: 1\njobs:\n" + textwrap.indent(jobs, "  ")
    (root / "Schedule.md").write_text(f"# Schedule\n\n```yaml schedule\n{block}```\n")


def one_job(cron: str, name: str = "night") -> str:
    return (
        f'- name: {name}\n  cron: "{cron}"\n  action: task\n  type: maintenance\n'
        "  title: Night work\n  instructions: Do the night work.\n"
    )


def state(root: Path) -> Any:
    return json.loads((root / ".state" / STATE_FILE).read_text())


# -- once per period -----------------------------------------------------------------------


def test_first_start_fires_nothing_and_remembers_when_it_started(root: Path) -> None:
    assert pass_at(root, MONDAY_0900) == []
    assert task_files(root) == {}
    jobs = state(root)["jobs"]
    assert set(jobs) == {"ceo_briefing", "weekly_audit", "dashboard"}
    assert all(record == {"settled": "2026-11-30T08:00:00Z"} for record in jobs.values())


def test_missed_runs_happen_once_each_when_the_scheduler_starts_again(root: Path) -> None:
    pass_at(root, FRIDAY_1600)  # running on Friday afternoon, then down all weekend
    fired = pass_at(root, MONDAY_0900)
    assert sorted((f.job, f.period, f.outcome) for f in fired) == [
        ("ceo_briefing", "2026-11-30T0800", "created"),
        ("dashboard", "2026-11-30T0700", "refreshed"),  # one refresh, not one per missed day
        ("weekly_audit", "2026-11-27T1700", "created"),
    ]
    assert task_files(root) == {
        "TASK_ceo_briefing_2026-11-30T0800.md": "Needs_Action",
        "TASK_weekly_audit_2026-11-27T1700.md": "Needs_Action",
    }
    assert pass_at(root, MONDAY_0900 + timedelta(seconds=30)) == []
    assert pass_at(root, MONDAY_0900 + timedelta(hours=5)) == []
    assert "dry run" in (root / "Dashboard.md").read_text()


def test_a_scheduled_task_says_what_to_do_and_when(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    pass_at(root, MONDAY_0900)
    doc = tasks.read_task_file(root / "Needs_Action" / "TASK_ceo_briefing_2026-11-30T0800.md")
    meta = {**doc.meta.model_dump(mode="json"), **(doc.meta.model_extra or {})}
    assert meta["id"] == "TASK_ceo_briefing_2026-11-30T0800"
    assert meta["type"] == "briefing" and meta["source"] == "scheduler"
    assert meta["status"] == "pending" and meta["title"] == "Monday CEO briefing"
    assert meta["created"].startswith("2026-11-30T07:00:00")  # the period, not the clock
    assert meta["period"] == "2026-11-30T0800" and meta["date"] == "2026-11-30"
    assert meta["timezone"] == BERLIN and meta["schedule"] == "0 8 * * mon"
    assert "Monday 2026-11-30 08:00 (Europe/Berlin)" in doc.body
    assert "ceo-briefing skill" in doc.body


def test_one_task_per_period_across_three_weeks_of_restarts(root: Path) -> None:
    start = datetime(2026, 11, 22, 23, tzinfo=UTC)  # Monday 00:00 in Berlin
    fired: list[Fired] = []
    for step in range(0, 21 * 24, 5):
        fired += pass_at(root, start + timedelta(hours=step))  # a new process every 5 hours
    periods = [(f.job, f.period) for f in fired]
    assert len(periods) == len(set(periods))
    assert sorted(task_files(root)) == [
        "TASK_ceo_briefing_2026-11-23T0800.md",
        "TASK_ceo_briefing_2026-11-30T0800.md",
        "TASK_ceo_briefing_2026-12-07T0800.md",
        "TASK_weekly_audit_2026-11-27T1700.md",
        "TASK_weekly_audit_2026-12-04T1700.md",
        "TASK_weekly_audit_2026-12-11T1700.md",
    ]
    assert sum(f.job == "dashboard" for f in fired) == 21


def test_an_archived_or_deleted_task_is_never_made_again(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    pass_at(root, MONDAY_0900)
    briefing = "TASK_ceo_briefing_2026-11-30T0800.md"
    (root / "Needs_Action" / briefing).rename(root / "Done" / briefing)
    (root / "Needs_Action" / "TASK_weekly_audit_2026-11-27T1700.md").unlink()
    assert pass_at(root, MONDAY_0900 + timedelta(hours=1)) == []
    assert task_files(root) == {briefing: "Done"}


def test_a_crash_between_the_task_and_the_state_makes_no_second_task(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    before = (root / ".state" / STATE_FILE).read_bytes()
    pass_at(root, MONDAY_0900)
    (root / ".state" / STATE_FILE).write_bytes(before)  # as if the process died before saving
    fired = pass_at(root, MONDAY_0900 + timedelta(minutes=1))
    assert sorted((f.job, f.outcome) for f in fired) == [
        ("ceo_briefing", "exists"),
        ("dashboard", "refreshed"),
        ("weekly_audit", "exists"),
    ]
    assert len(task_files(root)) == 2
    assert state(root)["jobs"]["ceo_briefing"]["period"] == "2026-11-30T0800"


@pytest.mark.parametrize("garbage", [b"{not json", b"[]", b'{"jobs": 3}', b"\x00\xff"])
def test_a_torn_state_file_is_rebuilt_from_the_task_names(root: Path, garbage: bytes) -> None:
    pass_at(root, FRIDAY_1600)
    pass_at(root, MONDAY_0900)  # briefing 2026-11-30 and audit 2026-11-27 exist
    (root / "Needs_Action" / "TASK_weekly_audit_2026-11-27T1700.md").rename(
        root / "Done" / "TASK_weekly_audit_2026-11-27T1700.md"
    )
    (root / ".state" / STATE_FILE).write_bytes(garbage)
    assert pass_at(root, MONDAY_0900 + timedelta(hours=1)) == []  # names say: done
    fired = pass_at(root, datetime(2026, 12, 4, 17, tzinfo=UTC))  # Friday 18:00
    assert [(f.job, f.period) for f in fired if f.job != "dashboard"] == [
        ("weekly_audit", "2026-12-04T1700")
    ]
    assert len(task_files(root)) == 3
    assert "state_rebuilt" in (root / "Logs" / "audit-local.jsonl").read_text()


def test_a_lost_state_with_an_older_task_creates_the_missed_period_once(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    pass_at(root, MONDAY_0900)
    (root / ".state" / STATE_FILE).unlink()  # a new machine with the synced vault
    for lookalike in (
        "TASK_weekly_audit_2026-02-30T2500.md",
        "TASK_weekly_audit_x_2026-12-09T0800.md",
    ):
        (root / "Done" / lookalike).write_text("---\nid: x\n---\n")  # not this job's periods
    fired = pass_at(root, datetime(2026, 12, 9, 12, tzinfo=UTC))  # Wednesday
    assert sorted(f.period for f in fired if f.job != "dashboard") == [
        "2026-12-04T1700",
        "2026-12-07T0800",
    ]
    assert not any(f.job == "dashboard" for f in fired)  # no name to go by: starts from now


def test_a_pass_with_a_clock_years_ahead_holds_no_job_back(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    pass_at(root, MONDAY_0900)  # briefing 2026-11-30 and audit 2026-11-27 exist
    pass_at(root, datetime(2031, 3, 3, 9, tzinfo=UTC))  # one pass with the clock set wrong
    assert state(root)["jobs"]["weekly_audit"]["settled"].startswith("2031-")
    assert "TASK_weekly_audit_2031-02-28T1700.md" in task_files(root)
    friday = datetime(2026, 12, 4, 17, tzinfo=UTC)  # the clock is right again: 18:00 in Berlin
    fired = pass_at(root, friday)
    assert [(f.job, f.period) for f in fired if f.job != "dashboard"] == [
        ("weekly_audit", "2026-12-04T1700")  # rebuilt from the names, not from 2031
    ]
    jobs = state(root)["jobs"]
    assert all(record["settled"] < "2026-12-05" for record in jobs.values())
    (alert,) = sorted((root / "Signals").glob("health_scheduler_*.json"))
    signal = json.loads(alert.read_text())
    assert signal["status"] == "clock_reset" and "clock" in signal["next_step"]
    assert "weekly_audit (2031-02-28T16:00:00Z)" in signal["reason"]
    audit = [json.loads(line) for line in (root / "Logs" / "audit-local.jsonl").open()]
    resets = [entry for entry in audit if entry["action"] == "clock_reset"]
    assert sorted(entry["details"]["job"] for entry in resets) == [
        "ceo_briefing",
        "dashboard",
        "weekly_audit",
    ]
    assert pass_at(root, friday + timedelta(minutes=1)) == []
    assert len(list((root / "Signals").glob("health_scheduler_*.json"))) == 1  # said once
    fired = pass_at(root, datetime(2026, 12, 7, 8, tzinfo=UTC))  # Monday 09:00
    assert [(f.job, f.period) for f in fired if f.job != "dashboard"] == [
        ("ceo_briefing", "2026-12-07T0800")
    ]


def test_a_record_a_little_ahead_is_kept(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    pass_at(root, MONDAY_0900)
    before = state(root)
    assert pass_at(root, MONDAY_0900 - timedelta(hours=2)) == []  # this clock a little behind
    assert state(root) == before
    assert list((root / "Signals").glob("health_scheduler_*.json")) == []


def test_a_task_named_for_a_future_period_is_not_believed_when_rebuilding(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    pass_at(root, MONDAY_0900)
    (root / ".state" / STATE_FILE).unlink()
    for future in ("TASK_weekly_audit_2031-03-01T0800.md", "TASK_ceo_briefing_2027-01-04T0800.md"):
        (root / "Done" / future).write_text("---\nid: x\n---\n")
    fired = pass_at(root, datetime(2026, 12, 9, 12, tzinfo=UTC))  # Wednesday
    assert sorted(f.period for f in fired if f.job != "dashboard") == [
        "2026-12-04T1700",
        "2026-12-07T0800",
    ]
    assert state(root)["jobs"]["weekly_audit"]["period"] == "2026-12-04T1700"


def test_a_task_named_a_few_hours_ahead_by_another_zone_is_believed(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    (root / ".state" / STATE_FILE).unlink()
    briefing = "TASK_ceo_briefing_2026-11-30T0800.md"  # written by a zone whose clock runs ahead
    (root / "Done" / briefing).write_text("---\nid: x\n---\n")
    assert pass_at(root, MONDAY_0900 - timedelta(hours=3)) == []  # 06:00 in Berlin
    assert state(root)["jobs"]["ceo_briefing"]["settled"] == "2026-11-30T07:00:00Z"
    fired = pass_at(root, MONDAY_0900)
    assert not any(f.job == "ceo_briefing" for f in fired)  # its period is already settled


def test_four_processes_starting_at_once_fire_each_job_once(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    script = textwrap.dedent(
        """
        import json, sys
        from datetime import datetime
        from core.config import load_settings
        from core.schedule_runs import Scheduler
        from core.vault import Vault, open_vault
        settings = load_settings()
        vault = open_vault(settings, actor="scheduler")
        job = Scheduler(vault, tz=settings.tz, zone=settings.zone, say=lambda _: None)
        fired = job.run_pass(datetime.fromisoformat(sys.argv[1]))
        print(json.dumps([[f.job, f.outcome] for f in fired]))
        """
    )
    env = {**os.environ, "VAULT_PATH": str(root), "TZ": BERLIN, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", script, MONDAY_0900.isoformat()]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, results
    outcomes = sorted(tuple(item) for out, _ in results for item in json.loads(out))
    assert outcomes == [
        ("ceo_briefing", "created"),
        ("dashboard", "refreshed"),
        ("weekly_audit", "created"),
    ]
    assert len(task_files(root)) == 2


# -- DST -------------------------------------------------------------------------------------


def test_spring_forward_fires_a_skipped_time_once_after_the_gap(root: Path) -> None:
    write_schedule(root, one_job("30 2 * * *"))
    start = datetime(2026, 3, 28, 22, tzinfo=UTC)  # Saturday 23:00 in Berlin
    fired: list[Fired] = []
    for minutes in range(0, 8 * 60, 10):
        fired += pass_at(root, start + timedelta(minutes=minutes))
    assert [(f.period, f.due) for f in fired] == [
        ("2026-03-29T0300", datetime(2026, 3, 29, 1, tzinfo=UTC))
    ]
    assert list(task_files(root)) == ["TASK_night_2026-03-29T0300.md"]


def test_spring_forward_in_new_york(root: Path) -> None:
    write_schedule(root, one_job("30 2 * * *"))
    start = datetime(2026, 3, 8, 4, tzinfo=UTC)  # 23:00 EST on Saturday
    fired: list[Fired] = []
    for minutes in range(0, 30 * 60, 15):
        fired += pass_at(root, start + timedelta(minutes=minutes), tz=NEW_YORK)
    assert [f.period for f in fired] == ["2026-03-08T0300", "2026-03-09T0230"]


def test_fall_back_fires_a_repeated_time_once(root: Path) -> None:
    write_schedule(root, one_job("30 1 * * *"))
    start = datetime(2026, 11, 1, 3, tzinfo=UTC)  # 23:00 EDT on Saturday
    fired: list[Fired] = []
    for minutes in range(0, 6 * 60, 5):  # through both 01:30s
        fired += pass_at(root, start + timedelta(minutes=minutes), tz=NEW_YORK)
    assert [(f.period, f.due) for f in fired] == [
        ("2026-11-01T0130", datetime(2026, 11, 1, 5, 30, tzinfo=UTC))
    ]


def test_fall_back_in_berlin(root: Path) -> None:
    write_schedule(root, one_job("30 2 * * *"))
    start = datetime(2026, 10, 24, 22, tzinfo=UTC)  # Sunday 00:00 CEST
    fired = [f for m in range(0, 6 * 60, 5) for f in pass_at(root, start + timedelta(minutes=m))]
    assert [f.period for f in fired] == ["2026-10-25T0230"]
    assert list(task_files(root)) == ["TASK_night_2026-10-25T0230.md"]


# -- configuration, zones ----------------------------------------------------------------------


def test_a_bad_schedule_stops_every_job_with_one_alert_until_fixed(root: Path) -> None:
    pass_at(root, FRIDAY_1600)
    write_schedule(root, one_job("0 17 * * fri", name="weekly_audit") + one_job("0 8 * *"))
    for minutes in (0, 1, 2):
        with pytest.raises(ScheduleError) as caught:
            pass_at(root, MONDAY_0900 + timedelta(minutes=minutes))
        assert "job 'night' (number 2): cron: '0 8 * *' has 4 fields" in caught.value.what
    assert task_files(root) == {}  # the valid job waits too
    (alert,) = sorted((root / "Signals").glob("health_scheduler_*.json"))
    assert json.loads(alert.read_text())["status"] == "stopped"
    write_schedule(root, one_job("0 17 * * fri", name="weekly_audit"))
    fired = pass_at(root, MONDAY_0900 + timedelta(minutes=3))
    assert [(f.job, f.period) for f in fired] == [("weekly_audit", "2026-11-27T1700")]
    signals = sorted((root / "Signals").glob("health_scheduler_*.json"))
    assert [json.loads(p.read_text())["status"] for p in signals] == ["stopped", "ok"]


def test_with_once_a_bad_schedule_is_an_error_exit_and_an_unhealthy_heartbeat(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_schedule(root, "- name: x\n  cron: '0 8 * * *'\n  action: dashboard\n  when: now\n")
    assert run(make_settings(root), once=True) == 1
    assert "job 'x' (number 1): unknown setting 'when'" in capsys.readouterr().out
    (beat,) = read_heartbeats(root / ".state")
    assert beat.daemon == "scheduler" and not beat.ok and "when" in beat.detail


def test_a_disabled_job_lets_its_periods_pass(root: Path) -> None:
    write_schedule(root, one_job("0 17 * * fri", name="weekly_audit") + "  enabled: false\n")
    pass_at(root, FRIDAY_1600)
    assert pass_at(root, MONDAY_0900) == []
    write_schedule(root, one_job("0 17 * * fri", name="weekly_audit"))
    assert pass_at(root, MONDAY_0900 + timedelta(hours=1)) == []  # not last Friday's
    fired = pass_at(root, datetime(2026, 12, 4, 16, 1, tzinfo=UTC))
    assert [f.period for f in fired] == ["2026-12-04T1700"]


def test_a_job_that_cannot_fire_does_not_stop_the_others(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pass_at(root, FRIDAY_1600)
    create = Vault.create

    def full_disk(self: Vault, folder: str, name: str, *args: Any) -> Path:
        if name.startswith("TASK_ceo_briefing"):
            raise OSError(28, "No space left on device")
        return create(self, folder, name, *args)

    monkeypatch.setattr(Vault, "create", full_disk)
    with pytest.raises(JobFailedError, match=r"job 'ceo_briefing'.*No space left"):
        pass_at(root, MONDAY_0900)
    assert list(task_files(root)) == ["TASK_weekly_audit_2026-11-27T1700.md"]
    assert state(root)["jobs"]["ceo_briefing"] == {"settled": "2026-11-27T15:00:00Z"}
    monkeypatch.setattr(Vault, "create", create)
    fired = pass_at(root, MONDAY_0900 + timedelta(seconds=30))  # tried again, once
    assert [(f.job, f.outcome) for f in fired] == [("ceo_briefing", "created")]


def test_the_cloud_zone_leaves_the_dashboard_and_writes_the_same_task_bytes(
    tmp_path: Path, root: Path
) -> None:
    cloud = tmp_path / "cloud_vault"
    init_vault(cloud)
    dashboard = (cloud / "Dashboard.md").read_bytes()
    for vault, zone in ((root, "local"), (cloud, "cloud")):
        pass_at(vault, FRIDAY_1600, zone=zone)
        later = timedelta(minutes=7 if zone == "cloud" else 0)  # the content has no clock in it
        fired = pass_at(vault, MONDAY_0900 + later, zone=zone)
        if zone == "cloud":
            assert ("dashboard", "skipped") in [(f.job, f.outcome) for f in fired]
    assert (cloud / "Dashboard.md").read_bytes() == dashboard
    for name in task_files(root):
        assert (cloud / "Needs_Action" / name).read_bytes() == (
            root / "Needs_Action" / name
        ).read_bytes()


def test_no_schedule_note_means_the_defaults(root: Path) -> None:
    (root / "Schedule.md").unlink()
    pass_at(root, FRIDAY_1600)
    fired = pass_at(root, MONDAY_0900)
    assert {f.job for f in fired} == {"ceo_briefing", "weekly_audit", "dashboard"}


# -- the console entry -----------------------------------------------------------------------


def test_ai_employee_run_scheduler_once(root: Path) -> None:
    env = {**os.environ, "VAULT_PATH": str(root), "TZ": NEW_YORK}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [COMMAND, "run", "scheduler", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(local zone, America/New_York)" in proc.stdout
    assert "scheduler: 3 job(s) from Schedule.md" in proc.stdout
    assert "scheduler: ceo_briefing next " in proc.stdout
    assert set(state(root)["jobs"]) == {"ceo_briefing", "weekly_audit", "dashboard"}
    (beat,) = read_heartbeats(root / ".state")
    assert beat.daemon == "scheduler" and beat.ok and beat.interval == 0


def test_python_m_main_runs_one_pass_and_reports_a_missing_vault(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAULT_PATH", str(root))
    monkeypatch.setenv("TZ", "UTC")
    assert main(["--once"]) == 0
    monkeypatch.setenv("VAULT_PATH", str(tmp_path / "nowhere"))
    assert main(["--once"]) == 1
    assert "ai-employee init" in capsys.readouterr().err
