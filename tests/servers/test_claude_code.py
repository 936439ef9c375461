"""Claude Code itself reads the repository's .mcp.json, starts every server and connects.

This needs the npm registry (CI reaches it); a missing npx fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from core.vault_init import init_vault

REPO = Path(__file__).resolve().parents[2]
CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.331"


def test_claude_code_connects_to_every_server(tmp_path: Path) -> None:
    npx = shutil.which("npx")
    assert npx, "npx is needed for this test: install Node.js and npm"
    vault = init_vault(tmp_path / "vault").vault
    config = tmp_path / "claude-config"
    config.mkdir()
    (config / "settings.json").write_text(json.dumps({"enableAllProjectMcpServers": True}))
    env = {
        **os.environ,
        "CLAUDE_CONFIG_DIR": str(config),
        "VAULT_PATH": str(vault),
        "npm_config_cache": str(REPO / ".cache" / "npm"),
        "npm_config_update_notifier": "false",
    }
    proc = subprocess.run(
        [npx, "-y", "-p", "node@22", "-p", CLAUDE_CODE, "--", "claude", "mcp", "list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a first download takes a while; only a safety net
        check=False,
    )
    lines = {line.split(":")[0]: line for line in proc.stdout.splitlines() if ":" in line}
    for server in ("vault", "audit", "gmail"):
        assert "Connected" in lines.get(server, ""), (proc.stdout, proc.stderr[-2000:])
