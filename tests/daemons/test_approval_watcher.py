"""``ai-employee run approval_watcher`` as the operator runs it: real processes, a real vault."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core import tasks
from core.actions import SendEmail
from core.approvals import approve, create_request
from core.audit import AuditLog
from core.vault import Vault
from core.vault_init import init_vault
from tests.core.conftest import tree_snapshot

REPO = Path(__file__).resolve().parents[2]
COMMAND = shutil.which("ai-employee", path=str(Path(sys.executable).parent)) or "ai-employee"
CLI = [COMMAND, "run", "approval_watcher"]
MODULE = [sys.executable, "-m", "daemons.approval_watcher"]
SAFETY_NET = 30.0  # seconds; only so a hung child cannot hang the suite


def _env(vault: Path | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)  # already stripped of product variables by the autouse fixture
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if vault is not None:
        env["VAULT_PATH"] = str(vault)
    env.update(extra)
    return env


def run(argv: list[str], vault: Path | None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=_env(vault, **extra), capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_vault(tmp_path / "vault")
    return tmp_path / "vault"


def _vault(root: Path) -> Vault:
    return Vault(root, audit=AuditLog(root, "local"), actor="test")


def _request(root: Path, to: str = "new.person@example.com", *, approved: bool = True) -> Path:
    """A send_email request written the product's way; approved by the CEO unless told not."""
    vault = _vault(root)
    params = SendEmail(to=[to], subject="Quote for next month")
    path = create_request(vault, params, "Hello,\n\nhere is the quote.\n", reason="asked for it")
    return approve(vault, str(path.relative_to(root))) if approved else path


def _meta(path: Path) -> dict[str, Any]:
    doc = tasks.read_task_file(path)
    return {**doc.meta.model_dump(), **(doc.meta.model_extra or {})}


def _md(root: Path, folder: str) -> list[str]:
    return sorted(path.name for path in (root / folder).glob("*.md"))


# -- one pass ------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [CLI, MODULE], ids=["ai-employee", "python-m"])
def test_once_runs_an_approved_request_as_a_dry_run_by_default(root: Path, argv: list[str]) -> None:
    approved = _request(root)
    pending = _request(root, "someone.else@example.com", approved=False)
    pending_bytes = pending.read_bytes()

    proc = run([*argv, "--once"], root)  # DRY_RUN unset: the default is a dry run

    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "DRY RUN" in proc.stdout
    assert f"done: Done/{approved.name}" in proc.stdout
    assert _md(root, "Approved/email") == []
    assert _md(root, "Done") == [approved.name]
    meta = _meta(root / "Done" / approved.name)
    assert meta["status"] == "done" and meta["outcome"] == "done"
    assert meta["dry_run"] is True
    assert "send_email to new.person@example.com" in meta["result"]["would"]
    # Only a dry-run ledger entry: a later live run is not blocked by it.
    ledger = root / ".state/ledger"
    entries = [p.name for p in ledger.iterdir() if p.is_file()]
    assert entries == [f"dry-{meta['idempotency_key']}.json"]
    # What was not approved stays where it is.
    assert pending.read_bytes() == pending_bytes
    assert _md(root, "Pending_Approval/email") == [pending.name]
    report = AuditLog(root, "local").verify()
    assert report.ok, report.problem
    done = AuditLog(root, "local").query(category="action", action="send_email")
    assert [(e.target, e.dry_run, e.actor) for e in done] == [
        (f"Done/{approved.name}", True, "approval_watcher")
    ]


def test_once_twice_does_nothing_the_second_time(root: Path) -> None:
    approved = _request(root)
    assert run([*CLI, "--once"], root).returncode == 0
    before = tree_snapshot(root)
    again = run([*CLI, "--once"], root)
    assert again.returncode == 0, again.stderr
    assert "done:" not in again.stdout and "failed:" not in again.stdout
    assert _md(root, "Done") == [approved.name]
    assert tree_snapshot(root)["Done/" + approved.name] == before["Done/" + approved.name]


def test_live_run_without_a_handler_leaves_the_request_waiting(root: Path) -> None:
    approved = _request(root)
    proc = run([*CLI, "--once"], root, DRY_RUN="false")
    assert proc.returncode == 0, proc.stderr
    assert "LIVE" in proc.stdout
    assert f"waiting: Approved/email/{approved.name}" in proc.stdout
    assert "no send_email handler" in proc.stdout
    assert approved.exists()
    assert _md(root, "Done") == [] and _md(root, "Failed") == []


# -- refusals: nothing moves ---------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [None, "false", "true"])
def test_cloud_zone_refuses_to_run_and_moves_nothing(root: Path, dry_run: str | None) -> None:
    approved = _request(root)
    before = tree_snapshot(root)
    extra = {"ZONE": "cloud"} | ({"DRY_RUN": dry_run} if dry_run else {})
    proc = run([*CLI, "--once"], root, **extra)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "cloud zone" in proc.stderr
    assert "never sends, posts or pays" in proc.stderr
    assert "ZONE=local" in proc.stderr  # what to do instead
    assert approved.exists()
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("argv", [CLI, MODULE], ids=["ai-employee", "python-m"])
def test_without_a_vault_it_says_to_run_init(tmp_path: Path, argv: list[str]) -> None:
    missing = tmp_path / "nowhere"
    proc = run([*argv, "--once"], missing)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"no vault at {missing}" in proc.stderr
    assert "ai-employee init" in proc.stderr
    assert not missing.exists()


BROKEN_POLICIES = {
    "bad-yaml": ("version: 1\n", "version: [1\n", "not valid YAML"),
    "wrong-version": ("version: 1\n", "version: 2\n", "invalid at version"),
    "typo": ("  new_recipient: approve\n", "  new_recipents: approve\n", "invalid at email"),
    "no-block": ("```yaml policy\n", "```yaml\n", "no ```yaml policy``` block"),
}


@pytest.mark.parametrize("argv", [CLI, MODULE], ids=["ai-employee", "python-m"])
@pytest.mark.parametrize("broken", sorted(BROKEN_POLICIES))
def test_malformed_policy_stops_it_and_moves_nothing(
    root: Path, argv: list[str], broken: str
) -> None:
    approved = _request(root)  # approved while the handbook was fine
    old, new, message = BROKEN_POLICIES[broken]
    handbook = root / "Company_Handbook.md"
    text = handbook.read_text()
    assert old in text
    handbook.write_text(text.replace(old, new, 1))
    before = tree_snapshot(root)

    proc = run([*argv, "--once"], root)

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Company_Handbook.md" in proc.stderr and message in proc.stderr
    assert approved.exists()
    assert _md(root, "Done") == [] and _md(root, "Failed") == []
    assert _md(root, "In_Progress/local") == []
    after = tree_snapshot(root)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert {k for k in changed if not k.startswith(".state/")} == set()


def test_loop_mode_with_a_malformed_policy_exits_at_start(root: Path) -> None:
    handbook = root / "Company_Handbook.md"
    handbook.write_text(handbook.read_text().replace("version: 1\n", "version: [1\n", 1))
    proc = run(CLI, root)  # no --once: it must not start looping on a broken handbook
    assert proc.returncode == 1
    assert "not valid YAML" in proc.stderr and "Traceback" not in proc.stderr


# -- status --------------------------------------------------------------------------------


def test_status_lists_a_pending_approval_with_hours_left(root: Path) -> None:
    pending = _request(root, approved=False)
    proc = run([COMMAND, "status"], root)
    assert proc.returncode == 0, proc.stderr
    assert "Waiting for approval: 1" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if pending.name in ln)
    assert f"Pending_Approval/email/{pending.name}" in line and "send_email" in line
    hours = re.search(r"(\d+(?:\.\d+)?) h left", line)
    assert hours is not None, line
    assert 23.0 <= float(hours.group(1)) <= 24.0


# -- the loop ------------------------------------------------------------------------------


def _lines(stream: Any, out: queue.Queue[str | None]) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def _wait_for(lines: queue.Queue[str | None], seen: list[str], wanted: str) -> None:
    deadline = time.monotonic() + SAFETY_NET
    while not any(wanted in line for line in seen):
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(left, 0.01))
        except queue.Empty:
            pytest.fail(f"no {wanted!r} line within {SAFETY_NET} s; got {seen}")
        if line is None:
            pytest.fail(f"the watcher exited before printing {wanted!r}; got {seen}")
        seen.append(line)


def test_loop_stops_cleanly_on_sigterm(root: Path) -> None:
    approved = _request(root)
    proc = subprocess.Popen(
        [*CLI, "--interval", "0.5"],
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        _wait_for(lines, seen, "approval_watcher:")  # the first line: it has started
        # The first pass's own line: the loop is running (and its signal handlers are set).
        _wait_for(lines, seen, f"done: Done/{approved.name}")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=SAFETY_NET)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=SAFETY_NET)
    while (line := lines.get_nowait() if not lines.empty() else None) is not None:
        seen.append(line)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped" in seen[-1], seen
    assert _md(root, "Done") == [approved.name]


# The console script, but the process sends itself SIGTERM the moment its first line is out:
# the earliest a supervisor (systemd, a test, a person at a terminal) can react to it.
TERM_AFTER_FIRST_LINE = textwrap.dedent(
    """
    import builtins, os, signal, sys

    real_print, sent = builtins.print, []

    def print_then_term(*args, **kwargs):
        real_print(*args, **kwargs)
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    builtins.print = print_then_term
    from cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_sigterm_right_after_the_first_line_still_stops_cleanly(root: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", TERM_AFTER_FIRST_LINE, "run", "approval_watcher"],
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=SAFETY_NET,
        check=False,
    )
    assert proc.stdout.startswith("approval_watcher: ")  # the line went out first
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "stopped" in proc.stdout
