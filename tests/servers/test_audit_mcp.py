"""The audit MCP server in memory: its tools, their filters, summaries, verification and errors.

Entries are made through ``core`` (a vault's own changes and direct appends), never by
writing the trail by hand, except where a test tampers with it on purpose.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client
from mcp.types import CallToolResult, Tool

from core.audit import AuditEntry, AuditLog
from core.config import Settings, load_settings
from core.vault import Vault
from servers.audit_mcp.server import build_server
from tests.core.conftest import make_meta, tree_snapshot

AUDIT_TOOLS = {"query_audit", "audit_summary", "verify_audit"}


def settings_for(vault: Path, zone: str = "local") -> Settings:
    return load_settings({"VAULT_PATH": str(vault), "ZONE": zone})


class Trail:
    """A vault whose local and cloud trails hold known entries, oldest first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.local: list[AuditEntry] = []
        self.cloud: list[AuditEntry] = []

    def settings(self, zone: str = "local") -> Settings:
        return settings_for(self.root, zone)


@pytest.fixture
def trail(tmp_path: Path) -> Trail:
    root = tmp_path / "vault"
    t = Trail(root)
    local = Vault(root, audit=AuditLog(root, "local"), actor="test")
    local.ensure_layout()
    for n in (1, 2, 3):
        local.create("Needs_Action", f"TASK_{n}.md", make_meta("task"))
    local.claim("TASK_1.md", "local")
    local.complete("TASK_1.md", "local", "done it")
    log = AuditLog(root, "local")

    def append(actor: str, category: str, action: str, status: str) -> None:
        log.append(
            actor=actor,
            category=category,
            action=action,
            target="someone@example.com",
            status=status,
            dry_run=True,
            details={"note": "made by a test"},
        )

    append("approval_watcher", "email", "send_email", "failed")
    append("approval_watcher", "payments", "register_payment", "denied")
    append("approval_watcher", "email", "send_email", "ok")
    append("approval_watcher", "email", "send_email", "failed")
    t.local = log.query(newest_first=False)

    cloud = Vault(root, audit=AuditLog(root, "cloud"), actor="cloud_agent")
    cloud.create("Needs_Action", "TASK_CLOUD.md", make_meta("email"))
    cloud.claim("TASK_CLOUD.md", "cloud")
    t.cloud = AuditLog(root, "cloud").query(newest_first=False)
    assert len(t.local) == 9
    assert len(t.cloud) == 2
    return t


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content, checked against its schema."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, error_text(result)
    assert result.structured_content is not None
    schema = await output_schema(client, tool)
    jsonschema.validators.validator_for(schema)(schema).validate(result.structured_content)
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return error_text(result)


def error_text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def output_schema(client: Client, tool: str) -> dict[str, Any]:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    schema = tools[tool].output_schema
    assert schema is not None
    return schema


def seqs(page: dict[str, Any]) -> list[int]:
    return [entry["seq"] for entry in page["entries"]]


def newest_first(entries: list[AuditEntry]) -> list[int]:
    return [entry.seq for entry in reversed(entries)]


# -- the tool list ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_lists_exactly_the_three_read_only_tools(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        tools: list[Tool] = (await client.list_tools()).tools
    assert {tool.name for tool in tools} == AUDIT_TOOLS
    assert len(tools) == len(AUDIT_TOOLS)
    for tool in tools:
        assert tool.title, tool.name
        assert tool.description, tool.name
        assert tool.annotations is not None, tool.name
        assert tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.open_world_hint is False, tool.name
        assert tool.annotations.destructive_hint is False, tool.name
        assert tool.output_schema is not None, tool.name
        jsonschema.validators.validator_for(tool.output_schema).check_schema(tool.output_schema)
        jsonschema.validators.validator_for(tool.input_schema).check_schema(tool.input_schema)


# -- query_audit --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_query_defaults_to_this_zone_newest_first(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        page = await call(client, "query_audit")
    assert page["zone"] == "local"
    assert seqs(page) == newest_first(trail.local)
    assert page["returned"] == len(trail.local)
    assert page["entries"][-1] == trail.local[0].model_dump()


@pytest.mark.anyio
async def test_query_oldest_first(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        page = await call(client, "query_audit", oldest_first=True)
        two = await call(client, "query_audit", oldest_first=True, limit=2)
    assert seqs(page) == [entry.seq for entry in trail.local] == list(range(1, 10))
    assert seqs(two) == [1, 2]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("category", "email"),
        ("category", "vault"),
        ("status", "failed"),
        ("status", "ok"),
        ("actor", "approval_watcher"),
        ("actor", "test"),
        ("action", "claim"),
        ("action", "send_email"),
        ("category", "nothing_like_this"),
    ],
)
async def test_query_filters_one_field_exactly(trail: Trail, field: str, value: str) -> None:
    expected = [e.seq for e in reversed(trail.local) if getattr(e, field) == value]
    async with Client(build_server(trail.settings())) as client:
        page = await call(client, "query_audit", **{field: value})
    assert seqs(page) == expected
    assert all(entry[field] == value for entry in page["entries"])
    assert page["returned"] == len(expected)


@pytest.mark.anyio
async def test_query_filters_combine(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        page = await call(
            client, "query_audit", category="email", status="failed", actor="approval_watcher"
        )
        none = await call(client, "query_audit", category="payments", status="ok")
    expected = [
        e.seq for e in reversed(trail.local) if (e.category, e.status) == ("email", "failed")
    ]
    assert len(expected) == 2
    assert seqs(page) == expected
    assert none["entries"] == [] and none["returned"] == 0


@pytest.mark.anyio
async def test_query_filter_does_not_match_text_inside_details(trail: Trail) -> None:
    # "made by a test" is in details; the filter matches the field itself, exactly.
    async with Client(build_server(trail.settings())) as client:
        page = await call(client, "query_audit", actor="made")
        partial = await call(client, "query_audit", category="emai")
    assert page["entries"] == []
    assert partial["entries"] == []


@pytest.mark.anyio
async def test_query_since_is_inclusive_and_until_exclusive(trail: Trail) -> None:
    entries = trail.local
    since, until = entries[2].ts, entries[6].ts
    expected = [e.seq for e in reversed(entries) if since <= e.ts < until]
    assert expected  # the fixture's timestamps differ
    async with Client(build_server(trail.settings())) as client:
        window = await call(client, "query_audit", since=since, until=until)
        after = await call(client, "query_audit", since=since)
        before = await call(client, "query_audit", until=until)
    assert seqs(window) == expected
    assert seqs(after) == [e.seq for e in reversed(entries) if e.ts >= since]
    assert seqs(before) == [e.seq for e in reversed(entries) if e.ts < until]
    assert entries[2].seq in seqs(window)
    assert entries[6].seq not in seqs(window)


@pytest.mark.anyio
async def test_query_naive_times_mean_utc_and_offsets_are_converted(trail: Trail) -> None:
    middle = trail.local[4]
    moment = datetime.fromisoformat(middle.ts.replace("Z", "+00:00"))
    naive = moment.replace(tzinfo=None).isoformat()
    shifted = moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    expected = [e.seq for e in reversed(trail.local) if e.ts >= middle.ts]
    async with Client(build_server(trail.settings())) as client:
        as_naive = await call(client, "query_audit", since=naive)
        as_zulu = await call(client, "query_audit", since=middle.ts)
        as_offset = await call(client, "query_audit", since=shifted)
    assert seqs(as_naive) == seqs(as_zulu) == seqs(as_offset) == expected


@pytest.mark.anyio
async def test_query_window_outside_the_trail_is_empty(trail: Trail) -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    past = "2000-01-01T00:00:00Z"
    async with Client(build_server(trail.settings())) as client:
        later = await call(client, "query_audit", since=future)
        earlier = await call(client, "query_audit", until=past)
        backwards = await call(client, "query_audit", since=future, until=past)
    assert later["entries"] == earlier["entries"] == backwards["entries"] == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "arguments",
    [{"since": "0001-01-01T00:00:00+01:00"}, {"until": "9999-12-31T23:59:59-01:00"}],
)
async def test_query_times_at_the_edge_of_the_calendar(
    trail: Trail, arguments: dict[str, Any]
) -> None:
    # Either answered (as the earliest or latest moment) or refused naming the parameter.
    async with Client(build_server(trail.settings())) as client:
        result = await client.call_tool("query_audit", arguments)
    if result.is_error:
        assert next(iter(arguments)) in error_text(result)
    else:
        assert result.structured_content is not None


@pytest.mark.anyio
async def test_query_limit_keeps_the_newest(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        one = await call(client, "query_audit", limit=1)
        three = await call(client, "query_audit", limit=3, category="email")
        most = await call(client, "query_audit", limit=200)
    assert seqs(one) == [trail.local[-1].seq]
    assert seqs(three) == [e.seq for e in reversed(trail.local) if e.category == "email"][:3]
    assert three["returned"] == 3
    assert seqs(most) == newest_first(trail.local)


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [0, -1, 201, 10**9])
async def test_query_limit_out_of_bounds_is_refused(trail: Trail, limit: int) -> None:
    async with Client(build_server(trail.settings())) as client:
        text = await call_error(client, "query_audit", limit=limit)
    assert "limit" in text


@pytest.mark.anyio
async def test_query_zone_cloud_versus_local(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        cloud = await call(client, "query_audit", zone="cloud")
        local = await call(client, "query_audit", zone="local")
    assert cloud["zone"] == "cloud"
    assert seqs(cloud) == newest_first(trail.cloud)
    assert {e["actor"] for e in cloud["entries"]} == {"cloud_agent"}
    assert cloud["entries"][0]["target"] == "In_Progress/cloud/TASK_CLOUD.md"
    assert local["zone"] == "local"
    assert seqs(local) == newest_first(trail.local)


@pytest.mark.anyio
async def test_query_default_zone_follows_the_setting(trail: Trail) -> None:
    async with Client(build_server(trail.settings("cloud"))) as client:
        default = await call(client, "query_audit")
        local = await call(client, "query_audit", zone="local")
    assert default["zone"] == "cloud"
    assert seqs(default) == newest_first(trail.cloud)
    assert seqs(local) == newest_first(trail.local)


@pytest.mark.anyio
async def test_query_of_a_zone_with_no_trail_yet_is_empty(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    Vault(root).ensure_layout()
    async with Client(build_server(settings_for(root))) as client:
        page = await call(client, "query_audit", zone="cloud")
    assert page == {"zone": "cloud", "entries": [], "returned": 0}


@pytest.mark.anyio
@pytest.mark.parametrize("field", ["category", "status", "actor", "action"])
@pytest.mark.parametrize(
    "value",
    [
        "has spaces",
        "../etc",
        "../../Logs/audit-local.jsonl",
        "a/b",
        "back\\slash",
        "",
        "line\nbreak",
        "nul\x00",
        '"quoted"',
        "x" * 65,
    ],
)
async def test_query_bad_filter_values_are_refused(trail: Trail, field: str, value: str) -> None:
    async with Client(build_server(trail.settings())) as client:
        text = await call_error(client, "query_audit", **{field: value})
    assert field in text


@pytest.mark.anyio
@pytest.mark.parametrize(
    "arguments",
    [
        {"zone": "moon"},
        {"zone": "../local"},
        {"zone": "LOCAL"},
        {"since": "yesterday"},
        {"until": "2026-13-01T00:00:00"},
        {"oldest_first": "sometimes"},
        {"limit": "many"},
    ],
)
async def test_query_other_bad_arguments_are_refused(
    trail: Trail, arguments: dict[str, Any]
) -> None:
    async with Client(build_server(trail.settings())) as client:
        text = await call_error(client, "query_audit", **arguments)
    assert next(iter(arguments)) in text


# -- audit_summary ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_summary_counts_with_problems_first(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        summary = await call(client, "audit_summary")
    rows = [(r["category"], r["status"], r["count"]) for r in summary["rows"]]
    assert rows == [
        ("email", "failed", 2),
        ("payments", "denied", 1),
        ("vault", "ok", 5),
        ("email", "ok", 1),
    ]
    assert summary["zone"] == "local"
    assert summary["total"] == len(trail.local) == sum(r[2] for r in rows)
    problems = [e for e in reversed(trail.local) if e.status != "ok"]
    assert [p["seq"] for p in summary["recent_problems"]] == [e.seq for e in problems]
    assert summary["recent_problems"][0] == problems[0].model_dump()
    since = datetime.fromisoformat(summary["since"])
    expected_since = datetime.now(UTC) - timedelta(days=7)
    assert abs(since - expected_since) < timedelta(minutes=5)


@pytest.mark.anyio
async def test_summary_keeps_the_ten_newest_problems(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    Vault(root).ensure_layout()
    log = AuditLog(root, "local")
    for n in range(12):
        log.append(
            actor="approval_watcher",
            category="social",
            action="publish_post",
            target=f"post {n}",
            status="failed",
            dry_run=False,
        )
    async with Client(build_server(settings_for(root))) as client:
        summary = await call(client, "audit_summary", days=1)
    assert summary["rows"] == [{"category": "social", "status": "failed", "count": 12}]
    assert [p["seq"] for p in summary["recent_problems"]] == list(range(12, 2, -1))


@pytest.mark.anyio
async def test_summary_of_the_cloud_zone(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        summary = await call(client, "audit_summary", zone="cloud", days=1)
    assert summary["zone"] == "cloud"
    assert summary["total"] == 2
    assert summary["rows"] == [{"category": "vault", "status": "ok", "count": 2}]
    assert summary["recent_problems"] == []


@pytest.mark.anyio
async def test_summary_of_an_empty_trail(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    Vault(root).ensure_layout()
    async with Client(build_server(settings_for(root))) as client:
        summary = await call(client, "audit_summary", days=366)
    assert summary["total"] == 0
    assert summary["rows"] == summary["recent_problems"] == []


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [{"days": 0}, {"days": 367}, {"days": -7}, {"zone": "sun"}])
async def test_summary_bad_arguments_are_refused(trail: Trail, arguments: dict[str, Any]) -> None:
    async with Client(build_server(trail.settings())) as client:
        text = await call_error(client, "audit_summary", **arguments)
    assert next(iter(arguments)) in text


# -- verify_audit -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_verify_an_intact_trail(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        local = await call(client, "verify_audit")
        cloud = await call(client, "verify_audit", zone="cloud")
    assert local == {
        "ok": True,
        "entries": 9,
        "first_bad_seq": None,
        "first_bad_line": None,
        "problem": None,
        "checkpoint_seq": 9,
    }
    assert cloud["ok"] is True and cloud["entries"] == 2 and cloud["checkpoint_seq"] == 2


@pytest.mark.anyio
async def test_verify_finds_one_edited_byte(trail: Trail) -> None:
    path = trail.root / "Logs" / "audit-local.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 9
    victim = 4  # seq 5, line 5: the "complete" entry
    assert b'"action":"complete"' in lines[victim]
    lines[victim] = lines[victim].replace(b'"action":"complete"', b'"action":"compleat"')
    path.write_bytes(b"".join(lines))
    tampered = path.read_bytes()

    async with Client(build_server(trail.settings())) as client:
        report = await call(client, "verify_audit")
        cloud = await call(client, "verify_audit", zone="cloud")
    assert report["ok"] is False
    assert report["first_bad_seq"] == 5
    assert report["first_bad_line"] == 5
    assert report["entries"] == 9
    assert "hash mismatch" in report["problem"]
    assert "line 5" in report["problem"]
    assert cloud["ok"] is True  # the other zone's trail is its own
    assert path.read_bytes() == tampered  # verify reports, it never repairs


@pytest.mark.anyio
async def test_verify_finds_a_removed_line(trail: Trail) -> None:
    path = trail.root / "Logs" / "audit-local.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))
    async with Client(build_server(trail.settings())) as client:
        report = await call(client, "verify_audit")
    assert report["ok"] is False
    assert report["first_bad_seq"] == 4
    assert report["first_bad_line"] == 3


@pytest.mark.anyio
async def test_verify_finds_a_cut_off_end(trail: Trail) -> None:
    path = trail.root / "Logs" / "audit-local.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-2]))
    async with Client(build_server(trail.settings())) as client:
        report = await call(client, "verify_audit")
    assert report["ok"] is False
    assert report["first_bad_seq"] == 8
    assert "truncated" in report["problem"]


@pytest.mark.anyio
async def test_verify_bad_zone_is_refused(trail: Trail) -> None:
    async with Client(build_server(trail.settings())) as client:
        text = await call_error(client, "verify_audit", zone="../cloud")
    assert "zone" in text


# -- read-only, and errors ----------------------------------------------------------------


@pytest.mark.anyio
async def test_the_tools_change_nothing_in_the_vault(trail: Trail) -> None:
    before = tree_snapshot(trail.root)
    async with Client(build_server(trail.settings())) as client:
        for zone in ("local", "cloud"):
            await call(client, "query_audit", zone=zone, oldest_first=True)
            await call(client, "audit_summary", zone=zone)
            await call(client, "verify_audit", zone=zone)
    assert tree_snapshot(trail.root) == before


@pytest.mark.anyio
@pytest.mark.parametrize("tool", sorted(AUDIT_TOOLS))
async def test_a_missing_vault_is_a_clear_error(tmp_path: Path, tool: str) -> None:
    missing = tmp_path / "no_vault_here"
    async with Client(build_server(settings_for(missing))) as client:
        text = await call_error(client, tool)
    assert f"no vault at {missing}" in text
    assert "ai-employee init" in text and "VAULT_PATH" in text
    assert not missing.exists()  # a read-only server creates nothing


@pytest.mark.anyio
async def test_an_unparsable_line_is_a_clear_error_for_queries(trail: Trail) -> None:
    path = trail.root / "Logs" / "audit-local.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"dry_run":false', b'"dry_run":"nope"')
    path.write_bytes(b"".join(lines))
    async with Client(build_server(trail.settings())) as client:
        text = await call_error(client, "query_audit")
        report = await call(client, "verify_audit")
    assert "not a valid audit entry" in text
    assert str(path) in text
    assert report["ok"] is False and report["first_bad_line"] == 4
