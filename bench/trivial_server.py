"""The baseline of the server benchmarks: a minimal MCPServer with one trivial tool.

Started exactly as the product's servers are (``python -m bench.trivial_server``, stdio), so
the cold start it measures is the floor set by Python and the MCP SDK alone, and a call to
``echo`` is the floor of a stdio round trip through the SDK (a plain ``def``, run in a worker
thread like the product's tools).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

mcp = MCPServer(name="trivial", version="0.0.1")


@mcp.tool()
def echo(text: str = "") -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    mcp.run()
