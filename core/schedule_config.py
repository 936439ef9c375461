"""The CEO's schedule: one ```yaml schedule``` block in ``Schedule.md``, read strictly.

Without ``Schedule.md`` the defaults below apply (the same block ``vault_template/Schedule.md``
writes out). A file that exists but cannot be read, has no block or more than one, has an
unknown key, or a job with a bad field is a :class:`ScheduleError` naming the job and the field;
then no job runs until it is fixed, because running the defaults could do what the CEO turned off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core import tasks
from core.errors import ConfigError, TaskFileError, VaultError
from core.note_blocks import yaml_block
from core.paths import confine
from core.schedule import parse_cron

SCHEDULE_NOTE = "Schedule.md"
JOB_NAME = r"^[a-z][a-z0-9_]{0,39}$"
TASK_TYPE = r"^[a-z][a-z0-9_]{0,31}$"
# Types other code reads a meaning into; a scheduled task must not pass for one of them.
RESERVED_TYPES = frozenset({"approval_request", "email", "file_drop", "plan", "draft"})
FIX = "fix it in Schedule.md; no scheduled job runs until the schedule is valid"

DEFAULT_BLOCK = """\
version: 1
jobs:
  - name: ceo_briefing
    cron: "0 8 * * mon"          # Mondays at 08:00
    action: task
    type: briefing
    title: Monday CEO briefing
    instructions: >-
      Run the ceo-briefing skill for the date this task was scheduled for (its period):
      it makes the data pass with `ai-employee briefing` and adds a short narrative for
      the CEO. Then complete this task.
  - name: weekly_audit
    cron: "0 17 * * fri"         # Fridays at 17:00
    action: task
    type: audit
    title: Weekly audit
    instructions: >-
      Run the accounting-audit skill for the last 7 days: it checks the audit trail,
      reviews the outside actions and the work finished, and writes its findings as a
      plan in Plans/. Anything that needs money to move becomes an approval request,
      never a payment. Then complete this task.
  - name: dashboard
    cron: "0 7 * * *"            # every day at 07:00
    action: dashboard
"""


class ScheduleError(ConfigError):
    """Schedule.md cannot be used; nothing scheduled runs until it is fixed."""


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(pattern=JOB_NAME)
    cron: str
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _readable(cls, value: str) -> str:
        return parse_cron(value).text  # CronError is a ValueError: pydantic reports it


class TaskJob(_Job):
    """Creates ``Needs_Action/TASK_<name>_<period>.md`` for Claude Code to work on."""

    action: Literal["task"]
    type: str = Field(pattern=TASK_TYPE)
    title: str = Field(min_length=1, max_length=200)
    instructions: str = Field(min_length=1, max_length=5000)
    priority: Literal["low", "normal", "high"] = "normal"

    @field_validator("type")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_TYPES:
            raise ValueError(f"{value!r} is used by other tasks; choose another type")
        return value

    @field_validator("title")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ord(char) < 32 for char in value):
            raise ValueError("the title must be one line")
        return value


class DashboardJob(_Job):
    """Rewrites Dashboard.md (local zone only: it has one writer)."""

    action: Literal["dashboard"]


Job = Annotated[TaskJob | DashboardJob, Field(discriminator="action")]


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[1]
    jobs: list[Job]

    @model_validator(mode="after")
    def _unique_names(self) -> Schedule:
        names = [job.name for job in self.jobs]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"job names must be unique; {', '.join(twice)} appears twice")
        return self


def parse_schedule(text: str, source: str = SCHEDULE_NOTE) -> Schedule:
    """The schedule block of a note's text; ScheduleError naming the job and field if bad."""
    raw = yaml_block(
        text,
        "schedule",
        source,
        ScheduleError,
        restore="restore the block from vault_template/Schedule.md, or delete the note to use "
        "the defaults",
        fix_yaml='fix the YAML there; write cron expressions in quotes, like cron: "*/15 * * * *"',
        fix_shape=FIX,
    )
    try:
        return Schedule.model_validate(raw)
    except ValidationError as exc:
        raise ScheduleError(_describe(exc, raw, source), FIX) from None


def _describe(exc: ValidationError, raw: Any, source: str) -> str:
    """The problems (at most three), each naming the job (by name and position) and field."""
    problems = [_problem(error, raw) for error in exc.errors()]
    more = len(problems) - 3
    tail = f"; and {more} more" if more > 0 else ""
    return f"{source}: {'; '.join(problems[:3])}{tail}"


def _problem(error: Any, raw: Any) -> str:
    loc = list(error["loc"])
    where = "the schedule"
    if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int):
        where = _job_label(raw, loc[1])
        loc = [part for part in loc[2:] if part not in ("task", "dashboard")]
    return f"{where}: {_message(error, '.'.join(str(part) for part in loc))}"


def _job_label(raw: Any, index: int) -> str:
    jobs = raw.get("jobs") if isinstance(raw, dict) else None
    item = jobs[index] if isinstance(jobs, list) and index < len(jobs) else None
    name = item.get("name") if isinstance(item, dict) else None
    named = f"{name!r} " if isinstance(name, str) else ""
    return f"job {named}(number {index + 1})"


_PATTERNS = {
    "name": "use lower-case letters, digits and _, starting with a letter (at most 40)",
    "type": "use lower-case letters, digits and _, starting with a letter (at most 32)",
}


def _message(error: Any, field: str) -> str:
    kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"unknown setting {field!r}"
    if kind == "missing":
        return f"{field} is missing"
    if kind == "union_tag_not_found":
        return "action is missing; use action: task or action: dashboard"
    if kind == "union_tag_invalid":
        return f"action {error['input'].get('action')!r} is unknown; use task or dashboard"
    if kind == "string_pattern_mismatch" and field in _PATTERNS:
        return f"{field} {error['input']!r} is not allowed: {_PATTERNS[field]}"
    if kind == "string_type":
        return f"{field} must be text (put a cron expression in quotes)"
    return f"{field}: {message}" if field else message


def default_schedule() -> Schedule:
    return parse_schedule(f"```yaml schedule\n{DEFAULT_BLOCK}```\n", "the default schedule")


def load_schedule(vault_root: Path) -> tuple[Schedule, str]:
    """The vault's schedule and where it came from (``Schedule.md`` or ``defaults``)."""
    try:
        path = confine(vault_root, SCHEDULE_NOTE, must_exist=False)
        data = tasks.read_bytes_safely(path)
    except FileNotFoundError:
        return default_schedule(), "defaults"
    except (VaultError, TaskFileError) as exc:
        raise ScheduleError(f"{SCHEDULE_NOTE} cannot be read ({exc})", FIX) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScheduleError(f"{SCHEDULE_NOTE} is not UTF-8 text", FIX) from None
    return parse_schedule(text), SCHEDULE_NOTE
