"""Fires the CEO's schedule: ``ai-employee run scheduler [--once] [--interval S]``.

A thin loop around :class:`core.schedule_runs.Scheduler`: every ``interval`` seconds, each job
in ``Schedule.md`` (or the defaults: Monday 08:00 CEO briefing task, Friday 17:00 weekly audit
task, daily 07:00 dashboard refresh) whose latest period is due fires exactly once, in the
time zone ``TZ``. A run missed while the scheduler was stopped happens once at the next pass
(the most recent missed period of each job only). A bad ``Schedule.md`` stops every job until
it is fixed; the loop keeps checking (with ``--once`` it is an error exit).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from core.config import Settings
from core.schedule_config import ScheduleError
from core.schedule_runs import ACTOR, Scheduler
from core.vault import open_vault
from daemons.loop import daemon_main, daemon_parser, run_loop, stop_on_signals

DEFAULT_INTERVAL = 30.0


def _announce(scheduler: Scheduler, settings: Settings) -> None:
    print(f"{ACTOR}: {scheduler.vault.root} ({settings.zone} zone, {settings.tz})", flush=True)
    try:
        source, upcoming = scheduler.upcoming()
    except ScheduleError:
        return  # the first pass says what is wrong
    print(f"{ACTOR}: {len(upcoming)} job(s) from {source}", flush=True)
    for name, period in upcoming:
        print(f"{ACTOR}: {name} next {period}", flush=True)


def run(settings: Settings, *, once: bool, interval: float = DEFAULT_INTERVAL) -> int:
    vault = open_vault(settings, actor=ACTOR)
    scheduler = Scheduler(vault, tz=settings.tz, zone=settings.zone, dry_run=settings.dry_run)
    stop = stop_on_signals(once)
    _announce(scheduler, settings)

    def one_pass() -> None:
        scheduler.run_pass()

    return run_loop(
        ACTOR, vault, one_pass, zone=settings.zone, once=once, interval=interval, stop=stop
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = daemon_parser(ACTOR, __doc__, DEFAULT_INTERVAL)
    return daemon_main(
        ACTOR,
        parser,
        lambda settings, args: run(settings, once=args.once, interval=max(args.interval, 1.0)),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
