"""The ``ai-employee`` command as a person runs it: a real process, a real vault."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.layout import FOLDERS
from core.vault import Vault
from tests.core.conftest import make_meta

COMMAND = shutil.which("ai-employee", path=str(Path(sys.executable).parent)) or "ai-employee"


def run(*args: str, vault: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ)
    if vault is not None:
        environ["VAULT_PATH"] = str(vault)
    environ.update(env)
    return subprocess.run(
        [COMMAND, *args], capture_output=True, text=True, env=environ, timeout=120
    )


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    assert run("init", str(root)).returncode == 0
    return root


def test_init_creates_a_vault(tmp_path: Path) -> None:
    root = tmp_path / "v"
    proc = run("init", str(root))
    assert proc.returncode == 0, proc.stderr
    assert f"Vault ready at {root}" in proc.stdout
    assert all((root / folder).is_dir() for folder in FOLDERS)


def test_init_defaults_to_vault_path(tmp_path: Path) -> None:
    proc = run("init", vault=tmp_path / "from-env")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "from-env" / "Dashboard.md").exists()


def test_status_json_is_stable(vault_dir: Path) -> None:
    Vault(vault_dir).create("Needs_Action", "EMAIL_1.md", make_meta())
    proc = run("status", "--json", vault=vault_dir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {  # keys are only ever added, never renamed or dropped
        "vault",
        "zone",
        "dry_run",
        "counts",
        "pending_approvals",
        "oldest_pending_approval",
        "claimed",
        "unreadable",
        "breakers",
        "last_audit",
        "audit_problem",
        "generated_at",
        "waiting_tasks",
        "recent_actions",
        "failures",
        "daemons",
    }
    assert data["counts"]["Needs_Action"] == 1
    assert data["zone"] == "local" and data["dry_run"] is True
    assert data["last_audit"]["action"] == "init"


def test_status_text(vault_dir: Path) -> None:
    proc = run("status", vault=vault_dir)
    assert proc.returncode == 0, proc.stderr
    assert "DRY RUN" in proc.stdout and "Needs_Action" in proc.stdout


def test_status_without_vault_says_what_to_do(tmp_path: Path) -> None:
    proc = run("status", vault=tmp_path / "nowhere")
    assert proc.returncode == 1
    assert "no vault at" in proc.stderr and "ai-employee init" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_setting_is_a_clear_error(vault_dir: Path) -> None:
    proc = run("status", vault=vault_dir, ZONE="moon")
    assert proc.returncode == 1
    assert "ZONE='moon' is not a zone" in proc.stderr
    assert "Traceback" not in proc.stderr


def _pending(vault_dir: Path) -> str:
    meta = make_meta("approval_request", action="send_email")
    Vault(vault_dir).create("Pending_Approval/email", "SEND_x.md", meta, "Hi")
    return "Pending_Approval/email/SEND_x.md"


def test_approve_by_relative_and_absolute_path(vault_dir: Path) -> None:
    rel = _pending(vault_dir)
    proc = run("approve", rel, vault=vault_dir)
    assert proc.returncode == 0, proc.stderr
    assert (vault_dir / "Approved/email/SEND_x.md").exists()
    rel = _pending(vault_dir)
    (vault_dir / "Approved/email/SEND_x.md").rename(vault_dir / "Done/SEND_x.md")
    proc = run("approve", str(vault_dir / rel), vault=vault_dir)
    assert proc.returncode == 0, proc.stderr


def test_reject_with_reason(vault_dir: Path) -> None:
    rel = _pending(vault_dir)
    proc = run("reject", rel, "--reason", "not now", vault=vault_dir)
    assert proc.returncode == 0, proc.stderr
    text = (vault_dir / "Rejected/SEND_x.md").read_text()
    assert "reject_reason: not now" in text


@pytest.mark.parametrize(
    "target", ["Needs_Action/EMAIL_1.md", "../outside.md", "/etc/passwd", "Approved/email/x.md"]
)
def test_approve_refuses_anything_not_pending(vault_dir: Path, target: str) -> None:
    Vault(vault_dir).create("Needs_Action", "EMAIL_1.md", make_meta())
    proc = run("approve", target, vault=vault_dir)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("ai-employee: ")
    assert (vault_dir / "Needs_Action/EMAIL_1.md").exists()
    assert not any((vault_dir / "Approved/email").glob("*.md"))


def test_demo_runs_the_main_job(tmp_path: Path) -> None:
    proc = run("demo", "--vault", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    assert "[8/8]" in proc.stdout and "hash chain verifies" in proc.stdout
    assert "already claimed by local" in proc.stdout
    done = tmp_path / "demo/Done/EMAIL_demo-invoice.md"
    assert "status: done" in done.read_text()
    assert (tmp_path / "demo/Needs_Action/EMAIL_demo-hostile.md").exists()
    [sent] = (tmp_path / "demo/Done").glob("SEND_EMAIL_*.md")
    assert "dry_run: true" in sent.read_text() and "outcome: done" in sent.read_text()
    assert "payments.deny_kinds" in proc.stdout
    assert not any((tmp_path / "demo/Pending_Approval/payments").glob("*.md"))
