"""Taking complete drops out of ``Inbox/``: into ``Files/``, each with one ``FILE_*.md`` task.

One drop at a time, under a lock (two watchers on one vault take turns), in this order:

1. hash it (sha256, streamed) and fsync it: the task will name bytes that are on disk;
2. write the intent (the whole :class:`~core.file_drops.Drop`, with its name in ``Files/``)
   to ``.state/file_drops/intent.json``;
3. move it into ``Files/`` with ``move_no_replace`` (a taken name gets ``_2``, ``_3``...);
   a link, folder or FIFO swapped in for it meanwhile goes back to ``Inbox/``, refused;
4. write ``Needs_Action/FILE_<stem>_<sha8>.md``; audit; index its sha256 in
   ``.state/file_drops/taken/``; remove the intent.

Every pass first finishes an intent left by a crash: the inode it names is found in
``Files/`` (finish from step 4: a task found with the same file and ``received`` is that
drop's own) or, unchanged, still in ``Inbox/`` (move it, then finish). Anything else (the
file changed or is gone) lets the intent go and the drop is looked at afresh. So a restart
never loses a drop and never writes a second task for it.

A drop with the same sha256 as an earlier one whose file in ``Files/`` still holds those bytes
(see :mod:`core.file_taken`) is a duplicate: it is moved to ``Files/`` all the same (nothing
dropped is ever deleted), audited with the file it repeats, and gets no task, so the same
invoice dropped twice cannot turn into two payments.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import TargetExistsError
from core.faults import fault_point
from core.file_drops import (
    DEFAULT_QUIET,
    DEFAULT_SETTLE,
    Drop,
    Settler,
    Sig,
    digest,
    files_name,
    ignored,
    numbered,
    refusal,
    shown_name,
    task_body,
    task_meta,
    task_stem,
    writer_open,
)
from core.file_taken import (
    INTENT,
    OPEN_FLAGS,
    STATE,
    TAKEN,
    audited,
    decode_intent,
    encode_intent,
    find_task,
    kept_copy,
    read_taken,
    taken_entry,
    task_is_for,
    write_taken,
)
from core.fsutil import atomic_write, fsync_dir, locked, move_no_replace
from core.tasks import iso_utc
from core.vault import Vault

__all__ = ["INTENT", "STATE", "TAKEN", "Intake", "Scan"]
LOCK = "inbox_watcher.lock"


@dataclass
class Scan:
    """What one pass did, and what it left waiting."""

    made: list[str] = field(default_factory=list)  # tasks written (vault-relative)
    duplicates: list[str] = field(default_factory=list)  # Files/ paths given no task
    pending: dict[str, float] = field(default_factory=dict)  # name -> seconds to wait

    @property
    def next_look(self) -> float | None:
        return min(self.pending.values()) if self.pending else None


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


class Intake:
    """Takes the complete drops of one vault's ``Inbox/``; :meth:`scan` is one pass."""

    def __init__(
        self,
        vault: Vault,
        *,
        settle: float = DEFAULT_SETTLE,
        quiet: float = DEFAULT_QUIET,
        say: Callable[[str], None] | None = None,
        settler: Settler | None = None,
    ) -> None:
        self.vault = vault
        self.settler = settler or Settler(settle=settle, quiet=quiet)
        self.say = say or (lambda line: print(line, flush=True))
        self._told: dict[str, str] = {}  # name -> the last thing said about it (said once)
        self._state_ready = False

    def closed(self, name: str) -> None:
        """An event said ``name``'s writer closed it or it was renamed in (any thread)."""
        self.settler.closed(name)

    # -- state ---------------------------------------------------------------------------
    @property
    def _state(self) -> Path:
        path = self.vault.state_dir / STATE
        if not self._state_ready:
            (path / TAKEN).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._state_ready = True
        return path

    def _save_intent(self, drop: Drop) -> None:
        atomic_write(self._state / INTENT, encode_intent(drop), mode=0o600)

    def _clear_intent(self) -> None:
        (self._state / INTENT).unlink(missing_ok=True)
        fsync_dir(self._state)

    def _load_intent(self) -> Drop | None:
        """The intent left by a crash; one that cannot be read or trusted is refused."""
        try:
            return decode_intent((self._state / INTENT).read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            why = f"an intent that cannot be used was let go ({exc})"
            self.say(f"{why}; the Inbox is looked at afresh")
            target = f".state/{STATE}/{INTENT}"
            self.vault.record("inbox", "recover", target, status="refused", reason=why)
            self._clear_intent()
            return None

    def _first(self, sha256: str) -> dict[str, Any] | None:
        return read_taken(self._state / TAKEN, sha256)

    def _index(self, sha256: str, entry: dict[str, Any]) -> None:
        write_taken(self._state / TAKEN, sha256, entry)

    # -- telling -------------------------------------------------------------------------
    def _tell(self, name: str, key: str, text: str, *, audit: str = "") -> None:
        """Say (and audit with status ``audit``) something about ``name``, once per key."""
        if self._told.get(name) == key:
            return
        self._told[name] = key
        shown = shown_name(name)
        self.say(f"Inbox/{shown}: {text}")
        if audit:
            self.vault.record("inbox", audit, f"Inbox/{shown}", status=audit, reason=text)

    # -- one pass ------------------------------------------------------------------------
    def scan(self, only: set[str] | None = None) -> Scan:
        """Finish an interrupted take, then take every complete drop (of ``only``, if given)."""
        inbox = self.vault.folder("Inbox")
        self.vault.folder("Files")
        result = Scan()
        with locked(self.vault.state_dir / "locks" / LOCK):
            self.recover(result)
            names = sorted(os.listdir(inbox))
            present = set(names)
            self.settler.keep_only(present)
            self._told = {k: v for k, v in self._told.items() if k in present}
            for name in names:
                if (only is None or name in only) and not ignored(name):
                    self._look(inbox, name, result)
        return result

    def _look(self, inbox: Path, name: str, result: Scan) -> None:
        st = _lstat(inbox / name)
        if st is None:
            return
        why = refusal(st)
        if why:
            self._tell(
                name, f"refused {st.st_ino} {why}", f"left where it is: {why}", audit="refused"
            )
            return
        sig = Sig.of(st)
        wait = self.settler.wait_left(name, sig)
        if wait > 0:
            result.pending[name] = wait
            return
        try:
            self._take(inbox, name, sig, result)
        except OSError as exc:
            self._tell(name, f"error {exc}", f"could not be taken: {exc}", audit="error")

    def _take(self, inbox: Path, name: str, sig: Sig, result: Scan) -> None:
        try:
            fd = os.open(inbox / name, OPEN_FLAGS)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.EISDIR):
                raise  # e.g. not readable: said once, tried again at the next rescan
            result.pending[name] = self.settler.restart(name)  # it became a link or other
            return
        try:
            if Sig.of(os.fstat(fd)) != sig:
                result.pending[name] = self.settler.restart(name)
                return
            if writer_open(fd):
                self._tell(name, "busy", "waiting: a program still has it open for writing")
                result.pending[name] = self.settler.restart(name)
                return
            sha256, head = digest(fd)
            if Sig.of(os.fstat(fd)) != sig:  # written to while being read
                result.pending[name] = self.settler.restart(name)
                return
            os.fsync(fd)
        finally:
            os.close(fd)
        self._move(inbox, Drop(name, sig, sha256, head, iso_utc()), result)

    def _move(self, inbox: Path, drop: Drop, result: Scan) -> None:
        files = self.vault.folder("Files")
        base = files_name(drop.source)
        for n in range(1, 1000):
            drop.target = numbered(base, n)
            if os.path.lexists(files / drop.target):
                continue
            self._save_intent(drop)
            fault_point("inbox:after_intent")
            try:
                move_no_replace(inbox / drop.source, files / drop.target)
            except FileExistsError:
                continue
            except OSError:
                self._clear_intent()
                raise
            fault_point("inbox:after_move")
            self._finish(drop, result)
            return
        self._clear_intent()
        raise TargetExistsError(f"too many files named like {base} in Files/", "archive some")

    # -- finishing -----------------------------------------------------------------------
    def _finish(self, drop: Drop, result: Scan, *, recovering: bool = False) -> None:
        """The drop is in Files/: its task (or its duplicate record), index, no intent."""
        path = self.vault.folder("Files") / drop.target
        st = os.lstat(path)
        if not Sig.of(st).same_data(drop.sig):  # swapped or written to since the hash
            fresh = None if refusal(st) else self._rehash(drop, path)
            if fresh is None:
                self._send_back(drop, path)
                return
            drop = fresh
        first = self._first(drop.sha256)
        kept = kept_copy(self.vault.folder("Files"), first, drop) if first else None
        if first and kept:
            if not (recovering and audited(self.vault, "duplicate", drop)):
                self.vault.record(
                    "inbox",
                    "duplicate",
                    drop.file,
                    duplicate_of=str(first["file"]),
                    task=str(first.get("task", "")),
                    sha256=drop.sha256,
                    original_name=drop.original_name,
                )
            if kept != first:  # the same bytes, touched since: remembered as they are now
                self._index(drop.sha256, kept)
            self._clear_intent()
            earlier = shown_name(str(first["file"]))
            self.say(f"duplicate of {earlier}: moved to {drop.file}, no new task")
            result.duplicates.append(drop.file)
            return
        # Each step is skipped if a crashed run did it already; a fault point follows real work.
        task, created = self._write_task(drop)
        if created:
            fault_point("inbox:after_task")
        if not (recovering and audited(self.vault, "take", drop)):
            self.vault.record(
                "inbox",
                "take",
                drop.file,
                task=task,
                sha256=drop.sha256,
                size=drop.sig.size,
                mime_type=drop.type.mime_type,
                original_name=drop.original_name,
            )
            fault_point("inbox:after_audit")
        entry = taken_entry(drop, task)
        if first != entry:
            self._index(drop.sha256, entry)
            fault_point("inbox:after_index")
        self._clear_intent()
        self.say(f"new: {task} ({drop.file}, {drop.sig.size:,} bytes)")
        result.made.append(task)

    def _rehash(self, drop: Drop, path: Path) -> Drop | None:
        """``drop`` as the file now in Files/ is (written to since the hash); None if what is
        there now is not a plain file."""
        try:
            fd = os.open(path, OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.EISDIR):
                return None
            raise
        try:
            st = os.fstat(fd)
            if refusal(st):
                return None
            sha256, head = digest(fd)
        finally:
            os.close(fd)
        fresh = Drop(drop.source, Sig.of(st), sha256, head, drop.received, drop.target)
        self._save_intent(fresh)
        return fresh

    def _send_back(self, drop: Drop, path: Path) -> None:
        """What reached Files/ is not the file hashed but a link, folder, FIFO or device swapped
        into Inbox/ in between: it goes back to Inbox/ (under a free name), refused there."""
        inbox = self.vault.folder("Inbox")
        for n in range(1, 1000):
            back = drop.source if n == 1 else numbered(files_name(drop.source), n)
            try:
                move_no_replace(path, inbox / back)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                self._clear_intent()
                text = f"could not be moved back from {drop.file}: {exc}"
                self._tell(drop.source, f"error {exc}", text, audit="error")
                return
        else:
            self._clear_intent()
            raise TargetExistsError(f"{drop.file} cannot go back to Inbox/", "empty Inbox/")
        self._clear_intent()
        st = os.lstat(inbox / back)
        why = refusal(st) or "it changed while being taken"
        text = f"swapped while being taken, so moved back from {drop.file}: {why}"
        self._tell(back, f"refused {st.st_ino} {why}", text, audit="refused")

    def _write_task(self, drop: Drop) -> tuple[str, bool]:
        """Create the drop's task (True) or find the one already written for it (False)."""
        stem = task_stem(drop.source, drop.sha256)
        for n in range(1, 100):
            name = f"{stem}.md" if n == 1 else f"{stem}_{n}.md"
            found = find_task(self.vault, name)
            if found is None:
                meta, body = task_meta(drop, name[:-3]), task_body(drop)
                try:
                    self.vault.create("Needs_Action", name, meta, body)
                    return f"Needs_Action/{name}", True
                except TargetExistsError:
                    found = self.vault.folder("Needs_Action") / name
            if task_is_for(found, drop):
                return str(found.relative_to(self.vault.root)), False
        raise TargetExistsError(f"too many tasks named {stem}", "archive some of them")

    # -- after a crash -------------------------------------------------------------------
    def recover(self, result: Scan | None = None) -> None:
        """Finish the take an earlier process left half done, or let it go."""
        drop = self._load_intent()
        if drop is None:
            return
        result = result if result is not None else Scan()
        inbox, files = self.vault.folder("Inbox"), self.vault.folder("Files")
        src, dst = _lstat(inbox / drop.source), _lstat(files / drop.target)
        here = (drop.sig.dev, drop.sig.ino)
        if dst is not None and (dst.st_dev, dst.st_ino) == here:
            if src is not None and (src.st_dev, src.st_ino) == here:  # link + unlink, cut short
                os.unlink(inbox / drop.source)
                fsync_dir(inbox)
            self._finish(drop, result, recovering=True)
            return
        if dst is not None and refusal(dst) and (src is None or (src.st_dev, src.st_ino) != here):
            self._send_back(drop, files / drop.target)  # swapped in, then a crash
            return
        if dst is None and src is not None and Sig.of(src) == drop.sig:
            try:
                move_no_replace(inbox / drop.source, files / drop.target)
            except OSError as exc:
                self._clear_intent()
                self._tell(drop.source, f"error {exc}", f"could not be taken: {exc}", audit="error")
                return
            fault_point("inbox:after_move")
            self._finish(drop, result, recovering=True)
            return
        self.say(f"an interrupted take of {drop.original_name!r} was let go: it changed or is gone")
        self._clear_intent()
