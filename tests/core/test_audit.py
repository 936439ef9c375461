"""The audit trail on real files and real processes: format, queries, tamper detection, crashes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from core.audit import GENESIS, REDACTED, AuditEntry, AuditLog
from core.errors import AuditError, AuditTamperedError

REPO = Path(__file__).resolve().parents[2]
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
FIELDS = [
    "seq",
    "ts",
    "actor",
    "category",
    "action",
    "target",
    "status",
    "dry_run",
    "details",
    "prev",
    "hash",
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def log(root: Path) -> AuditLog:
    return AuditLog(root)


def add(log: AuditLog, **overrides: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "actor": "approval_watcher",
        "category": "email",
        "action": "send_email",
        "target": "Done/EMAIL_1.md",
        "status": "ok",
        "dry_run": False,
        "details": {},
    }
    fields.update(overrides)
    return log.append(**fields)


def forge_line(seq: int, ts: str, prev: str, **overrides: Any) -> tuple[str, str]:
    """An entry built from the documented formula alone (independent of the module)."""
    record: dict[str, Any] = {
        "seq": seq,
        "ts": ts,
        "actor": "forger",
        "category": "email",
        "action": "send_email",
        "target": f"Done/T{seq}.md",
        "status": "ok",
        "dry_run": True,
        "details": {},
    }
    record.update(overrides)
    record["prev"] = prev
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    record["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True) + "\n", record["hash"]


def forge_log(log: AuditLog, stamps: list[str], **overrides: Any) -> None:
    prev, lines = GENESIS, []
    for seq, ts in enumerate(stamps, 1):
        line, prev = forge_line(seq, ts, prev, **overrides)
        lines.append(line)
    log.path.parent.mkdir(parents=True, exist_ok=True)
    log.path.write_text("".join(lines), encoding="ascii")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lines_of(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def child(code: str, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AI_EMPLOYEE_FAULT", None)
    if fault:
        env["AI_EMPLOYEE_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- format, append, last ------------------------------------------------------------------


def test_lines_follow_the_documented_format_and_chain(log: AuditLog) -> None:
    first = add(log, details={"to": "a@example.com", "n": 1})
    second = add(log, category="payments", status="error", dry_run=True)
    raw = lines_of(log)
    assert len(raw) == 2
    prev = GENESIS
    for entry, line in zip((first, second), raw, strict=True):
        data = json.loads(line)
        assert list(data) == FIELDS
        assert TS.match(data["ts"])
        expected, digest = forge_line(
            data["seq"], data["ts"], prev, **{k: data[k] for k in FIELDS[2:9]}
        )
        assert line.decode() == expected
        assert entry == AuditEntry(**data)
        assert data["prev"] == prev and data["hash"] == digest
        prev = digest
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev == first.hash


def test_last_reads_the_tail_and_handles_missing_and_empty_files(log: AuditLog) -> None:
    assert log.last() is None
    log.path.parent.mkdir(parents=True)
    log.path.write_bytes(b"")
    assert log.last() is None
    for i in range(3):
        newest = add(log, target=f"T{i}", details={"blob": "x" * 9000 * i})  # lines > one chunk
    assert log.last() == newest
    with log.path.open("ab") as f:
        f.write(b'{"seq":4,"ts":"20')  # a torn tail is not an entry
    assert log.last() == newest


def test_lines_are_ascii_and_round_trip_unicode(log: AuditLog) -> None:
    details = {"subject": "Caf\u00e9 \u2028 line\nbreak \u2029", "emoji": "\U0001f600"}
    add(log, target="Done/\u00e9t\u00e9.md", details=details)
    raw = log.path.read_bytes()
    assert raw.isascii() and raw.count(b"\n") == 1
    assert log.query()[0].details == details
    assert log.query()[0].target == "Done/\u00e9t\u00e9.md"
    assert log.verify().ok


def test_lone_surrogates_are_replaced_so_the_line_reads_back(log: AuditLog) -> None:
    # e.g. mail text decoded with errors="surrogateescape"
    entry = add(
        log, target="Done/bad\udce9.md", details={"subject": "x\ud800y", "ok": "\U0001f600"}
    )
    assert entry.target == "Done/bad\ufffd.md"
    assert entry.details == {"subject": "x\ufffdy", "ok": "\U0001f600"}
    assert log.last() == entry and add(log).seq == 2
    assert log.verify().ok


def test_ts_never_goes_backwards_even_if_the_clock_does(log: AuditLog) -> None:
    future = "2099-01-01T00:00:00.000000Z"
    forge_log(log, [future])
    entry = add(log)
    assert entry.ts == future and entry.seq == 2
    assert log.verify().ok


def test_zone_is_validated_and_zones_have_their_own_files(root: Path) -> None:
    with pytest.raises(AuditError, match="ZONE=local or ZONE=cloud"):
        AuditLog(root, "moon")
    add(AuditLog(root, "cloud"), actor="cloud_agent")
    add(AuditLog(root, "local"), actor="local")
    assert AuditLog(root, "cloud").path.name == "audit-cloud.jsonl"
    assert [e.actor for e in AuditLog(root, "cloud").query()] == ["cloud_agent"]
    assert [e.actor for e in AuditLog(root, "local").query()] == ["local"]


# -- details: redaction and validation -------------------------------------------------------


def test_secret_looking_details_are_redacted_recursively(log: AuditLog) -> None:
    details = {
        "Password": "hunter2",
        "api_key": "k1",
        "ApiKey": "k2",
        "refresh_token": "t",
        "Authorization": "Bearer x",
        "session-cookie": "c",
        "PRIVATE_KEY": "p",
        "client_secret": "s",
        "passwd": "p2",
        "nested": {"deeper": {"token": "t2", "keep": "visible"}, "list": [{"secret": 1}, 2]},
        "subject": "hello",
    }
    entry = add(log, details=details)
    text = log.path.read_text()
    for secret in ("hunter2", "k1", "k2", "Bearer x", '"c"', '"p"', '"s"', "p2", "t2"):
        assert secret not in text
    d = entry.details
    assert d["Password"] == d["api_key"] == d["ApiKey"] == d["refresh_token"] == REDACTED
    assert d["Authorization"] == d["session-cookie"] == d["PRIVATE_KEY"] == REDACTED
    assert d["client_secret"] == d["passwd"] == REDACTED
    assert d["nested"]["deeper"] == {"token": REDACTED, "keep": "visible"}
    assert d["nested"]["list"] == [{"secret": REDACTED}, 2]
    assert d["subject"] == "hello"
    assert log.last() == entry


@pytest.mark.parametrize(
    "details",
    [
        {"when": datetime(2026, 1, 1)},
        {"raw": b"bytes"},
        {"ratio": float("nan")},
        {"s": {1, 2}},
    ],
)
def test_details_that_are_not_json_are_refused_and_nothing_is_written(
    log: AuditLog, details: dict[str, Any]
) -> None:
    add(log)
    with pytest.raises(AuditError, match="not JSON-serializable"):
        add(log, details=details)
    assert len(lines_of(log)) == 1
    assert add(log).seq == 2


def nested(depth: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    node = top
    for _ in range(depth):
        node["a"] = node = {}
    return top


@pytest.mark.parametrize("depth", [300, 5000])
def test_details_too_deep_to_read_back_are_refused(log: AuditLog, depth: int) -> None:
    add(log, details=nested(50))
    with pytest.raises(AuditError):
        add(log, details=nested(depth))
    assert len(lines_of(log)) == 1 and log.verify().ok


@pytest.mark.parametrize(
    "overrides",
    [
        {"actor": 7},
        {"status": None},
        {"dry_run": "yes"},
        {"details": ["not", "a", "dict"]},
    ],
)
def test_fields_of_the_wrong_type_are_refused(log: AuditLog, overrides: dict[str, Any]) -> None:
    with pytest.raises(AuditError):
        add(log, **overrides)
    assert not log.path.exists() or log.path.read_bytes() == b""


# -- queries -------------------------------------------------------------------------------

ACTORS = ["approval_watcher", "cloud_agent", "scheduler"]
CATEGORIES = ["email", "payments", "social", "sync"]
STATUSES = ["ok", "error", "denied"]


def populate(log: AuditLog, n: int = 48) -> list[AuditEntry]:
    out = []
    for i in range(n):
        cat = CATEGORIES[i % 4]
        out.append(
            add(
                log,
                actor=ACTORS[i % 3],
                category=cat,
                action=f"{cat}_{i % 2}",
                target=f"Done/T{i}.md",
                status=STATUSES[(i // 4) % 3],
                details={"i": i},
            )
        )
    return out


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("actor", ACTORS),
        ("category", CATEGORIES),
        ("status", STATUSES),
        ("action", ["email_0", "payments_1", "sync_1", "nope"]),
    ],
)
def test_query_by_each_equality_filter(log: AuditLog, field: str, values: list[str]) -> None:
    everything = populate(log)
    for value in values:
        expected = [e for e in everything if getattr(e, field) == value]
        assert log.query(**{field: value}, newest_first=False) == expected
        assert log.query(**{field: value}) == expected[::-1]


def test_query_combines_filters_exactly(log: AuditLog) -> None:
    everything = populate(log)
    expected = [
        e
        for e in everything
        if e.category == "payments" and e.status == "error" and e.actor == "scheduler"
    ]
    got = log.query(category="payments", status="error", actor="scheduler", newest_first=False)
    assert got == expected and got
    assert log.query(category="payments", action="email_0") == []


def test_a_pattern_inside_details_is_not_a_false_match(log: AuditLog) -> None:
    real = add(log, category="payments", status="error")
    # These details serialise to exactly the bytes a real field takes in a line.
    decoy = {
        "x": 1,
        "category": "payments",
        "action": "a",
        "status": "error",
        "dry_run": 1,
        "actor": "approval_watcher",
        "target": "t",
    }
    fake = add(log, category="email", status="ok", actor="someone", action="other", details=decoy)
    assert b'"category":"payments","action":' in lines_of(log)[1]
    for kw in (
        {"category": "payments"},
        {"status": "error"},
        {"category": "payments", "status": "error"},
    ):
        assert log.query(**kw) == [real]
        assert log.query(**kw, newest_first=False, limit=5) == [real]
    assert log.query(action="a") == [] and log.query(actor="approval_watcher") == [real]
    # Scanning backwards lands on the last copy of the scanned-for pattern in a line, which
    # may sit in details after the real fields: the line must still match.
    for _ in range(3):
        add(log, category="email", status="ok")  # makes the category the rarer pattern
    both = add(
        log, category="payments", status="ok", details={"category": "payments", "action": "z"}
    )
    assert log.query(category="payments", status="ok", limit=1) == [both]
    assert log.query(category="payments", status="ok") == [both]
    assert log.query(category="payments", limit=10) == [both, real]  # each line once
    assert log.query(actor="someone") == [fake]


def test_query_limit_and_order(log: AuditLog) -> None:
    everything = populate(log)
    assert log.query() == everything[::-1]
    assert log.query(newest_first=False) == everything
    assert log.query(limit=5) == everything[::-1][:5]
    assert log.query(limit=5, newest_first=False) == everything[:5]
    payments = [e for e in everything if e.category == "payments"]
    assert log.query(category="payments", limit=3) == payments[::-1][:3]
    assert log.query(category="payments", limit=3, newest_first=False) == payments[:3]
    assert log.query(limit=0) == []
    with pytest.raises(AuditError, match="limit"):
        log.query(limit=-1)


def test_query_on_a_missing_or_empty_file(log: AuditLog) -> None:
    assert log.query() == [] and log.query(category="x", since=datetime.now(UTC)) == []
    log.path.parent.mkdir(parents=True)
    log.path.write_bytes(b"")
    assert log.query(limit=3) == [] and log.query(status="ok") == []


def test_time_range_queries_match_a_full_scan(log: AuditLog) -> None:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    # Repeated stamps, gaps, and lines of very different lengths stress the binary search.
    offsets = sorted({(i * 37) % 1000 // 3 for i in range(600)} | set(range(0, 400, 2)))
    stamps = [iso(base + timedelta(seconds=s)) for s in offsets for _ in range(1 + s % 3)]
    prev, lines = GENESIS, []
    for seq, ts in enumerate(stamps, 1):
        line, prev = forge_line(
            seq, ts, prev, details={"pad": "p" * (seq * 7919 % 3000)}, category=CATEGORIES[seq % 4]
        )
        lines.append(line)
    log.path.parent.mkdir(parents=True)
    log.path.write_text("".join(lines))
    assert log.verify().ok
    everything = log.query(newest_first=False)
    assert len(everything) == len(stamps)
    probes = [
        base - timedelta(days=1),
        base,
        base + timedelta(seconds=1),
        base + timedelta(seconds=99, microseconds=1),
        base + timedelta(seconds=200),
        base + timedelta(seconds=333),
        base + timedelta(days=2),
    ]
    for since in [None, *probes]:
        for until in [None, *probes]:
            expected = [
                e
                for e in everything
                if (since is None or e.ts >= iso(since)) and (until is None or e.ts < iso(until))
            ]
            got = log.query(since=since, until=until, newest_first=False)
            assert got == expected, (since, until)
            assert log.query(since=since, until=until, limit=4) == expected[::-1][:4]
            assert log.query(since=since, until=until, category="sync") == [
                e for e in expected[::-1] if e.category == "sync"
            ]


def test_time_range_takes_naive_as_utc_and_converts_other_zones(log: AuditLog) -> None:
    base = datetime(2026, 3, 1, 12, tzinfo=UTC)
    forge_log(log, [iso(base + timedelta(minutes=m)) for m in range(10)])
    naive = datetime(2026, 3, 1, 12, 5)
    plus2 = datetime(2026, 3, 1, 14, 5, tzinfo=timezone(timedelta(hours=2)))
    assert [e.seq for e in log.query(since=naive, newest_first=False)] == [6, 7, 8, 9, 10]
    assert [e.seq for e in log.query(until=plus2, newest_first=False)] == [1, 2, 3, 4, 5]


# -- verify and tamper detection -----------------------------------------------------------


def five(log: AuditLog) -> list[AuditEntry]:
    return [add(log, target=f"Done/T{i}.md", details={"i": i}) for i in range(1, 6)]


def rewrite(log: AuditLog, lines: list[bytes]) -> None:
    log.path.write_bytes(b"".join(lines))


def test_verify_ok_on_missing_empty_and_good_logs(log: AuditLog) -> None:
    report = log.verify()
    assert report.ok and report.entries == 0 and report.problem is None
    log.path.parent.mkdir(parents=True)
    log.path.write_bytes(b"")
    assert log.verify().ok
    five(log)
    report = log.verify()
    assert report.ok and report.entries == 5 and report.checkpoint_seq == 5
    assert report.first_bad_seq is None and report.first_bad_line is None


def test_edited_field_is_a_hash_mismatch_at_that_entry(log: AuditLog) -> None:
    five(log)
    lines = lines_of(log)
    lines[2] = lines[2].replace(b'"status":"ok"', b'"status":"no"')
    rewrite(log, lines)
    report = log.verify()
    assert not report.ok
    assert (report.first_bad_seq, report.first_bad_line) == (3, 3)
    assert "hash mismatch" in report.problem and "restore Logs/" in report.problem
    assert report.entries == 5


def test_edited_and_rehashed_entry_breaks_the_next_link(log: AuditLog) -> None:
    entries = five(log)
    lines = lines_of(log)
    forged, _ = forge_line(
        3,
        entries[2].ts,
        entries[1].hash,
        actor="approval_watcher",
        category="email",
        action="send_email",
        target="Done/T3.md",
        status="ok",
        dry_run=False,
        details={"i": 999},
    )
    lines[2] = forged.encode()
    rewrite(log, lines)
    report = log.verify()
    assert (report.first_bad_seq, report.first_bad_line) == (4, 4)
    assert "prev" in report.problem


def test_deleted_middle_line_is_reported(log: AuditLog) -> None:
    five(log)
    lines = lines_of(log)
    del lines[2]
    rewrite(log, lines)
    report = log.verify()
    assert (report.first_bad_seq, report.first_bad_line) == (4, 3)
    assert "seq 4 where 3 was expected" in report.problem


def test_swapped_lines_are_reported(log: AuditLog) -> None:
    five(log)
    lines = lines_of(log)
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(log, lines)
    report = log.verify()
    assert (report.first_bad_seq, report.first_bad_line) == (3, 2)
    assert "reordered" in report.problem


def test_truncated_tail_is_caught_by_the_checkpoint(log: AuditLog) -> None:
    five(log)
    rewrite(log, lines_of(log)[:3])
    report = log.verify()
    assert not report.ok and report.entries == 3 and report.checkpoint_seq == 5
    assert (report.first_bad_seq, report.first_bad_line) == (4, 4)
    assert "truncated" in report.problem
    with pytest.raises(AuditTamperedError, match="truncated"):
        add(log)
    with pytest.raises(AuditTamperedError, match="truncated"):
        log.last()
    assert len(lines_of(log)) == 3


def test_rewritten_last_entry_is_caught_by_the_checkpoint(log: AuditLog) -> None:
    entries = five(log)
    lines = lines_of(log)
    forged, _ = forge_line(5, entries[4].ts, entries[3].hash)
    lines[4] = forged.encode()
    rewrite(log, lines)
    report = log.verify()
    assert (report.first_bad_seq, report.first_bad_line) == (5, 5)
    assert "rewritten" in report.problem
    with pytest.raises(AuditTamperedError, match="rewritten"):
        log.last()
    with pytest.raises(AuditTamperedError, match="rewritten"):
        AuditLog(log.path.parent.parent).append(
            actor="a", category="c", action="a", target="t", status="ok", dry_run=True
        )


def test_deleted_log_is_truncation_and_appending_refuses(log: AuditLog) -> None:
    five(log)
    log.path.unlink()
    report = log.verify()
    assert not report.ok and report.entries == 0 and report.checkpoint_seq == 5
    assert (report.first_bad_seq, report.first_bad_line) == (1, 1)
    assert "truncated" in report.problem
    with pytest.raises(AuditTamperedError, match="truncated"):
        add(log)
    with pytest.raises(AuditTamperedError, match="truncated"):
        log.last()
    assert not log.path.exists()


def test_unparsable_and_hand_edited_lines_are_reported(log: AuditLog) -> None:
    five(log)
    good = lines_of(log)
    rewrite(log, [*good[:3], b"not json at all\n", *good[3:]])
    report = log.verify()
    assert (report.first_bad_seq, report.first_bad_line) == (None, 4)
    assert "not a valid audit entry" in report.problem
    spaced = good[1].replace(b'"seq":2,', b'"seq": 2,')
    rewrite(log, [good[0], spaced, *good[2:]])
    report = log.verify()
    assert (report.first_bad_seq, report.first_bad_line) == (2, 2)
    assert "edited by hand" in report.problem
    data = json.loads(good[2])
    moved = {k: v for k, v in data.items() if k != "ts"} | {"ts": data["ts"]}  # same content
    rewrite(log, [*good[:2], json.dumps(moved, separators=(",", ":")).encode() + b"\n", *good[3:]])
    report = log.verify()
    assert (report.first_bad_seq, report.first_bad_line) == (3, 3)
    assert "edited by hand" in report.problem


@pytest.mark.parametrize("third", ["2026-01-01T00:00:01.000000Z", "2026-01-01T00:00:04Z"])
def test_ts_going_backwards_or_malformed_is_reported(log: AuditLog, third: str) -> None:
    forge_log(log, ["2026-01-01T00:00:02.000000Z", "2026-01-01T00:00:03.000000Z", third])
    report = log.verify()
    assert (report.first_bad_seq, report.first_bad_line) == (3, 3)
    assert "malformed or goes back" in report.problem


def test_unreadable_checkpoint_is_reported_and_blocks_appends(log: AuditLog, root: Path) -> None:
    five(log)
    (root / ".state" / "audit-local.checkpoint.json").write_bytes(b"garbage")
    report = log.verify()
    assert not report.ok and report.entries == 5 and "checkpoint" in report.problem
    with pytest.raises(AuditTamperedError, match="checkpoint"):
        AuditLog(root).append(
            actor="a", category="c", action="a", target="t", status="ok", dry_run=True
        )


def test_torn_tail_is_reported_then_moved_aside_by_the_next_append(
    log: AuditLog, root: Path
) -> None:
    five(log)
    with log.path.open("ab") as f:
        f.write(b'{"seq":6,"ts":"2026-')
    report = log.verify()
    assert not report.ok and report.entries == 5
    assert report.first_bad_line == 6 and "torn" in report.problem
    assert (
        AuditLog(root)
        .append(actor="a", category="c", action="a", target="t", status="ok", dry_run=True)
        .seq
        == 6
    )
    assert (root / ".state" / "audit-local.torn").read_bytes() == b'{"seq":6,"ts":"2026-\n'
    report = log.verify()
    assert report.ok and report.entries == 6


# -- processes: concurrency and crashes ------------------------------------------------------

APPENDER = """
import sys
from pathlib import Path
from core.audit import AuditLog
log = AuditLog(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    log.append(actor=sys.argv[2], category="race", action="append", target=f"T{i}",
               status="ok", dry_run=True, details={"i": i})
print("acknowledged", flush=True)
"""


@pytest.mark.slow
def test_four_processes_appending_at_once_leave_one_gapless_chain(root: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(root), f"p{n}", "200"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "acknowledged" in out
    log = AuditLog(root)
    report = log.verify()
    assert report.ok and report.entries == 800 and report.checkpoint_seq == 800
    everything = log.query(newest_first=False)
    assert [e.seq for e in everything] == list(range(1, 801))
    for n in range(4):
        mine = [e.details["i"] for e in everything if e.actor == f"p{n}"]
        assert mine == list(range(200))  # each process's entries in its own order


@pytest.mark.slow
def test_last_and_query_never_see_a_false_truncation_while_another_process_appends(
    root: Path,
) -> None:
    add(AuditLog(root))
    writer = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(root), "w", "400"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    log, seen = AuditLog(root), [0]
    while writer.poll() is None:
        entry = log.last()  # raises if it mistook a growing log for a cut-off one
        assert entry is not None and entry.seq >= seen[-1]
        seen.append(entry.seq)
        assert log.query(limit=1)[0].seq >= entry.seq
    assert writer.wait() == 0 and log.last().seq == 401
    assert len(set(seen)) > 10  # really overlapped with the writer


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "written"),
    [
        ("audit:after_write", True),
        ("audit:after_fsync", True),
        ("audit:mid_write", False),
    ],
)
def test_a_killed_append_loses_nothing_acknowledged(root: Path, fault: str, written: bool) -> None:
    done = child(APPENDER, str(root), "before", "3")
    assert done.returncode == 0 and "acknowledged" in done.stdout
    crashed = child(APPENDER, str(root), "crasher", "1", fault=fault)
    assert crashed.returncode == -9 and "acknowledged" not in crashed.stdout
    log = AuditLog(root)
    report = log.verify()
    if written:  # the line reached the file; the checkpoint may lag, never lead
        assert report.ok and report.entries == 4
    else:
        assert not report.ok and "torn" in report.problem and report.entries == 3
    after = child(APPENDER, str(root), "after", "2")
    assert after.returncode == 0
    report = log.verify()
    assert report.ok and report.entries == (6 if written else 5)
    actors = [e.actor for e in log.query(newest_first=False)]
    assert actors[:3] == ["before"] * 3 and actors[-2:] == ["after"] * 2
    assert log.last().actor == "after"
    torn = root / ".state" / "audit-local.torn"
    assert torn.exists() != written
    if not written:
        assert torn.read_bytes().startswith(b'{"seq":4,') and torn.read_bytes().endswith(b"\n")


@pytest.mark.slow
def test_a_crash_while_repairing_a_torn_tail_is_repaired_again(root: Path) -> None:
    child(APPENDER, str(root), "before", "2")
    child(APPENDER, str(root), "crasher", "1", fault="audit:mid_write")
    crashed = child(APPENDER, str(root), "repairer", "1", fault="audit:torn_saved")
    assert crashed.returncode == -9
    assert child(APPENDER, str(root), "after", "1").returncode == 0
    log = AuditLog(root)
    report = log.verify()
    assert report.ok and report.entries == 3
    assert [e.actor for e in log.query(newest_first=False)] == ["before", "before", "after"]
    torn = (root / ".state" / "audit-local.torn").read_bytes().splitlines()
    assert len(torn) == 2 and torn[0] == torn[1]  # saved twice, never lost
