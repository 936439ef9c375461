"""``python -m servers.gmail_mcp [--http PORT]``: stdio by default, as Claude Code runs it."""

from servers.gmail_mcp.server import build_server
from servers.support import serve, settings_or_exit

if __name__ == "__main__":
    serve(build_server(settings_or_exit("gmail")))
