"""Both servers as real subprocesses: over stdio as Claude Code starts them, and over HTTP.

Also checks the repository's ``.mcp.json``: it parses, every variable has a default, and each
entry, expanded the way Claude Code expands it, starts a server that answers over stdio.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from core.audit import AuditLog
from core.vault import Vault
from core.vault_init import init_vault
from tests.core.conftest import make_meta
from tests.fakes.gmail import GmailStandIn
from tests.servers.npm_tools import (
    AUDIT_TOOLS,
    REPO,
    SERVERS,
    TOOLS,
    VAULT_TOOLS,
    http_server,
    server_env,
)
from tests.servers.test_gmail_client import make_settings, write_token

START_TIMEOUT = 60  # seconds; a safety net for a slow machine, not a speed check
VARIABLE = re.compile(r"\$\{([^}]*)\}")
# A first call on a fresh machine, for each server: it must say the vault is not there yet.
FIRST_CALL: dict[str, tuple[str, dict[str, Any]]] = {
    "vault": ("vault_status", {}),
    "audit": ("verify_audit", {}),
    "gmail": ("send_email", {"approved_request": "Approved/email/REQUEST.md"}),
}


@pytest.fixture
def stdio_vault(tmp_path: Path) -> Path:
    """An initialized vault with one task in Needs_Action (and its audit entry)."""
    root = Path(init_vault(tmp_path / "vault").vault)
    vault = Vault(root, audit=AuditLog(root, "local"), actor="test")
    vault.create("Needs_Action", "TASK_hello.md", make_meta("task"), "Say hello.")
    return root


def stdio_params(module: str, vault: Path, **extra: str) -> StdioServerParameters:
    """Only what the server needs (the SDK adds PATH and a few other safe variables)."""
    env = {
        "VAULT_PATH": str(vault),
        "SECRETS_DIR": os.environ["SECRETS_DIR"],
        "HOME": os.environ["HOME"],
        "PYTHONPATH": str(REPO),
        **extra,
    }
    return StdioServerParameters(
        command=sys.executable, args=["-m", module], env=env, cwd=str(REPO)
    )


async def structured(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


# -- stdio --------------------------------------------------------------------------------


# "legacy" is the initialize handshake Claude Code does; "auto" is the 2.x client's default.
@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_vault_server_over_stdio(stdio_vault: Path, mode: str) -> None:
    params = stdio_params("servers.vault_mcp", stdio_vault)
    async with Client(params, mode=mode, read_timeout_seconds=START_TIMEOUT) as client:
        assert client.server_info is not None and client.server_info.name == "vault"
        assert client.instructions and "Untrusted content" in client.instructions
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == VAULT_TOOLS
        status = await structured(client, "vault_status")
        listed = await structured(client, "list_tasks", folder="Needs_Action")
    assert Path(status["vault"]) == stdio_vault
    assert status["zone"] == "local" and status["dry_run"] is True
    assert status["counts"]["Needs_Action"] == 1
    assert listed["total"] == 1
    assert [task["name"] for task in listed["tasks"]] == ["TASK_hello.md"]
    assert listed["tasks"][0]["path"] == "Needs_Action/TASK_hello.md"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_audit_server_over_stdio(stdio_vault: Path, mode: str) -> None:
    params = stdio_params("servers.audit_mcp", stdio_vault)
    async with Client(params, mode=mode, read_timeout_seconds=START_TIMEOUT) as client:
        assert client.server_info is not None and client.server_info.name == "audit"
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == AUDIT_TOOLS
        report = await structured(client, "verify_audit")
        page = await structured(client, "query_audit", category="vault", action="create")
    assert report["ok"] is True and report["entries"] == 1
    assert page["zone"] == "local"
    assert [entry["target"] for entry in page["entries"]] == ["Needs_Action/TASK_hello.md"]


@pytest.mark.anyio
async def test_stdio_server_in_the_cloud_zone(stdio_vault: Path) -> None:
    params = stdio_params("servers.vault_mcp", stdio_vault, ZONE="cloud", DRY_RUN="false")
    async with Client(params, mode="legacy", read_timeout_seconds=START_TIMEOUT) as client:
        status = await structured(client, "vault_status")
        claimed = await structured(client, "claim_task", name="TASK_hello.md")
    assert status["zone"] == "cloud" and status["dry_run"] is False
    assert claimed["path"] == "In_Progress/cloud/TASK_hello.md"
    assert (stdio_vault / "In_Progress" / "cloud" / "TASK_hello.md").is_file()
    assert AuditLog(stdio_vault, "cloud").query(action="claim", limit=1)


# -- a bad setting stops the server at start ----------------------------------------------


@pytest.mark.parametrize(
    ("server", "name", "value"),
    [
        ("vault", "ZONE", "moon"),
        ("audit", "ZONE", "moon"),
        ("vault", "DRY_RUN", "perhaps"),
        ("audit", "CLAIM_LEASE_MINUTES", "-5"),
    ],
)
def test_a_bad_setting_is_one_line_and_a_non_zero_exit(
    stdio_vault: Path, server: str, name: str, value: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", SERVERS[server]],
        cwd=REPO,
        env=server_env(stdio_vault, **{name: value}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.returncode == 2  # settings_or_exit's code, not a crash's 1
    assert proc.stdout == ""  # stdout is the protocol channel
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith(f"{server}: ")
    assert name in lines[0]
    assert f"set {name}=".lower() in lines[0].lower()  # it says how to fix it


# -- streamable HTTP ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("server", "tool", "arguments"),
    [("vault", "list_tasks", {"folder": "Needs_Action"}), ("audit", "verify_audit", {})],
)
async def test_http_serves_streamable_http_at_mcp(
    stdio_vault: Path, tmp_path: Path, server: str, tool: str, arguments: dict[str, Any]
) -> None:
    log = tmp_path / f"{server}-http.log"
    with http_server(SERVERS[server], server_env(stdio_vault), log) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(url, read_timeout_seconds=START_TIMEOUT) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            result = await structured(client, tool, **arguments)
        async with Client(url, mode="legacy", read_timeout_seconds=START_TIMEOUT) as client:
            assert client.server_info is not None and client.server_info.name == server
            again = await structured(client, tool, **arguments)
    assert tools == TOOLS[server]
    assert result == again
    if server == "vault":
        assert result["total"] == 1
    else:
        assert result["ok"] is True and result["entries"] == 1


# -- .mcp.json ----------------------------------------------------------------------------


def mcp_config() -> dict[str, Any]:
    return json.loads((REPO / ".mcp.json").read_text(encoding="utf-8"))


def expand(text: str, env: dict[str, str]) -> str:
    """``${VAR}`` and ``${VAR:-default}`` as Claude Code expands them: set value, else default."""

    def one(match: re.Match[str]) -> str:
        name, sep, default = match.group(1).partition(":-")
        if name in env:
            return env[name]
        assert sep, f"${{{name}}} has no value and no default: Claude Code refuses the file"
        return default

    return VARIABLE.sub(one, text)


def strings(entry: dict[str, Any]) -> list[str]:
    return [entry["command"], *entry.get("args", []), *entry.get("env", {}).values()]


def test_mcp_json_registers_every_server_over_stdio_with_defaults() -> None:
    servers = mcp_config()["mcpServers"]
    assert set(SERVERS) <= set(servers)
    for name, entry in servers.items():
        assert entry["type"] == "stdio", name
        assert isinstance(entry["command"], str) and entry["command"], name
        assert all(isinstance(arg, str) for arg in entry.get("args", [])), name
        assert all(isinstance(v, str) for v in entry.get("env", {}).values()), name
        for text in strings(entry):
            for body in VARIABLE.findall(text):
                # a default for each (empty means "not set": .env or the built-in default rules)
                assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*:-.*", body), (name, text)
        # With nothing set, every value expands (the file parses on a fresh machine).
        assert all("$" not in expand(text, {}) for text in strings(entry)), name
    for name, module in SERVERS.items():
        assert servers[name]["args"][-1] == module


def claude_code_params(entry: dict[str, Any], environ: dict[str, str]) -> StdioServerParameters:
    """The process Claude Code starts for one entry, from the repository root."""
    command = expand(entry["command"], environ)
    if "/" in command and not Path(command).is_absolute():
        command = str(REPO / command)
    env = {key: expand(value, environ) for key, value in entry.get("env", {}).items()}
    return StdioServerParameters(
        command=command,
        args=[expand(arg, environ) for arg in entry.get("args", [])],
        env={**environ, **env},
        cwd=str(REPO),
    )


@pytest.mark.anyio
@pytest.mark.parametrize("server", sorted(SERVERS))
async def test_mcp_json_entry_starts_a_server_with_its_defaults(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh machine: nothing set, so every default applies (the vault is not there yet)."""
    monkeypatch.delenv("AI_EMPLOYEE_PYTHON", raising=False)
    monkeypatch.delenv("SECRETS_DIR", raising=False)
    monkeypatch.delenv("VAULT_PATH", raising=False)
    params = claude_code_params(mcp_config()["mcpServers"][server], dict(os.environ))
    assert params.command == str(REPO / ".venv" / "bin" / "python")
    default_vault = Path(os.environ["HOME"]) / "AI_Employee_Vault"
    assert params.env is not None and params.env["VAULT_PATH"] == ""  # not set: the default
    async with Client(params, mode="legacy", read_timeout_seconds=START_TIMEOUT) as client:
        assert client.server_info is not None and client.server_info.name == server
        tools = {tool.name for tool in (await client.list_tools()).tools}
        tool, arguments = FIRST_CALL[server]
        result = await client.call_tool(tool, arguments)
    assert tools == TOOLS[server]
    assert result.is_error
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert f"no vault at {default_vault}" in text and "ai-employee init" in text


@pytest.mark.anyio
@pytest.mark.parametrize("server", sorted(SERVERS))
async def test_mcp_json_entry_uses_the_environment(
    server: str, stdio_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_PATH", str(stdio_vault))
    monkeypatch.setenv("ZONE", "cloud")
    with GmailStandIn() as gmail:
        monkeypatch.setenv("GMAIL_API_ENDPOINT", gmail.url)
        write_token(make_settings(stdio_vault.parent, gmail, zone="cloud"), gmail)
        gmail.seed(sender="ana@client.example", to="me@example.com", subject="Hi", body_text=".")
        params = claude_code_params(mcp_config()["mcpServers"][server], dict(os.environ))
        async with Client(params, mode="legacy", read_timeout_seconds=START_TIMEOUT) as client:
            if server == "vault":
                status = await structured(client, "vault_status")
                assert Path(status["vault"]) == stdio_vault and status["zone"] == "cloud"
            elif server == "audit":
                page = await structured(client, "query_audit", zone="local")
                assert page["returned"] == 1
                assert (await structured(client, "query_audit"))["zone"] == "cloud"
            else:  # the stand-in's mail, read with the cloud token; and no sending there
                found = await structured(client, "search_emails")
                assert [m["subject"] for m in found["messages"]] == ["Hi"]
                sent = await client.call_tool("send_email", {"to": ["a@b.example"], "body": "x"})
                assert sent.is_error and "cloud zone never sends" in str(sent.content)


@pytest.mark.anyio
async def test_mcp_json_leaves_a_dot_env_in_charge(
    stdio_vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cloud VM configured by .env: the servers Claude Code starts run as the cloud zone."""
    for name in ("VAULT_PATH", "ZONE", "DRY_RUN", "SECRETS_DIR", "AI_EMPLOYEE_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / "cloud.env"
    env_file.write_text(f"VAULT_PATH={stdio_vault}\nZONE=cloud\n")
    monkeypatch.setenv("AI_EMPLOYEE_ENV_FILE", str(env_file))
    params = claude_code_params(mcp_config()["mcpServers"]["vault"], dict(os.environ))
    async with Client(params, mode="legacy", read_timeout_seconds=START_TIMEOUT) as client:
        result = await client.call_tool("vault_status", {})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["zone"] == "cloud"
    assert result.structured_content["vault"] == str(stdio_vault)
