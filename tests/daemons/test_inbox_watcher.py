"""The inbox watcher as a loop (watchdog events, in a thread or a real process) and --once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main as cli_main
from core.audit import AuditLog
from core.config import Settings, load_settings
from core.tasks import read_task_file
from core.vault import open_vault
from core.vault_init import init_vault
from daemons.inbox_watcher import InboxWatcher, run
from tests.conftest import PRODUCT_ENV

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0  # generous: these wait for things to happen, they never time them


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    root = tmp_path / "vault"
    init_vault(root)
    return load_settings({"VAULT_PATH": str(root), "SECRETS_DIR": os.environ["SECRETS_DIR"]})


def inbox(settings: Settings) -> Path:
    return settings.vault_path / "Inbox"


def tasks(settings: Settings) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((settings.vault_path / "Needs_Action").glob("FILE_*.md")):
        meta = read_task_file(path).meta
        out[path.name] = {**meta.model_dump(), **(meta.model_extra or {})}
    return out


def files(settings: Settings) -> dict[str, bytes]:
    folder = settings.vault_path / "Files"
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".gitkeep"}


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def watching(settings: Settings) -> Iterator[InboxWatcher]:
    """The watcher's real loop in a thread, rescanning only every 10 minutes: events drive it."""
    vault = open_vault(settings, actor="inbox_watcher")
    watcher = InboxWatcher(vault, settle=2.0, say=lambda _: None)
    stop = threading.Event()
    thread = threading.Thread(
        target=watcher.serve, args=(stop,), kwargs={"zone": "local", "interval": 600}
    )
    thread.start()
    heartbeat = settings.vault_path / ".state" / "heartbeats" / "inbox_watcher.json"
    wait_for(heartbeat.exists, "the first pass")
    try:
        yield watcher
    finally:
        stop.set()
        thread.join(WAIT)
        assert not thread.is_alive()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_once_takes_the_files_present_at_start(settings: Settings) -> None:
    (inbox(settings) / "one.pdf").write_bytes(b"%PDF one")
    (inbox(settings) / "two.txt").write_bytes(b"two")
    assert run(settings, once=True) == 0
    assert files(settings) == {"one.pdf": b"%PDF one", "two.txt": b"two"}
    assert sorted(m["original_name"] for m in tasks(settings).values()) == ["one.pdf", "two.txt"]
    beat = json.loads((settings.vault_path / ".state/heartbeats/inbox_watcher.json").read_text())
    assert beat["ok"] is True and beat["interval"] == 0


def test_once_waits_for_a_file_still_being_written(settings: Settings) -> None:
    chunks = [bytes([i]) * 1000 for i in range(10)]
    done = threading.Event()
    with open(inbox(settings) / "slow.bin", "wb") as writer:  # there when the scan starts

        def write() -> None:
            for chunk in chunks:
                writer.write(chunk)
                writer.flush()
                time.sleep(0.05)
            done.set()
            writer.close()

        thread = threading.Thread(target=write)
        thread.start()
        try:
            assert run(settings, once=True) == 0
        finally:
            thread.join()
    assert done.is_set()
    [meta] = tasks(settings).values()
    assert meta["sha256"] == sha(b"".join(chunks)) and meta["size"] == 10_000


def test_a_drop_wakes_the_loop(settings: Settings, watching: InboxWatcher) -> None:
    (inbox(settings) / "invoice.pdf").write_bytes(b"%PDF-1.4 invoice")
    [meta] = wait_for(lambda: list(tasks(settings).values()), "the task").copy()
    assert meta["file"] == "Files/invoice.pdf" and meta["sha256"] == sha(b"%PDF-1.4 invoice")
    assert files(settings) == {"invoice.pdf": b"%PDF-1.4 invoice"}


def test_a_slow_writer_gets_its_task_after_the_last_write(
    settings: Settings, watching: InboxWatcher
) -> None:
    chunks = [os.urandom(4096) for _ in range(40)]
    done = threading.Event()
    seen_early: list[str] = []

    def write() -> None:
        with open(inbox(settings) / "report.bin", "wb") as writer:
            for chunk in chunks:
                writer.write(chunk)
                writer.flush()
                seen_early.extend(tasks(settings))
                time.sleep(0.02)
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    [meta] = wait_for(lambda: list(tasks(settings).values()), "the task")
    assert done.is_set(), "the task appeared before the last write"
    thread.join()
    assert seen_early == []
    assert meta["sha256"] == sha(b"".join(chunks)) and meta["size"] == 40 * 4096


def test_without_a_writer_check_stability_decides(
    settings: Settings, watching: InboxWatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("core.file_intake.writer_open", lambda fd: None)
    chunks = [os.urandom(1000) for _ in range(20)]
    done = threading.Event()

    def write() -> None:
        with open(inbox(settings) / "data.bin", "wb") as writer:
            for chunk in chunks:  # far more often than the 2 s settle time
                writer.write(chunk)
                writer.flush()
                time.sleep(0.01)
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    [meta] = wait_for(lambda: list(tasks(settings).values()), "the task")
    thread.join()
    assert done.is_set() and meta["sha256"] == sha(b"".join(chunks))


def test_a_download_is_taken_once_renamed(settings: Settings, watching: InboxWatcher) -> None:
    part = inbox(settings) / "statement.pdf.crdownload"
    part.write_bytes(b"%PDF-1.4 statement")
    (inbox(settings) / "other.txt").write_bytes(b"marker")  # taken: the partial one was seen
    wait_for(lambda: len(tasks(settings)) == 1, "the marker's task")
    assert part.exists() and "statement.pdf" not in files(settings)
    part.rename(inbox(settings) / "statement.pdf")
    wait_for(lambda: len(tasks(settings)) == 2, "the renamed download's task")
    assert files(settings)["statement.pdf"] == b"%PDF-1.4 statement"


def test_two_at_once_and_the_same_twice(settings: Settings, watching: InboxWatcher) -> None:
    (inbox(settings) / "a.txt").write_bytes(b"alpha")
    (inbox(settings) / "b.txt").write_bytes(b"beta")
    wait_for(lambda: len(tasks(settings)) == 2, "two tasks")
    (inbox(settings) / "a.txt").write_bytes(b"alpha")  # the same file again
    wait_for(lambda: "a_2.txt" in files(settings), "the duplicate to be kept")
    assert len(tasks(settings)) == 2
    dups = AuditLog(settings.vault_path, "local").query(category="inbox", action="duplicate")
    assert [e.details["duplicate_of"] for e in dups] == ["Files/a.txt"]


def test_a_symlink_is_refused_and_never_followed(
    settings: Settings, watching: InboxWatcher, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside the vault")
    os.symlink(secret, inbox(settings) / "harmless.txt")
    (inbox(settings) / "folder").mkdir()
    log = AuditLog(settings.vault_path, "local")
    wait_for(lambda: len(log.query(category="inbox", action="refused")) == 2, "two refusals")
    (inbox(settings) / "ok.txt").write_bytes(b"ok")
    wait_for(lambda: tasks(settings), "the next drop's task")
    assert os.path.islink(inbox(settings) / "harmless.txt") and secret.read_bytes()
    assert list(files(settings)) == ["ok.txt"]
    assert len(log.query(category="inbox", action="refused")) == 2  # said once each


def test_files_present_at_start_are_taken_by_the_loop(settings: Settings) -> None:
    (inbox(settings) / "waiting.txt").write_bytes(b"since yesterday")
    vault = open_vault(settings, actor="inbox_watcher")
    watcher = InboxWatcher(vault, settle=0, say=lambda _: None)
    stop = threading.Event()
    thread = threading.Thread(
        target=watcher.serve, args=(stop,), kwargs={"zone": "local", "interval": 600}
    )
    thread.start()
    try:
        wait_for(lambda: tasks(settings), "the task")
    finally:
        stop.set()
        thread.join(WAIT)
    assert files(settings) == {"waiting.txt": b"since yesterday"}


def test_a_vault_without_files_gets_the_folder(settings: Settings) -> None:
    (settings.vault_path / "Files" / ".gitkeep").unlink()
    (settings.vault_path / "Files").rmdir()
    (inbox(settings) / "x.txt").write_bytes(b"x")
    assert run(settings, once=True) == 0
    assert files(settings) == {"x.txt": b"x"}


def test_the_cli_runs_it(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_PATH", str(settings.vault_path))
    (inbox(settings) / "via cli.txt").write_bytes(b"cli")
    assert cli_main(["run", "inbox_watcher", "--once"]) == 0
    assert files(settings) == {"via cli.txt": b"cli"}


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(VAULT_PATH=str(settings.vault_path), SECRETS_DIR=str(settings.secrets_dir))
    return env


def test_the_module_runs_as_a_process_and_stops_on_sigterm(settings: Settings) -> None:
    (inbox(settings) / "first.txt").write_bytes(b"first")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemons.inbox_watcher", "--interval", "600"],
        env=child_env(settings),
        cwd=settings.vault_path.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(tasks(settings)) == 1, "the file present at start")
        (inbox(settings) / "second.txt").write_bytes(b"second")
        wait_for(lambda: len(tasks(settings)) == 2, "the file dropped while running")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert "inbox_watcher: stopped" in out and err == ""
    assert files(settings) == {"first.txt": b"first", "second.txt": b"second"}


def test_once_as_a_process(settings: Settings) -> None:
    (inbox(settings) / "a.txt").write_bytes(b"a")
    proc = subprocess.run(
        [sys.executable, "-m", "daemons.inbox_watcher", "--once"],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "new: Needs_Action/FILE_a_" in proc.stdout


def test_once_names_a_file_still_being_written_safely(settings: Settings) -> None:
    raw = os.fsencode(inbox(settings)) + b"/\xff\xfe\x1b[2J.pdf"  # not UTF-8, and an escape
    with open(raw, "wb") as writer:  # still open: being written
        writer.write(b"x")
        writer.flush()
        lines: list[bytes] = []  # as a UTF-8 terminal or log gets them: strictly encoded
        vault = open_vault(settings, actor="inbox_watcher")
        InboxWatcher(vault, settle=100, say=lambda line: lines.append(line.encode())).drain(0.1)
    [line] = lines
    assert line.decode() == "still being written, left for the next run: \ufffd\ufffd\ufffd[2J.pdf"
    assert tasks(settings) == {} and files(settings) == {}
