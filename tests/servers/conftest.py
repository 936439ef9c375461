"""Generic fixtures for the MCP server tests: a fresh vault, settings for it, a tool-call helper.

Only what every server's tests can share lives here. A server's own in-memory client
(``async with Client(build_server(settings)) as c``) is made in that server's test module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client
from mcp.types import CallToolResult

from core.config import Settings, load_settings
from core.vault_init import init_vault

MakeSettings = Callable[..., Settings]


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only."""
    return "asyncio"


@pytest.fixture
def vault_root(tmp_path: Path) -> Path:
    """A vault made as ``ai-employee init`` makes it, at ``tmp_path/vault``."""
    return Path(init_vault(tmp_path / "vault").vault)


@pytest.fixture
def make_settings(vault_root: Path) -> MakeSettings:
    """``make_settings(zone="local", dry_run=True, vault=None)``: Settings for ``vault_root``
    (or for ``vault``), built by ``load_settings`` from an explicit environment."""

    def make(*, zone: str = "local", dry_run: bool = True, vault: Path | None = None) -> Settings:
        return load_settings(
            {
                "VAULT_PATH": str(vault_root if vault is None else vault),
                "ZONE": zone,
                "DRY_RUN": "true" if dry_run else "false",
                "SECRETS_DIR": os.environ["SECRETS_DIR"],  # a temp folder (tests/conftest.py)
            }
        )

    return make


async def call(client: Client, tool: str, args: dict[str, Any] | None = None) -> CallToolResult:
    """Call one tool and return the result as the client sees it (check ``is_error`` yourself)."""
    return await client.call_tool(tool, args or {})


def text(res: CallToolResult) -> str:
    return " ".join(getattr(part, "text", "") for part in res.content)


async def ok(client: Client, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """A successful call whose structured content validates against the declared schema."""
    res = await call(client, tool, args)
    assert not res.is_error, text(res)
    schema = {t.name: t.output_schema for t in (await client.list_tools()).tools}[tool]
    assert schema and res.structured_content is not None
    jsonschema.Draft202012Validator(schema).validate(res.structured_content)
    return res.structured_content


async def refused(client: Client, tool: str, args: dict[str, Any], *patterns: str) -> str:
    res = await call(client, tool, args)
    assert res.is_error, res.structured_content
    message = text(res)
    for pattern in patterns:
        assert re.search(pattern, message, re.IGNORECASE), f"{pattern!r} not in {message!r}"
    return message
