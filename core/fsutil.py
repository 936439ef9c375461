"""Durable file primitives: atomic writes, moves that never overwrite, folder fsync, locks.

These follow Maildir's rule: write to a temporary name in the same folder,
fsync, rename into place, fsync the folder. Moves use ``renameat2`` with
``RENAME_NOREPLACE`` where the kernel has it (atomic: the file is in exactly one
place at every instant) and ``link`` + ``unlink`` elsewhere.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.faults import fault_point

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (creations, renames) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_temp(folder: Path, name: str, data: bytes, mode: int) -> Path:
    tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        fault_point("write:after_create")
        write_all(fd, data)
        fault_point("write:after_write")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, sync_folder: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a part.

    The data is always fsynced before the rename. ``sync_folder=False`` skips the
    folder fsync: a power cut may then bring back the old file, whole. Use it only
    where the old file is a safe state.
    """
    tmp = _write_temp(path.parent, path.name, data, mode)
    fault_point("write:before_rename")
    os.rename(tmp, path)
    fault_point("write:after_rename")
    if sync_folder:
        fsync_dir(path.parent)


def atomic_create(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Create ``path`` with ``data`` atomically and durably; FileExistsError if it exists."""
    tmp = _write_temp(path.parent, path.name, data, mode)
    fault_point("write:before_rename")
    try:
        _move(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fault_point("write:after_rename")
    fsync_dir(path.parent)


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """Try the atomic kernel call; False if this kernel or filesystem lacks it."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def _move(src: Path, dst: Path) -> None:
    if _rename_noreplace(src, dst):
        return
    os.link(src, dst, follow_symlinks=False)
    fault_point("move:after_link")
    try:
        os.unlink(src)
    except FileNotFoundError:
        # Another mover linked the same file too and unlinked it first: it won.
        # Take back our own link (same inode) so the file is in one place only.
        # If ours is the only name left, the file is ours after all.
        if os.stat(dst, follow_symlinks=False).st_nlink == 1:
            return
        os.unlink(dst)
        raise


def move_no_replace(src: Path, dst: Path, *, durable: bool = True) -> None:
    """Move ``src`` to ``dst``; never overwrite.

    Raises FileExistsError if ``dst`` exists and FileNotFoundError if ``src``
    is gone (someone else moved it first). With ``durable`` both folders are
    fsynced afterwards.
    """
    fault_point("move:before")
    _move(src, dst)
    fault_point("move:after_rename")
    if durable:
        fsync_dir(dst.parent)
        if src.parent != dst.parent:
            fsync_dir(src.parent)


@contextmanager
def locked(lock_path: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on ``lock_path`` across processes.

    With ``wait=False`` a lock held elsewhere raises BlockingIOError at once.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
    try:
        fd = os.open(lock_path, flags, 0o600)
    except FileNotFoundError:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)
