"""The format of one audit entry: its model, how a line is sealed, and how one is checked.

``hash`` is the SHA-256 of an entry's canonical JSON (sorted keys, compact) without
``hash``; ``prev`` is the previous entry's hash (64 zeros for the first). Lines keep a
fixed field order, compact and ASCII-only, so a field can be found by its exact bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from core.audit_file import RESTORE_HINT
from core.errors import AuditError
from core.secret_scan import REDACTED, redact_text

GENESIS = "0" * 64
_SECRET_MARKERS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "privatekey",
    "passphrase",
    "credential",
    "accesskey",
    "pwd",
)
_TS_FORMAT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_LINE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)
_CANON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, sort_keys=True)
_DETAILS = json.JSONEncoder(ensure_ascii=True, allow_nan=False)


class AuditEntry(BaseModel):
    """One line of the trail, exactly as it was written."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", cache_strings=False)

    seq: int = Field(ge=1)
    ts: str  # formats are checked by verify, not on every read
    actor: str
    category: str
    action: str
    target: str
    status: str
    dry_run: bool
    details: dict[str, Any]
    prev: str
    hash: str


class Tip(NamedTuple):
    seq: int
    hash: str
    ts: str

    @classmethod
    def of(cls, entry: AuditEntry) -> Tip:
        return cls(entry.seq, entry.hash, entry.ts)


START = Tip(0, GENESIS, "")


def check_line(raw: bytes, tip: Tip) -> tuple[AuditEntry | None, str | None]:
    try:
        entry = AuditEntry.model_validate_json(raw)
    except ValueError:
        return None, f"not a valid audit entry (unparsable or wrong fields); {RESTORE_HINT}"
    problem = _line_problem(raw, entry, tip)
    return entry, problem and f"{problem}; {RESTORE_HINT}"


def _line_problem(raw: bytes, entry: AuditEntry, tip: Tip) -> str | None:
    if entry.seq != tip.seq + 1:
        return (
            f"seq {entry.seq} where {tip.seq + 1} was expected"
            " (a line was deleted, inserted or reordered)"
        )
    if entry.prev != tip.hash:
        return "prev does not match the entry before it"
    canonical = _CANON.encode(entry.model_dump(exclude={"hash"})).encode()
    if hashlib.sha256(canonical).hexdigest() != entry.hash:
        return "hash mismatch: the entry was edited after it was written"
    if entry.ts < tip.ts or not _TS_FORMAT.fullmatch(entry.ts):
        return f"ts {entry.ts} is malformed or goes back before {tip.ts}"
    # Queries find ts by its place at the start of the line.
    if not raw.startswith(f'{{"seq":{entry.seq},"ts":"{entry.ts}",'.encode()):
        return "the line does not start with seq and ts as append writes them (edited by hand)"
    return None


def validate_fields(fields: dict[str, Any]) -> None:
    bad = [k for k, v in fields.items() if not isinstance(v, bool if k == "dry_run" else str)]
    if bad:
        raise AuditError(
            f"invalid audit entry field(s): {', '.join(bad)}",
            "pass text for actor, category, action, target and status, and a bool for dry_run",
        )


def clean_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """Redact secret-looking values and normalise to plain JSON (as verify will read it back)."""
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise AuditError("audit details must be a dict", "pass a dict of JSON values or None")
    try:
        return json.loads(_DETAILS.encode(_redact(details)))
    except (TypeError, ValueError, RecursionError) as exc:
        raise AuditError(
            f"audit details are not JSON-serializable ({exc})",
            "pass only str, int, float, bool, None, lists and dicts",
        ) from None


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


def _is_secret_key(key: object) -> bool:
    folded = str(key).lower().replace("_", "").replace("-", "")
    return any(marker in folded for marker in _SECRET_MARKERS)


def _seal(record: dict[str, Any]) -> bytes:
    """Set ``record['hash']`` and return the line (fields in record order, newline-terminated)."""
    record["hash"] = hashlib.sha256(_CANON.encode(record).encode()).hexdigest()
    return _LINE.encode(record).encode() + b"\n"


def sealed(record: dict[str, Any]) -> tuple[bytes, AuditEntry]:
    """The line, and the entry it reads back as (checked before anything is written)."""
    line = _seal(record)
    try:
        return line, AuditEntry.model_validate_json(line)
    except ValueError:  # lone surrogates (undecodable mail text, say) become U+FFFD
        text = json.dumps({k: v for k, v in record.items() if k != "hash"}, ensure_ascii=False)
        line = _seal(json.loads(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")))
    try:
        return line, AuditEntry.model_validate_json(line)
    except ValueError:
        raise AuditError(
            "the audit entry would not read back (details nested too deeply?)",
            "record flatter details",
        ) from None


def ts_key(moment: datetime) -> bytes:
    """The sort key of a query bound; bounds beyond the calendar clamp to its ends."""
    try:
        return format_ts(moment).encode()
    except OverflowError:
        edge = datetime.min if moment.year == 1 else datetime.max
        return format_ts(edge.replace(tzinfo=UTC)).encode()


def format_ts(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
