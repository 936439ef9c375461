"""Audit trail: durable appends against raw write+fsync, queries against grep/tail on 1M entries."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.table import Row, best_of, print_table
from core.audit import GENESIS, AuditEntry, AuditLog

REPO = Path(__file__).resolve().parent.parent
APPENDS = 2_000
ENTRIES = 1_000_000
SPAN = timedelta(days=30)
END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# Payments are rare (approval-gated, rate-limited); sync passes and email dominate.
CATEGORIES = {"email": 30, "task": 20, "sync": 35, "social": 10, "payments": 5}
STATUSES = {"ok": 78, "error": 20, "denied": 2}
ACTORS = ["approval_watcher", "cloud_agent", "gmail_watcher", "scheduler"]
ACTIONS = {
    "email": "send_email",
    "task": "claim_task",
    "sync": "sync_pass",
    "social": "publish_post",
    "payments": "register_payment",
}


def _append_rate(work: Path) -> tuple[float, float]:
    """(AuditLog.append per second, raw os.write + os.fsync per second), best runs of each."""
    log = AuditLog(work / "vault")
    details = {"to": "client@example.com", "subject": "Invoice 1042", "message_id": "x" * 40}

    def audited() -> None:
        for i in range(APPENDS):
            log.append(
                actor="approval_watcher",
                category="email",
                action="send_email",
                target=f"Approved/email/EMAIL_{i}.md",
                status="ok",
                dry_run=False,
                details=details,
            )

    audited()  # warm up, and learn the line size for the baseline
    line = b"x" * (log.path.stat().st_size // APPENDS - 1) + b"\n"
    fd = os.open(work / "raw.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def raw() -> None:
        for _ in range(APPENDS):
            os.write(fd, line)
            os.fsync(fd)

    try:  # alternate the two so both see the same disk weather
        raw_s, audit_s = zip(
            *((best_of(1, raw), best_of(1, audited)) for _ in range(3)), strict=True
        )
    finally:
        os.close(fd)
    return APPENDS / min(audit_s), APPENDS / min(raw_s)


def build_log(vault: Path, entries: int = ENTRIES) -> Path:
    """Write ``entries`` chained lines in the exact format AuditLog writes, without the lock."""
    rng = random.Random(7)
    cats = rng.choices(list(CATEGORIES), weights=list(CATEGORIES.values()), k=entries)
    stats = rng.choices(list(STATUSES), weights=list(STATUSES.values()), k=entries)
    moment, step = (END - SPAN).replace(tzinfo=None), SPAN / entries
    q = {v: json.dumps(v) for v in [*CATEGORIES, *STATUSES, *ACTORS, *ACTIONS.values()]}
    sha, prev, out = hashlib.sha256, GENESIS, []
    for i in range(entries):
        seq, cat, st = i + 1, q[cats[i]], q[stats[i]]
        actor, action = q[ACTORS[i % len(ACTORS)]], q[ACTIONS[cats[i]]]
        ts = moment.isoformat(timespec="microseconds") + "Z"
        moment += step
        det = f'{{"amount":{seq % 997},"ref":"R{seq:08d}"}}'
        canon = (
            f'{{"action":{action},"actor":{actor},"category":{cat},"details":{det},'
            f'"dry_run":false,"prev":"{prev}","seq":{seq},"status":{st},'
            f'"target":"Done/TASK_{seq}.md","ts":"{ts}"}}'
        )
        digest = sha(canon.encode()).hexdigest()
        out.append(
            f'{{"seq":{seq},"ts":"{ts}","actor":{actor},"category":{cat},'
            f'"action":{action},"target":"Done/TASK_{seq}.md","status":{st},'
            f'"dry_run":false,"details":{det},"prev":"{prev}","hash":"{digest}"}}\n'
        )
        prev = digest
    path = AuditLog(vault).path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(out), encoding="ascii")
    return path


def _grep(command: str) -> tuple[float, int]:
    """Seconds (best of 3) for a shell pipeline over the log, and the lines it printed."""
    env = {**os.environ, "LC_ALL": "C"}
    lines = 0

    def run() -> None:
        nonlocal lines
        out = subprocess.run(["sh", "-c", command], capture_output=True, env=env, check=True)
        lines = out.stdout.count(b"\n")

    return best_of(3, run), lines


def _grep_fields(file: str, **fields: str) -> str:
    """A grep -F pipeline selecting the same lines as these equality filters."""
    stages = [f'grep -F \'"{k}":"{v}"\'' for k, v in fields.items()]
    return f"{stages[0]} {file}" + "".join(f" | {stage}" for stage in stages[1:])


def _query_rows(work: Path) -> list[Row]:
    build_log(work / "small", 2_000)
    assert AuditLog(work / "small").verify().ok, "generated lines differ from AuditLog's format"
    path, log = build_log(work / "big"), AuditLog(work / "big")
    rows: list[Row] = []

    def compare(
        what: str,
        query: Callable[[], list[AuditEntry]],
        baseline: str,
        command: str,
        same_selection: bool = True,
    ) -> None:
        grep_s, grep_n = _grep(command)
        found = query()
        assert not same_selection or len(found) == grep_n, (what, len(found), grep_n)
        ours = best_of(3, query)
        rows.append(
            Row(
                f"{what}: {len(found):,} of 1M",
                ours * 1000,
                "ms",
                f"{baseline} ({grep_n:,} lines)",
                grep_s * 1000,
                "<= 1.0x baseline",
                ours <= grep_s,
            )
        )

    file = f"'{path}'"
    for cat, share in (("payments", "1%"), ("social", "2%, both filters dense")):
        compare(
            f"category={cat} status=error ({share})",
            lambda c=cat: log.query(category=c, status="error"),
            "grep -F, piped to grep -F",
            _grep_fields(file, category=cat, status="error"),
        )
    compare(
        "newest 50 with category=payments status=error",
        lambda: log.query(category="payments", status="error", limit=50),
        "the same grep pipeline, then tail -n 50",
        _grep_fields(file, category="payments", status="error") + " | tail -n 50",
    )
    since = END - timedelta(hours=1)
    hours = sorted({(since + timedelta(minutes=m)).strftime("%Y-%m-%dT%H") for m in (0, 60)})
    compare(
        "since = an hour ago",
        lambda: log.query(since=since),
        "grep -F of the two hour prefixes",
        "grep -F " + " ".join(f'-e \'"ts":"{h}\'' for h in hours) + f" {file}",
        same_selection=False,
    )
    compare("newest 50, no filter", lambda: log.query(limit=50), "tail -n 50", f"tail -n 50 {file}")
    return rows


def run() -> list[Row]:
    scratch = REPO / ".bench_tmp"
    scratch.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=scratch, prefix="audit-"))
    try:
        audited, raw = _append_rate(work)
        rows = [
            Row(
                "durable appends (AuditLog.append)",
                audited,
                "/s",
                "os.write+os.fsync",
                raw,
                ">= 2,000/s",
                audited >= 2000,
            )
        ]
        return rows + _query_rows(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    started = time.perf_counter()
    print_table("audit trail", run())
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
