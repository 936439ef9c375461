"""The vault MCP server (``python -m servers.vault_mcp``)."""
