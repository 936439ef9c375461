"""Path confinement: every attack class from REFERENCE.md is refused and changes nothing.

Real files, folders, links, FIFOs and sockets are made in a temp folder; nothing is mocked.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.errors import UnsafePathError, VaultError
from core.layout import FOLDERS
from core.paths import (
    MAX_COMPONENT_BYTES,
    MAX_PATH_CHARS,
    confine,
    relative_to_vault,
    safe_filename,
    split_relative,
)
from core.vault import Vault

SECRET = b"TOP SECRET: outside the vault\n"
CAFE = "Caf\u00e9_notes.md"  # NFC: the e-acute is one code point


# --------------------------------------------------------------------------------------
# the world: a vault, an outside folder, a sibling whose name shares the vault's prefix
# --------------------------------------------------------------------------------------
@dataclass
class World:
    base: Path
    vault: Path
    outside: Path
    evil: Path
    specials: dict[str, str]  # kind -> vault-relative path of a special leaf, if creatable


def _make_socket(folder: Path, name: str) -> bool:
    """Bind an AF_UNIX socket at folder/name; relative bind dodges the 108-byte path limit."""
    if not hasattr(socket, "AF_UNIX"):
        return False
    old = os.getcwd()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.chdir(folder)
        sock.bind(name)
        return True
    except OSError:
        return False
    finally:
        sock.close()
        os.chdir(old)


@pytest.fixture
def world(tmp_path: Path) -> World:
    vault = tmp_path / "vault"
    Vault(vault).ensure_layout()
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "sub" / "deep.txt").write_bytes(SECRET)
    evil = tmp_path / "vault-evil"
    evil.mkdir()
    (evil / "x").write_bytes(SECRET)
    (evil / "x.md").write_bytes(SECRET)

    na = vault / "Needs_Action"
    (na / "ok.md").write_text("---\nid: ok\n---\n", encoding="utf-8")
    (na / CAFE).write_text("caf\u00e9\n", encoding="utf-8")
    (na / ".hidden.md").write_text("hidden\n", encoding="utf-8")
    (vault / "Dashboard.md").write_text("# Dashboard\n", encoding="utf-8")
    (vault / "Done" / "real.md").write_text("done\n", encoding="utf-8")
    (vault / "Plans" / "deep").mkdir()
    (vault / "Plans" / "deep" / "plan.md").write_text("plan\n", encoding="utf-8")
    (vault / ".git").mkdir()
    (vault / ".git" / "config").write_text("[core]\n", encoding="utf-8")
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "x").write_text("{}\n", encoding="utf-8")
    (vault / ".state" / "x").write_text("{}\n", encoding="utf-8")

    # symlinks: none of them may ever be followed
    os.symlink(outside / "secret.txt", na / "file_link.md")  # file -> outside file
    os.symlink(outside, na / "dir_link")  # dir -> outside dir
    os.symlink(na / "chain2.md", na / "chain1.md")  # chain -> chain -> outside
    os.symlink(na / "chain3.md", na / "chain2.md")
    os.symlink(outside / "secret.txt", na / "chain3.md")
    os.symlink("../../outside", vault / "Plans" / "rel_out")  # relative dir link
    os.symlink("../../outside/secret.txt", vault / "Plans" / "rel_file.md")
    os.symlink(outside / "not_yet.txt", na / "dangling.md")  # dangling write target
    os.symlink("../Done/real.md", na / "inside_link.md")  # inside -> inside
    os.symlink("../Done", na / "inside_dir")  # inside dir -> inside dir
    os.symlink("loop.md", na / "loop.md")  # self loop
    os.symlink("/dev/null", na / "devnull.md")
    os.symlink(vault / "Needs_Action", vault / "Signals" / "na_link")  # whole folder alias

    # hard links: one to an outside file, one between two files inside
    os.link(outside / "secret.txt", na / "hard_out.md")
    (vault / "Done" / "twin.md").write_text("twin\n", encoding="utf-8")
    os.link(vault / "Done" / "twin.md", na / "hard_in.md")

    specials: dict[str, str] = {}
    os.mkfifo(na / "fifo.md")
    specials["fifo"] = "Needs_Action/fifo.md"
    if _make_socket(na, "sock.md"):
        specials["socket"] = "Needs_Action/sock.md"
    try:
        os.mknod(na / "dev.md", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        specials["device"] = "Needs_Action/dev.md"
    except (OSError, AttributeError):
        pass
    return World(tmp_path, vault, outside, evil, specials)


# --------------------------------------------------------------------------------------
# snapshot of everything under the temp folder, never following links
# --------------------------------------------------------------------------------------
def _walk(top: Path) -> Iterator[Path]:
    yield top
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames + filenames:
            yield Path(dirpath, name)


def snapshot(top: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``top``: kind, size, mode, mtime_ns, links, and its content or target."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in _walk(top):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            extra: Any = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            extra = path.read_bytes()
        else:
            extra = None
        out[str(path.relative_to(top))] = (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_size if not stat.S_ISDIR(st.st_mode) else None,
            st.st_mtime_ns,
            st.st_nlink,
            st.st_ino,
            extra,
        )
    return out


def refuse(world: World, raw: object, pattern: str, *, must_exist: bool = True) -> str:
    """confine() must raise UnsafePathError matching ``pattern`` and leave everything as it was."""
    before = snapshot(world.base)
    with pytest.raises(UnsafePathError) as info:
        confine(world.vault, raw, must_exist=must_exist)
    after = snapshot(world.base)
    assert after == before, "a refused path changed something on disk"
    message = str(info.value)
    assert isinstance(info.value, VaultError)
    assert message.startswith("Path "), message
    assert " refused: " in message, message
    assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert "relative to the vault" in message  # says what to do next
    return message


# --------------------------------------------------------------------------------------
# text-level attack classes (no filesystem access needed; both must_exist modes)
# --------------------------------------------------------------------------------------
DOTS = r"empty, '\.' and '\.\.' segments are not allowed"
ABSOLUTE = r"absolute paths are not allowed"
BACKSLASH = r"backslashes are not allowed"
EXPANSION = r"home \('~'\) and variable \('\$'\) expansion are not allowed"
PERCENT = r"percent-encoded characters are not allowed"
LOOKALIKE = r"look-alike or non-normalized Unicode"
HIDDEN = r"hidden entries such as '\.[^']*' \(\.git, \.state, \.obsidian\) are off limits"
DASH = r"a segment may not start with '-'"
EDGE = r"may not start or end with a space or end with '\.'"
RESERVED = r"is a reserved device name"
PORTABLE = r"contains a character not allowed in portable file names"
EMPTY = r"it is empty"


def control(ch: str) -> str:
    return rf"control or invisible character U\+{ord(ch):04X}"


TEXT_ATTACKS: list[tuple[str, str, str]] = [
    # relative escapes, '..' in every position
    ("dotdot-first", "../outside/secret.txt", DOTS),
    ("dotdot-alone", "..", DOTS),
    ("dotdot-middle", "Needs_Action/../../outside/secret.txt", DOTS),
    ("dotdot-middle-inside", "Needs_Action/../Dashboard.md", DOTS),
    ("dotdot-last", "Needs_Action/..", DOTS),
    ("a-dotdot-dotdot", "a/../../x", DOTS),
    ("dotdot-many", "../../../../../../etc/passwd", DOTS),
    ("dot-first", "./x", DOTS),
    ("dot-last", "x/.", DOTS),
    ("dot-alone", ".", DOTS),
    ("empty-segment", "Needs_Action//ok.md", DOTS),
    ("trailing-slash", "Needs_Action/", DOTS),
    # sibling prefix
    ("sibling-prefix", "../vault-evil/x", DOTS),
    ("sibling-prefix-deep", "Needs_Action/../../vault-evil/x.md", DOTS),
    # absolute POSIX and Windows forms
    ("posix-absolute", "/etc/passwd", ABSOLUTE),
    ("posix-absolute-root", "/", ABSOLUTE),
    ("double-slash", "//x", ABSOLUTE),
    ("windows-drive-slash", "C:/x", ABSOLUTE),
    ("windows-drive-relative", "C:x", ABSOLUTE),
    ("windows-drive-lower", "c:/Windows/win.ini", ABSOLUTE),
    ("windows-drive-backslash", "C:\\x", BACKSLASH),
    ("windows-unc", "\\\\server\\share", BACKSLASH),
    ("windows-device-path", "\\\\?\\C:\\x", BACKSLASH),
    ("url-file", "file:/etc/passwd", PORTABLE),
    # backslashes anywhere
    ("backslash-sep", "Needs_Action\\ok.md", BACKSLASH),
    ("backslash-escape", "..\\outside\\secret.txt", BACKSLASH),
    ("backslash-leaf", "Needs_Action/a\\b.md", BACKSLASH),
    # home and variable expansion
    ("tilde", "~/x", EXPANSION),
    ("tilde-user", "~root/x", EXPANSION),
    ("tilde-alone", "~", EXPANSION),
    ("dollar-var", "$HOME/x", EXPANSION),
    ("dollar-brace", "${HOME}/x", EXPANSION),
    ("dollar-middle", "Needs_Action/$(id).md", EXPANSION),
    # NUL and control characters
    ("nul", "Needs_Action/ok.md\x00.txt", control("\x00")),
    ("nul-first", "\x00", control("\x00")),
    ("newline", "Needs_Action/a\nb.md", control("\n")),
    ("carriage-return", "Needs_Action/a\rb.md", control("\r")),
    ("tab", "Needs_Action/a\tb.md", control("\t")),
    ("escape", "Needs_Action/\x1b[31mred.md", control("\x1b")),
    ("delete", "Needs_Action/a\x7fb.md", control("\x7f")),
    ("c1-nel", "Needs_Action/a\x85b.md", control("\x85")),
    ("line-separator", "Needs_Action/a\u2028b.md", control("\u2028")),
    # format (invisible) characters
    ("zero-width-space", "Needs_Action/o\u200bk.md", control("\u200b")),
    ("rtl-override", "Needs_Action/\u202edm.exe", control("\u202e")),
    ("bom", "\ufeffNeeds_Action/ok.md", control("\ufeff")),
    ("zwj", "Needs_Action/a\u200db.md", control("\u200d")),
    ("soft-hyphen", "Needs_Action/a\u00adb.md", control("\u00ad")),
    ("private-use", "Needs_Action/a\ue000b.md", control("\ue000")),
    # percent-encoding
    ("pct-dotdot", "%2e%2e/x", PERCENT),
    ("pct-upper", "%2E%2E/outside/secret.txt", PERCENT),
    ("pct-slash", "..%2fx", PERCENT),
    ("pct-nul", "%00", PERCENT),
    ("pct-nul-leaf", "Needs_Action/ok.md%00.txt", PERCENT),
    ("pct-backslash", "Needs_Action%5c..%5c..%5cx", PERCENT),
    # look-alike Unicode that NFKC folds to something else
    ("fullwidth-solidus", "..\uff0f..\uff0fetc\uff0fpasswd", LOOKALIKE),
    ("fullwidth-solidus-inside", "Needs_Action\uff0fok.md", LOOKALIKE),
    ("fullwidth-full-stop", "\uff0e\uff0e/outside/secret.txt", LOOKALIKE),
    ("one-dot-leader", "\u2024\u2024/outside/secret.txt", LOOKALIKE),
    ("two-dot-leader", "\u2025/outside/secret.txt", LOOKALIKE),
    ("small-full-stop", "\ufe52\ufe52/x", LOOKALIKE),
    ("fullwidth-reverse-solidus", "..\uff3cx", LOOKALIKE),
    ("fullwidth-letters", "\uff2eeeds_Action/ok.md", LOOKALIKE),
    ("nfd-decomposed", "Needs_Action/Cafe\u0301_notes.md", LOOKALIKE),
    ("ligature", "Needs_Action/\ufb01le.md", LOOKALIKE),
    # leading dashes that could reach a subprocess
    ("dash-rf", "-rf", DASH),
    ("dash-help", "Needs_Action/--help.md", DASH),
    ("dash-folder", "-x/ok.md", DASH),
    # hidden folders and files
    ("git-config", ".git/config", HIDDEN),
    ("git-hooks", ".git/hooks/pre-commit", HIDDEN),
    ("state", ".state/x", HIDDEN),
    ("obsidian", ".obsidian/x", HIDDEN),
    ("hidden-file", "Needs_Action/.hidden.md", HIDDEN),
    ("hidden-middle", "Needs_Action/.secret/x.md", HIDDEN),
    ("claude-settings", ".claude/settings.json", HIDDEN),
    # empty and whitespace
    ("empty", "", EMPTY),
    ("space", " ", EMPTY),
    ("spaces", "   ", EMPTY),
    # trailing space / trailing dot / leading space segments
    ("trailing-space", "Needs_Action/ok.md ", EDGE),
    ("trailing-dot", "Needs_Action/ok.md.", EDGE),
    ("trailing-dots", "Needs_Action/ok.md...", EDGE),
    ("leading-space", "Needs_Action/ ok.md", EDGE),
    ("folder-trailing-space", "Needs_Action /ok.md", EDGE),
    ("folder-trailing-dot", "Needs_Action./ok.md", EDGE),
    # Windows reserved device names and characters
    ("con", "CON", RESERVED),
    ("nul-md", "nul.md", RESERVED),
    ("com1", "Needs_Action/com1.txt", RESERVED),
    ("lpt9", "Needs_Action/LPT9", RESERVED),
    ("aux-multi-ext", "Needs_Action/aux.tar.gz", RESERVED),
    ("prn-folder", "prn/ok.md", RESERVED),
    ("colon-stream", "Needs_Action/ok.md:evil", PORTABLE),
    ("lt", "Needs_Action/a<b.md", PORTABLE),
    ("gt", "Needs_Action/a>b.md", PORTABLE),
    ("pipe", "Needs_Action/a|b.md", PORTABLE),
    ("quote", 'Needs_Action/a"b.md', PORTABLE),
    ("question", "Needs_Action/a?.md", PORTABLE),
    ("star", "Needs_Action/*.md", PORTABLE),
    # overlong
    (
        "overlong-path",
        "a/" * (MAX_PATH_CHARS // 2) + "x",
        rf"longer than {MAX_PATH_CHARS} characters",
    ),
    (
        "overlong-segment",
        "Needs_Action/" + "a" * (MAX_COMPONENT_BYTES + 1),
        rf"a segment is longer than {MAX_COMPONENT_BYTES} bytes",
    ),
    (
        "overlong-segment-multibyte",
        "Needs_Action/" + "\u00e9" * 128,  # 128 characters but 256 bytes
        rf"a segment is longer than {MAX_COMPONENT_BYTES} bytes",
    ),
]


@pytest.mark.parametrize("must_exist", [True, False], ids=["must_exist", "may_be_missing"])
@pytest.mark.parametrize(
    ("raw", "pattern"),
    [pytest.param(raw, pattern, id=name) for name, raw, pattern in TEXT_ATTACKS],
)
def test_text_attacks_are_refused_and_change_nothing(
    world: World, raw: str, pattern: str, must_exist: bool
) -> None:
    message = refuse(world, raw, pattern, must_exist=must_exist)
    assert message.startswith("Path " + repr(raw)[:40])  # names the offending path


@pytest.mark.parametrize(
    ("name", "raw", "pattern"),
    [pytest.param(*case, id=case[0]) for case in TEXT_ATTACKS],
)
def test_split_relative_refuses_the_same_text_without_touching_disk(
    name: str, raw: str, pattern: str
) -> None:
    with pytest.raises(UnsafePathError, match=pattern):
        split_relative(raw)


def test_lookalikes_that_nfkc_folds_are_exactly_the_dangerous_ones() -> None:
    """Document what NFKC does with each look-alike the tests above rely on."""
    import unicodedata

    assert unicodedata.normalize("NFKC", "\uff0f") == "/"
    assert unicodedata.normalize("NFKC", "\uff0e") == "."
    assert unicodedata.normalize("NFKC", "\u2024") == "."
    assert unicodedata.normalize("NFKC", "\uff3c") == "\\"
    # NFKC leaves these alone, so NFKC alone cannot catch them (see the next test)
    for ch in ("\u2215", "\u2044", "\u29f8", "\u2216"):
        assert unicodedata.normalize("NFKC", ch) == ch


@pytest.mark.parametrize("must_exist", [True, False], ids=["must_exist", "may_be_missing"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("Needs_Action/x\u2215..\u2215..\u2215outside.md", id="division-slash"),
        pytest.param("Needs_Action/x\u2044..\u2044y.md", id="fraction-slash"),
        pytest.param("Needs_Action/x\u29f8..\u29f8y.md", id="big-solidus"),
        pytest.param("Needs_Action/x\u2216..\u2216y.md", id="set-minus-backslash"),
    ],
)
def test_slash_lookalikes_that_nfkc_keeps_are_refused(
    world: World, raw: str, must_exist: bool
) -> None:
    """U+2215 and friends look exactly like '/' or '\\' but NFKC keeps them.

    REFERENCE.md asks for look-alike Unicode forms to be refused; a name such as
    ``x∕..∕..∕outside.md`` reads as an escape to a person and to any tool that
    maps confusables, so it must not be accepted as a file name.
    """
    refuse(world, raw, r"look-alike|not allowed|control", must_exist=must_exist)


@pytest.mark.parametrize("must_exist", [True, False], ids=["must_exist", "may_be_missing"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param(b"Needs_Action/ok.md", id="bytes"),
        pytest.param(bytearray(b"Needs_Action/ok.md"), id="bytearray"),
        pytest.param(42, id="int"),
        pytest.param(Path("Needs_Action/ok.md"), id="path"),
        pytest.param(["Needs_Action", "ok.md"], id="list"),
        pytest.param(("Needs_Action", "ok.md"), id="tuple"),
    ],
)
def test_non_text_input_is_refused(world: World, raw: object, must_exist: bool) -> None:
    refuse(world, raw, r"it is not text", must_exist=must_exist)


# --------------------------------------------------------------------------------------
# filesystem-level attack classes
# --------------------------------------------------------------------------------------
LINK = r"symbolic link; links are never followed"

FS_ATTACKS: list[tuple[str, str, str]] = [
    ("file-symlink-outside", "Needs_Action/file_link.md", LINK),
    ("dir-symlink-outside", "Needs_Action/dir_link/secret.txt", r"'dir_link' is a " + LINK),
    ("dir-symlink-outside-deep", "Needs_Action/dir_link/sub/deep.txt", r"'dir_link' is a " + LINK),
    ("dir-symlink-itself", "Needs_Action/dir_link", LINK),
    ("chained-symlink", "Needs_Action/chain1.md", LINK),
    ("chained-symlink-middle", "Needs_Action/chain2.md", LINK),
    ("relative-dir-symlink", "Plans/rel_out/secret.txt", r"'rel_out' is a " + LINK),
    ("relative-file-symlink", "Plans/rel_file.md", LINK),
    ("dangling-symlink", "Needs_Action/dangling.md", LINK),
    ("symlink-inside-to-inside", "Needs_Action/inside_link.md", LINK),
    (
        "dir-symlink-inside-to-inside",
        "Needs_Action/inside_dir/real.md",
        r"'inside_dir' is a " + LINK,
    ),
    ("folder-alias-symlink", "Signals/na_link/ok.md", r"'na_link' is a " + LINK),
    ("symlink-loop", "Needs_Action/loop.md", LINK),
    ("symlink-to-device", "Needs_Action/devnull.md", LINK),
    ("hard-link-outside", "Needs_Action/hard_out.md", r"hard-linked elsewhere"),
    ("hard-link-inside-twin", "Needs_Action/hard_in.md", r"hard-linked elsewhere"),
    ("hard-link-other-name", "Done/twin.md", r"hard-linked elsewhere"),
    ("folder-as-leaf", "Needs_Action", r"not a regular file"),
    ("nested-folder-as-leaf", "Pending_Approval/email", r"not a regular file"),
    ("file-as-parent", "Dashboard.md/x.md", r"'Dashboard\.md' is not a folder"),
    ("missing-parent", "Nope/x.md", r"it does not exist in the vault"),
    ("missing-grandparent", "Nope/deeper/x.md", r"it does not exist in the vault"),
    ("missing-parent-in-real-folder", "Needs_Action/nope/x.md", r"it does not exist in the vault"),
    ("sibling-name-as-folder", "vault-evil/x", r"it does not exist in the vault"),
]


@pytest.mark.parametrize("must_exist", [True, False], ids=["must_exist", "may_be_missing"])
@pytest.mark.parametrize(
    ("raw", "pattern"),
    [pytest.param(raw, pattern, id=name) for name, raw, pattern in FS_ATTACKS],
)
def test_filesystem_attacks_are_refused_and_change_nothing(
    world: World, raw: str, pattern: str, must_exist: bool
) -> None:
    refuse(world, raw, pattern, must_exist=must_exist)


@pytest.mark.parametrize("must_exist", [True, False], ids=["must_exist", "may_be_missing"])
@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_special_files_as_leaf_are_refused(world: World, kind: str, must_exist: bool) -> None:
    if kind not in world.specials:
        pytest.skip(f"cannot create a {kind} here")
    raw = world.specials[kind]
    assert not stat.S_ISREG(os.lstat(world.vault / raw).st_mode)
    refuse(
        world,
        raw,
        r"not a regular file \(a folder, FIFO, socket or device\)",
        must_exist=must_exist,
    )


def test_fifo_fixture_really_is_a_fifo(world: World) -> None:
    assert stat.S_ISFIFO(os.lstat(world.vault / world.specials["fifo"]).st_mode)


def test_dangling_symlink_as_write_target_creates_nothing_outside(world: World) -> None:
    target = world.outside / "not_yet.txt"
    refuse(world, "Needs_Action/dangling.md", LINK, must_exist=False)
    assert not target.exists()
    assert os.path.islink(world.vault / "Needs_Action" / "dangling.md")


def test_hard_link_to_outside_file_leaves_secret_alone(world: World) -> None:
    refuse(world, "Needs_Action/hard_out.md", r"hard-linked")
    assert (world.outside / "secret.txt").read_bytes() == SECRET
    assert os.stat(world.outside / "secret.txt").st_nlink == 2


def test_symlinks_are_refused_through_vault_resolve_and_read(world: World) -> None:
    vault = Vault(world.vault)
    before = snapshot(world.base)
    for raw in (
        "Needs_Action/file_link.md",
        "Needs_Action/dir_link/secret.txt",
        "../outside/secret.txt",
    ):
        with pytest.raises(UnsafePathError):
            vault.resolve(raw)
        with pytest.raises(UnsafePathError):
            vault.read(raw)
    with pytest.raises(UnsafePathError):
        vault.resolve("Needs_Action/dangling.md", must_exist=False)
    assert snapshot(world.base) == before


# --------------------------------------------------------------------------------------
# must_exist semantics
# --------------------------------------------------------------------------------------
def test_missing_leaf_is_refused_when_it_must_exist(world: World) -> None:
    refuse(world, "Needs_Action/new.md", r"it does not exist in the vault", must_exist=True)


def test_missing_leaf_is_allowed_for_writes_and_nothing_is_created(world: World) -> None:
    before = snapshot(world.base)
    got = confine(world.vault, "Needs_Action/new.md", must_exist=False)
    assert got == world.vault / "Needs_Action" / "new.md"
    assert not got.exists()
    assert snapshot(world.base) == before


@pytest.mark.parametrize("must_exist", [True, False])
def test_existing_regular_file_is_returned_in_both_modes(world: World, must_exist: bool) -> None:
    got = confine(world.vault, "Needs_Action/ok.md", must_exist=must_exist)
    assert got == world.vault / "Needs_Action" / "ok.md"


# --------------------------------------------------------------------------------------
# positive cases
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        "Needs_Action/ok.md",
        "Dashboard.md",
        "Done/real.md",
        "Plans/deep/plan.md",
        f"Needs_Action/{CAFE}",
    ],
)
def test_normal_paths_resolve_inside_the_vault(world: World, raw: str) -> None:
    before = snapshot(world.base)
    got = confine(world.vault, raw)
    assert got.is_absolute()
    assert got == Path(os.path.realpath(world.vault), *raw.split("/"))
    assert got.read_bytes() == (world.vault / raw).read_bytes()
    assert snapshot(world.base) == before


@pytest.mark.parametrize("folder", FOLDERS)
def test_new_file_in_every_vault_folder_is_allowed_for_writes(world: World, folder: str) -> None:
    got = confine(world.vault, f"{folder}/TASK_1.md", must_exist=False)
    assert got == world.vault / folder / "TASK_1.md"


def test_unicode_nfc_names_work_for_new_files(world: World) -> None:
    name = "Needs_Action/\u00dcbersicht_\u65e5\u672c_\u00e9t\u00e9.md"
    got = confine(world.vault, name, must_exist=False)
    assert got == world.vault / "Needs_Action" / "\u00dcbersicht_\u65e5\u672c_\u00e9t\u00e9.md"


def test_root_reached_through_a_symlink_is_allowed_and_realpathed(world: World) -> None:
    alias = world.base / "vault_alias"
    os.symlink(world.vault, alias)
    got = confine(alias, "Needs_Action/ok.md")
    assert got == Path(os.path.realpath(world.vault)) / "Needs_Action" / "ok.md"
    assert "vault_alias" not in str(got)
    # but links inside the aliased vault are still refused
    with pytest.raises(UnsafePathError, match=LINK):
        confine(alias, "Needs_Action/file_link.md")


def test_root_given_as_text_works(world: World) -> None:
    got = confine(str(world.vault), "Needs_Action/ok.md")  # type: ignore[arg-type]
    assert got == world.vault / "Needs_Action" / "ok.md"


def test_boundary_lengths_are_accepted(world: World) -> None:
    longest = "a" * MAX_COMPONENT_BYTES
    got = confine(world.vault, f"Needs_Action/{longest}", must_exist=False)
    assert got.name == longest
    multibyte = "\u00e9" * (MAX_COMPONENT_BYTES // 2) + "a" * (MAX_COMPONENT_BYTES % 2)
    assert len(multibyte.encode()) == MAX_COMPONENT_BYTES
    assert confine(world.vault, f"Needs_Action/{multibyte}", must_exist=False).name == multibyte
    # exactly MAX_PATH_CHARS characters passes the text check
    exact = "/".join(["a" * 100] * 10)
    exact = exact + "b" * (MAX_PATH_CHARS - len(exact))
    assert len(exact) == MAX_PATH_CHARS
    assert split_relative(exact)[0] == "a" * 100


@pytest.mark.parametrize(
    "raw",
    [
        "Needs_Action/EMAIL_123.md",
        "Needs_Action/report v2 (final).md",
        "Needs_Action/a.b.c.md",
        "Needs_Action/100%.md",
        "Needs_Action/50%off.md",
        "Needs_Action/x-y_z.md",
        "Needs_Action/CONSOLE.md",
        "Needs_Action/null.md",
    ],
)
def test_harmless_lookalikes_of_attacks_are_allowed(world: World, raw: str) -> None:
    """Names that merely resemble an attack (%, reserved-name prefixes) are fine."""
    got = confine(world.vault, raw, must_exist=False)
    assert got.parent == world.vault / "Needs_Action"


# --------------------------------------------------------------------------------------
# relative_to_vault
# --------------------------------------------------------------------------------------
def test_relative_to_vault_turns_absolute_inside_path_into_relative_text(world: World) -> None:
    raw = str(world.vault / "Needs_Action" / "ok.md")
    assert relative_to_vault(world.vault, raw) == "Needs_Action/ok.md"
    assert relative_to_vault(world.vault, str(world.vault / "Dashboard.md")) == "Dashboard.md"


def test_relative_to_vault_keeps_relative_text_for_confine(world: World) -> None:
    assert relative_to_vault(world.vault, "Needs_Action/ok.md") == "Needs_Action/ok.md"


def test_relative_to_vault_accepts_the_vault_through_its_alias(world: World) -> None:
    alias = world.base / "vault_alias"
    os.symlink(world.vault, alias)
    raw = str(alias / "Needs_Action" / "ok.md")
    assert relative_to_vault(world.vault, raw) == "Needs_Action/ok.md"
    assert relative_to_vault(alias, str(world.vault / "Needs_Action" / "ok.md")) == (
        "Needs_Action/ok.md"
    )


@pytest.mark.parametrize(
    "make_raw",
    [
        pytest.param(lambda w: str(w.outside / "secret.txt"), id="outside"),
        pytest.param(lambda w: str(w.evil / "x"), id="sibling-prefix"),
        pytest.param(lambda w: str(w.evil), id="sibling-prefix-folder"),
        pytest.param(lambda w: str(w.vault) + "-evil/x.md", id="sibling-prefix-text"),
        pytest.param(
            lambda w: str(w.vault / "Needs_Action" / ".." / ".." / "outside" / "x"), id="dotdot"
        ),
        pytest.param(lambda w: "/etc/passwd", id="etc-passwd"),
        pytest.param(lambda w: str(w.vault), id="vault-root-itself"),
    ],
)
def test_relative_to_vault_refuses_paths_outside(world: World, make_raw: Any) -> None:
    raw = make_raw(world)
    before = snapshot(world.base)
    with pytest.raises(UnsafePathError, match=r"it is outside the vault|'\.\.' segments"):
        relative_to_vault(world.vault, raw)
    assert snapshot(world.base) == before


def test_relative_to_vault_leaves_links_for_confine_to_refuse(world: World) -> None:
    raw = str(world.vault / "Needs_Action" / "dir_link" / "secret.txt")
    rel = relative_to_vault(world.vault, raw)
    assert rel == "Needs_Action/dir_link/secret.txt"
    with pytest.raises(UnsafePathError, match=r"'dir_link' is a symbolic link"):
        confine(world.vault, rel)


def test_relative_to_vault_result_still_goes_through_confine(world: World) -> None:
    for raw in (str(world.vault) + "/..", str(world.vault / "Needs_Action" / ".." / "x")):
        with pytest.raises(UnsafePathError):
            confine(world.vault, relative_to_vault(world.vault, raw))


def test_relative_to_vault_does_not_follow_links_inside_the_vault(world: World) -> None:
    """Links are never followed: a path through Needs_Action/inside_dir (-> ../Done) must not
    silently become Done/real.md, it must stay a path that confine() then refuses."""
    raw = str(world.vault / "Needs_Action" / "inside_dir" / "real.md")
    try:
        rel = relative_to_vault(world.vault, raw)
    except UnsafePathError:
        return
    assert rel == "Needs_Action/inside_dir/real.md"
    with pytest.raises(UnsafePathError, match=LINK):
        confine(world.vault, rel)


# --------------------------------------------------------------------------------------
# safe_filename
# --------------------------------------------------------------------------------------
HOSTILE_NAMES = [
    "../../etc/passwd",
    "..",
    ".",
    "...",
    ".bashrc",
    ".git",
    "CON.txt",
    "con",
    "nul.tar.gz",
    "LPT1",
    "con .txt",
    "NUL  .md",
    "aux. .md",
    "x\x00y.md",
    "line\nbreak.md",
    "cr\rlf.md",
    "\u202egpj.exe",
    "invoice\u202efdp.exe",
    "a" * 500,
    "a" * 500 + ".pdf",
    "b" * 300 + "." + "c" * 300,
    "",
    " ",
    "\u200b",
    "\U0001f389",
    "\U0001f389.txt",
    "party \U0001f389.pdf",
    "a/b\\c",
    "/etc/shadow",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\x.doc",
    "-rf",
    "--help.md",
    "-",
    "~/x",
    "$HOME.md",
    "%2e%2e%2fx",
    "..\uff0f..\uff0fx",
    "\uff0e\uff0e",
    "Cafe\u0301.md",
    "\u00e9" * 200 + ".md",
    "\u65e5\u672c\u8a9e.txt",
    "\u041e\u0442\u0447\u0451\u0442.pdf",
    "report.tar.gz",
    'a<b>c:d"e|f?g*h.md',
    "trailing.",
    "trailing ",
    "x." + "a" * 15 + " b",
    "x." + "a" * 40,
    "name.\u202etxt",
    "\x1b[31mred.md",
]

SAFE_CHARS = re.compile(r"^[A-Za-z0-9._ -]+$")


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:40])
def test_safe_filename_always_gives_a_confinable_single_name(name: str) -> None:
    got = safe_filename(name)
    assert split_relative(got) == (got,)  # one harmless segment
    assert len(got.encode()) <= 120
    assert not got.startswith((".", "-", " "))
    assert SAFE_CHARS.match(got), got
    assert safe_filename(got) == got  # already safe names stay as they are


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:40])
def test_safe_filename_is_confinable_as_a_new_file(world: World, name: str) -> None:
    got = safe_filename(name)
    before = snapshot(world.base)
    path = confine(world.vault, f"Inbox/{got}", must_exist=False)
    assert path.parent == world.vault / "Inbox"
    assert snapshot(world.base) == before


@pytest.mark.parametrize("max_bytes", [8, 12, 20, 40, 120])
@pytest.mark.parametrize(
    "name",
    ["a" * 50 + "." + "b" * 16, "abc.txt", "report_final.pdf", "x.y", "\u00e9" * 50 + ".docx"],
)
def test_safe_filename_respects_any_byte_limit(name: str, max_bytes: int) -> None:
    got = safe_filename(name, max_bytes=max_bytes)
    assert len(got.encode()) <= max_bytes, (name, max_bytes, got)
    split_relative(got)


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("invoice.pdf", ".pdf"),
        ("../../evil.sh", ".sh"),
        ("r\u00e9sum\u00e9.docx", ".docx"),
        ("\u202egpj.exe", ".exe"),
        ("a" * 500 + ".pdf", ".pdf"),
        ("report.tar.gz", ".gz"),
        ("CON.txt", ".txt"),
        ("party \U0001f389.pdf", ".pdf"),
        ("\U0001f389.txt", ".txt"),
        ("\u041e\u0442\u0447\u0451\u0442.pdf", ".pdf"),
        ("\u65e5\u672c\u8a9e.txt", ".txt"),
    ],
)
def test_safe_filename_keeps_the_extension(name: str, ext: str) -> None:
    got = safe_filename(name)
    assert got.endswith(ext), got
    assert len(got) > len(ext), f"{got!r} is only an extension"
    split_relative(got)


@pytest.mark.parametrize("name", ["", "..", ".", " ", "\u200b", "\U0001f389", "---", "___"])
def test_safe_filename_falls_back_to_the_default(name: str) -> None:
    assert safe_filename(name) == "file"
    assert safe_filename(name, default="attachment") == "attachment"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invoice.pdf", "invoice.pdf"),
        ("../../etc/passwd", "etc_passwd"),
        ("CON.txt", "_CON.txt"),
        (".bashrc", "bashrc"),
        ("Caf\u00e9 notes.md", "Cafe notes.md"),
        ("a/b\\c", "a_b_c"),
    ],
)
def test_safe_filename_known_answers(name: str, expected: str) -> None:
    assert safe_filename(name) == expected
