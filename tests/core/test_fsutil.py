"""Durable primitives: no-overwrite moves, atomic writes, and crash safety at every step.

Crash tests run the operation in a child process that is SIGKILLed at a named
fault point, then check the files it left: the old or the new state, never a
partial or missing file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core import fsutil
from core.faults import FAULT_ENV

WRITE_POINTS = [
    "write:after_create",
    "write:after_write",
    "write:before_rename",
    "write:after_rename",
]
MOVE_POINTS = ["move:before", "move:after_rename"]
CLAIM_POINTS = [*MOVE_POINTS, *WRITE_POINTS]


def run_child(code: str, fault: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_killed(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty folder of its own (tmp_path also holds the isolated HOME)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_move_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError):
        fsutil.move_no_replace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a").read_text() == "a" and (tmp_path / "b").read_text() == "b"


def test_move_of_vanished_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsutil.move_no_replace(tmp_path / "gone", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_link_fallback_also_never_overwrites(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "_renameat2", None)
    (work / "a").write_text("a")
    (work / "b").write_text("b")
    with pytest.raises(FileExistsError):
        fsutil.move_no_replace(work / "a", work / "b")
    fsutil.move_no_replace(work / "a", work / "c")
    assert visible(work) == ["b", "c"]
    assert (work / "c").read_text() == "a"


def test_atomic_create_refuses_existing(work: Path) -> None:
    target = work / "t.md"
    target.write_text("old")
    with pytest.raises(FileExistsError):
        fsutil.atomic_create(target, b"new")
    assert target.read_text() == "old"
    assert visible(work) == ["t.md"] and len(list(work.iterdir())) == 1


def test_atomic_write_replaces_whole(work: Path) -> None:
    target = work / "t.md"
    target.write_text("old")
    fsutil.atomic_write(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert list(work.iterdir()) == [target]


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with fsutil.locked(lock):
        proc = run_child(
            f"""
            import fcntl, os
            fd = os.open({str(lock)!r}, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                print("got it")
            except BlockingIOError:
                print("busy")
            """,
            None,
            tmp_path,
        )
    assert proc.stdout.strip() == "busy"


@pytest.mark.parametrize("point", WRITE_POINTS)
def test_write_killed_at_each_step_leaves_old_or_new(work: Path, point: str) -> None:
    target = work / "task.md"
    old, new = b"old " * 1000, b"new " * 5000
    target.write_bytes(old)
    proc = run_child(
        f"""
        from pathlib import Path
        from core.fsutil import atomic_write
        atomic_write(Path({str(target)!r}), {new!r})
        """,
        point,
        work,
    )
    assert_killed(proc)
    assert target.read_bytes() in (old, new)
    assert target.read_bytes() == (new if point == "write:after_rename" else old)
    assert visible(work) == ["task.md"]


@pytest.mark.parametrize("point", MOVE_POINTS)
def test_move_killed_at_each_step_leaves_one_copy(tmp_path: Path, point: str) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    (tmp_path / "src/task.md").write_bytes(b"payload")
    proc = run_child(
        f"""
        from pathlib import Path
        from core.fsutil import move_no_replace
        root = Path({str(tmp_path)!r})
        move_no_replace(root / "src/task.md", root / "dst/task.md")
        """,
        point,
        tmp_path,
    )
    assert_killed(proc)
    copies = [f for f in ("src/task.md", "dst/task.md") if (tmp_path / f).exists()]
    assert len(copies) == 1
    assert (tmp_path / copies[0]).read_bytes() == b"payload"


@pytest.mark.parametrize("point", CLAIM_POINTS)
def test_claim_killed_at_each_step_is_recoverable(tmp_path: Path, point: str) -> None:
    from core.vault import Vault
    from tests.core.conftest import make_meta

    vault = Vault(tmp_path / "vault")
    vault.ensure_layout()
    vault.create("Needs_Action", "EMAIL_1.md", make_meta(subject="keep me"))
    proc = run_child(
        f"""
        from core.vault import Vault
        Vault({str(vault.root)!r}).claim("EMAIL_1.md", "local")
        """,
        point,
        tmp_path,
    )
    assert_killed(proc)
    places = [
        f for f in ("Needs_Action", "In_Progress/local") if (vault.root / f / "EMAIL_1.md").exists()
    ]
    assert len(places) == 1
    doc = vault.read(f"{places[0]}/EMAIL_1.md")
    assert doc.meta.model_extra["subject"] == "keep me"
    if places[0] == "In_Progress/local":
        from datetime import timedelta

        released = vault.release_stale(timedelta(seconds=0)).released
        assert released == ["In_Progress/local/EMAIL_1.md"]
    assert vault.claim("EMAIL_1.md", "local").meta.claimed_by == "local"
