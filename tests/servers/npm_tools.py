"""Helpers for tests that talk to the servers from outside: npm tools, servers on a port.

npm tools run through ``npx`` with pinned versions and node 22 from the npm registry (the
pinned tools need it; CI machines have node 20). Their downloads are kept in
``<repo>/.cache/npm`` (ignored by git), so only the first run downloads anything. A missing
``npx`` or ``node`` fails the test that needs it: it is never skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NPM_CACHE = REPO / ".cache" / "npm"
NODE = "node@22"
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
CONFORMANCE = "@modelcontextprotocol/conformance@0.1.16"
NPX_TIMEOUT = 900  # seconds; a first download can be slow. A safety net, not a speed check.
START_TIMEOUT = 60  # seconds for a server to start listening; a safety net as well
SERVERS = {"vault": "servers.vault_mcp", "audit": "servers.audit_mcp", "gmail": "servers.gmail_mcp"}
VAULT_TOOLS = frozenset(
    {
        "list_tasks",
        "read_task",
        "create_task",
        "claim_task",
        "release_task",
        "complete_task",
        "write_plan",
        "request_approval",
        "list_approvals",
        "check_policy",
        "update_dashboard",
        "vault_status",
    }
)
AUDIT_TOOLS = frozenset({"query_audit", "audit_summary", "verify_audit"})
GMAIL_TOOLS = frozenset({"search_emails", "read_email", "create_draft", "send_email", "mark_read"})
TOOLS = {"vault": VAULT_TOOLS, "audit": AUDIT_TOOLS, "gmail": GMAIL_TOOLS}


def npx() -> str:
    """The ``npx`` command, or fail the test saying what to install."""
    found = shutil.which("npx")
    if not found or not shutil.which("node"):
        pytest.fail("node and npx are needed for this test: install Node.js (20 or later) and npm")
    return found


def npm_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus a persistent npm cache and no npm chatter."""
    return {
        **os.environ,
        "npm_config_cache": str(NPM_CACHE),
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_yes": "true",
        **(extra or {}),
    }


def run_npx(
    package: str,
    command: Sequence[str],
    *,
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
    timeout: float = NPX_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` from ``package`` (pinned) under node 22, both fetched by npx if needed."""
    args = [npx(), "-y", "-p", NODE, "-p", package, "--", *command]
    return subprocess.run(
        args,
        cwd=cwd,
        env=npm_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def server_env(vault: Path, **extra: str) -> dict[str, str]:
    """The environment a server subprocess gets: ours, its vault, and the repo importable."""
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "VAULT_PATH": str(vault), "PYTHONPATH": python_path, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(module: str, env: Mapping[str, str], log: Path) -> Iterator[int]:
    """Run ``python -m <module> --http PORT`` until the block ends; yields the port.

    Waits until the port accepts connections; the server's output goes to ``log``.
    """
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--http", str(port)],
            cwd=REPO,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(proc, port, log)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the server did not listen on {port} in {START_TIMEOUT} s:\n{log.read_text()}")
