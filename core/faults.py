"""Named fault points for crash tests.

A test starts a child process with ``AI_EMPLOYEE_FAULT=<point>``; when the code
reaches that point the process is killed on the spot (SIGKILL: no cleanup, no
flush), exactly like a power cut or an OOM kill. Unset, a fault point costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "AI_EMPLOYEE_FAULT"


def fault_point(name: str) -> None:
    """Kill this process here if the environment names this fault point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
