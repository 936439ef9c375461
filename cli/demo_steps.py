"""The mail demo's helpers and the steps beyond mail: a file drop, the schedule, the dashboard
and the audit trail's summary (see :mod:`cli.demo_mail`).

Every daemon runs through its real one-pass entry point (``daemons.<name>.run(settings,
once=True)``, what ``ai-employee run <name> --once`` calls), in this process, with the demo's
own settings; its lines are shown indented under the command it stands for.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from core.audit import AuditLog
from core.audit_summary import summarize
from core.config import Settings
from core.dashboard import update_dashboard
from core.file_drops import ignored
from core.mdsafe import one_line
from core.schedule import next_fire, period_label
from core.schedule_config import TaskJob, load_schedule
from core.schedule_runs import task_file_name
from core.tasks import read_task_file, utc_now
from core.vault import open_vault

RECEIPT_NAME = "receipt_PO-4471_paper-co.pdf"
RECEIPT_LINES = (
    "Paper & Co.  -  RECEIPT R-2026-1187",
    "Order PO-4471, shipped to Company Co.",
    "200 boxes of A4 paper, 80 g/m2        1.15 EUR x 200",
    "Subtotal 230.00 EUR   VAT 19.00 EUR   Total 249.00 EUR",
    "Paid by card ending 4242. Thank you for your order!",
)
DASHBOARD_SECTIONS = ("## Work", "## Waiting tasks", "## Recent actions", "## Daemons")


class _Indented(io.TextIOBase):
    """A text stream that writes every line to ``out`` with ``prefix`` in front."""

    def __init__(self, out: TextIO, prefix: str) -> None:
        self.out, self.prefix, self.at_start = out, prefix, True

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            if self.at_start:
                self.out.write(self.prefix)
            self.out.write(piece)
            self.at_start = piece.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()


@contextlib.contextmanager
def indented(prefix: str = "    ") -> Iterator[None]:
    with contextlib.redirect_stdout(_Indented(sys.stdout, prefix)):
        yield


def daemon_pass(command: str, run: Callable[[], int]) -> bool:
    """Show ``$ command``, then one real pass with its lines indented; True if it went well."""
    print(f"  $ {command}", flush=True)
    with indented():
        code = run()
    if code != 0:
        print(f"  THE PASS FAILED (exit code {code})", flush=True)
    return code == 0


def fields(path: Path) -> dict[str, Any]:
    """A task file's fields beyond the common ones (an email's sender, a request's result)."""
    return dict(read_task_file(path).meta.model_extra or {})


def names(folder: Path, pattern: str = "*.md") -> set[str]:
    return {path.name for path in folder.glob(pattern)}


# -- a file drop -----------------------------------------------------------------------------
def _pdf_text(line: str) -> bytes:
    escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return escaped.encode("latin-1")


def receipt_pdf(lines: Sequence[str] = RECEIPT_LINES) -> bytes:
    """A small, valid one-page PDF with ``lines`` of text (as a supplier's receipt would be)."""
    shown = b" ".join(b"(%s) '" % _pdf_text(line) for line in lines)
    content = b"BT /F1 12 Tf 72 740 Td 18 TL " + shown + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def file_drop(settings: Settings) -> bool:
    """Drop a receipt into Inbox/, then one pass of the inbox watcher."""
    from daemons import inbox_watcher

    root = settings.vault_path
    (root / "Inbox" / RECEIPT_NAME).write_bytes(receipt_pdf())
    print(f"  dropped Inbox/{RECEIPT_NAME} (the supplier's receipt, a one-page PDF)")
    print("  (in real life: save or drag any file into the vault's Inbox/ folder)")
    before = names(root / "Needs_Action", "FILE_*.md")
    ok = daemon_pass(
        "ai-employee run inbox_watcher --once",
        lambda: inbox_watcher.run(settings, once=True),
    )
    for name in sorted(names(root / "Needs_Action", "FILE_*.md") - before):
        task = fields(root / "Needs_Action" / name)
        print(f"  Needs_Action/{name}: a task for a person (or Claude Code) to look at")
        print(f"  the file itself is kept, unchanged, as {task['file']}")
        print(f"  {task['mime_type']}, {task['size']:,} bytes, sha256 {task['sha256'][:16]}...")
    left = sorted(path.name for path in (root / "Inbox").iterdir() if not ignored(path.name))
    print(f"  Inbox/ now holds {len(left)} drops; the same receipt dropped again gets no new task")
    return ok and not left


# -- the schedule ----------------------------------------------------------------------------
def schedule(settings: Settings) -> bool:
    """One scheduler pass on a fresh vault (nothing is due yet), and what fires when."""
    from daemons import scheduler

    root = settings.vault_path
    before = names(root / "Needs_Action")
    ok = daemon_pass("ai-employee run scheduler --once", lambda: scheduler.run(settings, once=True))
    made = names(root / "Needs_Action") - before
    print(f"  this pass fired {len(made)} jobs: a new vault starts each job at its next time")
    jobs, _ = load_schedule(root)
    now = utc_now()
    for job in jobs.jobs:
        moment = next_fire(job.cron, now, settings.tz) if job.enabled else None
        if moment is None:
            print(f"  {job.name}: off")
            continue
        period = period_label(moment, settings.tz)
        if isinstance(job, TaskJob):
            what = f"creates Needs_Action/{task_file_name(job.name, period)}"
        else:
            what = "refreshes Dashboard.md"
        print(f"  {job.name} ({job.cron}): {what} at {moment:%a %Y-%m-%d %H:%M} {settings.tz}")
    print("  (the CEO changes these in the vault's Schedule.md)")
    return ok and not made


# -- the dashboard and the audit trail -------------------------------------------------------
def _sections(page: str, wanted: Sequence[str]) -> list[str]:
    """The lines of the sections of ``page`` whose headings are in ``wanted``."""
    lines, keep = [], False
    for line in page.splitlines():
        if line.startswith("## "):
            keep = line.startswith(tuple(wanted))
        if keep and line.strip():
            lines.append(line)
    return lines


def dashboard(settings: Settings) -> bool:
    """Rewrite Dashboard.md (the local zone's job) and show a few of its sections."""
    vault = open_vault(settings, actor="demo")
    path = update_dashboard(vault, zone=settings.zone, dry_run=settings.dry_run)
    page = path.read_text(encoding="utf-8")
    print(f"  {path.relative_to(settings.vault_path)} rewritten; some of what it says:")
    for line in _sections(page, DASHBOARD_SECTIONS):
        print(f"    {one_line(line, 150)}")
    return "Done/SEND_EMAIL_" in page


def audit_summary(settings: Settings) -> bool:
    """Counts per category and status, then the hash chain checked end to end."""
    log = AuditLog(settings.vault_path, settings.zone)
    summary = summarize(log, settings.zone, days=1)
    print("  the entries of the last day, per category and status (problems would come first):")
    width = max([len(row.category) for row in summary.rows] + [len("category")])
    print(f"    {'category':<{width}}  {'status':<8}  count")
    for row in summary.rows:
        print(f"    {row.category:<{width}}  {row.status:<8}  {row.count:>5}")
    print(f"    {'all':<{width}}  {'':<8}  {summary.total:>5}")
    for entry in log.query(category="action", newest_first=False):
        dry_run = str(entry.dry_run).lower()
        print(f"  action: {entry.actor} {entry.action} {entry.target} -> {entry.status}", end="")
        print(f", dry_run {dry_run}")
    problems = len(summary.recent_problems)
    print(f"  problems: {problems or 'none'}")
    report = log.verify()
    verdict = "verifies" if report.ok else f"DOES NOT VERIFY: {report.problem}"
    print(f"  audit trail: {report.entries} entries, hash chain {verdict}")
    return report.ok and not problems
