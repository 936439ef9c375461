"""What every MCP server here shares: its command line, tool annotations and error translation.

This is not a server: servers import it, never each other. Errors the product
raises on purpose already say what went wrong and what to do next; they reach
the model as the tool's error text. Anything else becomes a generic error with
the details only in the server's log.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from core.config import Settings, load_settings
from core.errors import AIEmployeeError


def hints(
    *,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
) -> ToolAnnotations:
    """Tool annotations that tell the truth; ``open_world`` for tools that reach a service."""
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive and not read_only,
        idempotent_hint=idempotent or read_only,
        open_world_hint=open_world,
    )


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn the product's errors into tool errors the model can act on."""
    try:
        yield
    except AIEmployeeError as exc:
        raise ToolError(str(exc)) from None
    except FileNotFoundError:
        raise ToolError(
            "that file was moved or removed meanwhile; list the folder again and pick again"
        ) from None
    except FileExistsError as exc:
        where = f" ({Path(exc.filename).name})" if exc.filename else ""
        raise ToolError(
            f"the target already exists{where}; nothing was replaced: rename one of the two"
        ) from None
    except OSError as exc:
        where = f" on {Path(exc.filename).name}" if exc.filename else ""
        raise ToolError(
            f"{exc.strerror or 'a file system error'}{where}; check the disk and the vault's "
            "permissions, then try again"
        ) from None


def settings_or_exit(name: str) -> Settings:
    """Settings for a server about to start; a bad setting is one line on stderr and exit 2."""
    try:
        return load_settings()
    except AIEmployeeError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(server: MCPServer, argv: Sequence[str] | None = None) -> None:
    """Run over stdio (default), or streamable HTTP on 127.0.0.1 with ``--http PORT``."""
    parser = argparse.ArgumentParser(prog=f"python -m servers.{server.name}_mcp")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP at /mcp")
    args = parser.parse_args(argv)
    if args.http is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
