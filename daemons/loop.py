"""The loop every daemon shares: a pass, a heartbeat, a wait; a clean stop on SIGTERM or Ctrl-C.

A daemon supplies one pass (a function that does the work once and raises the product's
errors on trouble). The loop keeps going after a failed pass, saying why once per new reason,
and records a heartbeat after every pass so the dashboard can tell alive from stuck. A daemon
woken by events (a file watcher) passes a ``wake`` event: setting it starts the next pass
before the interval is up.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from core.config import Settings, load_settings
from core.errors import AIEmployeeError
from core.heartbeat import beat
from core.vault import Vault

Pass = Callable[[], None]
WAKE_SLICE = 0.2  # seconds: how late a stop may be noticed while waiting on a wake event


def run_loop(
    name: str,
    vault: Vault,
    one_pass: Pass,
    *,
    zone: str,
    once: bool,
    interval: float,
    stop: threading.Event | None = None,
    wake: threading.Event | None = None,
) -> int:
    """Run ``one_pass`` once (exit code 0 or 1) or every ``interval`` seconds until stopped;
    with ``wake``, also as soon as it is set (it is cleared before the pass it starts)."""
    stop = stop or stop_on_signals(once)
    said = ""
    while True:
        ok, detail = _attempt(one_pass)
        if not ok and detail != said:
            print(f"{name}: pass stopped, retrying: {detail}", flush=True)
        said = "" if ok else detail
        _beat(vault, name, zone=zone, ok=ok, interval=0 if once else interval, detail=detail)
        if once:
            return 0 if ok else 1
        if _wait(stop, wake, interval):
            print(f"{name}: stopped", flush=True)
            return 0


def stop_on_signals(once: bool) -> threading.Event:
    """An event SIGTERM and SIGINT set (for a loop; a single pass is simply interrupted).
    Call it before the first line of output, so a stop sent right after that line counts."""
    stop = threading.Event()
    if not once and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def _wait(stop: threading.Event, wake: threading.Event | None, interval: float) -> bool:
    """Wait up to ``interval`` or until woken; True once stopped."""
    if wake is None:
        return stop.wait(interval)
    deadline = time.monotonic() + interval
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if wake.wait(min(left, WAKE_SLICE)):
            wake.clear()
            break
    return stop.is_set()


def _attempt(one_pass: Pass) -> tuple[bool, str]:
    try:
        one_pass()
    except (AIEmployeeError, OSError) as exc:
        return False, str(exc)
    return True, ""


def _beat(vault: Vault, name: str, **fields: object) -> None:
    try:
        beat(vault.state_dir, name, **fields)  # type: ignore[arg-type]
    except (OSError, AIEmployeeError) as exc:  # health reporting never stops the work
        print(f"{name}: could not record a heartbeat: {exc}", flush=True)


def daemon_parser(name: str, doc: str | None, interval: float) -> argparse.ArgumentParser:
    """``python -m daemons.<name> [--once] [--interval S]``; a daemon may add its own options."""
    parser = argparse.ArgumentParser(prog=name, description=doc)
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--interval", type=float, default=interval, help="seconds between passes")
    return parser


def daemon_main(
    name: str,
    parser: argparse.ArgumentParser,
    start: Callable[[Settings, argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse, load the settings, start; a setting or vault problem is one line and exit 1."""
    args = parser.parse_args(argv)
    try:
        return start(load_settings(), args)
    except AIEmployeeError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
