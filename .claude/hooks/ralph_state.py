"""The Ralph loop's state file, its lock and its log: one definition for the hook and the CLI.

Standard library only, so the Stop hook runs under any ``python3`` (3.8 or newer) without
the project's virtual environment, and starts fast. ``cli/ralph.py`` loads this file by
its path; nothing in ``core/`` imports it.

Files, all in the project's ``.claude/`` folder:

- ``ralph_state.json``: the active loop (absent when no loop runs). Written whole to a
  temporary file, fsynced and renamed into place, so a reader sees the old or the new
  state, never a part. Every read-decide-write runs under an exclusive ``flock`` on the
  ``.claude/`` folder itself, so two hook runs at once never lose an iteration.
- ``ralph.log``: one line per decision (start, bind, continue, end, ignore, cancel) with
  the reason. Past 1 MiB it is renamed to ``ralph.log.1`` and a new one begins.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "ralph_state.json"
LOG_FILE = "ralph.log"
VERSION = 1
DONE = "Done"
PENDING_FOLDERS = ("Needs_Action", "In_Progress/local", "In_Progress/cloud")
DEAD_END_FOLDERS = ("Failed", "Rejected")  # a task there never reaches Done/
SETTLE_SECONDS = 0.05  # between two looks at the vault before a task is taken for gone
MAX_PROMPT_CHARS = 20_000
MAX_PROMISE_CHARS = 200
MAX_ITERATIONS_LIMIT = 1000
MAX_SESSION_CHARS = 200
MAX_STATE_BYTES = 1 << 20
LOG_ROTATE_BYTES = 1 << 20
MAX_DONE_SUFFIX = 1000  # core.vault.Vault.move_unique tries <stem>_1 .. <stem>_999
BLOCK_CAP_VAR = "CLAUDE_CODE_STOP_HOOK_BLOCK_CAP"
DEFAULT_BLOCK_CAP = 8
_TASK_NAME = re.compile(r"^[^/\\\x00-\x1f]+\.md$")
_PROMISE_TAG = re.compile(r"<promise>(.*?)</promise>", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StateError(ValueError):
    """The state file is there but cannot be used (not JSON, wrong fields, a link...)."""


@dataclass
class LoopState:
    """One Ralph loop. ``iteration`` counts the continuations the hook has asked for."""

    prompt: str
    task_file: str  # the task's file name; the loop ends when it reaches Done/
    task_path: str  # where it was when the loop started, relative to the vault
    vault: str  # the vault's absolute path, checked by `ralph start`
    max_iterations: int
    started_at: str
    completion_promise: str | None = None
    iteration: int = 0
    session_id: str | None = None  # None until the first Stop event binds it
    done_before: list[str] = field(default_factory=list)  # same-named files already in Done/
    version: int = VERSION

    @classmethod
    def from_json(cls, data: object) -> LoopState:
        if not isinstance(data, dict):
            raise StateError("the state is not a JSON object")
        try:
            state = cls(**data)
        except TypeError as exc:
            raise StateError(f"the state has missing or unknown fields ({exc})") from None
        state.check()
        return state

    def check(self) -> None:
        """Raise StateError unless every field has a usable value."""
        problems = [
            what
            for what, ok in (
                ("version", self.version == VERSION),
                ("prompt", _text(self.prompt, MAX_PROMPT_CHARS, multiline=True)),
                ("task_file", isinstance(self.task_file, str) and is_task_name(self.task_file)),
                ("task_path", _text(self.task_path, 1024)),
                ("vault", isinstance(self.vault, str) and os.path.isabs(self.vault)),
                ("max_iterations", _count(self.max_iterations, 1, MAX_ITERATIONS_LIMIT)),
                ("iteration", _count(self.iteration, 0, MAX_ITERATIONS_LIMIT)),
                ("started_at", _text(self.started_at, 64)),
                ("completion_promise", self.completion_promise is None or _promise_ok(self)),
                ("session_id", self.session_id is None or session_ok(self.session_id)),
                ("done_before", _names(self.done_before)),
            )
            if not ok
        ]
        if problems:
            raise StateError(f"bad value for {', '.join(problems)}")

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n").encode()


def _text(value: object, limit: int, *, multiline: bool = False) -> bool:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        return False
    allowed = "\n\t" if multiline else ""
    return all(ch >= " " or ch in allowed for ch in value)


def _count(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(n, str) and is_task_name(n) for n in value)


def _promise_ok(state: LoopState) -> bool:
    promise = state.completion_promise
    return _text(promise, MAX_PROMISE_CHARS) and normalize(promise or "") == promise


def is_task_name(name: str) -> bool:
    return bool(_TASK_NAME.match(name)) and not name.startswith(".") and len(name) <= 255


def session_ok(value: object) -> bool:
    return _text(value, MAX_SESSION_CHARS)


def normalize(text: str) -> str:
    """Collapse runs of spaces and line breaks to one space and trim the ends."""
    return " ".join(text.split())


def check_promise(text: str) -> str:
    """The promise as stored: one short line without ``<`` or ``>``; ValueError otherwise."""
    promise = normalize(text)
    if not promise or len(promise) > MAX_PROMISE_CHARS or "<" in promise or ">" in promise:
        raise ValueError(
            f"the promise must be 1 to {MAX_PROMISE_CHARS} characters, without '<' or '>'"
        )
    if _CONTROL.search(promise):
        raise ValueError("the promise may not contain control characters")
    return promise


def promise_met(message: str, promise: str) -> bool:
    """Does ``message`` contain ``<promise>PROMISE</promise>`` (whitespace collapsed)?"""
    return any(normalize(found) == promise for found in _PROMISE_TAG.findall(message))


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- files ---------------------------------------------------------------------------------


def state_path(claude_dir: Path) -> Path:
    return claude_dir / STATE_FILE


def open_regular(path: Path | str) -> int:
    """A read-only descriptor on ``path``, which must be a regular file; OSError otherwise.

    Never blocks and never follows a link in the last component: ``O_NONBLOCK`` makes the
    open of a FIFO with no writer return at once (and is harmless on a regular file), and
    anything that is not a regular file (FIFO, device, socket, folder) is refused before
    a single byte is read from it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_state(claude_dir: Path) -> LoopState | None:
    """The active loop, None if there is none; StateError if the file cannot be used."""
    try:
        fd = open_regular(state_path(claude_dir))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"the state file cannot be opened ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_STATE_BYTES + 1)
    except OSError as exc:
        raise StateError(f"the state file cannot be read ({exc.strerror})") from None
    if len(data) > MAX_STATE_BYTES:
        raise StateError("the state file is too large")
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise StateError("the state file is not JSON") from None
    return LoopState.from_json(parsed)


def write_state(claude_dir: Path, state: LoopState) -> None:
    """Replace the state file atomically and durably."""
    state.check()
    target = state_path(claude_dir)
    tmp = claude_dir / f".{STATE_FILE}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(state.to_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(claude_dir)


def clear_state(claude_dir: Path) -> bool:
    """Delete the state file; True if there was one."""
    try:
        state_path(claude_dir).unlink()
    except FileNotFoundError:
        return False
    _fsync_dir(claude_dir)
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def locked(claude_dir: Path, *, timeout: float) -> Iterator[None]:
    """Hold an exclusive flock on the ``.claude/`` folder; TimeoutError after ``timeout`` s.

    The kernel drops the lock when the holder exits, however it exits, so it never goes
    stale, and there is no lock file to leave behind.
    """
    fd = os.open(claude_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        "the Ralph loop state is locked by another process"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


def log_event(claude_dir: Path, action: str, why: str, state: LoopState | None = None) -> None:
    """Append one line to ``ralph.log``; a log that cannot be written never stops anything."""
    parts = [utc_now(), action]
    if state is not None:
        parts += [
            f"task={state.task_file}",
            f"iteration={state.iteration}/{state.max_iterations}",
            f"session={state.session_id or '-'}",
        ]
    line = " ".join(parts) + ": " + _CONTROL.sub(" ", why)[:2000] + "\n"
    path = claude_dir / LOG_FILE
    try:
        if os.path.getsize(path) > LOG_ROTATE_BYTES:
            os.replace(path, claude_dir / (LOG_FILE + ".1"))
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "ab") as handle:
            handle.write(line.encode("utf-8", "replace"))
    except OSError:
        pass


# -- the task in the vault -----------------------------------------------------------------


def done_names(vault: Path, task_file: str) -> list[str]:
    """Files in Done/ named as this task would be on completion: NAME.md, NAME_1.md, ...

    ``complete`` moves a task to ``Done/<name>``, or to ``Done/<stem>_<n><ext>`` with the
    first free ``n`` when that name is taken, so the names are read in order until the
    first one that is not there.
    """
    stem, ext = os.path.splitext(task_file)
    found = []
    for attempt in range(MAX_DONE_SUFFIX):
        name = task_file if attempt == 0 else f"{stem}_{attempt}{ext}"
        if not os.path.lexists(os.path.join(vault, DONE, name)):
            break
        found.append(name)
    return found


def pending_path(vault: Path, task_file: str) -> str | None:
    """Where the task still waits or is worked on (vault-relative), or None."""
    for folder in PENDING_FOLDERS:
        if os.path.lexists(os.path.join(vault, folder, task_file)):
            return f"{folder}/{task_file}"
    return None


def finished_as(state: LoopState) -> str | None:
    """The task's name in Done/ if it got there after the loop started, else None.

    A same-named file that was in Done/ at the start does not count, and neither does
    any while the task itself is still in Needs_Action/ or In_Progress/.
    """
    vault = Path(state.vault)
    if pending_path(vault, state.task_file) is not None:
        return None
    old = set(state.done_before)
    for name in done_names(vault, state.task_file):
        if name not in old:
            return f"{DONE}/{name}"
    return None


def out_of_reach(state: LoopState) -> str | None:
    """Where the task is when it can no longer reach Done/; None while it can, or has.

    Only a task in Needs_Action/ or In_Progress/ gets to Done/ (``complete`` moves it from
    In_Progress/), so one that is in neither and not in Done/ since the start (failed,
    rejected, renamed or deleted) never will. The vault is looked at twice, a moment
    apart, so a task caught between two folders (a release back to Needs_Action/ runs
    while the folders are looked at one by one) is not taken for gone.
    """
    vault = Path(state.vault)
    for look in range(2):
        if look:
            time.sleep(SETTLE_SECONDS)
        if pending_path(vault, state.task_file) is not None or finished_as(state) is not None:
            return None
    for folder in DEAD_END_FOLDERS:
        if os.path.lexists(os.path.join(vault, folder, state.task_file)):
            return f"in {folder}/{state.task_file}"
    return f"not in Needs_Action/, In_Progress/ or {DONE}/ (deleted or renamed?)"


def vault_usable(state: LoopState) -> bool:
    return os.path.isdir(os.path.join(state.vault, DONE))


def block_cap(environ: Mapping[str, str]) -> int:
    """Claude Code's cap on consecutive Stop-hook blocks as set in ``environ`` (default 8)."""
    raw = str(environ.get(BLOCK_CAP_VAR, "") or "").strip()
    return int(raw) if raw.isdigit() else DEFAULT_BLOCK_CAP
