"""The one path-confinement function, and a sanitizer for names that come from outside.

Every path that arrives from outside the product (a tool argument, a CLI
argument, a file name in an email) goes through :func:`confine` before it is
used. It refuses, with a clear error and without touching anything, every form
that could leave the vault or reach something that is not a plain file in a
visible folder of it.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

from core.errors import UnsafePathError

MAX_PATH_CHARS = 1024
# Room under NAME_MAX (255) for the hidden temp name an atomic write uses beside a file.
MAX_COMPONENT_BYTES = 200
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_NOT_PORTABLE = set('<>:"|?*')
# Slash and backslash look-alikes that NFKC leaves alone.
_LOOKALIKES = set("\u2044\u2215\u2216\u2571\u2572\u29f5\u29f8\u29f9\ufe68")
_RESERVED_NAMES = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}
_NEXT = "give a path relative to the vault, such as Needs_Action/EMAIL_123.md"


def _refuse(raw: object, why: str) -> UnsafePathError:
    shown = repr(raw)[:120]
    return UnsafePathError(f"Path {shown} refused: {why}", _NEXT)


def _check_text(raw: str) -> None:
    if not raw or not raw.strip():
        raise _refuse(raw, "it is empty")
    if len(raw) > MAX_PATH_CHARS:
        raise _refuse(raw, f"it is longer than {MAX_PATH_CHARS} characters")
    for ch in raw:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise _refuse(raw, f"it contains a control or invisible character U+{ord(ch):04X}")
    if unicodedata.normalize("NFKC", raw) != raw or _LOOKALIKES & set(raw):
        raise _refuse(raw, "it contains look-alike or non-normalized Unicode; type it plainly")
    if "\\" in raw:
        raise _refuse(raw, "backslashes are not allowed; use '/' between folders")
    if raw.startswith("/") or _WINDOWS_DRIVE.match(raw):
        raise _refuse(raw, "absolute paths are not allowed")
    if raw.startswith("~") or "$" in raw:
        raise _refuse(raw, "home ('~') and variable ('$') expansion are not allowed")
    if _PERCENT_ESCAPE.search(raw):
        raise _refuse(raw, "percent-encoded characters are not allowed; decode the name first")


def _check_component(raw: str, part: str) -> None:
    if part in ("", ".", ".."):
        raise _refuse(raw, "empty, '.' and '..' segments are not allowed")
    if part.startswith("."):
        raise _refuse(
            raw, f"hidden entries such as {part!r} (.git, .state, .obsidian) are off limits"
        )
    if part.startswith("-"):
        raise _refuse(raw, f"a segment may not start with '-' ({part!r})")
    if part != part.strip() or part.endswith("."):
        raise _refuse(
            raw, f"a segment may not start or end with a space or end with '.' ({part!r})"
        )
    if _NOT_PORTABLE & set(part):
        raise _refuse(raw, f"{part!r} contains a character not allowed in portable file names")
    if part.split(".")[0].lower() in _RESERVED_NAMES:
        raise _refuse(raw, f"{part!r} is a reserved device name on some systems")
    if len(part.encode()) > MAX_COMPONENT_BYTES:
        raise _refuse(raw, f"a segment is longer than {MAX_COMPONENT_BYTES} bytes")


def split_relative(raw: object) -> tuple[str, ...]:
    """Check the text of a vault-relative path and return its segments (no filesystem access)."""
    if not isinstance(raw, str):
        raise _refuse(raw, "it is not text")
    _check_text(raw)
    parts = tuple(raw.split("/"))
    for part in parts:
        _check_component(raw, part)
    return parts


def _check_leaf(raw: str, leaf: Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(raw, "it is a symbolic link; links are never followed")
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(raw, "it is not a regular file (a folder, FIFO, socket or device)")
    if st.st_nlink > 1:
        raise _refuse(raw, "it is hard-linked elsewhere; copy the file instead of linking it")


def confine(root: Path, raw: object, *, must_exist: bool = True) -> Path:
    """Return the absolute path of ``raw`` inside the vault ``root``, or raise UnsafePathError.

    Every parent folder must be a real folder (no symlinks, however they point);
    the target, if it exists, must be a regular file with one link. With
    ``must_exist=False`` a missing target is allowed (for writes), but its
    parent folder must exist.
    """
    parts = split_relative(raw)
    base = Path(os.path.realpath(root))
    current = base
    for index, part in enumerate(parts):
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if index == len(parts) - 1 and not must_exist:
                return current
            raise _refuse(raw, "it does not exist in the vault") from None
        if index < len(parts) - 1:
            if stat.S_ISLNK(st.st_mode):
                raise _refuse(raw, f"{part!r} is a symbolic link; links are never followed")
            if not stat.S_ISDIR(st.st_mode):
                raise _refuse(raw, f"{part!r} is not a folder")
        else:
            _check_leaf(str(raw), current, st)
    return current


def relative_to_vault(root: Path, raw: str) -> str:
    """Turn a path typed by a person (absolute, or relative to the vault) into vault-relative text.

    Only for the CLI, where a person may paste an absolute path. Nothing inside the
    vault is resolved here (links stay links, for :func:`confine` to refuse).
    """
    if not raw.startswith("/"):
        return raw
    if ".." in raw.split("/"):
        raise _refuse(raw, "'..' segments are not allowed")
    normal = Path(os.path.normpath(raw))
    vault = os.path.realpath(root)
    # Shallowest ancestor first: an alias of the vault itself is fine, links inside it are not.
    for ancestor in reversed(normal.parents):
        if os.path.realpath(ancestor) == vault:
            return str(normal.relative_to(ancestor))
    raise _refuse(raw, f"it is outside the vault {vault}")


_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,16}")


def _ascii_clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) not in _BAD_CATEGORIES)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _UNSAFE_NAME_CHARS.sub("_", text)


def safe_filename(name: str, *, default: str = "file", max_bytes: int = 120) -> str:
    """Make a portable, harmless file name out of a name from outside (never a path).

    The result always passes :func:`split_relative` as a single segment.
    """
    base = name.replace("/", "_").replace("\\", "_")
    stem_raw, dot, ext = base.rpartition(".")
    has_ext = bool(dot and stem_raw and _EXTENSION.fullmatch(ext)) and len(ext) < max_bytes - 1
    if not has_ext:
        stem_raw, ext = base, ""
    room = max(max_bytes - (len(ext) + 1 if ext else 0), 1)
    stem = re.sub(r"\.{2,}", ".", _ascii_clean(stem_raw)).strip(" .-_")
    stem = stem[:room].rstrip(" .-_") or default[:room]
    if stem.split(".")[0].lower() in _RESERVED_NAMES:
        stem = f"_{stem}"[:room]
    return f"{stem}.{ext}" if ext else stem


def slug(text: str, *, max_bytes: int = 60) -> str:
    """A short file-name part made from outside text: safe, portable, no spaces."""
    return safe_filename(text, max_bytes=max_bytes).replace(" ", "_")
