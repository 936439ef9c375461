"""Vault layout, creation, claim-by-move, release, completion and stale leases, on real files."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from core import tasks
from core.audit import AuditLog
from core.errors import (
    AlreadyClaimedError,
    AuditTamperedError,
    TargetExistsError,
    TaskFileError,
    TaskNotFoundError,
    UnsafePathError,
    VaultError,
)
from core.layout import FOLDERS
from core.vault import Vault
from tests.core.conftest import make_meta, tree_snapshot


def test_layout_has_every_folder_of_the_contract(vault: Vault) -> None:
    for folder in FOLDERS:
        assert (vault.root / folder).is_dir(), folder
    assert (vault.state_dir.stat().st_mode & 0o777) == 0o700


def test_create_writes_a_task_that_reads_back(vault: Vault) -> None:
    meta = make_meta(subject="Invoice")
    vault.create("Needs_Action", "EMAIL_1.md", meta, "# Hello\n")
    doc = vault.read("Needs_Action/EMAIL_1.md")
    assert doc.meta.id == meta.id
    assert doc.meta.model_extra == {"subject": "Invoice"}
    assert doc.body.startswith("# Hello")


def test_create_never_replaces(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta(), "first")
    before = (vault.root / "Needs_Action/EMAIL_1.md").read_bytes()
    with pytest.raises(TargetExistsError):
        vault.create("Needs_Action", "EMAIL_1.md", make_meta(), "second")
    assert (vault.root / "Needs_Action/EMAIL_1.md").read_bytes() == before


@pytest.mark.parametrize("name", ["../x.md", "a/b.md", "x.txt", ".hidden.md", "-x.md"])
def test_create_refuses_bad_names(vault: Vault, name: str) -> None:
    snap = tree_snapshot(vault.root)
    with pytest.raises(VaultError):
        vault.create("Needs_Action", name, make_meta())
    assert tree_snapshot(vault.root) == snap


def test_unknown_folder_is_refused(vault: Vault) -> None:
    with pytest.raises(VaultError, match="not a vault folder"):
        vault.create("Approvedx", "EMAIL_1.md", make_meta())


def test_claim_moves_and_stamps(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    doc = vault.claim("EMAIL_1.md", "cloud")
    assert not (vault.root / "Needs_Action/EMAIL_1.md").exists()
    on_disk = vault.read("In_Progress/cloud/EMAIL_1.md").meta
    assert on_disk.claimed_by == doc.meta.claimed_by == "cloud"
    assert on_disk.claimed_at is not None and on_disk.status == "in_progress"


def test_second_claim_is_told_who_has_it(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.claim("EMAIL_1.md", "cloud")
    with pytest.raises(AlreadyClaimedError, match="already claimed by cloud at"):
        vault.claim("EMAIL_1.md", "local")


def test_claim_of_missing_task(vault: Vault) -> None:
    with pytest.raises(TaskNotFoundError):
        vault.claim("EMAIL_nope.md", "local")


def test_claim_refuses_malformed_file_and_leaves_it(vault: Vault) -> None:
    path = vault.root / "Needs_Action/EMAIL_bad.md"
    path.write_text("---\nid: [unclosed\n---\nbody\n")
    before = path.read_bytes()
    with pytest.raises(TaskFileError, match=r"EMAIL_bad\.md"):
        vault.claim("EMAIL_bad.md", "local")
    assert path.read_bytes() == before
    assert not (vault.root / "In_Progress/local/EMAIL_bad.md").exists()


def test_claim_into_occupied_slot_is_refused(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.claim("EMAIL_1.md", "local")
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    with pytest.raises(TargetExistsError):
        vault.claim("EMAIL_1.md", "local")
    assert (vault.root / "Needs_Action/EMAIL_1.md").exists()


def test_claim_rejects_unknown_zone(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    with pytest.raises(VaultError, match="zone"):
        vault.claim("EMAIL_1.md", "moon")
    assert (vault.root / "Needs_Action/EMAIL_1.md").exists()


def test_release_returns_task_without_claim_fields(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.claim("EMAIL_1.md", "local")
    vault.release("EMAIL_1.md", "local", reason="needs the CEO")
    meta = vault.read("Needs_Action/EMAIL_1.md").meta
    assert meta.claimed_by is None and meta.claimed_at is None
    assert meta.status == "pending"
    assert meta.model_extra["released_because"] == "needs the CEO"


def test_release_of_task_not_claimed_by_that_zone(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.claim("EMAIL_1.md", "cloud")
    with pytest.raises(TaskNotFoundError, match="not claimed by local"):
        vault.release("EMAIL_1.md", "local")


def test_complete_moves_to_done_and_never_overwrites(vault: Vault) -> None:
    for round_ in range(2):
        vault.create("Needs_Action", "EMAIL_1.md", make_meta(round=round_))
        vault.claim("EMAIL_1.md", "local")
        vault.complete("EMAIL_1.md", "local", summary=f"round {round_}")
    first = vault.read("Done/EMAIL_1.md").meta
    second = vault.read("Done/EMAIL_1_1.md").meta
    assert (first.model_extra["round"], second.model_extra["round"]) == (0, 1)
    assert first.status == second.status == "done"
    assert second.model_extra["summary"] == "round 1"


def test_release_stale_judges_by_claimed_at(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_old.md", make_meta())
    vault.create("Needs_Action", "EMAIL_new.md", make_meta())
    vault.claim("EMAIL_old.md", "cloud")
    vault.claim("EMAIL_new.md", "cloud")
    old = vault.root / "In_Progress/cloud/EMAIL_old.md"
    doc = tasks.read_task_file(old)
    fields = {**doc.meta.to_frontmatter(), "claimed_at": "2020-01-01T00:00:00Z"}
    old.write_text(tasks.render(fields, doc.body))
    # A fresh mtime must not save the old claim: the lease is judged by claimed_at.
    os.utime(old)
    result = vault.release_stale(timedelta(hours=1))
    assert result.released == ["In_Progress/cloud/EMAIL_old.md"]
    assert (vault.root / "Needs_Action/EMAIL_old.md").exists()
    assert (vault.root / "In_Progress/cloud/EMAIL_new.md").exists()


def test_release_stale_skips_unreadable_claims(vault: Vault) -> None:
    bad = vault.root / "In_Progress/local/EMAIL_bad.md"
    bad.write_bytes(b"\x00\x01binary")
    result = vault.release_stale(timedelta(seconds=0))
    assert "In_Progress/local/EMAIL_bad.md" in result.skipped
    assert bad.read_bytes() == b"\x00\x01binary"


def test_list_newest_first_by_mtime_without_parsing(vault: Vault) -> None:
    folder = vault.root / "Needs_Action"
    for i in range(10):
        path = folder / f"TASK_{i}.md"
        path.write_text("not even frontmatter")  # listing must not parse
        os.utime(path, ns=(1_000_000_000 * (100 + i),) * 2)
    (folder / ".hidden.md").write_text("x")
    (folder / "notes.txt").write_text("x")
    os.mkfifo(folder / "FIFO.md")
    newest = vault.list_tasks("Needs_Action", limit=3)
    assert [e.name for e in newest] == ["TASK_9.md", "TASK_8.md", "TASK_7.md"]
    oldest = vault.list_tasks("Needs_Action", limit=2, newest_first=False)
    assert [e.name for e in oldest] == ["TASK_0.md", "TASK_1.md"]
    assert len(vault.list_tasks("Needs_Action", limit=None)) == 10
    assert vault.count("Needs_Action") == 10


def test_list_filters_by_prefix(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.create("Needs_Action", "FILE_1.md", make_meta("file_drop"))
    assert [e.name for e in vault.list_tasks("Needs_Action", prefix="FILE_")] == ["FILE_1.md"]


def test_read_refuses_escape(vault: Vault) -> None:
    with pytest.raises(UnsafePathError):
        vault.read("../../etc/passwd")


def test_every_change_is_audited(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.claim("EMAIL_1.md", "local")
    vault.release("EMAIL_1.md", "local")
    vault.claim("EMAIL_1.md", "local")
    vault.complete("EMAIL_1.md", "local")
    log = AuditLog(vault.root, "local")
    actions = [e.action for e in log.query(newest_first=False)]
    assert actions == ["create", "claim", "release", "claim", "complete"]
    assert log.verify().ok


@pytest.mark.parametrize("folder", ["Approved/email", "Approved/payments", "Rejected"])
def test_create_never_writes_where_only_the_ceo_writes(vault: Vault, folder: str) -> None:
    with pytest.raises(VaultError, match="only by the CEO"):
        vault.create(folder, "SEND_x.md", make_meta("approval_request"))
    assert not any((vault.root / folder).glob("*.md"))


def test_a_tampered_audit_trail_stops_changes_before_they_happen(vault: Vault) -> None:
    vault.create("Needs_Action", "EMAIL_1.md", make_meta())
    vault.create("Needs_Action", "EMAIL_2.md", make_meta())
    log = vault.root / "Logs/audit-local.jsonl"
    log.write_text(log.read_text().splitlines()[0] + "\n")
    with pytest.raises(AuditTamperedError):
        vault.claim("EMAIL_1.md", "local")
    with pytest.raises(AuditTamperedError):
        vault.create("Needs_Action", "EMAIL_3.md", make_meta())
    assert (vault.root / "Needs_Action/EMAIL_1.md").exists()
    assert not (vault.root / "In_Progress/local/EMAIL_1.md").exists()
    assert not (vault.root / "Needs_Action/EMAIL_3.md").exists()
