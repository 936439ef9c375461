"""Claim-by-move: whoever's move of ``Needs_Action/<name>`` succeeds owns the task.

Everyone else is told who got it first. Claims are released back, completed into
``Done/``, or released when stale (judged by ``claimed_at``, not mtime). Each step
runs under the task's lock, with the new stamp rendered before any move. These
are methods of :class:`core.vault.Vault`, kept here by responsibility.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from core import tasks
from core.config import ZONES
from core.errors import (
    AlreadyClaimedError,
    TargetExistsError,
    TaskFileError,
    TaskNotFoundError,
    VaultError,
)
from core.fsutil import atomic_write, move_no_replace
from core.layout import DONE, NEEDS_ACTION, check_zone, task_name
from core.tasks import TaskDoc, from_ns, utc_now

if TYPE_CHECKING:
    from core.vault import Vault


class StaleRelease(BaseModel):
    released: list[str]
    skipped: dict[str, str]


class ClaimMoves:
    """Claim, release, complete and stale-lease release, as methods of the Vault."""

    def claim(self: Vault, name: str, zone: str) -> TaskDoc:
        """Move ``Needs_Action/<name>`` to ``In_Progress/<zone>/`` and stamp the claim."""
        name, zone = task_name(name), check_zone(zone)
        source = self.root / NEEDS_ACTION / name
        target = self.root / "In_Progress" / zone / name
        stamp = {"claimed_by": zone, "claimed_at": tasks.iso_utc(), "status": "in_progress"}
        seen, doc = self._claimable(source)
        doc, data = tasks.stamped(doc, **stamp)  # rendered before the move: a bad file stays put
        self.audit_ready()
        with self.task_lock(name):
            try:
                move_no_replace(source, target, durable=False)
            except FileNotFoundError:
                raise self._already_claimed(name) from None
            except FileExistsError:
                raise TargetExistsError(
                    f"In_Progress/{zone}/{name} already exists",
                    "complete or release that task first, then claim again",
                ) from None
            now = tasks.read_bytes_safely(target)
            if now != seen:  # edited between our read and our move: stamp what we now own
                doc, data = tasks.stamped(tasks.parse_bytes(now, name=name), **stamp)
            # The folder is not fsynced: a claim lost to a power cut returns the task to
            # Needs_Action, a safe state. The file itself is, so it is never left empty.
            atomic_write(target, data, sync_folder=False)
        self.record("vault", "claim", f"In_Progress/{zone}/{name}", claimed_by=zone)
        return doc

    def _claimable(self: Vault, source: Path) -> tuple[bytes, TaskDoc]:
        try:
            _single_file(source)
            data = tasks.read_bytes_safely(source)
            return data, _not_a_request(tasks.parse_bytes(data, name=source.name))
        except FileNotFoundError:
            raise self._already_claimed(source.name) from None
        except TaskFileError as exc:
            raise TaskFileError(exc.what, "fix the file; it was left where it is") from None

    def _already_claimed(self: Vault, name: str) -> VaultError:
        for zone in ZONES:
            path = self.root / "In_Progress" / zone / name
            try:
                meta = tasks.read_task_file(path).meta
            except (FileNotFoundError, TaskFileError):
                continue
            when = tasks.iso_utc(meta.claimed_at) if meta.claimed_at else "an unknown time"
            return AlreadyClaimedError(
                f"{name} is already claimed by {meta.claimed_by or zone} at {when}",
                "pick another task",
            )
        return TaskNotFoundError(
            f"{name} is not in Needs_Action", "list Needs_Action and pick a task that is there"
        )

    def _claimed_path(self: Vault, name: str, zone: str) -> Path:
        path = self.root / "In_Progress" / check_zone(zone) / task_name(name)
        try:
            _single_file(path)
        except FileNotFoundError:
            raise TaskNotFoundError(
                f"{name} is not claimed by {zone}", f"list In_Progress/{zone} to see its tasks"
            ) from None
        return path

    def release(self: Vault, name: str, zone: str, reason: str = "released") -> Path:
        """Give a claimed task back to Needs_Action, clearing the claim fields."""
        target = self.root / NEEDS_ACTION / task_name(name)
        self.audit_ready()
        with self.task_lock(name):
            path = self._claimed_path(name, zone)
            changes = {"status": "pending", "claimed_by": None, "claimed_at": None}
            doc = _not_a_request(tasks.read_task_file(path))
            _, data = tasks.stamped(doc, **changes, released_because=reason)
            try:  # move first: a name taken meanwhile leaves the claim exactly as it was
                move_no_replace(path, target)
            except FileExistsError:
                raise TargetExistsError(
                    f"Needs_Action/{name} exists again", "rename one of the two files, then release"
                ) from None
            atomic_write(target, data)
        self.record("vault", "release", f"{NEEDS_ACTION}/{name}", zone=zone, reason=reason)
        return target

    def complete(self: Vault, name: str, zone: str, summary: str = "") -> Path:
        """Mark a claimed task done and move it to Done/ (a suffix is added on a name clash)."""
        self.audit_ready()
        with self.task_lock(name):
            path = self._claimed_path(name, zone)
            changes = {"status": "done", "completed_at": tasks.iso_utc()}
            doc = _not_a_request(tasks.read_task_file(path))
            _, data = tasks.stamped(doc, **changes, summary=summary or None)
            atomic_write(path, data)
            target = self.move_unique(path, self.root / DONE)
        self.record("vault", "complete", f"{DONE}/{target.name}", zone=zone)
        return target

    def release_stale(self: Vault, lease: timedelta, zone: str | None = None) -> StaleRelease:
        """Return claims older than ``lease`` (judged by ``claimed_at``) to Needs_Action."""
        cutoff = utc_now() - lease
        result = StaleRelease(released=[], skipped={})
        for each in [zone] if zone else ZONES:
            for entry in self.list_tasks(f"In_Progress/{each}", limit=None, newest_first=False):
                path = self.root / entry.rel
                try:
                    if _claimed_at(path) < cutoff:
                        self.release(entry.name, each, reason=f"claim older than {lease}")
                        result.released.append(entry.rel)
                except (VaultError, FileNotFoundError) as exc:
                    result.skipped[entry.rel] = str(exc) or "moved by someone else meanwhile"
        return result


def _not_a_request(doc: TaskDoc) -> TaskDoc:
    if doc.meta.type == "approval_request":
        raise VaultError(
            "approval requests are not claimed, released or completed by hand",
            "the CEO approves or rejects them; the approval watcher runs approved ones",
        )
    return doc


def _single_file(path: Path) -> None:
    """A task file is a regular file with one name: never a link, a FIFO, or a hard link."""
    st = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        raise TaskFileError(
            f"{path.name} is not a plain file (a link, a special file or hard-linked elsewhere)",
            "move it out of the vault; only plain task files are worked on",
        )


def _claimed_at(path: Path) -> datetime:
    meta = tasks.read_task_file(path).meta
    if meta.claimed_at is not None:
        return meta.claimed_at
    # A claim interrupted between its move and its stamp has no claimed_at; the
    # move itself set the inode's change time, which is the moment of the claim.
    return from_ns(os.stat(path).st_ctime_ns)
