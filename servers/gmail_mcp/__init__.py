"""The Gmail MCP server and the Gmail client the approval executor reuses."""
