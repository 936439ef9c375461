"""``python -m servers.vault_mcp [--http PORT]``: stdio by default, as Claude Code runs it."""

from servers.support import serve, settings_or_exit
from servers.vault_mcp.server import build_server

if __name__ == "__main__":
    serve(build_server(settings_or_exit("vault")))
