"""The audit file on disk: tail reads, checkpoint slots, time search and pattern scans.

Lines are compact JSON with a fixed field order and ``ts`` never goes backwards,
so a time bound is a binary search, and an equality filter is the exact bytes
``"field":<json value>,"<next field>":`` found with ``bytes.find`` before any
line is parsed. Callers re-check every filter on the parsed entry.
"""

from __future__ import annotations

import json
import mmap
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import AuditTamperedError

_TS_KEY = b'"ts":"'
_NEXT_KEY = {"actor": "category", "category": "action", "action": "target", "status": "dry_run"}
_SAMPLES, _SAMPLE_BYTES = 8, 1 << 16
SLOT = 128
RESTORE_HINT = "run `ai-employee status`, then restore Logs/ from the vault's git history"


def lower_bound(mm: mmap.mmap, lo: int, hi: int, key: bytes) -> int:
    """First line start in [lo, hi] with ts >= key (lo, hi are line starts; ts never decreases)."""
    while lo < hi:
        mid = (lo + hi) // 2
        start = lo if mid == lo else mm.find(b"\n", mid - 1, hi) + 1
        if start >= hi:  # no line starts in [mid, hi): step over the line at lo instead
            start = lo
        at = mm.find(_TS_KEY, start, start + 64) + len(_TS_KEY)
        if at < len(_TS_KEY):
            raise AuditTamperedError("an audit line has no ts where expected", RESTORE_HINT)
        if mm[at : at + len(key)] >= key:
            hi = start
        else:
            lo = mm.find(b"\n", start, hi) + 1
    return lo


def _pattern(name: str, value: str) -> bytes:
    """The exact bytes a field takes in a line, with the key that always follows it."""
    return f'"{name}":{json.dumps(value, ensure_ascii=True)},"{_NEXT_KEY[name]}":'.encode()


def _rarity(mm: mmap.mmap, lo: int, hi: int, pattern: bytes) -> tuple[int, int]:
    """How often ``pattern`` occurs in a few sample windows (fewest first, then longest)."""
    step = (hi - lo) // _SAMPLES
    if step <= _SAMPLE_BYTES:
        return mm[lo:hi].count(pattern), -len(pattern)
    spots = range(lo, lo + _SAMPLES * step, step)
    return sum(mm[a : a + _SAMPLE_BYTES].count(pattern) for a in spots), -len(pattern)


def plan(mm: mmap.mmap, lo: int, hi: int, wanted: dict[str, str]) -> list[bytes]:
    """The patterns of the wanted fields, rarest first: the first is the one scanned for."""
    if not wanted:
        return [b'{"seq":']  # every line starts so: each line is a hit
    patterns = [_pattern(name, value) for name, value in wanted.items()]
    return sorted(patterns, key=lambda p: _rarity(mm, lo, hi, p)) if len(patterns) > 1 else patterns


def hits(
    mm: mmap.mmap, lo: int, hi: int, patterns: list[bytes], backwards: bool
) -> Iterator[tuple[int, int]]:
    """(start, end) of each line in [lo, hi) holding every pattern, in file order or reversed."""
    find, rfind, anchor, rest = mm.find, mm.rfind, patterns[0], patterns[1:]
    pos = hi if backwards else lo
    while (at := rfind(anchor, lo, pos) if backwards else find(anchor, pos, hi)) >= 0:
        start, end = rfind(b"\n", lo, at) + 1 or lo, find(b"\n", at, hi)
        pos = start if backwards else end + 1
        for pattern in rest:
            if find(pattern, start, end) < 0:
                break
        else:
            yield start, end


def slot_bytes(seq: int, digest: str) -> bytes:
    crc = zlib.crc32(f"{seq}:{digest}".encode())
    return f'{{"seq":{seq},"hash":"{digest}","crc":{crc}}}'.ljust(SLOT - 1).encode() + b"\n"


def parse_slot(raw: bytes) -> tuple[int, str] | None:
    try:
        data = json.loads(raw)
        seq, digest, crc = data["seq"], data["hash"], data["crc"]
    except (ValueError, KeyError, TypeError):
        return None
    ok = isinstance(seq, int) and isinstance(digest, str)
    return (seq, digest) if ok and zlib.crc32(f"{seq}:{digest}".encode()) == crc else None


def file_stamp(fd: int) -> tuple[int, int, int]:
    st = os.fstat(fd)
    return st.st_ino, st.st_size, st.st_mtime_ns


@contextmanager
def reading(path: Path) -> Iterator[int | None]:
    """A read-only descriptor of ``path``, or None if there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def tail(fd: int, size: int) -> tuple[int, bytes | None]:
    """(offset just past the last newline, last complete line or None), reading backwards."""
    chunk = 4096
    while True:
        start = max(0, size - chunk)
        buf = os.pread(fd, size - start, start)
        end = buf.rfind(b"\n")
        begin = buf.rfind(b"\n", 0, max(end, 0)) + 1
        if end >= 0 and (begin > 0 or start == 0):
            return start + end + 1, buf[begin:end]
        if start == 0:
            return 0, None
        chunk *= 4
