"""Run every benchmark and print one table each (`make bench`)."""

from __future__ import annotations

import importlib
import sys

from bench.table import print_table

SUITES = (
    ("Vault", "bench.bench_vault"),
    ("Audit trail", "bench.bench_audit"),
    ("MCP servers", "bench.bench_servers"),
    ("Gmail watcher", "bench.bench_gmail"),
    ("Dashboard", "bench.bench_dashboard"),
    ("Inbox watcher", "bench.bench_inbox"),
)


def main() -> int:
    missed = 0
    for title, module in SUITES:
        rows = importlib.import_module(module).run()
        print_table(title, rows)
        missed += sum(not row.ok for row in rows)
    print(f"\n{missed} goal(s) not met" if missed else "\nAll goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
