"""A layout folder replaced by a link (say, by a sync) stops every change before it happens."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.actions import SendEmail
from core.approvals import create_request
from core.audit import AuditLog
from core.dashboard import update_dashboard
from core.errors import AuditError, VaultError
from core.vault import Vault
from core.vault_init import init_vault
from tests.core.conftest import make_meta, tree_snapshot


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    root = Path(init_vault(tmp_path / "vault").vault)
    return Vault(root, audit=AuditLog(root, "local"), actor="test")


def _swap_for_link(vault: Vault, folder: str, target: Path) -> None:
    shutil.rmtree(vault.root / folder)
    (vault.root / folder).symlink_to(target, target_is_directory=True)


def test_a_linked_folder_outside_is_never_written(vault: Vault, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    _swap_for_link(vault, "Plans", outside)
    with pytest.raises(VaultError, match="Plans/ is a link"):
        vault.create("Plans", "PLAN_x.md", make_meta("plan"), "x")
    assert list(outside.iterdir()) == []


def test_a_pending_folder_linked_into_approved_writes_nothing(vault: Vault) -> None:
    _swap_for_link(vault, "Pending_Approval/email", vault.root / "Approved" / "email")
    before = tree_snapshot(vault.root / "Approved")
    email = SendEmail(to=["new@example.com"], subject="hi")
    with pytest.raises(VaultError, match="is a link"):
        create_request(vault, email, "p", reason="r")
    assert tree_snapshot(vault.root / "Approved") == before


def test_any_linked_folder_stops_a_claim(vault: Vault, tmp_path: Path) -> None:
    vault.create("Needs_Action", "TASK_1.md", make_meta("task"), "x")
    (tmp_path / "elsewhere").mkdir()
    _swap_for_link(vault, "Done", tmp_path / "elsewhere")
    with pytest.raises(VaultError, match="Done/ is a link"):
        vault.claim("TASK_1.md", "local")
    assert (vault.root / "Needs_Action/TASK_1.md").exists()


def test_signals_inbox_and_files_list_every_file(vault: Vault) -> None:
    (vault.root / "Signals" / "new_draft_1.json").write_text(json.dumps({"draft": 1}))
    (vault.root / "Inbox" / "receipt.pdf").write_bytes(b"%PDF-1.4")
    (vault.root / "Files" / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    assert [e.name for e in vault.list_tasks("Signals")] == ["new_draft_1.json"]
    assert vault.count("Inbox") == 1
    assert [e.name for e in vault.list_tasks("Files")] == ["photo.jpg"]
    (vault.root / "Plans" / "notes.txt").write_text("not a task")
    assert vault.count("Plans") == 0


def test_the_dashboard_still_shows_a_broken_audit_trail(vault: Vault) -> None:
    vault.record("vault", "touch", "x")
    vault.record("vault", "touch", "y")
    log = vault.root / "Logs" / "audit-local.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))  # cut the end
    with pytest.raises(AuditError):
        update_dashboard(vault, zone="local", dry_run=True, notes="")
    assert "The audit trail needs attention" in (vault.root / "Dashboard.md").read_text()


def test_a_vault_from_before_files_gets_the_folder_on_first_write(tmp_path: Path) -> None:
    """Vaults made before Files/ existed keep working: the folder is made when first needed."""
    root = Path(init_vault(tmp_path / "vault").vault)
    shutil.rmtree(root / "Files")
    vault = Vault(root, audit=AuditLog(root, "local"), actor="test")
    vault.create("Needs_Action", "TASK_1.md", make_meta("task"))
    assert (root / "Files").is_dir() and not (root / "Files").is_symlink()
