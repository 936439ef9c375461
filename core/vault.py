"""The vault: its layout, task files in it, and claim-by-move.

Ownership of a task is decided by one atomic move that never overwrites: the
worker whose move of ``Needs_Action/<name>`` succeeds owns it; everyone else
is told who got it first. Nothing here ever deletes a file.
"""

from __future__ import annotations

import heapq
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core import tasks
from core.audit import AuditLog
from core.config import ZONES, Settings
from core.errors import (
    AlreadyClaimedError,
    TargetExistsError,
    TaskFileError,
    TaskNotFoundError,
    VaultError,
)
from core.fsutil import atomic_create, atomic_write, locked, move_no_replace
from core.paths import confine, split_relative
from core.tasks import TaskDoc, TaskMeta, utc_now

APPROVAL_KINDS = ("email", "payments", "social_media")
FOLDERS = (
    "Inbox",
    "Needs_Action",
    "In_Progress/cloud",
    "In_Progress/local",
    "Plans",
    *(f"Pending_Approval/{kind}" for kind in APPROVAL_KINDS),
    *(f"Approved/{kind}" for kind in APPROVAL_KINDS),
    "Rejected",
    "Done",
    "Failed",
    "Updates",
    "Signals",
    "Briefings",
    "Logs",
)
NEEDS_ACTION = "Needs_Action"
ANY_FILE_FOLDERS = ("Inbox", "Signals")  # drops of any kind, JSON signals
CEO_ONLY = ("Approved", "Rejected")
DONE = "Done"


class TaskEntry(BaseModel):
    """One file in a folder, known from its directory entry alone (no parsing)."""

    name: str
    folder: str
    modified: datetime
    size: int

    @property
    def rel(self) -> str:
        return f"{self.folder}/{self.name}"


class StaleRelease(BaseModel):
    released: list[str]
    skipped: dict[str, str]


def _task_name(name: str) -> str:
    parts = split_relative(name)
    if len(parts) != 1 or not name.endswith(".md"):
        raise VaultError(
            f"{name!r} is not a task file name", "give a name such as EMAIL_123.md, not a path"
        )
    return name


def _check_zone(zone: str) -> str:
    if zone not in ZONES:
        raise VaultError(f"zone {zone!r} is unknown", "use 'local' or 'cloud'")
    return zone


class Vault:
    """A vault on disk. Every path from outside goes through :func:`core.paths.confine`."""

    def __init__(self, root: Path | str, *, audit: AuditLog | None = None, actor: str = "system"):
        self.root = Path(os.path.realpath(root))
        self.audit = audit
        self.actor = actor

    def record(
        self,
        category: str,
        action: str,
        target: str,
        *,
        status: str = "ok",
        dry_run: bool = False,
        **details: Any,
    ) -> None:
        """Write an audit entry for a change to the vault (no-op without an audit log)."""
        if self.audit is not None:
            self.audit.append(
                actor=self.actor,
                category=category,
                action=action,
                target=target,
                status=status,
                dry_run=dry_run,
                details=details,
            )

    @property
    def state_dir(self) -> Path:
        return self.root / ".state"

    # -- layout ---------------------------------------------------------------------------
    def ensure_layout(self) -> None:
        for folder in FOLDERS:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(mode=0o700, exist_ok=True)

    def folder(self, name: str) -> Path:
        """A layout folder, checked to be a real folder all the way down (never a link)."""
        if name not in FOLDERS:
            known = ", ".join(FOLDERS)
            raise VaultError(f"{name!r} is not a vault folder", f"use one of: {known}")
        path = self.root
        for part in name.split("/"):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                raise VaultError(
                    f"the vault folder {name}/ is missing", "run `ai-employee init` to restore it"
                ) from None
            if not stat.S_ISDIR(mode):
                raise VaultError(
                    f"the vault folder {name}/ is a link or not a folder",
                    "replace it with a real folder (run `ai-employee init` after moving it away)",
                )
        return path

    def check_layout(self) -> None:
        """Every layout folder is a real folder: no write can follow a link out of place."""
        for name in FOLDERS:
            self.folder(name)

    def resolve(self, rel: str, *, must_exist: bool = True) -> Path:
        return confine(self.root, rel, must_exist=must_exist)

    # -- reading and listing --------------------------------------------------------------
    def read(self, rel: str) -> TaskDoc:
        path = self.resolve(rel)
        return tasks.read_task_file(path)

    def read_text(self, rel: str) -> str:
        """A vault file's text as is (notes such as the handbook); TaskFileError if not text."""
        data = tasks.read_bytes_safely(self.resolve(rel))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "\x00"
        if "\x00" in text:
            raise TaskFileError(f"{rel} is not UTF-8 text", "open it with a program made for it")
        return text

    def _entries(self, folder: str) -> Iterator[os.DirEntry[str]]:
        with os.scandir(self.folder(folder)) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if folder in ANY_FILE_FOLDERS or entry.name.endswith(".md"):
                    yield entry

    def count(self, folder: str) -> int:
        return sum(1 for entry in self._entries(folder) if entry.is_file(follow_symlinks=False))

    def list_tasks(
        self, folder: str, *, prefix: str = "", limit: int | None = 50, newest_first: bool = True
    ) -> list[TaskEntry]:
        """The newest (or oldest) task files of a folder by modification time, without parsing."""
        stamped: list[tuple[int, str, int]] = []
        for entry in self._entries(folder):
            if prefix and not entry.name.startswith(prefix):
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                stamped.append((st.st_mtime_ns, entry.name, st.st_size))
        if limit is None:
            chosen = sorted(stamped, reverse=newest_first)
        elif newest_first:
            chosen = heapq.nlargest(limit, stamped)
        else:
            chosen = heapq.nsmallest(limit, stamped)
        return [
            TaskEntry(name=name, folder=folder, modified=_from_ns(ns), size=size)
            for ns, name, size in chosen
        ]

    # -- writing --------------------------------------------------------------------------
    def create(self, folder: str, name: str, meta: TaskMeta, body: str = "") -> Path:
        """Write a new task file; never replaces an existing one."""
        if folder.split("/")[0] in CEO_ONLY:
            raise VaultError(
                f"{folder}/ is written only by the CEO", "write an approval request instead"
            )
        path = self.folder(folder) / _task_name(name)
        data = tasks.render(meta.to_frontmatter(), body).encode()
        if len(data) > tasks.MAX_TASK_BYTES:
            raise TaskFileError(
                f"{name} would be {len(data):,} bytes, over the {tasks.MAX_TASK_BYTES:,} limit",
                "shorten it, or put large content in a separate file and link it",
            )
        self.audit_ready()
        try:
            atomic_create(path, data)
        except FileExistsError:
            raise TargetExistsError(
                f"{folder}/{name} already exists", "choose another name; files are never replaced"
            ) from None
        self.record("vault", "create", f"{folder}/{name}", task_id=meta.id, type=meta.type)
        return path

    def create_unique(self, folder: str, stem: str, meta: TaskMeta, body: str = "") -> Path:
        """Create ``<stem>.md``, or ``<stem>_2.md`` and so on if that name is taken."""
        for attempt in range(1, 1000):
            name = f"{stem}.md" if attempt == 1 else f"{stem}_{attempt}.md"
            try:
                return self.create(folder, name, meta, body)
            except TargetExistsError:
                continue
        raise TargetExistsError(f"too many files named {stem} in {folder}", "archive some of them")

    @contextmanager
    def task_lock(self, name: str) -> Iterator[None]:
        """Serialize read-stamp-move of one task name across processes (64 striped locks)."""
        stripe = zlib.crc32(name.encode()) % 64
        with locked(self.state_dir / "locks" / f"task-{stripe:02d}.lock"):
            yield

    def audit_ready(self) -> None:
        """Fail before acting, not after: the layout must be real folders (a folder replaced by
        a link, say by a sync, would carry writes elsewhere) and the audit trail must be able to
        take the entry."""
        self.check_layout()
        if self.audit is not None:
            self.audit.last()

    # -- claim-by-move --------------------------------------------------------------------
    def claim(self, name: str, zone: str) -> TaskDoc:
        """Move ``Needs_Action/<name>`` to ``In_Progress/<zone>/`` and stamp the claim."""
        name, zone = _task_name(name), _check_zone(zone)
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

    def _claimable(self, source: Path) -> tuple[bytes, TaskDoc]:
        try:
            _single_file(source)
            data = tasks.read_bytes_safely(source)
            return data, _not_a_request(tasks.parse_bytes(data, name=source.name))
        except FileNotFoundError:
            raise self._already_claimed(source.name) from None
        except TaskFileError as exc:
            raise TaskFileError(exc.what, "fix the file; it was left where it is") from None

    def _already_claimed(self, name: str) -> VaultError:
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

    def _claimed_path(self, name: str, zone: str) -> Path:
        path = self.root / "In_Progress" / _check_zone(zone) / _task_name(name)
        try:
            _single_file(path)
        except FileNotFoundError:
            raise TaskNotFoundError(
                f"{name} is not claimed by {zone}", f"list In_Progress/{zone} to see its tasks"
            ) from None
        return path

    def release(self, name: str, zone: str, reason: str = "released") -> Path:
        """Give a claimed task back to Needs_Action, clearing the claim fields."""
        target = self.root / NEEDS_ACTION / _task_name(name)
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

    def complete(self, name: str, zone: str, summary: str = "") -> Path:
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

    def move_unique(self, path: Path, folder: Path) -> Path:
        stem, suffix = path.stem, path.suffix
        for attempt in range(1000):
            target = folder / (path.name if attempt == 0 else f"{stem}_{attempt}{suffix}")
            try:
                move_no_replace(path, target)
                return target
            except FileExistsError:
                continue
        raise TargetExistsError(
            f"too many files named like {path.name} in {folder.name}", "archive some of them"
        )

    def release_stale(self, lease: timedelta, zone: str | None = None) -> StaleRelease:
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


def open_vault(settings: Settings, actor: str) -> Vault:
    """The configured vault with its zone's audit trail; a clear error if there is none yet."""
    root = settings.vault_path
    if not (root / NEEDS_ACTION).is_dir():
        raise VaultError(
            f"no vault at {root}", "run `ai-employee init` (or set VAULT_PATH to your vault) first"
        )
    return Vault(root, audit=AuditLog(root, settings.zone), actor=actor)


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
    return _from_ns(os.stat(path).st_ctime_ns)


def _from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)
