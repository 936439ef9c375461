"""MCP servers over stdio: cold start and tool-call latency, as Claude Code meets them.

Every server runs as its own process, driven by the MCP Python SDK client over stdio with the
initialize handshake. Baselines are measured in the same run, interleaved with ours so both
share the machine's noise:
- a minimal MCPServer with one trivial tool (``bench/trivial_server.py``), started the same way;
- the official node filesystem server (pinned below, through ``npx``) doing the same file work:
  ``read_text_file`` of the task, ``move_file`` of Needs_Action/X.md to In_Progress/local/X.md.
Servers' stderr goes to ``.bench_tmp/servers.log``.
"""

from __future__ import annotations

import math
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from bench.table import Row, print_table
from core import tasks
from core.vault import Vault

REPO = Path(__file__).resolve().parent.parent
BENCH_TMP = REPO / ".bench_tmp"  # the repository's disk, never a tmpfs /tmp
FS_VERSION = "2026.8.31"  # `npm view @modelcontextprotocol/server-filesystem version`, 2026-11
FS_SERVER = f"@modelcontextprotocol/server-filesystem@{FS_VERSION}"
STARTS = 7
CALLS = 300
WARMUP = 10
TRIVIAL = "trivial MCPServer"
NODE = f"node server-filesystem {FS_VERSION}"
BODY = "## Email\n\nFrom: client@example.com\n\n" + "Please send the invoice for October.\n" * 25

Args = Callable[[int], dict[str, Any]]
Step = tuple[str, str, str, Args]  # (label, server, tool, arguments of call i)


def _name(i: int) -> str:
    return f"EMAIL_bench_{i:04d}.md"


def _seed_vault(root: Path, count: int) -> None:
    Vault(root).ensure_layout()
    for i in range(count):
        meta = {
            "id": f"EMAIL_bench_{i:04d}",
            "type": "email",
            "source": "gmail",
            "created": "2026-11-25T00:00:00Z",
            "priority": "normal",
            "title": f"Invoice request {i}",
        }
        (root / "Needs_Action" / _name(i)).write_text(tasks.render(meta, BODY))


def _python(module: str, vault: Path, work: Path) -> StdioServerParameters:
    env = {
        "VAULT_PATH": str(vault),
        "ZONE": "local",
        "DRY_RUN": "true",
        "SECRETS_DIR": str(work / "secrets"),
    }
    return StdioServerParameters(command=sys.executable, args=["-m", module], env=env, cwd=REPO)


def _node(vault: Path) -> StdioServerParameters | None:
    npx = shutil.which("npx")
    if npx is None:
        return None
    env = {"npm_config_cache": str(REPO / ".cache" / "npm"), "npm_config_update_notifier": "false"}
    return StdioServerParameters(command=npx, args=["-y", FS_SERVER, str(vault)], env=env, cwd=REPO)


def _client(params: StdioServerParameters, log: TextIO) -> Client:
    """``Client(params)`` with the server's stderr sent to the log instead of the table."""
    return Client(stdio_client(params, errlog=log), mode="legacy")


async def _cold_start(params: StdioServerParameters, log: TextIO) -> float:
    """Milliseconds from spawn to initialize answered and tools/list answered."""
    start = time.perf_counter()
    async with _client(params, log) as client:
        await client.list_tools()
        return (time.perf_counter() - start) * 1000


async def _cold_starts(servers: dict[str, StdioServerParameters], log: TextIO) -> dict[str, float]:
    """Median cold start of each server; rounds interleave them, in a rotating order."""
    names = list(servers)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(STARTS + 1):  # round 0 warms the page cache and writes .pyc files
        k = round_ % len(names)
        for name in names[k:] + names[:k]:
            elapsed = await _cold_start(servers[name], log)
            if round_:
                times[name].append(elapsed)
    return {name: statistics.median(samples) for name, samples in times.items()}


async def _timed(client: Client, tool: str, args: dict[str, Any]) -> float:
    start = time.perf_counter()
    result = await client.call_tool(tool, args)
    elapsed = (time.perf_counter() - start) * 1000
    if result.is_error:
        raise RuntimeError(f"{tool}({args}) failed: {result.content}")
    return elapsed


def _phases(node_vault: Path) -> list[list[Step]]:
    """Reads of every task, then claims of every task; each phase has its own echo baseline."""
    todo, mine = node_vault / "Needs_Action", node_vault / "In_Progress" / "local"

    def echo(i: int) -> dict[str, Any]:
        return {"text": _name(i)}

    def read(i: int) -> dict[str, Any]:
        return {"path": f"Needs_Action/{_name(i)}"}

    def claim(i: int) -> dict[str, Any]:
        return {"name": _name(i)}

    def read_file(i: int) -> dict[str, Any]:
        return {"path": str(todo / _name(i))}

    def move_file(i: int) -> dict[str, Any]:
        return {"source": str(todo / _name(i)), "destination": str(mine / _name(i))}

    return [
        [
            ("echo/read", "trivial", "echo", echo),
            ("read_task", "vault", "read_task", read),
            ("read_text_file", "node", "read_text_file", read_file),
        ],
        [
            ("echo/claim", "trivial", "echo", echo),
            ("claim_task", "vault", "claim_task", claim),
            ("move_file", "node", "move_file", move_file),
        ],
    ]


async def _latencies(
    servers: dict[str, StdioServerParameters], phases: list[list[Step]], log: TextIO
) -> dict[str, list[float]]:
    """Per-call milliseconds of each step: one long-lived session per server, calls interleaved."""
    samples: dict[str, list[float]] = defaultdict(list)
    async with AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for name, params in servers.items():
            clients[name] = await stack.enter_async_context(_client(params, log))
            await clients[name].list_tools()
        for phase in phases:
            live = [step for step in phase if step[1] in clients]
            for i in range(WARMUP + CALLS):
                k = i % len(live)
                for label, server, tool, args in live[k:] + live[:k]:
                    elapsed = await _timed(clients[server], tool, args(i))
                    if i >= WARMUP:
                        samples[label].append(elapsed)
    return samples


def _p50_p95(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20)
    return cuts[9], cuts[18]


def _start_rows(starts: dict[str, float]) -> list[Row]:
    base, name = starts["trivial"], f"{TRIVIAL} (python -m bench.trivial_server)"
    what = f"cold start {{}}_mcp, median of {STARTS}"
    rows = [
        Row(what.format(s), starts[s], "ms", name, base, "≤ 1.15x", starts[s] <= 1.15 * base)
        for s in ("vault", "audit")
    ]
    node = starts.get("node", math.nan)
    baseline = f"{NODE} via npx" if "node" in starts else "node: NOT MEASURED (no npx)"
    rows.append(Row(what.format("vault"), starts["vault"], "ms", baseline, node, "(info)", True))
    return rows


def _call_rows(samples: dict[str, list[float]]) -> list[Row]:
    rows: list[Row] = []
    pairs = (
        ("read_task", "echo/read", "read_text_file"),
        ("claim_task", "echo/claim", "move_file"),
    )
    for ours, echo, theirs in pairs:
        mine, trivial = _p50_p95(samples[ours]), _p50_p95(samples[echo])
        node = _p50_p95(samples[theirs]) if samples.get(theirs) else (math.nan, math.nan)
        for k, pct in enumerate(("p50", "p95")):
            what = f"{ours} {pct}, {CALLS} calls over stdio"
            ok = mine[k] <= 1.3 * trivial[k]
            rows.append(Row(what, mine[k], "ms", f"{TRIVIAL} echo {pct}", trivial[k], "≤ 1.3x", ok))
            measured = not math.isnan(node[k])
            baseline = f"{NODE} {theirs} {pct}" if measured else "node: NOT MEASURED (no npx)"
            rows.append(Row(what, mine[k], "ms", baseline, node[k], "< 1.0x", mine[k] < node[k]))
    if samples.get("read_text_file"):  # can any Python SDK server beat node at all?
        floor, node_read = _p50_p95(samples["echo/read"])[0], _p50_p95(samples["read_text_file"])[0]
        what, baseline = f"{TRIVIAL} echo p50 (SDK floor)", f"{NODE} read_text_file p50"
        rows.append(Row(what, floor, "ms", baseline, node_read, "(info)", True))
    return rows


async def _bench(work: Path, log: TextIO) -> list[Row]:
    vault, node_vault = work / "vault", work / "node_vault"
    _seed_vault(vault, WARMUP + CALLS)
    _seed_vault(node_vault, WARMUP + CALLS)
    servers = {
        "trivial": _python("bench.trivial_server", vault, work),
        "vault": _python("servers.vault_mcp", vault, work),
        "audit": _python("servers.audit_mcp", vault, work),
    }
    node = _node(node_vault)
    if node is not None:
        servers["node"] = node
    starts = await _cold_starts(servers, log)
    del servers["audit"]
    samples = await _latencies(servers, _phases(node_vault), log)
    return _start_rows(starts) + _call_rows(samples)


def run() -> list[Row]:
    BENCH_TMP.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=BENCH_TMP, prefix="servers-"))
    try:
        with open(BENCH_TMP / "servers.log", "w") as log:
            return anyio.run(_bench, work, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    started = time.perf_counter()
    print_table("MCP servers", run())
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
