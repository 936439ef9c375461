"""Cron expressions and fire times (DST in Europe/Berlin and America/New_York), and the
strict reading of Schedule.md."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.schedule import (
    CronError,
    fire_instant,
    label_instant,
    next_fire,
    parse_cron,
    period_label,
    previous_fire,
)
from core.schedule_config import (
    DEFAULT_BLOCK,
    ScheduleError,
    TaskJob,
    default_schedule,
    load_schedule,
    parse_schedule,
)
from core.vault_init import TEMPLATE

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def fires(expr: str, start: datetime, tz: str, count: int) -> list[str]:
    """The next ``count`` fire times after ``start`` as local labels."""
    found, moment = [], start
    for _ in range(count):
        moment = next_fire(expr, moment, tz)  # type: ignore[assignment]
        found.append(period_label(moment, tz))
    return found


# -- parsing -------------------------------------------------------------------------------


def test_fields_lists_ranges_steps_and_names() -> None:
    cron = parse_cron("*/15 9-17/4 1,15 JAN-mar mon-fri")
    assert cron.minutes == (0, 15, 30, 45)
    assert cron.hours == (9, 13, 17)
    assert cron.days == {1, 15} and cron.months == {1, 2, 3}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("0 0 * * 7").weekdays == parse_cron("0 0 * * 0").weekdays == {0}
    assert parse_cron("0 0 * * sun").weekdays == {0}
    assert parse_cron("0 0 * * 5-7").weekdays == {5, 6, 0}
    assert parse_cron("  0   8 * *   mon ").text == "0 8 * * mon"


def test_macros_stand_for_their_five_fields() -> None:
    assert parse_cron("@daily").minutes == (0,) and parse_cron("@daily").hours == (0,)
    weekly = parse_cron("@weekly")
    assert weekly.weekdays == {0} and weekly.hours == (0,)
    assert parse_cron("@monthly").days == {1} and parse_cron("@yearly").months == {1}
    assert parse_cron("@hourly").hours == tuple(range(24))


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty"),
        ("0 8 * *", "has 4 fields; a cron expression has 5"),
        ("0 8 * * * *", "has 6 fields"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 8 * * funday", "day-of-week 'funday' is not a number or a name (sun, mon"),
        ("0 8 * foo *", "month 'foo' is not a number or a name (jan"),
        ("mon 8 * * *", "minute 'mon' is not a number"),
        ("*/0 * * * *", "minute step '0' in '*/0' is not a whole number above 0"),
        ("*/x * * * *", "minute step 'x'"),
        ("5-1 * * * *", "minute range '5-1' runs backwards"),
        ("0 8 * * fri-mon", "day-of-week range 'fri-mon' runs backwards"),
        ("5/10 * * * *", "needs a range: write */10 or a-b/10"),
        ("1,,2 * * * *", "minute '1,,2' has an empty item"),
        ("-1 * * * *", "minute '' is not a number"),
        ("0 0 ? * *", "day-of-month '?' is not a number"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("@reboot", "'@reboot' is not a known macro"),
    ],
)
def test_invalid_expressions_say_which_part_and_why(expr: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    assert message in str(caught.value)


def test_impossible_looking_dates_that_do_exist_are_accepted() -> None:
    parse_cron("0 0 29 2 *")  # leap years
    parse_cron("0 0 31 * *")  # months with 31 days
    parse_cron("0 0 30 2 mon")  # day fields are OR'ed: every Monday of February


# -- fire times ----------------------------------------------------------------------------


def test_every_quarter_hour_and_plain_weekly_times() -> None:
    start = utc(2026, 11, 25, 9, 7)
    assert fires("*/15 * * * *", start, "UTC", 4) == [
        "2026-11-25T0915",
        "2026-11-25T0930",
        "2026-11-25T0945",
        "2026-11-25T1000",
    ]
    assert fires("0 8 * * mon", start, BERLIN, 2) == ["2026-11-30T0800", "2026-12-07T0800"]
    assert next_fire("0 8 * * mon", utc(2026, 11, 30, 7), BERLIN) == utc(2026, 12, 7, 7)
    assert previous_fire("0 8 * * mon", utc(2026, 11, 30, 7), BERLIN) == utc(2026, 11, 30, 7)
    assert previous_fire("0 17 * * fri", utc(2026, 11, 30, 8), BERLIN) == utc(2026, 11, 27, 16)


def test_february_29_waits_for_a_leap_year() -> None:
    assert fires("0 12 29 2 *", utc(2026, 1, 1), "UTC", 2) == [
        "2028-02-29T1200",
        "2032-02-29T1200",
    ]
    assert next_fire("0 12 29 2 *", utc(2097, 1, 1), "UTC") == utc(2104, 2, 29, 12)  # 2100: none
    assert previous_fire("0 12 29 2 *", utc(2027, 6, 1), "UTC") == utc(2024, 2, 29, 12)


def test_both_day_fields_given_means_either_one_but_a_star_means_both() -> None:
    # the 1st of the month or any Monday (Vixie cron)
    assert fires("0 9 1 * mon", utc(2026, 11, 25), "UTC", 3) == [
        "2026-11-30T0900",
        "2026-12-01T0900",
        "2026-12-07T0900",
    ]
    # a day-of-month field starting with '*' is unrestricted: Mondays on odd days only
    assert fires("0 9 */2 * mon", utc(2026, 11, 25), "UTC", 2) == [
        "2026-12-07T0900",
        "2026-12-21T0900",
    ]


def test_spring_forward_fires_once_at_the_first_valid_time_after_the_gap() -> None:
    # Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 02:30 does not exist that night
    assert fires("30 2 * * *", utc(2026, 3, 27, 12), BERLIN, 3) == [
        "2026-03-28T0230",
        "2026-03-29T0300",
        "2026-03-30T0230",
    ]
    assert next_fire("30 2 * * *", utc(2026, 3, 28, 12), BERLIN) == utc(2026, 3, 29, 1)
    # New York: 2026-03-08 02:00 EST -> 03:00 EDT
    assert next_fire("30 2 * * *", utc(2026, 3, 7, 12), NEW_YORK) == utc(2026, 3, 8, 7)
    assert fires("30 2 * * *", utc(2026, 3, 7, 12), NEW_YORK, 2) == [
        "2026-03-08T0300",
        "2026-03-09T0230",
    ]


def test_several_skipped_times_and_the_time_after_the_gap_fire_once_together() -> None:
    assert fires("*/20 2,3 29 3 *", utc(2026, 3, 28), BERLIN, 3) == [
        "2026-03-29T0300",  # 02:00, 02:20, 02:40 and 03:00 are one instant
        "2026-03-29T0320",
        "2026-03-29T0340",
    ]
    minutes = fires("* * * * *", utc(2026, 3, 29, 0, 58), BERLIN, 3)
    assert minutes == ["2026-03-29T0159", "2026-03-29T0300", "2026-03-29T0301"]


def test_fall_back_fires_a_repeated_time_once_the_first_time_round() -> None:
    # New York: 2026-11-01 02:00 EDT -> 01:00 EST; 01:30 happens twice
    first = next_fire("30 1 * * *", utc(2026, 10, 31, 12), NEW_YORK)
    assert first == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert next_fire("30 1 * * *", first, NEW_YORK) == utc(2026, 11, 2, 6, 30)  # not 06:30 today
    second_pass = utc(2026, 11, 1, 6, 10)  # 01:10 EST, after the first 01:30
    assert previous_fire("30 1 * * *", second_pass, NEW_YORK) == first
    assert next_fire("30 1 * * *", second_pass, NEW_YORK) == utc(2026, 11, 2, 6, 30)
    # Berlin: 2026-10-25 03:00 CEST -> 02:00 CET; 02:30 happens twice
    assert fires("30 2 * * *", utc(2026, 10, 24, 12), BERLIN, 2) == [
        "2026-10-25T0230",
        "2026-10-26T0230",
    ]
    assert next_fire("30 2 * * *", utc(2026, 10, 24, 12), BERLIN) == utc(2026, 10, 25, 0, 30)


def test_an_hourly_job_skips_the_repeated_hour_instead_of_running_twice() -> None:
    assert fires("0 * * * *", utc(2026, 11, 1, 4, 30), NEW_YORK, 3) == [
        "2026-11-01T0100",
        "2026-11-01T0200",  # 01:00 EST is the same wall time: not again
        "2026-11-01T0300",
    ]


def test_fire_instant_of_times_that_exist_twice_or_never() -> None:
    assert fire_instant(datetime(2026, 11, 1, 1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)
    assert fire_instant(datetime(2026, 3, 8, 2, 30), NEW_YORK) == utc(2026, 3, 8, 7)
    assert fire_instant(datetime(2026, 6, 1, 12, 0), BERLIN) == utc(2026, 6, 1, 10)


@pytest.mark.parametrize("tz", ["UTC", BERLIN, NEW_YORK, "Australia/Lord_Howe"])
def test_previous_and_next_agree_around_many_moments(tz: str) -> None:
    chooser = random.Random(f"schedule-{tz}")
    expressions = ["*/15 * * * *", "30 2 * * *", "0 8 * * mon", "0 17 * * fri", "30 1 1,15 * *"]
    for _ in range(120):
        now = utc(2026, 1, 1) + timedelta(minutes=chooser.randrange(0, 2 * 366 * 24 * 60))
        expr = chooser.choice(expressions)
        before, after = previous_fire(expr, now, tz), next_fire(expr, now, tz)
        assert before is not None and after is not None
        assert before <= now < after
        assert next_fire(expr, before, tz) == after  # nothing fires in between
        assert label_instant(period_label(after, tz), tz) == after


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire("0 8 * * *", datetime(2026, 11, 25, 8), "UTC")


# -- Schedule.md -----------------------------------------------------------------------------


def block(text: str) -> str:
    return f"# Schedule\n\n```yaml schedule\n{text}```\n"


JOB = "version: 1\njobs:\n  - name: weekly_audit\n    cron: '0 17 * * fri'\n"


def test_the_template_writes_out_exactly_the_defaults() -> None:
    template = (TEMPLATE / "Schedule.md").read_text()
    assert DEFAULT_BLOCK in template
    assert parse_schedule(template) == default_schedule()
    names = [(job.name, job.cron, job.action) for job in default_schedule().jobs]
    assert names == [
        ("ceo_briefing", "0 8 * * mon", "task"),
        ("weekly_audit", "0 17 * * fri", "task"),
        ("dashboard", "0 7 * * *", "dashboard"),
    ]


def test_a_missing_note_means_the_defaults(tmp_path: Path) -> None:
    assert load_schedule(tmp_path) == (default_schedule(), "defaults")
    (tmp_path / "Schedule.md").write_text(block(JOB + "    action: dashboard\n"))
    schedule, source = load_schedule(tmp_path)
    assert source == "Schedule.md" and [job.name for job in schedule.jobs] == ["weekly_audit"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "    action: dashboard\n    colour: red\n",
            "job 'weekly_audit' (number 1): unknown setting 'colour'",
        ),
        ("    action: task\n    type: audit\n", "job 'weekly_audit' (number 1): title is missing"),
        ("    action: mail\n", "job 'weekly_audit' (number 1): action 'mail' is unknown"),
        ("", "job 'weekly_audit' (number 1): action is missing"),
        (
            "    action: task\n    type: email\n    title: t\n    instructions: i\n",
            "type: 'email' is used by other tasks",
        ),
        ("    action: dashboard\n    enabled: 'no'\n", "enabled: Input should be a valid boolean"),
    ],
)
def test_a_bad_job_names_the_job_and_the_field(extra: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(block(JOB + extra))
    assert message in str(caught.value)
    assert "no scheduled job runs until the schedule is valid" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            JOB.replace("0 17 * * fri", "0 17 * *") + "    action: dashboard\n",
            "cron: '0 17 * *' has 4",
        ),
        (JOB.replace("'0 17 * * fri'", "*/5 * * * *") + "    action: dashboard\n", "in quotes"),
        (JOB.replace("'0 17 * * fri'", "5") + "    action: dashboard\n", "cron must be text"),
        (
            JOB.replace("weekly_audit", "Weekly Audit") + "    action: dashboard\n",
            "name 'Weekly Audit' is not allowed",
        ),
        ("version: 1\njobs: []\nextra: 1\n", "the schedule: unknown setting 'extra'"),
        ("version: 2\njobs: []\n", "version"),
        ("- 1\n", "not a mapping"),
    ],
)
def test_bad_schedules_say_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(block(text))
    assert "Schedule.md" in str(caught.value) and message in str(caught.value)


def test_duplicate_names_and_block_counts_are_refused() -> None:
    job = "  - name: daily\n    cron: '@daily'\n    action: dashboard\n"
    with pytest.raises(ScheduleError, match="daily appears twice"):
        parse_schedule(block(f"version: 1\njobs:\n{job}{job}"))
    with pytest.raises(ScheduleError, match="has no ```yaml schedule``` block"):
        parse_schedule("# Schedule\n\nnothing here\n")
    with pytest.raises(ScheduleError, match="has 2 ```yaml schedule``` block"):
        parse_schedule(block("version: 1\njobs: []\n") * 2)
    empty = parse_schedule(block("version: 1\njobs: []\n"))
    assert empty.jobs == []


def test_a_task_job_keeps_its_fields() -> None:
    text = "    action: task\n    type: audit\n    title: Audit\n    instructions: Do it.\n"
    (job,) = parse_schedule(block(JOB + text + "    priority: high\n")).jobs
    assert isinstance(job, TaskJob) and job.priority == "high" and job.enabled
