"""Real third-party MCP clients against both servers: the MCP Inspector CLI and the MCP
conformance suite, pinned, fetched with npx (see npm_tools).

These need the npm registry the first time (CI reaches it); a missing npx or node fails.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.audit import AuditLog
from core.vault import Vault
from core.vault_init import init_vault
from tests.core.conftest import make_meta
from tests.servers.npm_tools import (
    CONFORMANCE,
    INSPECTOR,
    REPO,
    SERVERS,
    TOOLS,
    VAULT_TOOLS,
    http_server,
    run_npx,
    server_env,
)

BASELINE = Path(__file__).with_name("conformance_expected_failures.yml")
REQUIRED = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")
# What the conformance CLI counts as a failed scenario (it fails on warnings too).
FAILED_STATUSES = {"FAILURE", "WARNING"}


@pytest.fixture
def npm_vault(tmp_path: Path) -> Path:
    """An initialized vault with one task in Needs_Action (and its audit entry)."""
    root = Path(init_vault(tmp_path / "vault").vault)
    vault = Vault(root, audit=AuditLog(root, "local"), actor="test")
    vault.create("Needs_Action", "TASK_inspect_me.md", make_meta("task"), "Look at me.")
    return root


def tail(text: str, size: int = 4000) -> str:
    return text[-size:]


# -- MCP Inspector CLI --------------------------------------------------------------------


def inspector(server: str, vault: Path, *method: str, expect_ok: bool = True) -> dict[str, Any]:
    """Run the Inspector CLI on ``python -m servers.<server>_mcp`` over stdio; its JSON answer.

    The server command comes first, before the Inspector's own flags, so that ``-m`` is the
    server's; ``-e`` sets the server's environment (it gets only a few safe variables else).
    """
    command = [
        "mcp-inspector",
        "--cli",
        sys.executable,
        "-m",
        SERVERS[server],
        "-e",
        f"VAULT_PATH={vault}",
        "-e",
        f"SECRETS_DIR={os.environ['SECRETS_DIR']}",
        "-e",
        f"PYTHONPATH={REPO}",
        "--cwd",
        str(REPO),
        "--format",
        "json",
        *method,
    ]
    proc = run_npx(INSPECTOR, command)
    if expect_ok:
        assert proc.returncode == 0, (proc.returncode, proc.stdout, tail(proc.stderr))
    else:
        assert proc.returncode != 0, (proc.stdout, tail(proc.stderr))
    answer = json.loads(proc.stdout)
    assert isinstance(answer, dict), proc.stdout
    return answer


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_inspector_lists_the_tools(npm_vault: Path, server: str) -> None:
    # --strict: exit 6 if any tool schema has an error-severity portability problem.
    answer = inspector(server, npm_vault, "--method", "tools/list", "--strict")
    tools = answer["result"]["tools"]
    assert {tool["name"] for tool in tools} == TOOLS[server]
    assert len(tools) == len(TOOLS[server])
    for tool in tools:
        assert tool["title"] and tool["description"], tool["name"]
        assert tool["inputSchema"]["type"] == "object", tool["name"]
        assert tool["outputSchema"]["type"] == "object", tool["name"]
        # only the Gmail tools reach a service; the others work on local files
        assert tool["annotations"]["openWorldHint"] is (server == "gmail"), tool["name"]
        if server == "audit":
            assert tool["annotations"]["readOnlyHint"] is True, tool["name"]
    if server == "vault":
        assert len(tools) == len(VAULT_TOOLS) == 12


def test_inspector_calls_vault_status(npm_vault: Path) -> None:
    answer = inspector("vault", npm_vault, "--method", "tools/call", "--tool-name", "vault_status")
    result = answer["result"]
    assert result["isError"] is False
    status = result["structuredContent"]
    assert Path(status["vault"]) == npm_vault
    assert status["zone"] == "local" and status["dry_run"] is True
    assert status["counts"]["Needs_Action"] == 1
    assert json.loads(result["content"][0]["text"]) == status


def test_inspector_calls_list_tasks_with_an_argument(npm_vault: Path) -> None:
    answer = inspector(
        "vault",
        npm_vault,
        "--method",
        "tools/call",
        "--tool-name",
        "list_tasks",
        "--tool-arg",
        "folder=Needs_Action",
    )
    listed = answer["result"]["structuredContent"]
    assert answer["result"]["isError"] is False
    assert listed["folder"] == "Needs_Action" and listed["total"] == 1
    assert [task["path"] for task in listed["tasks"]] == ["Needs_Action/TASK_inspect_me.md"]


def test_inspector_calls_verify_audit(npm_vault: Path) -> None:
    answer = inspector("audit", npm_vault, "--method", "tools/call", "--tool-name", "verify_audit")
    report = answer["result"]["structuredContent"]
    assert report["ok"] is True and report["entries"] == 1


def test_inspector_sees_a_refused_argument_as_a_tool_error(npm_vault: Path) -> None:
    answer = inspector(
        "vault",
        npm_vault,
        "--method",
        "tools/call",
        "--tool-name",
        "list_tasks",
        "--tool-arg",
        "folder=../../etc",
        expect_ok=False,
    )
    result = answer["result"]
    assert result["isError"] is True
    assert "folder" in result["content"][0]["text"]
    assert "structuredContent" not in result


# -- the conformance suite ----------------------------------------------------------------


def baseline() -> list[str]:
    data = yaml.safe_load(BASELINE.read_text(encoding="utf-8"))
    assert set(data) == {"server"}, "the baseline lists server scenarios only"
    assert all(isinstance(name, str) for name in data["server"])
    return data["server"]


def test_baseline_never_excuses_a_required_scenario() -> None:
    names = baseline()
    assert len(names) == len(set(names)), "a scenario is listed twice"
    assert not set(REQUIRED) & set(names)


def scenario_results(output: Path) -> dict[str, list[dict[str, Any]]]:
    """Checks per scenario from ``-o`` (folders named server-<scenario>-<timestamp>)."""
    results: dict[str, list[dict[str, Any]]] = {}
    for checks in output.glob("server-*/checks.json"):
        match = re.fullmatch(r"server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z", checks.parent.name)
        assert match, checks.parent.name
        results[match.group(1)] = json.loads(checks.read_text(encoding="utf-8"))
    return results


def failed(checks: list[dict[str, Any]]) -> bool:
    return not checks or any(check["status"] in FAILED_STATUSES for check in checks)


def describe(checks: list[dict[str, Any]]) -> list[str]:
    return [
        f"{c['id']}: {c['status']} {c.get('errorMessage') or ''}".strip()
        for c in checks
        if c["status"] != "SUCCESS"
    ]


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_conformance_suite(npm_vault: Path, tmp_path: Path, server: str) -> None:
    output = tmp_path / "conformance"
    log = tmp_path / f"{server}-http.log"
    with http_server(SERVERS[server], server_env(npm_vault), log) as port:
        proc = run_npx(
            CONFORMANCE,
            [
                "conformance",
                "server",
                "--url",
                f"http://127.0.0.1:{port}/mcp",
                "--expected-failures",
                str(BASELINE),
                "-o",
                str(output),
            ],
        )
    report = f"{tail(proc.stdout)}\n{tail(proc.stderr, 2000)}\nserver log:\n{tail(log.read_text())}"
    ran = re.findall(r"^=== Running scenario: (\S+) ===$", proc.stdout, re.MULTILINE)
    assert ran, report
    results = scenario_results(output)
    expected = set(baseline())

    # The required scenarios ran, were not excused, and every one of their checks passed.
    for name in REQUIRED:
        assert name in ran, (name, report)
        checks = results.get(name, [])
        assert checks and not failed(checks), (name, describe(checks), report)
        assert all(check["status"] == "SUCCESS" for check in checks), (name, checks)

    # No scenario outside the baseline failed (one that crashed left no results: a failure).
    unexpected = {
        name: describe(results.get(name, []))
        for name in ran
        if name not in expected and failed(results.get(name, []))
    }
    assert not unexpected, (unexpected, report)
    # Every baseline entry is a scenario of this suite and still fails (else: remove it).
    assert expected <= set(ran), (expected - set(ran), report)
    stale = sorted(name for name in expected if not failed(results.get(name, [])))
    assert not stale, ("now passing: remove from the baseline", stale)
    # And the suite's own verdict against the baseline agrees.
    assert proc.returncode == 0, report
    assert "Baseline check passed" in proc.stdout, report
