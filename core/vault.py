"""The vault: its layout on disk, listing, creating task files, and (from ``core.claims``)
claim-by-move. Every path from outside goes through :func:`core.paths.confine`. Nothing
here ever deletes a file.
"""

from __future__ import annotations

import heapq
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core import tasks
from core.audit import AuditLog
from core.claims import ClaimMoves
from core.config import Settings
from core.errors import (
    TargetExistsError,
    TaskFileError,
    VaultError,
)
from core.fsutil import atomic_create, locked, move_no_replace
from core.layout import (
    ADDED_LATER,
    ANY_FILE_FOLDERS,
    CEO_ONLY,
    FOLDERS,
    NEEDS_ACTION,
    task_name,
)
from core.paths import confine
from core.tasks import TaskDoc, TaskMeta, from_ns


class TaskEntry(BaseModel):
    """One file in a folder, known from its directory entry alone (no parsing)."""

    name: str
    folder: str
    modified: datetime
    size: int

    @property
    def rel(self) -> str:
        return f"{self.folder}/{self.name}"


class Vault(ClaimMoves):
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
        """Every layout folder is a real folder: no write can follow a link out of place.
        Folders newer than the vault (see ``ADDED_LATER``) are made on first need."""
        for name in ADDED_LATER:
            with suppress(FileExistsError):
                os.mkdir(self.root / name, 0o755)
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
            TaskEntry(name=name, folder=folder, modified=from_ns(ns), size=size)
            for ns, name, size in chosen
        ]

    # -- writing --------------------------------------------------------------------------
    def create(self, folder: str, name: str, meta: TaskMeta, body: str = "") -> Path:
        """Write a new task file; never replaces an existing one."""
        if folder.split("/")[0] in CEO_ONLY:
            raise VaultError(
                f"{folder}/ is written only by the CEO", "write an approval request instead"
            )
        path = self.folder(folder) / task_name(name)
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


def open_vault(settings: Settings, actor: str) -> Vault:
    """The configured vault with its zone's audit trail; a clear error if there is none yet."""
    root = settings.vault_path
    if not (root / NEEDS_ACTION).is_dir():
        raise VaultError(
            f"no vault at {root}", "run `ai-employee init` (or set VAULT_PATH to your vault) first"
        )
    return Vault(root, audit=AuditLog(root, settings.zone), actor=actor)
