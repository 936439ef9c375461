"""``ai-employee ralph start|status|cancel``: keep Claude Code on one task until it is done.

The loop itself is the Stop hook ``.claude/hooks/ralph_wiggum.py``; these commands write,
show and clear its state, ``.claude/ralph_state.json`` in the project folder. The state's
format, its lock and its log are defined once, in the hook's standard-library module
``.claude/hooks/ralph_state.py``, which this file loads by path from the clone it belongs
to (nothing in ``core/`` imports from ``.claude/``).

The project folder is ``CLAUDE_PROJECT_DIR`` when set (Claude Code sets it for the commands
it runs), otherwise the nearest folder above the current one with ``.claude/settings.json``
(never the home folder, whose ``.claude/`` holds the user's own settings).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from core.config import load_settings
from core.errors import AIEmployeeError, TaskNotFoundError, VaultError
from core.layout import DONE, task_name
from core.paths import confine, relative_to_vault, split_relative
from core.vault import Vault, open_vault

DEFAULT_MAX_ITERATIONS = 8
PROJECT_VAR = "CLAUDE_PROJECT_DIR"
SESSION_VAR = "CLAUDE_CODE_SESSION_ID"  # set by Claude Code for its Bash tool's commands
LOCK_TIMEOUT = 30.0
_FORMAT_FILE = Path(__file__).resolve().parent.parent / ".claude" / "hooks" / "ralph_state.py"
_TASK_FOLDERS = ("Needs_Action", "In_Progress/local", "In_Progress/cloud")
# A ralph_state.LoopState; the class is loaded at run time from the hook's folder.
LoopState = Any


@cache
def state_format() -> ModuleType:
    """The hook's own state module (``.claude/hooks/ralph_state.py``), loaded by path."""
    spec = importlib.util.spec_from_file_location("ai_employee_ralph_state", _FORMAT_FILE)
    if spec is None or spec.loader is None or not _FORMAT_FILE.is_file():
        raise AIEmployeeError(
            f"the Ralph hook is missing from this installation ({_FORMAT_FILE})",
            "run ai-employee from its git clone, where .claude/hooks/ holds the hook",
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# -- the project's .claude/ folder ---------------------------------------------------------


def claude_dir() -> Path:
    """The ``.claude/`` folder whose Stop hook runs the loop, or a clear refusal."""
    configured = os.environ.get(PROJECT_VAR) or ""
    if configured:
        folder = Path(configured).expanduser().absolute() / ".claude"
        if not folder.is_dir():
            raise AIEmployeeError(
                f"{PROJECT_VAR}={configured} has no .claude/ folder",
                "point it at the ai-employee repository (the folder holding .claude/), "
                "or unset it and run the command inside the repository",
            )
        return folder
    home = Path(os.path.realpath(Path.home()))
    here = Path(os.path.realpath(Path.cwd()))
    for folder in (here, *here.parents):
        if folder != home and (folder / ".claude" / "settings.json").is_file():
            return folder / ".claude"
    raise AIEmployeeError(
        "no Claude Code project found: no folder from here up has .claude/settings.json",
        f"run the command inside the ai-employee repository, or set {PROJECT_VAR} to it",
    )


# -- start -----------------------------------------------------------------------------------


def _prompt(raw: str) -> str:
    fmt = state_format()
    text = raw.strip()
    if not text or len(text) > fmt.MAX_PROMPT_CHARS:
        raise AIEmployeeError(
            f"the prompt must be 1 to {fmt.MAX_PROMPT_CHARS:,} characters of text",
            "say in a sentence or two what Claude Code should do with the task",
        )
    return "".join(ch if ch >= " " or ch in "\n\t" else " " for ch in text)


def _promise(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return str(state_format().check_promise(raw))
    except ValueError as exc:
        raise AIEmployeeError(str(exc), "give a short phrase such as 'TASK COMPLETE'") from None


def _max_iterations(value: int) -> int:
    limit = state_format().MAX_ITERATIONS_LIMIT
    if not 1 <= value <= limit:
        raise AIEmployeeError(
            f"--max-iterations {value} is out of range",
            f"give a whole number from 1 to {limit} (default {DEFAULT_MAX_ITERATIONS})",
        )
    return value


def _existing(vault: Vault, rel: str) -> str:
    """``rel`` checked by the one confinement function; the task must be a plain file."""
    if not os.path.lexists(vault.root / rel):
        raise TaskNotFoundError(
            f"{rel} is not in the vault", "list the tasks with `ai-employee status`"
        )
    confine(vault.root, rel)
    return rel


def find_task(vault: Vault, raw: str) -> str:
    """The task's vault-relative path: a name is looked up in Needs_Action/ and In_Progress/;
    a path (relative to the vault, or absolute inside it) must point into one of them."""
    rel = relative_to_vault(vault.root, raw)
    parts = split_relative(rel)
    if len(parts) > 1:
        folder = "/".join(parts[:-1])
        if folder not in _TASK_FOLDERS:
            raise VaultError(
                f"{rel} is not in Needs_Action/ or In_Progress/",
                "a loop works on a task that is waiting or being worked on",
            )
        task_name(parts[-1])
        vault.folder(folder)
        return _existing(vault, rel)
    name = task_name(rel)
    for folder in _TASK_FOLDERS:
        if os.path.lexists(vault.folder(folder) / name):
            return _existing(vault, f"{folder}/{name}")
    if os.path.lexists(vault.folder(DONE) / name):
        raise VaultError(f"{name} is already in Done/", "there is nothing left to loop on")
    raise TaskNotFoundError(
        f"{name} is not in Needs_Action/ or In_Progress/",
        "list the tasks with `ai-employee status` and give one that is there",
    )


def _new_state(args: argparse.Namespace) -> LoopState:
    fmt = state_format()
    prompt, promise = _prompt(args.prompt), _promise(args.promise)
    max_iterations = _max_iterations(args.max_iterations)
    vault = open_vault(load_settings(), actor="cli")
    vault.folder(DONE)
    rel = find_task(vault, args.task)
    name = rel.rsplit("/", 1)[-1]
    session = os.environ.get(SESSION_VAR) or None
    return fmt.LoopState(
        prompt=prompt,
        task_file=name,
        task_path=rel,
        vault=str(vault.root),
        max_iterations=max_iterations,
        started_at=fmt.utc_now(),
        completion_promise=promise,
        session_id=session if fmt.session_ok(session) else None,
        done_before=fmt.done_names(vault.root, name),
    )


def _read(folder: Path) -> LoopState | None:
    fmt = state_format()
    try:
        return fmt.read_state(folder)
    except fmt.StateError as exc:
        raise AIEmployeeError(
            f"the loop state {folder / fmt.STATE_FILE} cannot be used: {exc}",
            "clear it with `ai-employee ralph cancel`, then start again",
        ) from None


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    try:
        with state_format().locked(folder, timeout=LOCK_TIMEOUT):
            yield
    except TimeoutError:
        raise AIEmployeeError(
            f"the loop state in {folder} stayed locked for {LOCK_TIMEOUT:.0f} s",
            "try again; if it persists, look for a stuck ai-employee or hook process",
        ) from None


def _start(args: argparse.Namespace) -> int:
    fmt = state_format()
    folder = claude_dir()
    state = _new_state(args)
    with _locked(folder):
        active = _read(folder)
        if active is not None:
            raise AIEmployeeError(
                f"a Ralph loop is already active on {active.task_file} "
                f"(iteration {active.iteration} of {active.max_iterations})",
                "end it with `ai-employee ralph cancel` first",
            )
        fmt.write_state(folder, state)
    fmt.log_event(folder, "start", "started by `ai-employee ralph start`", state)
    _print_started(folder, state)
    return 0


def _print_started(folder: Path, s: LoopState) -> None:
    print(f"Ralph loop started on {s.task_path}, at most {s.max_iterations} iterations.")
    print(f"  state: {folder / state_format().STATE_FILE}")
    for note in start_notes(folder, s):
        print(f"  note: {note}")


def start_notes(folder: Path, s: LoopState) -> list[str]:
    """What the person should know before relying on the loop."""
    fmt = state_format()
    notes = []
    if s.session_id is None:
        notes.append(
            "the first Claude Code session in this project to stop now takes the loop; "
            "start it from inside Claude Code to bind the session at once"
        )
    cap = fmt.block_cap(os.environ)
    if 0 < cap < s.max_iterations:
        notes.append(
            f"Claude Code ends a run of more than {cap} consecutive blocks; start Claude Code "
            f"with {fmt.BLOCK_CAP_VAR}={s.max_iterations} to allow them all"
        )
    settings = folder / "settings.json"
    if "ralph_wiggum.py" not in _read_text(settings):
        notes.append(f"{settings} does not register the Stop hook ralph_wiggum.py")
    if shutil.which("python3") is None:
        notes.append("python3 is not on PATH; the Stop hook needs it")
    return notes


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


# -- status and cancel -------------------------------------------------------------------------


def _status(_args: argparse.Namespace) -> int:
    folder = claude_dir()
    state = _read(folder)
    if state is None:
        print("No Ralph loop is active.")
        return 0
    for line in status_lines(state):
        print(line)
    return 0


def status_lines(s: LoopState) -> list[str]:
    fmt = state_format()
    promise = s.completion_promise
    session = s.session_id or "not bound yet (the next session in this project to stop)"
    return [
        f"Ralph loop on {s.task_file}, started {s.started_at} in {s.task_path}",
        f"  iteration: {s.iteration} of {s.max_iterations}",
        f"  task now:  {_where(fmt, s)}",
        f"  promise:   {f'<promise>{promise}</promise>' if promise else 'none'}",
        f"  session:   {session}",
        f"  vault:     {s.vault}",
        f"  prompt:    {s.prompt}",
    ]


def _where(fmt: ModuleType, state: LoopState) -> str:
    done = fmt.finished_as(state)
    if done is not None:
        return f"{done} (the loop ends at the next stop)"
    lost = fmt.out_of_reach(state)
    if lost is not None:
        return f"{lost}: it can no longer reach Done/ (the loop ends at the next stop)"
    return str(fmt.pending_path(Path(state.vault), state.task_file) or "not found in the vault")


def _cancel(_args: argparse.Namespace) -> int:
    fmt = state_format()
    folder = claude_dir()
    with _locked(folder):
        try:
            state = fmt.read_state(folder)
        except fmt.StateError:
            state = None
        removed = fmt.clear_state(folder)
    if not removed:
        print("No Ralph loop is active.")
        return 0
    fmt.log_event(folder, "end", "cancelled by `ai-employee ralph cancel`", state)
    what = f" on {state.task_file} after {state.iteration} iterations" if state else ""
    print(f"Ralph loop{what} cancelled.")
    return 0


ACTIONS = {"start": _start, "status": _status, "cancel": _cancel}


def cmd_ralph(args: argparse.Namespace) -> int:
    return ACTIONS[args.ralph_command](args)
