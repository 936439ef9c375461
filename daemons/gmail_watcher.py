"""Turns new Gmail messages into task files: ``ai-employee run gmail_watcher [--once]``.

Incremental sync with the history API: the ``startHistoryId`` cursor lives in
``.state/gmail_cursor.json`` and moves only after the tasks of a batch exist, so a crash
re-reads a batch (task creation is idempotent by name) and never skips one. A full
``messages.list`` of the query (at most ``BOOTSTRAP_LIMIT`` messages) is made only on the first
run, when the query changed, or when Gmail no longer keeps the cursor's history.

History reports every added message; the watcher fetches each one it does not have yet and
keeps it only if its labels meet the query's label terms (``is:unread``, ``is:important``,
``label:X``, negated with ``-``); other query terms are applied only by the bootstrap list.

A refused or missing token pauses the watcher: one ``Signals/health_gmail_*.json`` alert and one
audit entry, then it keeps checking each interval and resumes (with another signal) once the
token works. Both zones may watch mail.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from core.config import Settings
from core.email_tasks import already_have, matches_labels, write_email_task
from core.errors import ConfigError, PolicyError, TaskFileError
from core.fsutil import atomic_create, atomic_write
from core.policy import load_policy
from core.tasks import iso_utc, utc_now
from core.vault import Vault, open_vault
from daemons.loop import daemon_main, daemon_parser, run_loop, stop_on_signals
from servers.gmail_mcp.auth import AUTH_STEP, GmailAuthError, GmailRequestError, HistoryExpiredError
from servers.gmail_mcp.gmail import GmailClient

DEFAULT_INTERVAL = 60.0
DEFAULT_QUERY = "is:unread is:important"
BOOTSTRAP_LIMIT = 100
CURSOR_FILE = "gmail_cursor.json"
PAUSE_FILE = "gmail_paused.json"
ACTOR = "gmail_watcher"


class GmailWatcher:
    """One mailbox into one vault; :meth:`poll` is one pass."""

    def __init__(
        self,
        vault: Vault,
        client: Any,
        *,
        query: str = DEFAULT_QUERY,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.vault, self.client, self.query = vault, client, " ".join(query.split())
        self.say = say or (lambda line: print(f"{ACTOR}: {line}", flush=True))

    # -- state ---------------------------------------------------------------------------
    def _read_state(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads((self.vault.state_dir / name).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_state(self, name: str, data: dict[str, Any]) -> None:
        self.vault.state_dir.mkdir(mode=0o700, exist_ok=True)
        atomic_write(self.vault.state_dir / name, json.dumps(data).encode(), mode=0o600)

    def cursor(self) -> str | None:
        """The saved history id, if it was saved for this query."""
        data = self._read_state(CURSOR_FILE)
        history_id = str(data.get("history_id") or "")
        if data.get("query") != self.query or not history_id.isdigit():
            return None
        return history_id

    def save_cursor(self, history_id: str) -> None:
        self._write_state(CURSOR_FILE, {"history_id": str(history_id), "query": self.query})

    @property
    def paused(self) -> bool:
        return bool(self._read_state(PAUSE_FILE).get("paused"))

    # -- signals -------------------------------------------------------------------------
    def _signal(self, data: dict[str, Any]) -> str:
        folder = self.vault.folder("Signals")
        stamp = f"{utc_now():%Y%m%dT%H%M%S%fZ}"
        for attempt in range(100):
            name = f"health_gmail_{stamp}{f'_{attempt}' if attempt else ''}.json"
            try:
                atomic_create(folder / name, json.dumps(data, indent=2).encode() + b"\n")
                return f"Signals/{name}"
            except FileExistsError:
                continue
        raise FileExistsError(f"too many Gmail health signals at {stamp}")

    def pause(self, why: str) -> None:
        if self.paused:
            return
        data = {"service": "gmail", "status": "paused", "reason": why, "next_step": AUTH_STEP}
        target = self._signal({**data, "at": iso_utc()})
        self.vault.record("gmail", "watch_paused", target, status="error", reason=why)
        self._write_state(PAUSE_FILE, {"paused": True, "reason": why, "since": iso_utc()})
        self.say(f"paused: {why}; {AUTH_STEP} (alert: {target})")

    def resume(self) -> None:
        if not self.paused:
            return
        target = self._signal({"service": "gmail", "status": "ok", "at": iso_utc()})
        self.vault.record("gmail", "watch_resumed", target)
        self._write_state(PAUSE_FILE, {"paused": False, "since": iso_utc()})
        self.say("resumed: the Gmail token works again")

    # -- one pass ------------------------------------------------------------------------
    def _contacts(self) -> frozenset[str]:
        try:
            return load_policy(self.vault.root).known_contacts
        except PolicyError as exc:
            self.say(f"handbook unreadable, every sender counts as unknown: {exc}")
            return frozenset()

    def _take(self, gmail_id: str, contacts: frozenset[str], *, check_labels: bool) -> str | None:
        """Fetch one message and write its task; the task's name, or None if none was made."""
        try:
            if already_have(self.vault, gmail_id):
                return None
            message = self.client.get_message(gmail_id)
        except (GmailRequestError, TaskFileError) as exc:  # gone since, or an id we cannot use
            self.say(f"skipped message {gmail_id!r:.60}: {exc}")
            return None
        if check_labels and not matches_labels(message.labels, self.query):
            return None
        if message.problems:
            self.say(f"message {message.id} is malformed; kept with notes: {message.problems[0]}")
        try:
            path = write_email_task(self.vault, message, contacts)
        except (TaskFileError, ValueError) as exc:  # e.g. too large: nothing written, go on
            self.say(f"could not make a task of message {message.id}: {exc}")
            self.vault.record("gmail", "watch_skip", message.id, status="error", reason=str(exc))
            return None
        if path is None:
            return None
        self.say(f"new: Needs_Action/{path.name}")
        return path.name

    def bootstrap(self, why: str) -> list[str]:
        self.say(f"full sync ({why}): up to {BOOTSTRAP_LIMIT} messages matching {self.query!r}")
        start = self.client.profile().history_id  # first: nothing after it can be missed
        page = self.client.list_messages(self.query, max_results=BOOTSTRAP_LIMIT)
        contacts = self._contacts()
        made = [self._take(ref.id, contacts, check_labels=False) for ref in page.messages]
        self.save_cursor(start)
        return [name for name in made if name]

    def poll(self) -> list[str]:
        """One pass: the names of the task files created."""
        try:
            made = self._poll()
        except (GmailAuthError, ConfigError) as exc:
            self.pause(exc.what)
            raise
        self.resume()
        return made

    def _poll(self) -> list[str]:
        cursor = self.cursor()
        if cursor is None:
            return self.bootstrap("no cursor for this query yet")
        try:
            ids, newest = self.client.history(cursor)
        except HistoryExpiredError:
            return self.bootstrap("Gmail no longer keeps history from the cursor")
        contacts = self._contacts() if ids else frozenset()
        made = [self._take(msg_id, contacts, check_labels=True) for msg_id in ids]
        if newest != cursor:
            self.save_cursor(newest)
        return [name for name in made if name]


def run(
    settings: Settings,
    *,
    once: bool,
    interval: float = DEFAULT_INTERVAL,
    client: Any = None,
    query: str | None = None,
) -> int:
    vault = open_vault(settings, actor=ACTOR)
    query = query or settings.gmail_watch_query
    watcher = GmailWatcher(vault, client or GmailClient(settings), query=query)
    stop = stop_on_signals(once)
    print(f"{ACTOR}: {vault.root} ({settings.zone} zone, query {watcher.query!r})", flush=True)
    return run_loop(
        ACTOR, vault, watcher.poll, zone=settings.zone, once=once, interval=interval, stop=stop
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = daemon_parser(ACTOR, __doc__, DEFAULT_INTERVAL)
    parser.add_argument("--query", default=None, help=f"Gmail search (default {DEFAULT_QUERY!r})")

    def start(settings: Settings, args: argparse.Namespace) -> int:
        interval = max(args.interval, 1.0)
        return run(settings, once=args.once, interval=interval, query=args.query)

    return daemon_main(ACTOR, parser, start, argv)


if __name__ == "__main__":
    sys.exit(main())
