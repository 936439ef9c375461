"""Daemon heartbeats: written per pass, read back, judged stale only when a pass is overdue."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from core.heartbeat import GRACE, beat, read_heartbeats


def test_a_beat_is_read_back_private_and_replaced(tmp_path: Path) -> None:
    first = beat(tmp_path, "gmail_watcher", zone="local", ok=True, interval=60)
    beat(tmp_path, "gmail_watcher", zone="local", ok=False, interval=60, detail="bad\ntoken")
    (found,) = read_heartbeats(tmp_path)
    assert found.daemon == "gmail_watcher" and found.pid == os.getpid() and not found.ok
    assert found.detail == "bad token" and found.at >= first.at
    path = tmp_path / "heartbeats" / "gmail_watcher.json"
    assert path.stat().st_mode & 0o777 == 0o600


def test_stale_only_after_three_intervals_and_grace(tmp_path: Path) -> None:
    hb = beat(tmp_path, "scheduler", zone="local", ok=True, interval=30)
    assert not hb.stale(hb.at + timedelta(seconds=90) + GRACE)
    assert hb.stale(hb.at + timedelta(seconds=91) + GRACE)
    once = beat(tmp_path, "scheduler", zone="local", ok=True, interval=0)
    assert not once.stale(once.at + timedelta(days=30))  # a single pass is never "overdue"


@pytest.mark.parametrize("name", ["../x", "Gmail", "", "a" * 50, "x.json"])
def test_odd_daemon_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        beat(tmp_path, name, zone="local", ok=True, interval=1)
    assert not (tmp_path / "heartbeats").exists() or not list((tmp_path / "heartbeats").iterdir())


def test_unreadable_heartbeats_are_left_out(tmp_path: Path) -> None:
    beat(tmp_path, "inbox_watcher", zone="local", ok=True, interval=5)
    folder = tmp_path / "heartbeats"
    (folder / "torn.json").write_text('{"daemon": "torn", "zone"')
    (folder / "list.json").write_text("[1, 2]")
    (folder / "link.json").symlink_to(folder / "inbox_watcher.json")
    assert [h.daemon for h in read_heartbeats(tmp_path)] == ["inbox_watcher"]
    assert read_heartbeats(tmp_path / "missing") == []
