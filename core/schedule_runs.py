"""Running the schedule: each job fires exactly once per period, across restarts and misses.

A pass, under one lock per vault, reads ``Schedule.md`` and for each enabled job takes the
most recent fire time at or before now. If the job's record in ``.state/scheduler.json`` has
not settled that time, the job fires once and the record moves to it. So a run missed while
nothing was running happens once when the scheduler next runs: only the most recent missed
period of each job, never a backlog.

- A ``task`` job creates ``Needs_Action/TASK_<job>_<period>.md`` (the period in local time,
  ``2026-11-30T0800``) unless a file of that name is in any folder of a task's life. The file's
  content depends only on the job and the period, so both zones would write the same bytes.
  The record is written after the file exists: a crash in between finds the name and settles.
- A ``dashboard`` job rewrites ``Dashboard.md`` in the local zone; the cloud zone, which never
  writes it, lets the period pass.
- A job with no record (first start, a new job, lost or unreadable state) starts from its
  newest ``TASK_<job>_*`` file in the vault, or else from now: it never fires for a period
  before it was first seen. The vault's names are the truth; a task the CEO deleted may come
  back once only if the state file is lost too. A name for a period later than now plus
  ``CLOCK_SLACK`` cannot have been made by a right clock and is not believed.
- A record later than now plus ``CLOCK_SLACK`` (a pass once ran with a clock set years ahead)
  would hold its job back until that time: it is dropped and rebuilt as above, with an audit
  entry, a line and one ``Signals/health_scheduler_*.json`` saying so.
- A disabled job lets its periods pass; enabled again, it starts with its next period.
- A bad ``Schedule.md`` stops every job until it is fixed: the pass fails with the problem,
  and one ``Signals/health_scheduler_*.json`` says so (another when it works again).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.dashboard import update_dashboard
from core.email_tasks import TASK_FOLDERS
from core.errors import AIEmployeeError, TargetExistsError
from core.fsutil import atomic_create, atomic_write, locked
from core.schedule import label_instant, next_fire, period_label, previous_fire
from core.schedule_config import (
    SCHEDULE_NOTE,
    DashboardJob,
    Job,
    Schedule,
    ScheduleError,
    TaskJob,
    load_schedule,
)
from core.tasks import TaskMeta, iso_utc, parse_utc, utc_now
from core.vault import Vault

STATE_FILE = "scheduler.json"
LOCK_FILE = "locks/scheduler.lock"
ACTOR = "scheduler"
_TASK = re.compile(r"^TASK_(?P<job>[a-z][a-z0-9_]*)_(?P<period>\d{4}-\d\d-\d\dT\d{4})\.md$")
LATE = timedelta(minutes=5)  # a fire later than this after its time is said to be a missed run
# How far ahead of this clock a record or a task's period may be and still be believed: another
# zone's clock may run a little ahead; anything later came from a wrong clock.
CLOCK_SLACK = timedelta(days=1)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class JobFailedError(AIEmployeeError):
    """A job could not fire; it is tried again at the next pass."""


@dataclass(frozen=True)
class Fired:
    """What one job did in a pass."""

    job: str
    period: str
    outcome: str  # created | exists | refreshed | skipped
    target: str
    due: datetime


def task_file_name(job: str, period: str) -> str:
    return f"TASK_{job}_{period}.md"


class Scheduler:
    """One vault's schedule; :meth:`run_pass` is one pass at an injectable ``now``."""

    def __init__(
        self,
        vault: Vault,
        *,
        tz: str,
        zone: str,
        dry_run: bool = True,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.vault, self.tz, self.zone, self.dry_run = vault, tz, zone, dry_run
        self.say = say or (lambda line: print(f"{ACTOR}: {line}", flush=True))

    # -- state -----------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.vault.state_dir / STATE_FILE

    def read_state(self) -> dict[str, Any]:
        """The saved state; a fresh one (records rebuilt from the vault) if missing or torn."""
        try:
            data = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return {"jobs": {}}
        except (OSError, ValueError):
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("jobs"), dict)):
            self.say(f".state/{STATE_FILE} is unreadable; rebuilding it from the vault's tasks")
            self.vault.record(ACTOR, "state_rebuilt", f".state/{STATE_FILE}", status="error")
            data = {"jobs": {}}
            self._write_state(data)
        return data

    def _write_state(self, state: dict[str, Any]) -> None:
        self.vault.state_dir.mkdir(mode=0o700, exist_ok=True)
        data = json.dumps(state, indent=1, sort_keys=True).encode()
        atomic_write(self.state_path, data, mode=0o600)

    def _settled(self, state: dict[str, Any], job: Job, now: datetime) -> datetime:
        record = state["jobs"].get(job.name)
        settled = parse_utc(record.get("settled")) if isinstance(record, dict) else None
        if settled is None:
            newest = self._newest_task(job.name, now)
            settled = newest or now
            self._settle(
                state, job.name, settled, period_label(newest, self.tz) if newest else None
            )
        return settled

    def _settle(
        self, state: dict[str, Any], name: str, moment: datetime, period: str | None = None
    ) -> None:
        """Record that every period of ``name`` up to ``moment`` is done (``period`` fired)."""
        record = {"settled": iso_utc(moment), **({"period": period} if period else {})}
        state["jobs"][name] = record
        self._write_state(state)

    def _newest_task(self, job: str, now: datetime) -> datetime | None:
        """The newest period with a ``TASK_<job>_<period>.md`` anywhere in a task's life, not
        counting periods later than ``now`` plus ``CLOCK_SLACK`` (made by a wrong clock)."""
        newest = None
        for folder in TASK_FOLDERS:
            for entry in self.vault.list_tasks(folder, prefix=f"TASK_{job}_", limit=None):
                match = _TASK.match(entry.name)
                if not match or match["job"] != job:
                    continue
                try:
                    moment = label_instant(match["period"], self.tz)
                except ValueError:  # a name that only looks like ours (2026-02-30T2500)
                    continue
                if moment > now + CLOCK_SLACK:
                    continue
                newest = moment if newest is None else max(newest, moment)
        return newest

    # -- one pass --------------------------------------------------------------------------
    def run_pass(self, now: datetime | None = None) -> list[Fired]:
        """Fire every job whose latest period is due and unsettled; what each one did."""
        now = now or utc_now()
        self.vault.state_dir.mkdir(mode=0o700, exist_ok=True)
        with locked(self.vault.state_dir / LOCK_FILE):
            state = self.read_state()
            self._forget_future(state, now)
            schedule = self._schedule(state)
            fired, failed = [], []
            for job in schedule.jobs:
                try:
                    result = self._run_job(job, state, now)
                except (AIEmployeeError, OSError) as exc:
                    failed.append(f"job {job.name!r}: {exc}")
                    continue
                if result is not None:
                    fired.append(result)
        if failed:
            raise JobFailedError("; ".join(failed), "it is tried again at the next pass")
        return fired

    def _forget_future(self, state: dict[str, Any], now: datetime) -> None:
        """Drop every record settled later than ``now`` plus ``CLOCK_SLACK`` (written by a pass
        whose clock was wrong), so that its job is rebuilt from the vault; say so once."""
        future = {}
        for name, record in state["jobs"].items():
            settled = parse_utc(record.get("settled")) if isinstance(record, dict) else None
            if settled is not None and settled > now + CLOCK_SLACK:
                future[name] = iso_utc(settled)
        if not future:
            return
        for name in future:
            del state["jobs"][name]
        self._write_state(state)
        listed = ", ".join(f"{name} ({moment})" for name, moment in sorted(future.items()))
        reason = (
            f"{len(future)} job(s) were recorded as done until a time later than now "
            f"({iso_utc(now)}): {listed}; a pass must have run with a wrong clock"
        )
        step = (
            "check the machine's clock; each job starts again from its newest task in the "
            "vault (or from now), and a task made for a future period can be deleted"
        )
        target = self._signal({"status": "clock_reset", "reason": reason, "next_step": step})
        for name, moment in sorted(future.items()):
            self.vault.record(
                ACTOR,
                "clock_reset",
                f".state/{STATE_FILE}",
                status="error",
                job=name,
                settled=moment,
                now=iso_utc(now),
                alert=target,
            )
        self.say(f"{reason}; the records were reset (alert: {target})")

    def _schedule(self, state: dict[str, Any]) -> Schedule:
        try:
            schedule, _ = load_schedule(self.vault.root)
        except ScheduleError as exc:
            self._problem(state, exc)
            raise
        if state.get("problem"):
            self._signal({"status": "ok", "reason": f"{SCHEDULE_NOTE} is valid again"})
            state.pop("problem")
            self._write_state(state)
        return schedule

    def _problem(self, state: dict[str, Any], exc: ScheduleError) -> None:
        """Say a new problem once: a signal, an audit entry and a line."""
        if state.get("problem") == exc.what:
            return
        target = self._signal({"status": "stopped", "reason": exc.what, "next_step": exc.next_step})
        self.vault.record(ACTOR, "schedule_invalid", target, status="error", reason=exc.what)
        self.say(f"no job runs until {SCHEDULE_NOTE} is fixed (alert: {target})")
        state["problem"] = exc.what
        self._write_state(state)

    def _signal(self, data: dict[str, str]) -> str:
        folder = self.vault.folder("Signals")
        stamp = f"{utc_now():%Y%m%dT%H%M%S%fZ}"
        body = {"service": ACTOR, **data, "at": iso_utc()}
        for attempt in range(100):
            name = f"health_{ACTOR}_{stamp}{f'_{attempt}' if attempt else ''}.json"
            try:
                atomic_create(folder / name, json.dumps(body, indent=2).encode() + b"\n")
                return f"Signals/{name}"
            except FileExistsError:
                continue
        raise FileExistsError(f"too many scheduler signals at {stamp}")

    def _run_job(self, job: Job, state: dict[str, Any], now: datetime) -> Fired | None:
        settled = self._settled(state, job, now)
        due = previous_fire(job.cron, now, self.tz)
        if due is None or due <= settled:
            return None
        period = period_label(due, self.tz)
        if not job.enabled:
            self._settle(state, job.name, due)  # the period passes without firing
            return None
        if isinstance(job, TaskJob):
            outcome, target = self._task(job, due, period)
        else:
            outcome, target = self._dashboard(job)
        self._settle(state, job.name, due, period)  # after the file: a crash finds the name
        self.vault.record(ACTOR, "fire", target, job=job.name, period=period, outcome=outcome)
        late = " (missed while the scheduler was not running)" if now - due > LATE else ""
        self.say(f"{job.name} {period}: {outcome} {target}{late}")
        return Fired(job=job.name, period=period, outcome=outcome, target=target, due=due)

    # -- actions ---------------------------------------------------------------------------
    def _task(self, job: TaskJob, due: datetime, period: str) -> tuple[str, str]:
        name = task_file_name(job.name, period)
        for folder in TASK_FOLDERS:
            if (self.vault.folder(folder) / name).exists():
                return "exists", f"{folder}/{name}"
        try:
            self.vault.create(
                "Needs_Action", name, self._meta(job, due, period), self._body(job, due)
            )
        except TargetExistsError:  # another scheduler wrote it first
            return "exists", f"Needs_Action/{name}"
        return "created", f"Needs_Action/{name}"

    def _meta(self, job: TaskJob, due: datetime, period: str) -> TaskMeta:
        return TaskMeta.model_validate(
            {
                "id": task_file_name(job.name, period)[:-3],
                "type": job.type,
                "source": ACTOR,
                "created": due,  # the period's time, not the clock's: both zones write alike
                "status": "pending",
                "priority": job.priority,
                "title": job.title,
                "job": job.name,
                "period": period,
                "date": period[:10],  # the local day it was scheduled for
                "schedule": job.cron,
                "timezone": self.tz,
            }
        )

    def _body(self, job: TaskJob, due: datetime) -> str:
        local = due.astimezone(ZoneInfo(self.tz))
        when = f"{_WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M} ({self.tz})"
        note = f"Scheduled by `{job.name}` in {SCHEDULE_NOTE} (`{job.cron}`) for {when}."
        return f"# {job.title}\n\n{note}\n\n{job.instructions.strip()}\n"

    def _dashboard(self, job: DashboardJob) -> tuple[str, str]:
        if self.zone != "local":
            return "skipped", "Dashboard.md (the cloud zone never writes it)"
        update_dashboard(self.vault, zone=self.zone, dry_run=self.dry_run)
        return "refreshed", "Dashboard.md"

    def upcoming(self, now: datetime | None = None) -> tuple[str, list[tuple[str, str]]]:
        """Where the schedule comes from and each job's next period (``off`` if disabled),
        for the start-up lines; ScheduleError if it is invalid."""
        now = now or utc_now()
        schedule, source = load_schedule(self.vault.root)
        result = []
        for job in schedule.jobs:
            moment = next_fire(job.cron, now, self.tz) if job.enabled else None
            result.append((job.name, period_label(moment, self.tz) if moment else "off"))
        return source, result
