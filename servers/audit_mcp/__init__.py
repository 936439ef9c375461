"""The audit MCP server (``python -m servers.audit_mcp``): read-only views of the audit trail."""
