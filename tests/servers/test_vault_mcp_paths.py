"""Every path-taking argument of the vault server against the attack classes of REFERENCE.md.

``read_task.path``, ``claim_task``/``release_task``/``complete_task.name``, the attachment and
media paths of ``request_approval``/``check_policy``, file names made from titles, and values
that could inject frontmatter. Each attack is refused with a clear error and changes nothing,
in the vault or beside it. Links, hard links and FIFOs are real, made in the fixture. Last,
no tool writes into the CEO's ``Approved/`` or ``Rejected/``, and every change is audited.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter
import pytest
from mcp import Client

from core import approvals
from core.audit import AuditLog
from core.paths import split_relative
from core.vault import Vault
from servers.vault_mcp.server import build_server
from tests.core.conftest import tree_snapshot
from tests.core.test_paths import (
    ABSOLUTE,
    BACKSLASH,
    DASH,
    DOTS,
    EXPANSION,
    HIDDEN,
    LOOKALIKE,
    PERCENT,
    control,
)
from tests.servers.conftest import MakeSettings, call, ok, text
from tests.servers.test_vault_mcp import CRYPTO, NEW_EMAIL, NEW_PAYEE, POST

pytestmark = pytest.mark.anyio

SECRET = "---\nid: SECRET_1\ntype: email\ncreated: '2026-01-01T00:00:00Z'\n---\nouter secret\n"
MINE = "---\nid: MINE_1\ntype: email\ncreated: '2026-01-01T00:00:00Z'\nclaimed_by: local\n---\n"
NEXT = r"relative to the vault"  # the next step every refused path names
LINK = r"symbolic link; links are never followed"
LINK_OPEN = r"not a plain file \(a link, a special file or hard-linked elsewhere\)"
HELD = "held_"  # prefix of the In_Progress/local copies of the attack files
INJECTION = "x\n---\nstatus: approved\ninjected: true\n---\nmore"


@dataclass
class World:
    base: Path  # everything the test may touch: vault, outside folder, home, secrets
    vault: Path
    outside: Path


@pytest.fixture
def world(tmp_path: Path, vault_root: Path) -> World:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(SECRET, encoding="utf-8")
    (tmp_path / "vault-evil").mkdir()
    (tmp_path / "vault-evil" / "x.md").write_text(SECRET, encoding="utf-8")
    v = vault_root
    (v / "Needs_Action" / "ok.md").write_text(SECRET.replace("SECRET_1", "OK_1"), encoding="utf-8")
    (v / "In_Progress" / "local" / "mine.md").write_text(MINE, encoding="utf-8")
    (v / ".state" / "locks").mkdir()  # flock files appear here on first use, even for reads
    (v / ".state" / "cursor.md").write_text(SECRET, encoding="utf-8")
    (v / ".obsidian").mkdir()
    (v / ".obsidian" / "app.md").write_text(SECRET, encoding="utf-8")
    (v / "Needs_Action" / ".hidden.md").write_text(SECRET, encoding="utf-8")
    os.symlink(v / "Needs_Action", v / "Signals" / "na_link")  # a folder alias inside
    for folder, p in (("Needs_Action", ""), ("In_Progress/local", HELD)):  # distinct names
        d = v / folder
        os.symlink(outside / "secret.md", d / f"{p}file_link.md")
        os.symlink(os.path.relpath(outside / "secret.md", d), d / f"{p}rel_link.md")
        os.symlink(d / f"{p}chain2.md", d / f"{p}chain1.md")
        os.symlink(outside / "secret.md", d / f"{p}chain2.md")
        os.symlink(outside / "not_yet.md", d / f"{p}dangling.md")
        os.symlink(outside, d / f"{p}dir_link")
        os.link(outside / "secret.md", d / f"{p}hard_out.md")
        os.mkfifo(d / f"{p}fifo.md")
    return World(tmp_path, v, outside)


@pytest.fixture
async def client(make_settings: MakeSettings) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings())) as c:
        yield c


def _walk(top: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames + filenames:
            yield Path(dirpath, name)


def snapshot(world: World) -> dict[str, tuple[Any, ...]]:
    """Every entry under base, links not followed: kind, mode, size, mtime, links, inode, data."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in _walk(world.base):
        rel = str(path.relative_to(world.base))
        if rel.startswith("vault/.state/locks/"):
            continue
        st = os.lstat(path)
        data: Any = None
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            data = path.read_bytes()
        mtime = None if rel == "vault/.state/locks" else st.st_mtime_ns
        out[rel] = (st.st_mode, st.st_size, mtime, st.st_nlink, st.st_ino, data)
    return out


async def refused(client: Client, tool: str, args: dict[str, Any], *patterns: str) -> str:
    res = await call(client, tool, args)
    message = text(res)
    assert res.is_error, (tool, args, res.structured_content)
    for pattern in patterns:
        assert re.search(pattern, message), f"{tool}: {pattern!r} not in {message!r}"
    assert "outer secret" not in message
    return message


def path_calls(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """Every argument that takes a vault path, given ``raw``."""
    email = {"to": ["bob@new.example"], "subject": "s", "attachments": [raw]}
    return [
        ("read_task", {"path": raw}),
        ("request_approval", {"params": email, "payload": "p", "reason": "r"}),
        ("check_policy", {"params": {"platform": "linkedin", "media": [raw]}}),
    ]


def name_calls(raw: str) -> list[tuple[str, dict[str, Any]]]:
    return [(tool, {"name": raw}) for tool in ("claim_task", "release_task", "complete_task")]


TEXT_ATTACKS = [
    ("dotdot", "../outside/secret.md", DOTS),
    ("dotdot-alone", "..", DOTS),
    ("dotdot-middle", "Needs_Action/../../outside/secret.md", DOTS),
    ("dotdot-inside", "Needs_Action/../Needs_Action/ok.md", DOTS),
    ("dotdot-last", "Needs_Action/..", DOTS),
    ("dot", "./Needs_Action/ok.md", DOTS),
    ("sibling-prefix", "../vault-evil/x.md", DOTS),
    ("empty", "", r"it is empty"),
    ("absolute", "/etc/passwd", ABSOLUTE),
    ("windows-drive", "C:/Windows/win.ini", ABSOLUTE),
    ("windows-backslash", "C:\\x.md", BACKSLASH),
    ("unc", "\\\\server\\share\\x.md", BACKSLASH),
    ("backslash", "Needs_Action\\ok.md", BACKSLASH),
    ("backslash-escape", "..\\outside\\secret.md", BACKSLASH),
    ("tilde", "~/x.md", EXPANSION),
    ("dollar", "$HOME/x.md", EXPANSION),
    ("nul", "Needs_Action/ok.md\x00.txt", control("\x00")),
    ("newline", "Needs_Action/a\nb.md", control("\n")),
    ("carriage-return", "ok.md\r", control("\r")),
    ("escape", "\x1b[31mok.md", control("\x1b")),
    ("nel", "a\x85b.md", control("\x85")),
    ("line-separator", "a\u2028b.md", control("\u2028")),
    ("zero-width", "o\u200bk.md", control("\u200b")),
    ("bidi-override", "\u202edm.exe", control("\u202e")),
    ("bom", "\ufeffNeeds_Action/ok.md", control("\ufeff")),
    ("pct-dotdot", "%2e%2e/outside/secret.md", PERCENT),
    ("pct-slash", "Needs_Action%2fok.md", PERCENT),
    ("pct-nul", "ok.md%00", PERCENT),
    ("fullwidth-solidus", "..\uff0f..\uff0foutside\uff0fsecret.md", LOOKALIKE),
    ("fullwidth-dots", "\uff0e\uff0e/outside/secret.md", LOOKALIKE),
    ("division-slash", "Needs_Action\u2215ok.md", LOOKALIKE),
    ("nfd", "Cafe\u0301.md", LOOKALIKE),
    ("dash-rf", "-rf", DASH),
    ("dash-help", "Needs_Action/--help.md", DASH),
    ("git", ".git/config", HIDDEN),
    ("state", ".state/cursor.md", HIDDEN),
    ("obsidian", ".obsidian/app.md", HIDDEN),
    ("hidden-file", "Needs_Action/.hidden.md", HIDDEN),
    ("long-segment", "\u00e9" * 100 + ".md", r"a segment is longer than 200 bytes"),
    ("reserved", "CON.md", r"reserved device name"),
    ("trailing-dot", "ok.md.", r"end with '\.'"),
]
PARAMS = [pytest.param(raw, pattern, id=name) for name, raw, pattern in TEXT_ATTACKS]


@pytest.mark.parametrize(("raw", "pattern"), PARAMS)
async def test_text_attacks_are_refused_by_every_path_argument(
    world: World, client: Client, raw: str, pattern: str
) -> None:
    before = snapshot(world)
    for tool, args in path_calls(raw) + name_calls(raw):
        await refused(client, tool, args, pattern, NEXT)
    assert snapshot(world) == before


async def test_over_long_paths_and_names_are_refused(world: World, client: Client) -> None:
    before = snapshot(world)
    for tool, args in path_calls("a/" * 600 + "x.md"):
        await refused(client, tool, args, r"longer than 1024 characters", NEXT)
    for tool, args in name_calls("a" * 197 + ".mdx"):
        await refused(client, tool, args, r"at most 200 characters")
    assert snapshot(world) == before


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ("Needs_Action/file_link.md", LINK),
        ("Needs_Action/rel_link.md", LINK),
        ("Needs_Action/chain1.md", LINK),
        ("Needs_Action/dangling.md", LINK),
        ("Needs_Action/dir_link/secret.md", r"'dir_link' is a " + LINK),
        ("Signals/na_link/ok.md", r"'na_link' is a " + LINK),
        ("Needs_Action/hard_out.md", r"hard-linked elsewhere"),
        ("Needs_Action/fifo.md", r"not a regular file \(a folder, FIFO, socket or device\)"),
        ("Needs_Action", r"not a regular file"),
        ("Dashboard.md/x.md", r"'Dashboard\.md' is not a folder"),
        ("Nope/x.md", r"it does not exist in the vault"),
    ],
)
async def test_links_hard_links_and_fifos_are_refused_as_paths(
    world: World, client: Client, raw: str, pattern: str
) -> None:
    before = snapshot(world)
    for tool, args in path_calls(raw):
        await refused(client, tool, args, pattern, NEXT)
    assert snapshot(world) == before


@pytest.mark.parametrize(
    ("name", "claim", "held"),
    [
        ("file_link.md", LINK_OPEN, LINK_OPEN),
        ("rel_link.md", LINK_OPEN, LINK_OPEN),
        ("chain1.md", LINK_OPEN, LINK_OPEN),
        ("dangling.md", LINK_OPEN, LINK_OPEN),
        ("fifo.md", LINK_OPEN, LINK_OPEN),
        ("dir_link", r"not a task file name\. Give a name", r"not a task file name"),
        ("Needs_Action/ok.md", r"not a task file name\. Give a name", r"not a task file name"),
    ],
)
async def test_links_and_fifos_are_refused_as_task_names(
    world: World, client: Client, name: str, claim: str, held: str
) -> None:
    before = snapshot(world)
    await refused(client, "claim_task", {"name": name}, claim)
    for tool in ("release_task", "complete_task"):
        await refused(client, tool, {"name": name if "/" in name else HELD + name}, held)
    assert snapshot(world) == before


@pytest.mark.parametrize("tool", ["claim_task", "release_task", "complete_task"])
async def test_hard_linked_task_never_changes_the_outside_file(
    world: World, client: Client, tool: str
) -> None:
    def outside() -> dict[str, tuple[Any, ...]]:  # all but the link count, which may drop
        return {k: v[:3] + v[4:] for k, v in snapshot(world).items() if not k.startswith("vault")}

    before = outside()
    await call(client, tool, {"name": ("" if tool == "claim_task" else HELD) + "hard_out.md"})
    assert outside() == before
    assert (world.outside / "secret.md").read_text(encoding="utf-8") == SECRET


@pytest.mark.parametrize("tool", ["claim_task", "release_task", "complete_task"])
async def test_hard_linked_task_is_refused_as_a_name(
    world: World, client: Client, tool: str
) -> None:
    before = snapshot(world)
    name = ("" if tool == "claim_task" else HELD) + "hard_out.md"
    await refused(client, tool, {"name": name}, r"hard-linked")
    assert snapshot(world) == before


async def test_release_onto_a_dangling_link_creates_nothing_outside(
    world: World, client: Client
) -> None:
    os.symlink(world.outside / "not_yet.md", world.vault / "Needs_Action" / "mine.md")
    assert (await call(client, "release_task", {"name": "mine.md"})).is_error
    assert not (world.outside / "not_yet.md").exists()
    assert os.path.islink(world.vault / "Needs_Action" / "mine.md")


async def test_release_onto_a_dangling_link_is_a_clear_error_and_changes_nothing(
    world: World, client: Client
) -> None:
    os.symlink(world.outside / "not_yet.md", world.vault / "Needs_Action" / "mine.md")
    before = snapshot(world)
    await refused(client, "release_task", {"name": "mine.md"}, r"Needs_Action/mine\.md exists")
    assert snapshot(world) == before


async def test_list_tasks_shows_no_links_fifos_or_hidden_files(
    world: World, client: Client
) -> None:
    for folder in ("Needs_Action", "In_Progress/local"):
        res = await call(client, "list_tasks", {"folder": folder})
        names = {t["name"] for t in res.structured_content["tasks"]}
        assert names <= {"ok.md", "mine.md", "hard_out.md", "held_hard_out.md"}, names
        assert res.structured_content["total"] == len(names)


# -- names made from titles -----------------------------------------------------------------
HOSTILE_TITLES = [
    "../../outside/pwn",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "~/x",
    "$HOME ${PATH}",
    "%2e%2e%2fx",
    "..\uff0f..\uff0foutside",
    ".git",
    ".state/x",
    "-rf",
    "CON",
    "Cafe\u0301 notes",
    "\U0001f389",
    "a" * 200,
    "\u00e9" * 200,
    "report.md/../../x",
]


@pytest.mark.parametrize("title", HOSTILE_TITLES, ids=lambda t: repr(t)[:30])
@pytest.mark.parametrize(
    ("tool", "folder", "prefix"),
    [
        ("create_task", "Needs_Action", "TASK"),
        ("create_task", "Briefings", "BRIEFING"),
        ("write_plan", "Plans", "PLAN"),
    ],
)
async def test_names_made_from_titles_stay_in_their_folder(
    world: World, client: Client, tool: str, folder: str, prefix: str, title: str
) -> None:
    before = snapshot(world)
    args = {"title": title, "body": "b"} | ({"folder": folder} if tool == "create_task" else {})
    res = await call(client, tool, args)
    assert not res.is_error, text(res)
    rel = res.structured_content["path"]
    made_folder, name = rel.rsplit("/", 1)
    assert made_folder == folder and split_relative(name) == (name,)
    assert re.fullmatch(rf"{prefix}_[A-Za-z0-9._-]+\.md", name) and len(name.encode()) <= 200
    assert frontmatter.loads((world.vault / rel).read_text(encoding="utf-8"))["title"] == title
    after = snapshot(world)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    audit = {"vault/Logs", "vault/Logs/audit-local.jsonl", "vault/.state"}
    expected = {f"vault/{rel}", f"vault/{folder}"} | audit
    assert {k for k in changed if not k.startswith("vault/.state/")} <= expected, changed


@pytest.mark.parametrize(
    "title",
    ["\x00", "a\nb", "a\rb", "a\tb", "\x1b[2J", "a\x7f", "\u200b", "a\u2028b", "\u202eevil"],
)
@pytest.mark.parametrize("tool", ["create_task", "write_plan"])
async def test_titles_with_control_characters_are_refused(
    world: World, client: Client, tool: str, title: str
) -> None:
    before = snapshot(world)
    await refused(
        client, tool, {"title": title, "body": "b"}, r"title\s+Value error, must be one line"
    )
    assert snapshot(world) == before


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029", "\u202e"])
async def test_titles_with_unicode_line_breaks_are_refused(client: Client, char: str) -> None:
    await refused(client, "create_task", {"title": f"x{char}status: approved"}, r"title")


# -- frontmatter injection ------------------------------------------------------------------
INJECTED_CALLS = [
    ("create_task", {"title": "t", "body": INJECTION}),
    ("write_plan", {"title": "t", "body": INJECTION}),
    ("request_approval", {"params": NEW_EMAIL, "payload": INJECTION, "reason": INJECTION}),
    ("update_dashboard", {"notes": INJECTION}),
]


@pytest.mark.parametrize(("tool", "args"), INJECTED_CALLS, ids=lambda x: str(x)[:20])
async def test_values_cannot_inject_frontmatter(
    world: World, client: Client, tool: str, args: dict[str, Any]
) -> None:
    res = await call(client, tool, args)
    assert not res.is_error, text(res)
    meta = frontmatter.loads((world.vault / res.structured_content["path"]).read_text()).metadata
    assert "injected" not in meta and meta.get("status") != "approved", meta
    for key, value in args.items():
        if key in ("reason", "task"):
            assert meta[key] == value  # kept whole, as one quoted string


@pytest.mark.parametrize("tool", ["write_plan", "request_approval"])
async def test_a_task_id_is_an_id_never_text(world: World, client: Client, tool: str) -> None:
    args: dict[str, Any] = {"title": "t", "body": "b", "task": INJECTION}
    if tool == "request_approval":
        args = {"params": NEW_EMAIL, "payload": "p", "reason": "r", "task": INJECTION}
    before = snapshot(world)
    await refused(client, tool, args, r"task\s+String should match pattern")
    await refused(client, tool, args | {"task": "A" * 1_100_000}, r"task")
    assert snapshot(world) == before


# -- the CEO's folders stay untouched; every change is audited ------------------------------
async def test_no_tool_writes_approved_or_rejected_and_every_change_is_audited(
    client: Client, vault_root: Path
) -> None:
    ceo, request = Vault(vault_root), {"params": POST, "payload": "p", "reason": "r"}
    for payload, decide in (("a", approvals.approve), ("b", approvals.reject)):  # the CEO's part
        decide(ceo, (await ok(client, "request_approval", request | {"payload": payload}))["path"])
    guarded = {top: tree_snapshot(vault_root / top) for top in ("Approved", "Rejected")}
    assert any(guarded["Approved"].values()) and guarded["Rejected"]
    log = AuditLog(vault_root, "local")

    async def audited(tool: str, args: dict[str, Any], action: str, target: str = "") -> dict:
        count = len(log.query(actor="claude"))
        got = await ok(client, tool, args)
        entries = log.query(actor="claude")
        assert len(entries) == count + 1, (tool, entries[: len(entries) - count])
        assert entries[0].action == action and entries[0].actor == "claude"
        assert entries[0].target == (target or got["path"]), (tool, entries[0])
        return got

    made = await audited("create_task", {"title": "Seq"}, "create")
    for folder in ("Plans", "Updates", "Briefings"):
        await audited("create_task", {"title": "Seq", "folder": folder}, "create")
    name = made["path"].split("/")[1]
    await audited("claim_task", {"name": name}, "claim")
    await audited("release_task", {"name": name}, "release")
    await audited("claim_task", {"name": name}, "claim")
    await audited("complete_task", {"name": name}, "complete")
    await audited("write_plan", {"title": "P", "body": "b"}, "create")
    for params in (NEW_EMAIL, NEW_PAYEE, POST):
        await audited("request_approval", request | {"params": params}, "create")
    await audited("update_dashboard", {"notes": "n"}, "update_dashboard", "Dashboard.md")

    count = len(log.query(actor="claude"))
    for tool, args in [
        ("list_tasks", {"folder": "Approved/social_media"}),
        ("read_task", {"path": f"Done/{name}"}),
        ("list_approvals", {"state": "approved"}),
        ("check_policy", {"params": CRYPTO}),
        ("vault_status", {}),
    ]:
        await ok(client, tool, args)
    for tool, args in [
        ("create_task", {"title": "x", "folder": "Approved/email"}),
        ("create_task", {"title": "x", "folder": "Rejected"}),
        ("request_approval", request | {"params": CRYPTO}),
        ("claim_task", {"name": name}),
        ("release_task", {"name": name}),
    ]:
        assert (await call(client, tool, args)).is_error
    assert len(log.query(actor="claude")) == count  # reads and refusals leave no entry
    assert {top: tree_snapshot(vault_root / top) for top in guarded} == guarded
