"""Files dropped into the vault's ``Inbox/`` become tasks: ``ai-employee run inbox_watcher``.

Each complete drop moves into ``Files/`` and gets ``Needs_Action/FILE_<stem>_<sha8>.md``
(see :mod:`core.file_intake`). watchdog (inotify on Linux) wakes the loop as soon as a file
arrives, is closed by its writer or is renamed into ``Inbox/``; a rescan every ``interval``
seconds catches any event that was missed, and a timer looks again when a file still settling
is due. Files already in ``Inbox/`` at start are taken at the first pass. ``--once`` is one
scan of ``Inbox/`` that waits (up to ``ONCE_WAIT`` seconds) for the files present to settle.
Either zone may run it, but only one machine per vault should (.state/ is not synced, so two
machines would each take a synced drop); the heartbeat is ``inbox_watcher``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from core.config import Settings
from core.file_drops import DEFAULT_QUIET, DEFAULT_SETTLE, shown_name
from core.file_intake import Intake
from core.vault import Vault, open_vault
from daemons.loop import daemon_main, daemon_parser, run_loop, stop_on_signals

ACTOR = "inbox_watcher"
DEFAULT_INTERVAL = 30.0
ONCE_WAIT = 30.0  # --once: how long to wait for files still being written
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]


def _not_the_stop_notice(record: logging.LogRecord) -> bool:
    """watchdog 7 logs an error when its inotify thread is stopped; that stop is ours."""
    return "called when the thread is inactive" not in record.getMessage()


def _no_move_pairing_delay() -> None:
    """watchdog holds every inotify event queued behind an unmatched IN_MOVED_FROM for half a
    second, waiting for the IN_MOVED_TO it may pair with. Each file this watcher moves out of
    Inbox/ would hold back the next drop's events that long. The watcher needs no pairing (it
    takes a rename's two halves one by one), so in this process there is no wait."""
    for module, name in (
        ("watchdog.observers.inotify_move_event_grouper", "InotifyMoveEventGrouper"),  # 7.x
        ("watchdog.observers.inotify_buffer", "InotifyBuffer"),  # 5.x, 6.x
    ):
        try:
            holder = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        holder.delay = 0.0
        return


def _observer() -> Any:
    """inotify with whole move events (a file renamed in is then told apart from a new one)."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux: the platform's own observer
        from watchdog.observers import Observer

        return Observer()
    _no_move_pairing_delay()
    return InotifyObserver(generate_full_events=True)


class _Events(FileSystemEventHandler):
    """Runs in watchdog's thread: notes closed or renamed-in files, and wakes the loop."""

    def __init__(self, inbox: Path, intake: Intake, wake: threading.Event) -> None:
        self.inbox, self.intake, self.wake = str(inbox), intake, wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileClosedEvent | FileMovedEvent):
            moved = isinstance(event, FileMovedEvent)
            path = os.fsdecode(event.dest_path if moved else event.src_path)
            if path and os.path.dirname(path) == self.inbox:
                self.intake.closed(os.path.basename(path))
        self.wake.set()


class InboxWatcher:
    """One vault's Inbox/: :meth:`one_pass` for the loop, :meth:`drain` for ``--once``."""

    def __init__(
        self,
        vault: Vault,
        *,
        settle: float = DEFAULT_SETTLE,
        quiet: float = DEFAULT_QUIET,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.vault = vault
        self.say = say or (lambda line: print(f"{ACTOR}: {line}", flush=True))
        self.intake = Intake(vault, settle=settle, quiet=quiet, say=self.say)
        self.wake = threading.Event()
        self._timer: threading.Timer | None = None
        self._observer: Any = None

    def _inbox(self) -> Path:
        if not os.path.lexists(self.vault.root / "Files"):  # a vault made before Files/
            (self.vault.root / "Files").mkdir()
            self.say("created Files/, where dropped files are kept")
        return self.vault.folder("Inbox")

    # -- watching ------------------------------------------------------------------------
    def start_watching(self) -> bool:
        """Start watchdog on Inbox/; False (and rescans only) if the system refuses."""
        inbox = self._inbox()
        logging.getLogger("watchdog.observers.inotify").addFilter(_not_the_stop_notice)
        observer = _observer()
        try:
            observer.schedule(
                _Events(inbox, self.intake, self.wake), str(inbox), event_filter=_EVENTS
            )
            observer.start()
        except OSError as exc:  # e.g. the inotify watch limit
            self.say(f"cannot watch Inbox/ for changes ({exc}); rescanning at each interval")
            return False
        self._observer = observer
        return True

    def stop_watching(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None

    # -- passes --------------------------------------------------------------------------
    def one_pass(self) -> None:
        """Take what is complete; look again when the first file still settling is due."""
        self._inbox()
        due = self.intake.scan().next_look
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if due is not None:
            self._timer = threading.Timer(due + 0.005, self.wake.set)
            self._timer.daemon = True
            self._timer.start()

    def drain(self, limit: float = ONCE_WAIT) -> None:
        """``--once``: take the files in Inbox/ now, waiting for them to settle."""
        self._inbox()
        deadline = time.monotonic() + limit
        result = self.intake.scan()
        waiting = set(result.pending)
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(shown_name(name) for name in sorted(waiting))
                self.say(f"still being written, left for the next run: {names}")
                return
            time.sleep(min((result.next_look or 0.0) + 0.005, left))
            result = self.intake.scan(only=waiting)
            waiting &= set(result.pending)

    def serve(self, stop: threading.Event, *, zone: str, interval: float) -> int:
        """Watch and take until ``stop`` is set."""
        self.start_watching()  # before the first scan: nothing can slip in between
        try:
            return run_loop(
                ACTOR,
                self.vault,
                self.one_pass,
                zone=zone,
                once=False,
                interval=interval,
                stop=stop,
                wake=self.wake,
            )
        finally:
            self.stop_watching()


def run(
    settings: Settings,
    *,
    once: bool,
    interval: float = DEFAULT_INTERVAL,
    settle: float = DEFAULT_SETTLE,
) -> int:
    vault = open_vault(settings, actor=ACTOR)
    watcher = InboxWatcher(vault, settle=settle)
    stop = stop_on_signals(once)
    print(f"{ACTOR}: {vault.root / 'Inbox'} ({settings.zone} zone)", flush=True)
    if once:
        return run_loop(
            ACTOR, vault, watcher.drain, zone=settings.zone, once=True, interval=0, stop=stop
        )
    return watcher.serve(stop, zone=settings.zone, interval=interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = daemon_parser(ACTOR, __doc__, DEFAULT_INTERVAL)
    parser.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE,
        help="seconds a file must stay unchanged when its writer was not seen closing it",
    )

    def start(settings: Settings, args: argparse.Namespace) -> int:
        interval, settle = max(args.interval, 0.5), max(args.settle, 0.0)
        return run(settings, once=args.once, interval=interval, settle=settle)

    return daemon_main(ACTOR, parser, start, argv)


if __name__ == "__main__":
    sys.exit(main())
