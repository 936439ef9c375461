"""The audit trail: one append-only, hash-chained JSONL file per zone.

Each line is one entry in compact JSON. ``hash`` is the SHA-256 of the entry's
canonical JSON (sorted keys, compact) without ``hash``; ``prev`` is the hash of
the entry before it (64 zeros for the first). A checkpoint in ``.state/`` keeps
the last ``(seq, hash)`` so that lines cut off the end are caught as well.
Appends hold a per-zone lock; reads take no lock and look only at complete lines.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import AuditError, AuditTamperedError
from core.faults import FAULT_ENV, fault_point
from core.fsutil import fsync_dir, locked

ZONES = ("local", "cloud")
GENESIS = "0" * 64
REDACTED = "[redacted]"
_SECRET_MARKERS = (
    "password", "passwd", "secret", "token", "apikey", "authorization", "cookie", "privatekey",
)
_HEX64 = r"^[0-9a-f]{64}$"
_TS_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
_TS_KEY = b'"ts":"'
_TS_LEN = 27
_TEXT_FIELDS = ("actor", "category", "action", "target", "status")
# The key written right after each filterable field: a longer, more exact search pattern.
_NEXT_KEY = {"actor": "category", "category": "action", "action": "target", "status": "dry_run"}
_TAIL_CHUNK = 8192
_SLOT = 128
_SAMPLE_WINDOWS = 8
_SAMPLE_BYTES = 1 << 16
_RESTORE = "run `ai-employee status`, then restore Logs/ from the vault's git history"


class AuditEntry(BaseModel):
    """One line of the trail, exactly as it was written."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    seq: int = Field(ge=1)
    ts: str = Field(pattern=_TS_PATTERN)
    actor: str
    category: str
    action: str
    target: str
    status: str
    dry_run: bool
    details: dict[str, Any]
    prev: str = Field(pattern=_HEX64)
    hash: str = Field(pattern=_HEX64)


class VerifyReport(BaseModel):
    """The outcome of walking the whole trail; ``problem`` says what is wrong and what to do."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    first_bad_line: int | None = None
    problem: str | None = None
    checkpoint_seq: int | None = None


@dataclass(frozen=True)
class _Tip:
    seq: int
    hash: str
    ts: str


_START = _Tip(0, GENESIS, "")


class AuditLog:
    """The audit trail of one zone in one vault."""

    def __init__(self, vault_root: Path, zone: str = "local") -> None:
        if zone not in ZONES:
            raise AuditError(f"unknown zone {zone!r} for the audit trail", "set ZONE=local or ZONE=cloud")
        self.zone = zone
        self.path = Path(vault_root) / "Logs" / f"audit-{zone}.jsonl"
        state = Path(vault_root) / ".state"
        self._lock = state / f"audit-{zone}.lock"
        self._checkpoint = state / f"audit-{zone}.checkpoint.json"
        self._torn = state / f"audit-{zone}.torn"

    def append(
        self, *, actor: str, category: str, action: str, target: str, status: str,
        dry_run: bool, details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Write one entry durably (fsynced) and return it; safe across processes."""
        fields = {"actor": actor, "category": category, "action": action, "target": target,
                  "status": status}
        _check_types(fields, dry_run)
        clean = _clean_details(details)
        with locked(self._lock):
            fd = self._open_for_append()
            try:
                tip = self._tip_for_append(fd)
                record = {"seq": tip.seq + 1, "ts": max(_now(), tip.ts), **fields,
                          "dry_run": dry_run, "details": clean, "prev": tip.hash}
                line = _seal(record)
                entry = AuditEntry.model_validate(record)
                self._write(fd, line)
            finally:
                os.close(fd)
            self._save_checkpoint(entry.seq, entry.hash)
        return entry

    def last(self) -> AuditEntry | None:
        """The newest complete entry, read from the tail of the file only."""
        fd = _open_read(self.path)
        if fd is None:
            return None
        try:
            _, line = _tail(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        return None if line is None else self._parse(line)

    def query(
        self, *, category: str | None = None, status: str | None = None, actor: str | None = None,
        action: str | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int | None = None, newest_first: bool = True,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, with ``since <= ts < until``.

        Naive datetimes are taken as UTC. Equality filters are exact.
        """
        if limit is not None and limit < 0:
            raise AuditError(f"limit must be zero or more, not {limit}", "pass limit=None for all")
        wanted = {name: value for name, value in (("actor", actor), ("category", category),
                  ("action", action), ("status", status)) if value is not None}
        fd = _open_read(self.path)
        if fd is None:
            return []
        try:
            end, _ = _tail(fd, os.fstat(fd).st_size)
            if end == 0 or limit == 0:
                return []
            with mmap.mmap(fd, end, access=mmap.ACCESS_READ) as mm:
                lo = _lower_bound(mm, 0, end, _ts_key(since)) if since is not None else 0
                hi = _lower_bound(mm, lo, end, _ts_key(until)) if until is not None else end
                return self._select(mm, lo, hi, wanted, limit, newest_first)
        finally:
            os.close(fd)

    def verify(self) -> VerifyReport:
        """Walk every line and report the first entry that breaks the chain."""
        with locked(self._lock):
            try:
                checkpoint, ck_problem = self._read_checkpoint(), None
            except AuditTamperedError as exc:
                checkpoint, ck_problem = None, str(exc)
            fd = _open_read(self.path)
            size = os.fstat(fd).st_size if fd is not None else 0
        ck_seq = checkpoint[0] if checkpoint else None
        if fd is None:
            if checkpoint is None:
                return VerifyReport(ok=ck_problem is None, entries=0, problem=ck_problem)
            return VerifyReport(ok=False, entries=0, first_bad_seq=1, first_bad_line=1,
                                checkpoint_seq=ck_seq, problem=self._truncated(0, ck_seq))
        try:
            end, _ = _tail(fd, size)
            count, tip, bad = self._walk(fd, end, checkpoint)
        finally:
            os.close(fd)
        if bad is None and checkpoint and tip.seq < checkpoint[0]:
            bad = (tip.seq + 1, count + 1, self._truncated(tip.seq, checkpoint[0]))
        if bad is None and end < size:
            bad = (None, count + 1, f"the last line of {self.path} is torn (a crash mid-write, never "
                   f"acknowledged); the next append moves it to {self._torn}")
        if bad is None and ck_problem:
            bad = (None, None, ck_problem)
        if bad is None:
            return VerifyReport(ok=True, entries=count, checkpoint_seq=ck_seq)
        return VerifyReport(ok=False, entries=count, first_bad_seq=bad[0], first_bad_line=bad[1],
                            problem=bad[2], checkpoint_seq=ck_seq)

    # -- append helpers ---------------------------------------------------------------------

    def _open_for_append(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW
        try:
            return os.open(self.path, flags)
        except FileNotFoundError:
            checkpoint = self._read_checkpoint()
            if checkpoint is not None:
                raise AuditTamperedError(self._truncated(0, checkpoint[0]), "") from None
        fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        fsync_dir(self.path.parent)
        return fd

    def _tip_for_append(self, fd: int) -> _Tip:
        size = os.fstat(fd).st_size
        end, line = _tail(fd, size)
        if end < size:
            self._save_torn(fd, end, size)
        tip = _START
        if line is not None:
            entry = self._parse(line)
            tip = _Tip(entry.seq, entry.hash, entry.ts)
        checkpoint = self._read_checkpoint()
        if checkpoint and tip.seq < checkpoint[0]:
            raise AuditTamperedError(self._truncated(tip.seq, checkpoint[0]), "")
        if checkpoint and tip.seq == checkpoint[0] and tip.hash != checkpoint[1]:
            raise AuditTamperedError(self._rewritten(tip.seq), "")
        return tip

    def _save_torn(self, fd: int, end: int, size: int) -> None:
        """Move the never-acknowledged bytes after the last newline aside, then cut them off."""
        torn = os.pread(fd, size - end, end)
        out = os.open(self._torn, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            _write_all(out, torn + b"\n")
            os.fsync(out)
        finally:
            os.close(out)
        fault_point("audit:torn_saved")
        os.ftruncate(fd, end)
        os.fsync(fd)

    def _write(self, fd: int, line: bytes) -> None:
        try:
            if os.environ.get(FAULT_ENV) == "audit:mid_write":  # crash tests only: a torn line
                os.write(fd, line[: len(line) // 2])
                fault_point("audit:mid_write")
            _write_all(fd, line)
            fault_point("audit:after_write")
            os.fsync(fd)
        except OSError as exc:
            raise AuditError(f"could not write to the audit trail {self.path}: {exc.strerror}",
                             "check free disk space and permissions; the entry was not recorded"
                             ) from exc
        fault_point("audit:after_fsync")

    def _read_checkpoint(self) -> tuple[int, str] | None:
        try:
            raw = self._checkpoint.read_bytes()
        except FileNotFoundError:
            return None
        slots = [_parse_slot(raw[i: i + _SLOT]) for i in range(0, len(raw), _SLOT)]
        best = max((s for s in slots if s is not None), default=None)
        if best is None:
            raise AuditTamperedError(
                f"the audit checkpoint {self._checkpoint} is unreadable",
                "run `ai-employee status`; if the trail verifies, delete the checkpoint so the "
                "next append writes a fresh one")
        return best

    def _save_checkpoint(self, seq: int, digest: str) -> None:
        # Two fixed slots overwritten in turn, each with a CRC: a torn write leaves the other
        # slot intact. No rename: on ext4 replacing a file by rename flushes it (~0.25 ms).
        # Written after the log's fsync, so the checkpoint can lag the log but never lead it.
        fd = os.open(self._checkpoint, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.pwrite(fd, _slot(seq, digest), (seq % 2) * _SLOT)
        finally:
            os.close(fd)

    # -- read helpers ------------------------------------------------------------------------

    def _parse(self, raw: bytes) -> AuditEntry:
        try:
            return AuditEntry.model_validate_json(raw)
        except ValueError:
            raise AuditTamperedError(f"a line of {self.path} is not a valid audit entry",
                                     f"{_RESTORE}; `verify` names the line") from None

    def _select(self, mm: mmap.mmap, lo: int, hi: int, wanted: dict[str, str],
                limit: int | None, newest_first: bool) -> list[AuditEntry]:
        patterns = [_pattern(name, value) for name, value in wanted.items()]
        if len(patterns) > 1:
            patterns.sort(key=lambda p: _rarity(mm, lo, hi, p))
        if patterns:
            lines = _hits(mm, lo, hi, patterns[0], newest_first)
        else:
            lines = _lines(mm, lo, hi, newest_first)
        rest, found = patterns[1:], []
        for raw in lines:
            if any(p not in raw for p in rest):
                continue
            entry = self._parse(raw)
            if all(getattr(entry, name) == value for name, value in wanted.items()):
                found.append(entry)
                if limit is not None and len(found) >= limit:
                    break
        return found

    def _walk(self, fd: int, end: int, checkpoint: tuple[int, str] | None
              ) -> tuple[int, _Tip, tuple[int | None, int, str] | None]:
        """Check lines in order; return (line count, last good tip, first problem)."""
        tip, bad, count = _START, None, 0
        if end == 0:
            return count, tip, bad
        with mmap.mmap(fd, end, access=mmap.ACCESS_READ) as mm:
            for count, raw in enumerate(iter(mm.readline, b""), 1):
                if bad is not None:
                    continue
                entry, problem = _check_line(raw[:-1], tip)
                if problem is None and checkpoint and entry and entry.seq == checkpoint[0] \
                        and entry.hash != checkpoint[1]:
                    problem = self._rewritten(entry.seq)
                if problem is not None:
                    seq = entry.seq if entry else None
                    bad = (seq, count, f"line {count}: {problem}; {_RESTORE}")
                elif entry is not None:
                    tip = _Tip(entry.seq, entry.hash, entry.ts)
        return count, tip, bad

    def _truncated(self, last_seq: int, ck_seq: int) -> str:
        return (f"the audit trail {self.path} was truncated: it ends at seq {last_seq} but "
                f"seq {ck_seq} was written; do not append, {_RESTORE}")

    def _rewritten(self, seq: int) -> str:
        return (f"entry {seq} of {self.path} differs from the one the checkpoint recorded "
                f"(rewritten); do not append, {_RESTORE}")


def _check_line(raw: bytes, tip: _Tip) -> tuple[AuditEntry | None, str | None]:
    try:
        data = json.loads(raw)
        entry = AuditEntry.model_validate(data)
    except ValueError:
        return None, "not a valid audit entry (unparsable JSON or wrong fields)"
    if entry.seq != tip.seq + 1:
        return entry, (f"seq {entry.seq} where {tip.seq + 1} was expected "
                       "(a line was deleted, inserted or reordered)")
    if entry.prev != tip.hash:
        return entry, "prev does not match the hash of the entry before it (chain broken)"
    del data["hash"]
    if hashlib.sha256(_canonical(data)).hexdigest() != entry.hash:
        return entry, "hash mismatch: the entry was edited after it was written"
    if entry.ts < tip.ts:
        return entry, f"ts {entry.ts} goes back before {tip.ts}"
    if _dump(entry.model_dump()) != raw:
        return entry, "the line is not in canonical compact form (edited by hand)"
    return entry, None


def _check_types(fields: dict[str, Any], dry_run: bool) -> None:
    for name, value in fields.items():
        if not isinstance(value, str):
            raise AuditError(f"audit field {name} must be a string, not {type(value).__name__}",
                             "pass text for actor, category, action, target and status")
    if not isinstance(dry_run, bool):
        raise AuditError("audit field dry_run must be True or False", "pass a bool")


def _clean_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """Redact secret-looking values and normalise to plain JSON (what verify will read back)."""
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise AuditError("audit details must be a dict", "pass a dict of JSON values or None")
    try:
        text = json.dumps(_redact(details), allow_nan=False, ensure_ascii=True)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"audit details are not JSON-serializable ({exc})",
                         "pass only str, int, float, bool, None, lists and dicts") from None
    return json.loads(text)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _is_secret_key(key: object) -> bool:
    folded = str(key).lower().replace("_", "").replace("-", "")
    return any(marker in folded for marker in _SECRET_MARKERS)


def _slot(seq: int, digest: str) -> bytes:
    crc = zlib.crc32(f"{seq}:{digest}".encode())
    text = json.dumps({"seq": seq, "hash": digest, "crc": crc}, separators=(",", ":"))
    return text.ljust(_SLOT - 1).encode() + b"\n"


def _parse_slot(raw: bytes) -> tuple[int, str] | None:
    try:
        data = json.loads(raw)
        seq, digest, crc = data["seq"], data["hash"], data["crc"]
    except (ValueError, KeyError, TypeError):
        return None
    ok = isinstance(seq, int) and isinstance(digest, str)
    return (seq, digest) if ok and zlib.crc32(f"{seq}:{digest}".encode()) == crc else None


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _seal(record: dict[str, Any]) -> bytes:
    """Set ``record['hash']`` and return the line (fields in record order, newline-terminated)."""
    body = {k: v for k, v in record.items() if k != "hash"}
    record["hash"] = hashlib.sha256(_canonical(body)).hexdigest()
    return _dump(record) + b"\n"


def _dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode()


def _now() -> str:
    return _format_ts(datetime.now(UTC))


def _format_ts(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _ts_key(moment: datetime) -> bytes:
    return _format_ts(moment).encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _open_read(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None


def _tail(fd: int, size: int) -> tuple[int, bytes | None]:
    """Return (offset just past the last newline, last complete line or None), reading backwards."""
    chunk = _TAIL_CHUNK
    while True:
        start = max(0, size - chunk)
        buf = os.pread(fd, size - start, start)
        end = buf.rfind(b"\n")
        if end >= 0:
            begin = buf.rfind(b"\n", 0, end) + 1
            if begin > 0 or start == 0:
                return start + end + 1, buf[begin:end]
        elif start == 0:
            return 0, None
        chunk *= 4


def _ts_at(mm: mmap.mmap, start: int) -> bytes:
    at = mm.find(_TS_KEY, start, start + 64)
    if at < 0:
        raise AuditTamperedError("an audit line has no ts field where expected",
                                 f"{_RESTORE}; `verify` names the line")
    return mm[at + len(_TS_KEY): at + len(_TS_KEY) + _TS_LEN]


def _lower_bound(mm: mmap.mmap, lo: int, hi: int, key: bytes) -> int:
    """First line start in [lo, hi] whose ts >= key; lo and hi are line starts, ts non-decreasing."""
    while lo < hi:
        mid = (lo + hi) // 2
        start = lo if mid == lo else mm.find(b"\n", mid - 1, hi) + 1
        if start >= hi:  # no line starts in [mid, hi): step over the line at lo
            start = lo
        if _ts_at(mm, start) >= key:
            hi = start
        else:
            lo = mm.find(b"\n", start, hi) + 1
    return lo


def _pattern(name: str, value: str) -> bytes:
    """The exact bytes a field takes in a line, with the key that always follows it."""
    dumped = json.dumps(value, ensure_ascii=True)
    return f'"{name}":{dumped},"{_NEXT_KEY[name]}":'.encode()


def _rarity(mm: mmap.mmap, lo: int, hi: int, pattern: bytes) -> tuple[int, int]:
    """How often ``pattern`` shows up in a few sample windows (fewer first, then longer)."""
    span = hi - lo
    if span <= _SAMPLE_WINDOWS * _SAMPLE_BYTES:
        windows = [(lo, hi)]
    else:
        step = span // _SAMPLE_WINDOWS
        windows = [(lo + i * step, lo + i * step + _SAMPLE_BYTES) for i in range(_SAMPLE_WINDOWS)]
    return sum(mm[a:b].count(pattern) for a, b in windows), -len(pattern)


def _hits(mm: mmap.mmap, lo: int, hi: int, pattern: bytes, backwards: bool) -> Iterator[bytes]:
    """Each line in [lo, hi) containing ``pattern``, once, in file order or reversed."""
    pos = hi if backwards else lo
    while True:
        at = mm.rfind(pattern, lo, pos) if backwards else mm.find(pattern, pos, hi)
        if at < 0:
            return
        start = mm.rfind(b"\n", lo, at) + 1 or lo
        end = mm.find(b"\n", at, hi)
        yield mm[start:end]
        pos = start if backwards else end + 1


def _lines(mm: mmap.mmap, lo: int, hi: int, backwards: bool) -> Iterator[bytes]:
    if not backwards:
        mm.seek(lo)
        while mm.tell() < hi:
            yield mm.readline()[:-1]
        return
    pos = hi
    while pos > lo:
        start = mm.rfind(b"\n", lo, pos - 1) + 1 or lo
        yield mm[start: pos - 1]
        pos = start
