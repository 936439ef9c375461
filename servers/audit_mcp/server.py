"""The audit MCP server: query, summarize and verify the audit trail. It never writes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from core.audit import AuditEntry, AuditLog, VerifyReport
from core.audit_summary import AuditSummary, summarize
from core.config import Settings
from core.vault import open_vault
from servers.support import hints, tool_errors

INSTRUCTIONS = (
    "The audit trail: every change to the vault and every outside action, one hash-chained "
    "file per zone. Read-only. Use audit_summary for an overview, query_audit for details, "
    "verify_audit to check nothing was edited or removed."
)
Zone = Annotated[
    Literal["local", "cloud"] | None, Field(description="whose trail; default: this machine's")
]
Word = Annotated[str | None, Field(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class AuditPage(BaseModel):
    zone: str
    entries: list[AuditEntry]
    returned: int


def build_server(settings: Settings) -> MCPServer:
    mcp = MCPServer(name="audit", version="0.1.0", instructions=INSTRUCTIONS)

    def trail(zone: str | None) -> tuple[str, AuditLog]:
        chosen = zone or settings.zone
        root = open_vault(settings, actor="claude").root
        return chosen, AuditLog(root, chosen)

    @mcp.tool(title="Query the audit trail", annotations=hints(read_only=True))
    def query_audit(
        category: Word = None,
        status: Word = None,
        actor: Word = None,
        action: Word = None,
        since: Annotated[datetime | None, Field(description="ISO 8601; naive means UTC")] = None,
        until: Annotated[datetime | None, Field(description="ISO 8601, exclusive")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="at most this many")] = 50,
        oldest_first: bool = False,
        zone: Zone = None,
    ) -> AuditPage:
        """Entries matching every filter given, newest first unless oldest_first."""
        with tool_errors():
            chosen, log = trail(zone)
            found = log.query(
                category=category,
                status=status,
                actor=actor,
                action=action,
                since=since,
                until=until,
                limit=limit,
                newest_first=not oldest_first,
            )
            return AuditPage(zone=chosen, entries=found, returned=len(found))

    @mcp.tool(title="Summarize the audit trail", annotations=hints(read_only=True))
    def audit_summary(
        days: Annotated[int, Field(ge=1, le=366)] = 7, zone: Zone = None
    ) -> AuditSummary:
        """Counts per category and status over the last N days, problems first."""
        with tool_errors():
            chosen, log = trail(zone)
            return summarize(log, chosen, days=days)

    @mcp.tool(title="Verify the audit trail", annotations=hints(read_only=True))
    def verify_audit(zone: Zone = None) -> VerifyReport:
        """Walk the hash chain: ok, or the first entry that was edited, removed or reordered."""
        with tool_errors():
            return trail(zone)[1].verify()

    return mcp
