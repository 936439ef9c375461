"""One executor pass in a child process, for crash tests (a helper script, not a test module).

Usage: ``python tests/daemons/executor_child.py VAULT JOURNAL HANDLER`` where HANDLER is
``recording`` (can reconcile by looking the key up in the journal) or ``blind`` (cannot).
The pass runs live (``dry_run=False``) against the journal stand-in service and prints its
PassReport as JSON. ``AI_EMPLOYEE_FAULT`` is inherited from the parent: when the pass reaches
that fault point the process SIGKILLs itself. The repository root must be importable
(the tests put it on PYTHONPATH).
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.action_handler import ActionHandler
from core.audit import AuditLog
from core.executor import Executor
from core.vault import Vault
from tests.fakes.action_journal import BlindHandler, Journal, RecordingHandler

HANDLERS: dict[str, type[RecordingHandler]] = {"recording": RecordingHandler, "blind": BlindHandler}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in HANDLERS:
        print("usage: executor_child.py VAULT JOURNAL recording|blind", file=sys.stderr)
        return 2
    root, journal, kind = Path(argv[0]), Path(argv[1]), argv[2]
    vault = Vault(root, audit=AuditLog(root, "local"), actor="approval_watcher")
    handlers: list[ActionHandler] = [HANDLERS[kind](Journal(journal))]
    executor = Executor(vault, zone="local", dry_run=False, handlers=handlers)
    print(executor.run_once().model_dump_json(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
