"""Taking drops out of Inbox/: into Files/ with one task each, whatever lands there."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from core.audit import AuditLog
from core.file_drops import Drop, Sig, files_name, shown_name
from core.file_intake import INTENT, STATE, TAKEN, Intake
from core.file_taken import encode_intent
from core.tasks import read_task_file
from core.vault import Vault


@pytest.fixture
def intake(vault: Vault) -> Intake:
    return Intake(vault, settle=0, quiet=0, say=lambda _: None)


def inbox(vault: Vault) -> Path:
    return vault.root / "Inbox"


def put(vault: Vault, name: str, data: bytes) -> Path:
    path = inbox(vault) / name
    path.write_bytes(data)
    return path


def left(vault: Vault) -> list[str]:
    return sorted(p.name for p in inbox(vault).iterdir() if p.name != ".gitkeep")


def tasks(vault: Vault) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((vault.root / "Needs_Action").glob("FILE_*.md")):
        meta = read_task_file(path).meta
        out[path.name] = {**meta.model_dump(), **(meta.model_extra or {})}
    return out


def files(vault: Vault) -> dict[str, bytes]:
    folder = vault.root / "Files"  # never opens anything but a plain file (a FIFO would block)
    return {
        p.name: p.read_bytes() if stat.S_ISREG(os.lstat(p).st_mode) else b"<not a file>"
        for p in sorted(folder.iterdir())
        if p.name != ".gitkeep"
    }


def audit(vault: Vault, action: str) -> list[Any]:
    return AuditLog(vault.root, "local").query(category="inbox", action=action)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_drop_becomes_a_file_and_a_task(vault: Vault, intake: Intake) -> None:
    data = b"%PDF-1.4 the invoice"
    put(vault, "Invoice March.pdf", data)
    result = intake.scan()
    name = f"FILE_Invoice_March_{sha(data)[:8]}.md"
    assert result.made == [f"Needs_Action/{name}"] and not result.pending
    assert files(vault) == {"Invoice March.pdf": data}
    assert left(vault) == []
    meta = tasks(vault)[name]
    assert meta["type"] == "file_drop" and meta["source"] == "inbox"
    assert (
        meta["file"] == "Files/Invoice March.pdf" and meta["original_name"] == "Invoice March.pdf"
    )
    assert meta["size"] == len(data) and meta["sha256"] == sha(data)
    assert meta["mime_type"] == "application/pdf" and meta["type_mismatch"] is False
    assert meta["id"] == name[:-3] and meta["received"]
    assert "[[Files/Invoice March.pdf]]" in read_task_file(vault.root / "Needs_Action" / name).body
    [entry] = audit(vault, "take")
    assert entry.target == "Files/Invoice March.pdf" and entry.details["sha256"] == sha(data)
    state = vault.state_dir / STATE
    assert not (state / INTENT).exists()
    index = json.loads((state / TAKEN / f"{sha(data)}.json").read_text())
    assert index["file"] == "Files/Invoice March.pdf" and index["task"] == f"Needs_Action/{name}"
    assert intake.scan().made == []  # nothing left to do


ODD = [
    "with  spaces .pdf",
    "Übersicht März.xlsx",
    "日本語.pdf",
    "report..final.pdf",
    "-rf.pdf",
    "ctl\x01\x1b[2Jname\n.txt",
    "z" * 250,
    os.fsdecode(b"caf\xe9.pdf"),
    "con.txt",
]


def test_odd_names_are_taken_under_safe_names(vault: Vault, intake: Intake) -> None:
    for i, name in enumerate(ODD):
        put(vault, name, f"content {i}".encode())
    result = intake.scan()
    assert len(result.made) == len(ODD) and not result.pending
    assert left(vault) == []
    kept = files(vault)
    assert sorted(kept.values()) == sorted(f"content {i}".encode() for i in range(len(ODD)))
    metas = list(tasks(vault).values())
    assert sorted(m["original_name"] for m in metas) == sorted(shown_name(n) for n in ODD)
    content = {shown_name(name): f"content {i}".encode() for i, name in enumerate(ODD)}
    for meta in metas:  # each task names the file that holds its drop's bytes
        assert kept[meta["file"].removeprefix("Files/")] == content[meta["original_name"]]
    assert {"file.pdf", "caf.pdf", "rf.pdf", "report.final.pdf", "_con.txt"} <= set(kept)


def test_names_differing_only_in_case_are_two_drops(vault: Vault, intake: Intake) -> None:
    put(vault, "Report.pdf", b"one")
    put(vault, "report.pdf", b"two")
    intake.scan()
    assert files(vault) == {"Report.pdf": b"one", "report.pdf": b"two"}
    assert len(tasks(vault)) == 2


def test_a_name_taken_in_files_gets_a_suffix(vault: Vault, intake: Intake) -> None:
    (vault.root / "Files" / "scan.pdf").write_bytes(b"the owner's own")
    put(vault, "scan.pdf", b"new scan")
    intake.scan()
    assert files(vault) == {"scan.pdf": b"the owner's own", "scan_2.pdf": b"new scan"}
    assert [m["file"] for m in tasks(vault).values()] == ["Files/scan_2.pdf"]


def test_two_drops_at_once_make_two_tasks(vault: Vault, intake: Intake) -> None:
    put(vault, "a.txt", b"a")
    put(vault, "b.txt", b"b")
    assert len(intake.scan().made) == 2
    assert files(vault) == {"a.txt": b"a", "b.txt": b"b"}


def test_the_same_content_twice_is_kept_but_gets_no_second_task(
    vault: Vault, intake: Intake
) -> None:
    put(vault, "invoice.pdf", b"%PDF same")
    intake.scan()
    put(vault, "invoice.pdf", b"%PDF same")  # dropped again
    put(vault, "copy of invoice.pdf", b"%PDF same")  # and under another name
    result = intake.scan()
    assert result.made == [] and len(result.duplicates) == 2
    assert files(vault) == dict.fromkeys(
        ["copy of invoice.pdf", "invoice.pdf", "invoice_2.pdf"], b"%PDF same"
    )
    assert len(tasks(vault)) == 1
    dups = audit(vault, "duplicate")
    assert {e.details["duplicate_of"] for e in dups} == {"Files/invoice.pdf"}
    # Once its first copy is gone from Files/, the same content is a new drop again.
    (vault.root / "Files" / "invoice.pdf").unlink()
    put(vault, "invoice.pdf", b"%PDF same")
    [made] = intake.scan().made
    assert made.endswith("_2.md") and len(tasks(vault)) == 2  # the old task name was used


def test_a_zero_byte_file_is_a_drop(vault: Vault, intake: Intake) -> None:
    put(vault, "empty.txt", b"")
    [made] = intake.scan().made
    meta = tasks(vault)[made.removeprefix("Needs_Action/")]
    assert meta["size"] == 0 and meta["sha256"] == sha(b"")


def test_hidden_and_temporary_files_wait_until_renamed(vault: Vault, intake: Intake) -> None:
    for name in (".secret", ".~lock.x.odt#", "big.iso.part", "s.pdf.crdownload", "~$x.docx"):
        put(vault, name, b"partial")
    assert intake.scan().made == [] and files(vault) == {}
    os.rename(inbox(vault) / "big.iso.part", inbox(vault) / "big.iso")
    assert len(intake.scan().made) == 1 and list(files(vault)) == ["big.iso"]


def test_links_folders_fifos_are_left_alone_and_reported_once(
    vault: Vault, intake: Intake, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not for the vault")
    os.symlink(outside, inbox(vault) / "link.txt")
    os.symlink(tmp_path / "nowhere", inbox(vault) / "dangling")
    (inbox(vault) / "a folder").mkdir()
    (inbox(vault) / "a folder" / "inside.pdf").write_bytes(b"x")
    os.mkfifo(inbox(vault) / "pipe")  # opening it would block: it must never be opened
    os.link(outside, inbox(vault) / "hardlinked.txt")
    said: list[str] = []
    intake.say = said.append
    for _ in range(3):
        assert intake.scan().made == []
    assert files(vault) == {} and outside.read_bytes() == b"not for the vault"
    assert os.path.islink(inbox(vault) / "link.txt")
    assert (inbox(vault) / "a folder" / "inside.pdf").exists()
    refused = audit(vault, "refused")
    assert sorted(e.target for e in refused) == [
        "Inbox/a folder",
        "Inbox/dangling",
        "Inbox/hardlinked.txt",
        "Inbox/link.txt",
        "Inbox/pipe",
    ]
    assert len(said) == 5 and all(e.status == "refused" for e in refused)


def test_a_file_open_for_writing_waits(vault: Vault, intake: Intake) -> None:
    with open(inbox(vault) / "growing.bin", "wb") as writer:
        writer.write(b"first half")
        writer.flush()
        result = intake.scan()
        assert result.made == [] and "growing.bin" in result.pending
        writer.write(b" and the rest")
    [made] = intake.scan().made
    meta = tasks(vault)[made.removeprefix("Needs_Action/")]
    assert meta["sha256"] == sha(b"first half and the rest")


def test_a_settling_file_is_pending_with_the_time_left(vault: Vault) -> None:
    intake = Intake(vault, settle=3600, quiet=0, say=lambda _: None)
    path = put(vault, "new.txt", b"x")
    os.utime(path)
    result = intake.scan()
    assert result.made == [] and 3500 < result.pending["new.txt"] <= 3600
    intake.closed("new.txt")  # the watcher saw its writer close it
    assert len(intake.scan().made) == 1


def intent_for(vault: Vault, path: Path, target: str) -> Drop:
    data = path.read_bytes()
    st = os.lstat(path)
    drop = Drop(path.name, Sig.of(st), sha(data), data[:64], "2026-11-25T10:00:00.5Z", target)
    state = vault.state_dir / STATE
    (state / TAKEN).mkdir(parents=True, exist_ok=True)
    (state / INTENT).write_bytes(encode_intent(drop))
    return drop


def test_a_take_cut_short_after_the_move_is_finished_once(vault: Vault, intake: Intake) -> None:
    path = put(vault, "cut.pdf", b"%PDF cut")
    intent_for(vault, path, "cut.pdf")
    os.rename(path, vault.root / "Files" / "cut.pdf")  # the move was done, nothing after it
    assert len(intake.scan().made) == 1 and intake.scan().made == []
    [meta] = tasks(vault).values()
    assert meta["received"] == "2026-11-25T10:00:00.5Z"
    assert len(audit(vault, "take")) == 1 and not (vault.state_dir / STATE / INTENT).exists()


def test_a_take_cut_short_before_the_move_is_finished(vault: Vault, intake: Intake) -> None:
    path = put(vault, "early.pdf", b"%PDF early")
    intent_for(vault, path, "early.pdf")
    assert len(intake.scan().made) == 1
    assert files(vault) == {"early.pdf": b"%PDF early"}


def test_a_move_by_link_cut_short_leaves_one_name(vault: Vault, intake: Intake) -> None:
    path = put(vault, "linked.pdf", b"%PDF linked")
    intent_for(vault, path, "linked.pdf")
    os.link(path, vault.root / "Files" / "linked.pdf")  # link done, unlink not yet
    assert len(intake.scan().made) == 1
    assert not path.exists() and os.stat(vault.root / "Files" / "linked.pdf").st_nlink == 1


def test_an_intent_whose_file_changed_is_let_go(vault: Vault, intake: Intake) -> None:
    path = put(vault, "changed.txt", b"before")
    intent_for(vault, path, "changed.txt")
    path.write_bytes(b"after, longer")
    [made] = intake.scan().made
    assert tasks(vault)[made.removeprefix("Needs_Action/")]["sha256"] == sha(b"after, longer")


def test_an_unreadable_intent_is_let_go(vault: Vault, intake: Intake) -> None:
    state = vault.state_dir / STATE
    (state / TAKEN).mkdir(parents=True)
    (state / INTENT).write_text("{not json")
    put(vault, "fine.txt", b"fine")
    assert len(intake.scan().made) == 1 and not (state / INTENT).exists()


def test_the_files_name_is_the_safe_name(vault: Vault, intake: Intake) -> None:
    name = "a]]b|c.png"
    put(vault, name, b"\x89PNG\r\n\x1a\n")
    intake.scan()
    assert list(files(vault)) == [files_name(name)] == ["a_b_c.png"]


SWAPS = {
    "symlink": lambda outside, path: os.symlink(outside, path),
    "hardlink": lambda outside, path: os.link(outside, path),
    "fifo": lambda outside, path: os.mkfifo(path),
    "folder": lambda outside, path: os.mkdir(path),
}


@pytest.mark.parametrize("swap", sorted(SWAPS))
def test_a_link_or_fifo_swapped_in_after_the_hash_goes_back_to_the_inbox(
    vault: Vault, intake: Intake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"SECRET")
    path = put(vault, "inv.pdf", b"%PDF-real")

    def at(point: str) -> None:
        if point == "inbox:after_intent":  # hashed; the swap happens before the move
            path.unlink()
            SWAPS[swap](outside, path)
        elif point == "inbox:after_move":  # and a new drop takes the name meanwhile
            path.write_bytes(b"%PDF-new")

    monkeypatch.setattr("core.file_intake.fault_point", at)
    said: list[str] = []
    intake.say = said.append
    result = intake.scan()
    assert result.made == [] and files(vault) == {} and outside.read_bytes() == b"SECRET"
    assert left(vault) == ["inv.pdf", "inv_2.pdf"]
    back = os.lstat(inbox(vault) / "inv_2.pdf")
    assert {
        "symlink": stat.S_ISLNK(back.st_mode),
        "hardlink": back.st_ino == os.lstat(outside).st_ino,
        "fifo": stat.S_ISFIFO(back.st_mode),
        "folder": stat.S_ISDIR(back.st_mode),
    }[swap]
    assert not (vault.state_dir / STATE / INTENT).exists()
    [line] = said
    assert line.startswith("Inbox/inv_2.pdf: swapped while being taken, so moved back")
    monkeypatch.undo()
    [made] = intake.scan().made  # the new drop is taken; the swapped thing is not told again
    assert files(vault) == {"inv.pdf": b"%PDF-new"} and left(vault) == ["inv_2.pdf"]
    assert len(said) == 2 and said[1].startswith(f"new: {made}")
    [refused] = audit(vault, "refused")
    assert refused.target == "Inbox/inv_2.pdf" and refused.status == "refused"


def test_a_link_found_in_files_after_a_crash_goes_back_to_the_inbox(
    vault: Vault, intake: Intake, tmp_path: Path
) -> None:
    path = put(vault, "inv.pdf", b"%PDF-real")
    intent_for(vault, path, "inv.pdf")
    path.unlink()  # swapped for a link, which was moved, and then the process died
    os.symlink(tmp_path, vault.root / "Files" / "inv.pdf")
    assert intake.scan().made == [] and files(vault) == {}
    assert os.readlink(inbox(vault) / "inv.pdf") == str(tmp_path)
    assert [e.target for e in audit(vault, "refused")] == ["Inbox/inv.pdf"]


def test_a_name_reused_in_files_does_not_make_a_duplicate(vault: Vault, intake: Intake) -> None:
    invoice = b"%PDF- invoice 1000 EUR"
    put(vault, "inv.pdf", invoice)
    intake.scan()
    index = json.loads((vault.state_dir / STATE / TAKEN / f"{sha(invoice)}.json").read_text())
    st = os.lstat(vault.root / "Files" / "inv.pdf")
    kept = [index[key] for key in ("ino", "size", "mtime_ns")]
    assert kept == [st.st_ino, st.st_size, st.st_mtime_ns]
    (vault.root / "Files" / "inv.pdf").unlink()  # the owner deletes the kept copy
    put(vault, "inv.pdf", b"%PDF- unrelated letter")  # another file takes its name
    intake.scan()
    put(vault, "invoice_again.pdf", invoice)  # the invoice once more
    result = intake.scan()
    assert result.duplicates == [] and len(result.made) == 1
    assert files(vault)["inv.pdf"] == b"%PDF- unrelated letter"
    # Same name, same size, other bytes: the kept file is hashed again to decide.
    same_size = b"%PDF- invoice 9999 EUR"
    (vault.root / "Files" / "invoice_again.pdf").unlink()
    (vault.root / "Files" / "invoice_again.pdf").write_bytes(same_size)
    put(vault, "third.pdf", invoice)
    assert intake.scan().duplicates == [] and audit(vault, "duplicate") == []


def test_a_kept_file_touched_since_is_still_a_duplicate_when_its_bytes_are(
    vault: Vault, intake: Intake
) -> None:
    put(vault, "inv.pdf", b"%PDF-same")
    intake.scan()
    kept = vault.root / "Files" / "inv.pdf"
    os.utime(kept, ns=(1_000_000_000, 1_000_000_000))  # mtime changed, bytes not
    put(vault, "again.pdf", b"%PDF-same")
    assert intake.scan().duplicates == ["Files/again.pdf"]
    index = json.loads((vault.state_dir / STATE / TAKEN / f"{sha(b'%PDF-same')}.json").read_text())
    assert index["file"] == "Files/inv.pdf" and index["mtime_ns"] == 1_000_000_000


BAD_INTENTS = {
    "source up": {"source": "../outside.pdf"},
    "source path": {"source": "sub/outside.pdf"},
    "source hidden": {"source": ".outside.pdf"},
    "target up": {"target": "../outside.pdf"},
    "target path": {"target": "Done/x.pdf"},
    "target dots": {"target": ".."},
    "sha256 path": {"sha256": "../../../outside"},
}


@pytest.mark.parametrize("bad", sorted(BAD_INTENTS))
def test_an_intent_naming_anything_but_plain_names_is_refused(
    vault: Vault, intake: Intake, bad: str
) -> None:
    outside = vault.root / "outside.pdf"  # not in Inbox/: an intent must never reach it
    outside.write_bytes(b"%PDF keep me")
    (vault.root / "Inbox" / "sub").mkdir()
    drop = intent_for(vault, outside, "outside.pdf")
    data = json.loads(encode_intent(drop)) | BAD_INTENTS[bad]
    (vault.state_dir / STATE / INTENT).write_text(json.dumps(data))
    said: list[str] = []
    intake.say = said.append
    assert intake.scan().made == [] and files(vault) == {}
    assert outside.read_bytes() == b"%PDF keep me"
    assert not (vault.state_dir / STATE / INTENT).exists()
    [entry] = audit(vault, "recover")
    assert entry.status == "refused" and entry.target == ".state/file_drops/intent.json"
    assert len(said) >= 1 and "let go" in said[0]
