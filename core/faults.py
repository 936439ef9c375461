"""Named fault points for crash tests.

A test starts a child process with ``AI_EMPLOYEE_FAULT=<point>``; when the code
reaches that point the process is killed on the spot (SIGKILL: no cleanup, no
flush), exactly like a power cut or an OOM kill. The variable is read once at
start, so an unset fault point costs one comparison.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "AI_EMPLOYEE_FAULT"
ACTIVE_FAULT = os.environ.get(FAULT_ENV)


def fault_point(name: str) -> None:
    """Kill this process here if the environment named this fault point at start."""
    if name == ACTIVE_FAULT:
        os.kill(os.getpid(), signal.SIGKILL)
