"""The intake's own state in ``.state/file_drops/``: the intent and the index of drops taken.

``intent.json`` is the :class:`~core.file_drops.Drop` being taken. It is read back after a
crash, so nothing in it is trusted: its names must each be one plain name (the one in
``Inbox/`` may hold any character a file name can; the one in ``Files/`` must pass the vault's
path rules), its sha256 64 hex digits, or the intent is refused.

``taken/<sha256>.json`` names the file in ``Files/`` that first held those bytes, its task,
and the inode, size and mtime that file had. A later drop with the same sha256 is a duplicate
only while that file still holds those bytes: the same inode, size and mtime, or (if any of
them changed) the same sha256 when it is hashed again. A name alone proves nothing: the file
may have been deleted and another one given its name.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.email_tasks import TASK_FOLDERS
from core.errors import TaskFileError, UnsafePathError
from core.file_drops import Drop, Sig, digest, ignored, shown_name
from core.fsutil import atomic_write
from core.paths import split_relative
from core.tasks import read_task_file
from core.vault import Vault

STATE = "file_drops"
INTENT = "intent.json"
TAKEN = "taken"
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
NAME_MAX = 255
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEPT = ("ino", "size", "mtime_ns")  # what the index remembers of the kept file


# -- the intent ------------------------------------------------------------------------------
def encode_intent(drop: Drop) -> bytes:
    data = {
        "source": drop.source,
        "sig": asdict(drop.sig),
        "sha256": drop.sha256,
        "head": drop.head.hex(),
        "received": drop.received,
        "target": drop.target,
    }
    return json.dumps(data, ensure_ascii=True).encode()  # names may hold lone surrogates


def decode_intent(raw: bytes) -> Drop:
    """The drop an intent names; ValueError if it cannot be read or is not to be trusted."""
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("sig"), dict):
        raise ValueError("it is not an intent")
    texts = {key: data.get(key) for key in ("source", "sha256", "received", "target", "head")}
    if not all(isinstance(value, str) for value in texts.values()):
        raise ValueError("a field is missing or is not text")
    sig = data["sig"]
    if set(sig) != set(Sig.__dataclass_fields__) or not all(
        type(value) is int for value in sig.values()
    ):
        raise ValueError("its file signature is not whole numbers")
    drop = Drop(
        source=data["source"],
        sig=Sig(**sig),
        sha256=data["sha256"],
        head=bytes.fromhex(data["head"]),
        received=data["received"],
        target=data["target"],
    )
    problem = intent_problem(drop)
    if problem:
        raise ValueError(problem)
    return drop


def intent_problem(drop: Drop) -> str | None:
    """Why an intent read back from disk may not be acted on, or None."""
    if not _SHA256.fullmatch(drop.sha256):
        return "its sha256 is not 64 hex digits"
    if not plain_inbox_name(drop.source):
        return f"its Inbox name {shown_name(drop.source)!r} is not one plain file name"
    try:
        parts = split_relative(drop.target)
    except UnsafePathError:
        parts = ()
    if len(parts) != 1:
        return f"its Files name {shown_name(drop.target)!r} is not one plain file name"
    return None


def plain_inbox_name(name: str) -> bool:
    """One entry of Inbox/ that the intake takes: no folder, no '..', not hidden or temporary.
    (Any other character is allowed: names from outside are taken under a safe name.)"""
    if not name or name in (".", "..") or "/" in name or "\0" in name or ignored(name):
        return False
    try:
        return len(os.fsencode(name)) <= NAME_MAX
    except UnicodeError:  # a lone surrogate no file name can hold
        return False


# -- the index of drops taken ----------------------------------------------------------------
def taken_entry(drop: Drop, task: str) -> dict[str, Any]:
    """What the index keeps of a drop just taken (its sig is the file now in Files/)."""
    sig = drop.sig
    return {"file": drop.file, "task": task, "received": drop.received} | {
        key: getattr(sig, key) for key in _KEPT
    }


def read_taken(folder: Path, sha256: str) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / f"{sha256}.json").read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_taken(folder: Path, sha256: str, entry: dict[str, Any]) -> None:
    atomic_write(folder / f"{sha256}.json", json.dumps(entry).encode())


def kept_copy(files: Path, first: dict[str, Any], drop: Drop) -> dict[str, Any] | None:
    """If ``first`` (the index entry of ``drop``'s sha256) names another file in Files/ that
    still holds those bytes, the entry as it should now read; else None."""
    earlier = first.get("file")
    if not isinstance(earlier, str) or earlier == drop.file or not earlier.startswith("Files/"):
        return None
    name = earlier[len("Files/") :]
    if not name or name in (".", "..") or "/" in name:
        return None
    try:
        st = os.lstat(files / name)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size != drop.sig.size:
        return None
    now = {key: getattr(st, f"st_{key}") for key in _KEPT}
    if all(first.get(key) == value for key, value in now.items()):
        return first
    if _sha256_of(files / name) != drop.sha256:  # changed, or another file took the name
        return None
    return {**first, **now}  # the same bytes: remembered as they are now


def _sha256_of(path: Path) -> str | None:
    """The sha256 of a plain file (streamed), None if it is not one or cannot be read."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return digest(fd)[0]
    except OSError:
        return None
    finally:
        os.close(fd)


# -- what a crashed run did already ----------------------------------------------------------
def audited(vault: Vault, action: str, drop: Drop) -> bool:
    """Is the newest inbox entry of this kind (``take``, ``duplicate``) this drop's?"""
    if vault.audit is None:
        return False
    newest = vault.audit.query(category="inbox", action=action, limit=1)
    return bool(newest) and (
        newest[0].target == drop.file and newest[0].details.get("sha256") == drop.sha256
    )


def find_task(vault: Vault, name: str) -> Path | None:
    """The task called ``name`` in any task folder (it may have moved on since)."""
    for folder in TASK_FOLDERS:
        path = vault.folder(folder) / name
        if os.path.lexists(path):
            return path
    return None


def task_is_for(path: Path, drop: Drop) -> bool:
    """Was the task at ``path`` written for this drop (the same file, received then)?"""
    try:
        extra = read_task_file(path).meta.model_extra or {}
    except (TaskFileError, OSError):
        return False
    return extra.get("file") == drop.file and extra.get("received") == drop.received
