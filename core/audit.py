"""The audit trail: one append-only, hash-chained JSONL file per zone.

Entries are sealed and checked by :mod:`core.audit_format`. A checkpoint
in ``.state/`` keeps the last ``(seq, hash)`` so that lines cut off the end are caught.
Appends hold a per-zone lock; reads take none and see only complete lines.
"""

from __future__ import annotations

import mmap
import os
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core import audit_file as af
from core import audit_format as fmt
from core import faults
from core.audit_format import GENESIS, REDACTED, AuditEntry
from core.config import ZONES
from core.errors import AuditError, AuditTamperedError
from core.faults import fault_point
from core.fsutil import fsync_dir, locked, write_all

__all__ = ["GENESIS", "REDACTED", "ZONES", "AuditEntry", "AuditLog", "VerifyReport"]


class VerifyReport(BaseModel):
    """The outcome of walking the whole trail; ``problem`` says what is wrong and what to do."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    first_bad_line: int | None = None
    problem: str | None = None
    checkpoint_seq: int | None = None


class AuditLog:
    """The audit trail of one zone in one vault."""

    def __init__(self, vault_root: Path, zone: str = "local") -> None:
        if zone not in ZONES:
            raise AuditError(f"unknown audit zone {zone!r}", "set ZONE=local or ZONE=cloud")
        self.path = Path(vault_root) / "Logs" / f"audit-{zone}.jsonl"
        state = Path(vault_root) / ".state"
        self._lock = state / f"audit-{zone}.lock"
        self._checkpoint = state / f"audit-{zone}.checkpoint.json"
        self._torn = state / f"audit-{zone}.torn"
        # (inode, size, mtime) of the log right after our own last append, and its tip.
        self._known: tuple[tuple[int, int, int], fmt.Tip] | None = None

    def append(
        self,
        *,
        actor: str,
        category: str,
        action: str,
        target: str,
        status: str,
        dry_run: bool,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Write one entry durably (fsynced before returning); safe across processes."""
        fields = {
            "actor": actor,
            "category": category,
            "action": action,
            "target": target,
            "status": status,
            "dry_run": dry_run,
        }
        fmt.validate_fields(fields)
        fields["details"] = fmt.clean_details(details)
        with locked(self._lock):
            fd = self._open_for_append()
            try:
                tip = self._tip_for_append(fd)
                now = fmt.format_ts(datetime.now(UTC))
                record = {"seq": tip.seq + 1, "ts": max(now, tip.ts), **fields, "prev": tip.hash}
                line, entry = fmt.sealed(record)
                self._write(fd, line)
                self._known = (af.file_stamp(fd), fmt.Tip.of(entry))
            finally:
                os.close(fd)
            self._save_checkpoint(entry.seq, entry.hash)
        return entry

    def last(self) -> AuditEntry | None:
        """The newest complete entry, read from the tail of the file only.

        Fails closed (AuditTamperedError) if the trail ends before its checkpoint.
        """
        checkpoint = self._read_checkpoint()  # first: the log can only have grown past it since
        with af.reading(self.path) as fd:
            line = None if fd is None else af.tail(fd, os.fstat(fd).st_size)[1]
        entry = None if line is None else self._parse(line)
        self._check_end(fmt.START if entry is None else fmt.Tip.of(entry), checkpoint)
        return entry

    def query(
        self,
        *,
        category: str | None = None,
        status: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, exactly, with since <= ts < until (naive: UTC)."""
        if limit is not None and limit < 0:
            raise AuditError(f"limit must be zero or more, not {limit}", "pass limit=None for all")
        wanted = {
            k: v
            for k, v in (
                ("actor", actor),
                ("category", category),
                ("action", action),
                ("status", status),
            )
            if v is not None
        }
        with af.reading(self.path) as fd:
            end = 0 if fd is None else af.tail(fd, os.fstat(fd).st_size)[0]
            if end == 0 or limit == 0:
                return []
            with mmap.mmap(fd, end, access=mmap.ACCESS_READ) as mm:
                lo = 0 if since is None else af.lower_bound(mm, 0, end, fmt.ts_key(since))
                hi = end if until is None else af.lower_bound(mm, lo, end, fmt.ts_key(until))
                return self._select(mm, lo, hi, wanted, limit, newest_first)

    def verify(self) -> VerifyReport:
        """Walk every line; report the first entry that breaks the chain, or a cut-off end."""
        with ExitStack() as stack:
            with locked(self._lock):  # for a consistent snapshot only: the walk runs unlocked
                try:
                    checkpoint, ck_problem = self._read_checkpoint(), None
                except AuditTamperedError as exc:
                    checkpoint, ck_problem = None, str(exc)
                fd = stack.enter_context(af.reading(self.path))
                size = 0 if fd is None else os.fstat(fd).st_size
            end = 0 if fd is None else af.tail(fd, size)[0]
            count, tip, bad = self._walk(fd, end, checkpoint) if end else (0, fmt.START, None)
        ck_seq = checkpoint[0] if checkpoint else None
        if bad is None and ck_seq is not None and tip.seq < ck_seq:
            bad = (tip.seq + 1, count + 1, self._truncated(tip.seq, ck_seq))
        elif bad is None and end < size:
            bad = (
                None,
                count + 1,
                f"the last line of {self.path} is torn (a crash mid-write, "
                f"never acknowledged); the next append moves it to {self._torn}",
            )
        elif bad is None and ck_problem:
            bad = (None, None, ck_problem)
        seq, line, problem = bad or (None, None, None)
        return VerifyReport(
            ok=bad is None,
            entries=count,
            first_bad_seq=seq,
            first_bad_line=line,
            problem=problem,
            checkpoint_seq=ck_seq,
        )

    def _open_for_append(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW
        try:
            return os.open(self.path, flags)
        except FileNotFoundError:
            self._check_end(fmt.START, self._read_checkpoint())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        fsync_dir(self.path.parent)
        return fd

    def _tip_for_append(self, fd: int) -> fmt.Tip:
        if self._known and self._known[0] == af.file_stamp(fd):  # untouched since our own append
            return self._known[1]
        size = os.fstat(fd).st_size
        end, line = af.tail(fd, size)
        if end < size:
            self._save_torn(fd, end, size)
        tip = fmt.START if line is None else fmt.Tip.of(self._parse(line))
        self._check_end(tip, self._read_checkpoint())
        return tip

    def _check_end(self, tip: fmt.Tip, checkpoint: tuple[int, str] | None) -> None:
        if checkpoint and tip.seq < checkpoint[0]:
            raise AuditTamperedError(self._truncated(tip.seq, checkpoint[0]))
        if checkpoint and tip.seq == checkpoint[0] and tip.hash != checkpoint[1]:
            raise AuditTamperedError(self._rewritten(tip.seq))

    def _save_torn(self, fd: int, end: int, size: int) -> None:
        """Move the never-acknowledged bytes after the last newline aside, then cut them off."""
        out = os.open(self._torn, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            write_all(out, os.pread(fd, size - end, end) + b"\n")
            os.fsync(out)
        finally:
            os.close(out)
        fault_point("audit:torn_saved")
        os.ftruncate(fd, end)
        os.fsync(fd)

    def _write(self, fd: int, line: bytes) -> None:
        try:
            if faults.ACTIVE_FAULT == "audit:mid_write":  # crash tests only: a torn line
                os.write(fd, line[: len(line) // 2])
                fault_point("audit:mid_write")
            write_all(fd, line)
            fault_point("audit:after_write")
            os.fsync(fd)
        except OSError as exc:
            raise AuditError(
                f"could not write the audit trail {self.path}: {exc.strerror}",
                "check disk space and permissions; the entry was not recorded",
            ) from exc
        fault_point("audit:after_fsync")

    def _read_checkpoint(self) -> tuple[int, str] | None:
        try:
            raw = self._checkpoint.read_bytes()
        except FileNotFoundError:
            return None
        slots = (af.parse_slot(raw[i : i + af.SLOT]) for i in range(0, len(raw), af.SLOT))
        best = max((s for s in slots if s is not None), default=None)
        if best is None:
            raise AuditTamperedError(
                f"the audit checkpoint {self._checkpoint} is unreadable",
                "run `ai-employee status`; if the trail verifies, delete it",
            )
        return best

    def _save_checkpoint(self, seq: int, digest: str) -> None:
        # Two fixed slots overwritten in turn, each with a CRC, so a torn write leaves the
        # other slot good: atomic without a rename (which costs ~0.25 ms on ext4, a flush).
        # Written after the log's fsync, so it can lag the log but never lead it.
        fd = os.open(self._checkpoint, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.pwrite(fd, af.slot_bytes(seq, digest), (seq % 2) * af.SLOT)
        finally:
            os.close(fd)

    def _parse(self, raw: bytes) -> AuditEntry:
        try:
            return AuditEntry.model_validate_json(raw)
        except ValueError:
            raise AuditTamperedError(
                f"a line of {self.path} is not a valid audit entry",
                f"{af.RESTORE_HINT}; verify names the line",
            ) from None

    def _select(
        self,
        mm: mmap.mmap,
        lo: int,
        hi: int,
        wanted: dict[str, str],
        limit: int | None,
        newest_first: bool,
    ) -> list[AuditEntry]:
        backwards = newest_first and limit is not None  # else a forward scan is faster
        found: list[AuditEntry] = []
        for start, end in af.hits(mm, lo, hi, af.plan(mm, lo, hi, wanted), backwards):
            entry = self._parse(mm[start:end])
            if wanted.items() <= entry.__dict__.items():  # exact: the pattern may be in details
                found.append(entry)
                if len(found) == limit:
                    break
        return found[::-1] if newest_first and not backwards else found

    def _walk(
        self, fd: int, end: int, checkpoint: tuple[int, str] | None
    ) -> tuple[int, fmt.Tip, tuple[int | None, int, str] | None]:
        """Check the lines in [0, end) in order: (line count, last good tip, first problem)."""
        tip, bad, count = fmt.START, None, 0
        with mmap.mmap(fd, end, access=mmap.ACCESS_READ) as mm:
            for count, raw in enumerate(iter(mm.readline, b""), 1):
                if bad is not None:
                    continue
                entry, problem = fmt.check_line(raw[:-1], tip)
                if (
                    entry
                    and not problem
                    and checkpoint
                    and entry.seq == checkpoint[0]
                    and entry.hash != checkpoint[1]
                ):
                    problem = self._rewritten(entry.seq)
                if problem is not None:
                    bad = (entry.seq if entry else None, count, f"line {count}: {problem}")
                elif entry is not None:
                    tip = fmt.Tip.of(entry)
        return count, tip, bad

    def _truncated(self, last_seq: int, ck_seq: int) -> str:
        return (
            f"the audit trail {self.path} was truncated: it ends at seq {last_seq} but seq "
            f"{ck_seq} was written; do not append, {af.RESTORE_HINT}"
        )

    def _rewritten(self, seq: int) -> str:
        recorded = "differs from the one the checkpoint recorded (rewritten)"
        return f"entry {seq} {recorded}; {af.RESTORE_HINT}"
