"""Dropped files, the pieces: names, kinds, types, hashing, open writers, settling."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tracemalloc
from pathlib import Path

import pytest

from core.file_drops import (
    CHUNK,
    OCTET,
    Drop,
    Settler,
    Sig,
    digest,
    files_name,
    ignored,
    numbered,
    refusal,
    shown_name,
    sniff,
    task_body,
    task_meta,
    task_stem,
    writer_open,
)
from core.file_taken import decode_intent, encode_intent, kept_copy, plain_inbox_name
from core.paths import split_relative
from core.tasks import ID_PATTERN, UNTRUSTED_HEADING, parse, render

SHA = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    "name",
    [
        ".hidden",
        ".gitkeep",
        ".~lock.report.odt#",
        ".report.docx.swp",
        "report.docx.swp",
        "notes.txt.swo",
        "movie.mkv.part",
        "setup.exe.crdownload",
        "archive.zip.PART",
        "~$budget.xlsx",
        "draft.txt~",
        "upload.tmp",
        "scan.pdf.filepart",
    ],
)
def test_temporary_and_hidden_names_wait(name: str) -> None:
    assert ignored(name)


@pytest.mark.parametrize("name", ["report.pdf", "partner.pdf", "my~file.txt", "-x.pdf", "a"])
def test_ordinary_names_are_looked_at(name: str) -> None:
    assert not ignored(name)


ODD_NAMES = [
    "my invoice 2026.pdf",
    "Übersicht – März.xlsx",
    "日本語の請求書.pdf",
    "..pdf",
    "report..final.pdf",
    "-rf --no-preserve-root.pdf",
    "tab\there\nnew line\x1b[31m.pdf",
    "x" * 250 + ".pdf",
    "con.pdf",
    "a]]b|c#d^e[[f.png",
    os.fsdecode(b"caf\xe9-latin1.pdf"),  # not UTF-8: surrogate escapes
    "\u202eevil\u202cfdp.exe",  # right-to-left override
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_make_safe_files_and_task_names(name: str) -> None:
    safe = files_name(name)
    assert split_relative(f"Files/{safe}") == ("Files", safe)  # a plain portable segment
    assert len(safe.encode()) <= 120 and not safe.startswith(("-", ".", " "))
    assert re.fullmatch(r"[A-Za-z0-9._ -]+", safe)
    for n in (1, 2, 17):
        assert split_relative(numbered(safe, n))
    stem = task_stem(name, SHA)
    assert re.fullmatch(ID_PATTERN, stem) and stem.endswith(f"_{SHA[:8]}")
    assert task_stem(name, SHA) == stem  # deterministic: a restart finds the same task
    shown = shown_name(name)
    assert "\n" not in shown and "\x1b" not in shown and "\u202e" not in shown
    shown.encode("utf-8")  # no lone surrogates: it can be written to a task file


def test_shown_name_keeps_readable_text_and_marks_the_rest() -> None:
    assert shown_name("Übersicht März.pdf") == "Übersicht März.pdf"
    assert shown_name("a\nb.pdf") == "a\ufffdb.pdf"
    assert shown_name(os.fsdecode(b"caf\xe9.pdf")) == "caf\ufffd.pdf"
    assert len(shown_name("y" * 1000)) == 255


def test_names_differing_only_in_case_stay_apart() -> None:
    assert files_name("Report.PDF") != files_name("report.pdf")
    assert task_stem("Report.pdf", SHA) != task_stem("report.pdf", SHA)


def test_numbered_names_keep_the_extension() -> None:
    assert numbered("a b.pdf", 1) == "a b.pdf"
    assert numbered("a b.pdf", 2) == "a b_2.pdf"
    assert numbered("noext", 3) == "noext_3"


def test_refusal_names_links_folders_fifos_and_hard_links(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "plain", tmp_path / "link")
    (tmp_path / "linked").write_bytes(b"y")
    os.link(tmp_path / "linked", tmp_path / "twin")
    why = {p.name: refusal(os.lstat(p)) for p in tmp_path.iterdir()}
    assert why["plain"] is None
    assert "symbolic link" in str(why["link"]) and "folder" in str(why["folder"])
    assert "FIFO" in str(why["fifo"]) and "hard-linked" in str(why["twin"])


PDF, PNG, JPEG, ZIP = b"%PDF-1.7\n", b"\x89PNG\r\n\x1a\n\0\0", b"\xff\xd8\xff\xe0", b"PK\x03\x04"


@pytest.mark.parametrize(
    ("name", "head", "mime", "by_name", "by_content", "mismatch"),
    [
        ("a.pdf", PDF, "application/pdf", "application/pdf", "application/pdf", False),
        ("photo.jpg", JPEG, "image/jpeg", "image/jpeg", "image/jpeg", False),
        ("invoice.pdf", PNG, "image/png", "application/pdf", "image/png", True),
        ("invoice.pdf", b"MZ\x90\0", "application/pdf", "application/pdf", "", True),
        ("notes.txt", PNG, "image/png", "text/plain", "image/png", True),
        ("scan", PDF, "application/pdf", "", "application/pdf", False),
        ("blob", b"\0\1\2", OCTET, "", "", False),
        ("a.zip", ZIP, "application/zip", "application/zip", "application/zip", False),
        ("notes.txt", b"hello", "text/plain", "text/plain", "", False),
        ("empty.pdf", b"", "application/pdf", "application/pdf", "", True),
    ],
)
def test_type_by_name_and_by_content(
    name: str, head: bytes, mime: str, by_name: str, by_content: str, mismatch: bool
) -> None:
    kind = sniff(name, head)
    assert (kind.mime_type, kind.extension_type, kind.detected_type) == (mime, by_name, by_content)
    assert kind.mismatch is mismatch


def test_office_files_are_zips_and_that_is_no_mismatch() -> None:
    kind = sniff("contract.docx", ZIP)
    assert kind.mime_type.endswith("wordprocessingml.document") and not kind.mismatch
    assert kind.detected_type == "application/zip"
    assert sniff("contract.docx", PDF).mismatch


def test_digest_streams_a_large_file_in_fixed_chunks(tmp_path: Path) -> None:
    path = tmp_path / "huge.bin"
    size = 64 * CHUNK + 123
    with open(path, "wb") as f:  # sparse: cheap on disk, 64 MiB to read
        f.write(PDF)
        f.truncate(size)
        f.seek(size - 5)
        f.write(b"tail!")
    expected = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            expected.update(block)
    fd = os.open(path, os.O_RDONLY)
    tracemalloc.start()
    try:
        sha, head = digest(fd)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        os.close(fd)
    assert sha == expected.hexdigest() and head.startswith(PDF)
    assert peak < 4 * CHUNK, f"hashing held {peak:,} bytes at once"


def test_writer_open_sees_an_open_writer_in_any_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        with open(path, "ab") as writer:
            writer.write(b"part")
            assert writer_open(fd) is True
        assert writer_open(fd) is False
        with open(path, "rb"):  # readers do not count
            assert writer_open(fd) is False
        assert writer_open(fd) is False  # the lease was let go: it can be had again
    finally:
        os.close(fd)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sig(size: int = 1, ctime: float = 0.0, ino: int = 7) -> Sig:
    return Sig(dev=1, ino=ino, size=size, mtime_ns=size, ctime_ns=int(ctime * 1e9))


def settler(clock: Clock, settle: float = 2.0, quiet: float = 0.1) -> Settler:
    return Settler(settle=settle, quiet=quiet, clock=clock, wall=clock)


def test_a_file_waits_out_the_settle_time_unchanged() -> None:
    clock = Clock()
    s = settler(clock)
    assert s.wait_left("a", sig(1, clock.now)) == pytest.approx(2.0)
    clock.now += 1.5
    assert s.wait_left("a", sig(1, clock.now - 1.5)) == pytest.approx(0.5)
    clock.now += 1.0
    assert s.wait_left("a", sig(2, clock.now)) == pytest.approx(2.0)  # it grew: start again
    clock.now += 2.0
    assert s.wait_left("a", sig(2, clock.now - 2.0)) == 0.0


def test_a_closed_file_needs_only_the_quiet_time() -> None:
    clock = Clock()
    s = settler(clock)
    s.closed("a")
    assert s.wait_left("a", sig(5, clock.now)) == pytest.approx(0.1)
    clock.now += 0.1
    assert s.wait_left("a", sig(5, clock.now - 0.1)) == 0.0
    clock.now += 0.01
    assert s.wait_left("a", sig(6, clock.now)) == pytest.approx(2.0)  # reopened: no shortcut


def test_a_file_older_than_the_settle_time_is_ready_at_once() -> None:
    clock = Clock()
    assert settler(clock).wait_left("old", sig(3, clock.now - 60)) == 0.0


def test_an_open_writer_restarts_the_wait_and_forgets_the_close() -> None:
    clock = Clock()
    s = settler(clock)
    s.closed("a")
    s.wait_left("a", sig(1, clock.now))
    assert s.restart("a") == 2.0
    clock.now += 0.5
    assert s.wait_left("a", sig(1, clock.now - 0.5)) == pytest.approx(1.5)


def test_names_gone_from_the_inbox_are_forgotten() -> None:
    clock = Clock()
    s = settler(clock)
    s.wait_left("a", sig(1, clock.now))
    s.closed("b")
    s.keep_only({"c"})
    clock.now += 1
    assert s.wait_left("b", sig(1, clock.now)) == pytest.approx(2.0)  # its close is forgotten
    assert s.wait_left("a", sig(1, clock.now)) == pytest.approx(2.0)


def drop(name: str, head: bytes = PDF, size: int = 10) -> Drop:
    return Drop(name, sig(size), SHA, head, "2026-11-25T10:00:00.000001Z", files_name(name))


@pytest.mark.parametrize("name", ODD_NAMES)
def test_the_task_of_any_name_renders_and_reads_back(name: str) -> None:
    d = drop(name)
    meta = task_meta(d, task_stem(name, SHA))
    doc = parse(render(meta.to_frontmatter(), task_body(d)), name="t")
    front, body = {**doc.meta.model_dump(), **(doc.meta.model_extra or {})}, doc.body
    assert front["original_name"] == shown_name(name)
    assert front["file"] == f"Files/{files_name(name)}" and front["sha256"] == SHA
    assert front["type"] == "file_drop" and front["source"] == "inbox"
    assert f"[[Files/{files_name(name)}]]" in body
    assert body.index(f"Original name: {shown_name(name)}") > body.index(UNTRUSTED_HEADING)


def test_a_name_cannot_add_frontmatter_fields() -> None:
    name = "x\n---\nstatus: done\ntype: payment\n---\n.pdf"
    doc = parse(render(task_meta(drop(name), "FILE_x").to_frontmatter()), name="t")
    assert doc.meta.status == "pending" and doc.meta.type == "file_drop"
    assert (doc.meta.model_extra or {})["original_name"] == shown_name(name)


def test_the_task_warns_when_name_and_content_disagree() -> None:
    d = drop("invoice.pdf", head=b"MZ\x90\0")
    front = task_meta(d, "FILE_invoice").to_frontmatter()
    assert front["type_mismatch"] is True and front["detected_type"] == ""
    assert "disagree" in task_body(d)
    assert "(empty)" in task_body(drop("e.txt", head=b"", size=0))


@pytest.mark.parametrize(
    "name", ["a\nb: c.pdf", os.fsdecode(b"\xff.pdf"), "x]]|[[y.pdf", "z" * 250]
)
def test_an_intent_keeps_any_inbox_name_a_drop_can_have(name: str) -> None:
    drop = Drop(name, Sig(1, 2, 3, 4, 5), SHA, b"%PDF", "2026-01-01T00:00:00Z", "x.pdf")
    assert plain_inbox_name(name) and decode_intent(encode_intent(drop)) == drop


@pytest.mark.parametrize(
    "change",
    [
        {"source": ".."},
        {"source": "a/b.pdf"},
        {"source": "\ud800.pdf"},  # a surrogate no file name holds
        {"source": "x.pdf.part"},  # never taken
        {"target": "../x.pdf"},
        {"target": ".x.pdf"},
        {"target": "a\nb.pdf"},
        {"sha256": "A" * 64},
        {"sig": {"dev": 1, "ino": "2", "size": 3, "mtime_ns": 4, "ctime_ns": 5}},
        {"received": None},
    ],
)
def test_an_intent_with_anything_else_is_refused(change: dict[str, object]) -> None:
    drop = Drop("a.pdf", Sig(1, 2, 3, 4, 5), SHA, b"", "2026-01-01T00:00:00Z", "a.pdf")
    data = json.loads(encode_intent(drop)) | change
    with pytest.raises(ValueError):
        decode_intent(json.dumps(data).encode())


def test_a_kept_copy_counts_only_while_it_holds_the_same_bytes(tmp_path: Path) -> None:
    kept = tmp_path / "inv.pdf"
    kept.write_bytes(b"x")
    st = os.lstat(kept)
    first = {"file": "Files/inv.pdf", "ino": st.st_ino, "size": 1, "mtime_ns": st.st_mtime_ns}
    drop = Drop("again.pdf", Sig(0, 0, 1, 0, 0), SHA, b"x", "", "again.pdf")
    assert kept_copy(tmp_path, first, drop) == first  # unchanged: not read again
    kept.unlink()
    kept.write_bytes(b"y")  # another file, same name and size
    assert kept_copy(tmp_path, first, drop) is None
    kept.write_bytes(b"x")  # the same bytes again: hashed, and remembered as it is now
    assert kept_copy(tmp_path, first, drop) == {
        **first,
        "ino": os.lstat(kept).st_ino,
        "mtime_ns": os.lstat(kept).st_mtime_ns,
    }
    assert kept_copy(tmp_path, {**first, "file": "Files/../inv.pdf"}, drop) is None
