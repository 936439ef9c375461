"""Cron expressions and their fire times, wall-clock in an IANA time zone.

Five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec) and day
of week (0-7 or sun-sat; 0 and 7 are both Sunday). A field is ``*``, a value, a range ``a-b``,
a step ``*/n`` or ``a-b/n``, or a comma list of those. ``@hourly``, ``@daily`` (``@midnight``),
``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``) stand for the usual five fields.
As in Vixie cron, when both day fields are restricted (neither starts with ``*``) a day
matches if either matches; otherwise both must.

Times are wall-clock times in the zone, and each fires at most once:

- a time skipped when clocks spring forward fires once, at the first valid time after the gap
  (a 02:30 job fires at 03:00 in Europe/Berlin on the last Sunday of March); several skipped
  times of one job, or a skipped time and the time right after the gap, fire once together;
- a time that happens twice when clocks fall back fires once, at its first occurrence.

Every fire time is an aware UTC datetime; :func:`period_label` names it in local time.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES = (
    {},
    {},
    {},
    {name: number for number, name in enumerate(_MONTHS, start=1)},
    {name: number for number, name in enumerate(_DAYS)},
)
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
HORIZON_DAYS = 366 * 9  # Feb 29 can be eight years away (2096 -> 2104)
LABEL_FORMAT = "%Y-%m-%dT%H%M"
SYNTAX = "minute hour day-of-month month day-of-week, for example '0 8 * * mon'"


class CronError(ValueError):
    """A cron expression that cannot be read; the message says which part and why."""


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the allowed values of each field."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # the day-of-month field starts with '*'
    any_weekday: bool  # the day-of-week field starts with '*'

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays


def _number(raw: str, field: int) -> int:
    name = FIELDS[field]
    low, high = _BOUNDS[field]
    value = _NAMES[field].get(raw.lower())
    if value is None:
        if not raw.isdigit():
            raise CronError(f"{name} {raw!r} is not a number" + _names_hint(field))
        value = int(raw)
    if not low <= value <= high:
        raise CronError(f"{name} {value} is out of range {low}-{high}")
    return value


def _names_hint(field: int) -> str:
    names = _NAMES[field]
    return f" or a name ({', '.join(names)})" if names else ""


def _item(raw: str, field: int) -> set[int]:
    name = FIELDS[field]
    low, high = _BOUNDS[field]
    base, slash, step_text = raw.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{name} step {step_text!r} in {raw!r} is not a whole number above 0")
        step = int(step_text)
    if base == "*":
        first, last = low, high
    elif "-" in base:
        start, _, end = base.partition("-")
        first, last = _number(start, field), _number(end, field)
        if first > last:
            raise CronError(f"{name} range {raw!r} runs backwards; write it as a list instead")
    elif slash:
        raise CronError(f"{name} step {raw!r} needs a range: write */{step} or a-b/{step}")
    else:
        first = last = _number(base, field)
    return set(range(first, last + 1, step))


def _field(raw: str, field: int) -> frozenset[int]:
    values: set[int] = set()
    for item in raw.split(","):
        if not item:
            raise CronError(f"{FIELDS[field]} {raw!r} has an empty item")
        values |= _item(item, field)
    if field == 4 and 7 in values:  # 7 is Sunday too
        values = (values - {7}) | {0}
    return frozenset(values)


def parse_cron(text: str) -> Cron:
    """Read a five-field expression (or an @macro); CronError names the part that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise CronError(f"the cron expression is empty; write five fields: {SYNTAX}")
    spec = _MACROS.get(text.strip().lower(), text)
    if spec.strip().startswith("@"):
        raise CronError(f"{text.strip()!r} is not a known macro; use one of {', '.join(_MACROS)}")
    parts = spec.split()
    if len(parts) != 5:
        found = f"{text.strip()!r} has {len(parts)} fields"
        raise CronError(f"{found}; a cron expression has 5: {SYNTAX}")
    values = [_field(raw, field) for field, raw in enumerate(parts)]
    cron = Cron(
        text=" ".join(text.split()),
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=values[2],
        months=values[3],
        weekdays=values[4],
        any_day=parts[2].startswith("*"),
        any_weekday=parts[4].startswith("*"),
    )
    _check_possible(cron)
    return cron


def _check_possible(cron: Cron) -> None:
    """Refuse a date that never exists (day 30 of February, day 31 of a 30-day month)."""
    if cron.any_weekday and not cron.any_day:  # both must match: the day must exist
        longest = max(calendar.monthrange(2024, month)[1] for month in cron.months)  # leap year
        if min(cron.days) > longest:
            raise CronError(f"{cron.text!r} never fires: no month it names has that many days")


def _cron(expr: str | Cron) -> Cron:
    return expr if isinstance(expr, Cron) else parse_cron(expr)


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    """The local wall-clock time of an aware datetime, naive, to the minute."""
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime (with a time zone)")
    return moment.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)


def fire_instant(wall: datetime, tz: str | ZoneInfo) -> datetime:
    """When a scheduled wall-clock time fires (UTC): its first occurrence if it happens twice,
    the end of the gap if it does not happen at all."""
    zone = _zone(tz)
    moment = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if moment.astimezone(zone).replace(tzinfo=None) == wall:
        return moment
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant clocks jumped over ``wall`` (the first valid time after the gap)."""
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())  # offset after the jump: earlier
    high = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    after = datetime.fromtimestamp(high, UTC).astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _days(start: date, step: int) -> Iterator[date]:
    for offset in range(HORIZON_DAYS):
        yield start + timedelta(days=offset * step)


def _walls(cron: Cron, start: date, *, forward: bool) -> Iterator[datetime]:
    """Matching wall-clock times, day by day from ``start``, ascending or descending."""
    hours = cron.hours if forward else cron.hours[::-1]
    minutes = cron.minutes if forward else cron.minutes[::-1]
    for day in _days(start, 1 if forward else -1):
        if cron.matches_day(day):
            for hour in hours:
                for minute in minutes:
                    yield datetime(day.year, day.month, day.day, hour, minute)


def next_fire(expr: str | Cron, after: datetime, tz: str | ZoneInfo) -> datetime | None:
    """The first fire time strictly after ``after`` (UTC), or None within nine years."""
    cron, zone = _cron(expr), _zone(tz)
    start = _wall(after, zone).date() - timedelta(days=1)
    for wall in _walls(cron, start, forward=True):
        moment = fire_instant(wall, zone)
        if moment > after:  # fire instants never decrease as wall times increase
            return moment
    return None


def previous_fire(expr: str | Cron, now: datetime, tz: str | ZoneInfo) -> datetime | None:
    """The last fire time at or before ``now`` (UTC), or None within nine years."""
    cron, zone = _cron(expr), _zone(tz)
    start = _wall(now, zone).date() + timedelta(days=1)  # a repeated hour runs behind its wall
    for wall in _walls(cron, start, forward=False):
        moment = fire_instant(wall, zone)
        if moment <= now:
            return moment
    return None


def period_label(moment: datetime, tz: str | ZoneInfo) -> str:
    """A fire time as local wall-clock text, ``2026-11-30T0800``: unique per job, since a
    repeated hour fires only its first time."""
    return moment.astimezone(_zone(tz)).strftime(LABEL_FORMAT)


def label_instant(label: str, tz: str | ZoneInfo) -> datetime:
    """The fire time a :func:`period_label` names (ValueError if it is not one)."""
    return fire_instant(datetime.strptime(label, LABEL_FORMAT), tz)
