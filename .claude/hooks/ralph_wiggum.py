#!/usr/bin/env python3
"""Claude Code Stop hook: the Ralph Wiggum loop keeps Claude on one task until it is done.

``ai-employee ralph start PROMPT --task FILE`` writes ``.claude/ralph_state.json``. Each
time Claude Code is about to stop, it runs this hook with the Stop event as JSON on stdin.
While a loop is active, the event comes from the loop's session, the task file has not
reached ``Done/`` (and still can), no completion promise was kept and fewer than
``max_iterations`` continuations have run, the hook counts one more iteration and prints
``{"decision": "block", "reason": <the prompt again, the count, what ends the loop>}``:
Claude Code feeds the reason back and Claude keeps working. Otherwise it prints nothing
(Claude stops), and when the loop is over it deletes the state file and says why in
``.claude/ralph.log``.

- Session binding: the first Stop event after ``ralph start`` binds its ``session_id``
  (unless ``ralph start`` ran inside Claude Code, where ``CLAUDE_CODE_SESSION_ID`` binds
  it at once). Stop events from any other session are ignored and change nothing.
- A task that can no longer reach ``Done/`` ends the loop: one that is in neither
  ``Needs_Action/`` nor ``In_Progress/`` and not done (moved to ``Failed/`` or
  ``Rejected/``, renamed or deleted).
- Completion promise: the last assistant message (``last_assistant_message`` from the
  event; the transcript's last assistant entry when the event lacks it) must contain
  ``<promise>TEXT</promise>`` with TEXT equal to the promise, spaces and line breaks
  collapsed, case kept.
- The transcript is read from its end, and only if it is a regular file (never a FIFO,
  device or link), within bounds: its last 16 MiB, lines of up to 4 MiB, 3 seconds. A
  message that cannot be read within them is treated as an unreadable transcript: the
  promise counts as not met, so the loop stays, but the stop is allowed and no iteration
  is counted (the next stop checks again). Blocking instead would make Claude go on
  after a promise it may well have kept, on nothing but a guess.
- ``stop_hook_active`` is true on every stop that follows a continuation, so it does not
  end the loop; the iteration count (stored before each block) and Claude Code's own cap
  on consecutive blocks (8 unless ``CLAUDE_CODE_STOP_HOOK_BLOCK_CAP`` says otherwise) do.
- Never in Claude Code's way: bad or missing input, an unreadable transcript, a busy lock
  or any error allows the stop, prints nothing and exits 0. A state file that cannot be
  used (not JSON, wrong fields, a link, a FIFO...), or a vault that is gone, ends the
  loop.

Standard library only (see ralph_state.py); no import of the project's packages.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

try:
    import ralph_state as rs
except Exception:  # a broken install must not break Claude Code: the hook does nothing
    rs = None  # type: ignore[assignment]

MAX_INPUT_BYTES = 64 << 20
MAX_TRANSCRIPT_TAIL = 16 << 20  # bytes read from the transcript's end, at most
MAX_TRANSCRIPT_LINE = 4 << 20  # a longer line is not parsed: it ends the scan
TRANSCRIPT_SECONDS = 3.0  # time for the scan (the hook's timeout in settings.json is 30 s)
TRANSCRIPT_BLOCK = 1 << 16
LOCK_TIMEOUT = 10.0
END, HOLD, CONTINUE = "end", "hold", "continue"


@dataclass(frozen=True)
class StopEvent:
    session_id: str
    transcript_path: str | None
    last_message: str | None
    stop_hook_active: bool


def parse_event(data: bytes) -> StopEvent | None:
    """The Stop event from the hook's stdin, or None if it is anything else."""
    if len(data) > MAX_INPUT_BYTES:
        return None
    try:
        payload = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(payload, dict) or payload.get("hook_event_name") != "Stop":
        return None
    session = payload.get("session_id")
    if not rs.session_ok(session):
        return None
    transcript = payload.get("transcript_path")
    last = payload.get("last_assistant_message")
    return StopEvent(
        session_id=session,
        transcript_path=transcript if isinstance(transcript, str) and transcript else None,
        last_message=last if isinstance(last, str) else None,
        stop_hook_active=payload.get("stop_hook_active") is True,
    )


# -- the last assistant message ------------------------------------------------------------


class ScanBounds(Exception):
    """The transcript scan reached one of its bounds before it could finish."""


def _lines_from_end(fd: int, deadline: float) -> Iterator[bytes]:
    """The non-empty lines of the open file ``fd``, last first.

    Raises ScanBounds (at the point the scan has reached) after MAX_TRANSCRIPT_TAIL bytes
    from the end, at a line longer than MAX_TRANSCRIPT_LINE, or past ``deadline``
    (``time.monotonic()``). A line read in several blocks is kept as a list of its pieces
    and joined once, so the work grows with the bytes read, never with their square.
    """
    end = os.fstat(fd).st_size
    position = end
    pieces: list[bytes] = []  # the line being read, its last piece first
    length = 0
    while position > 0:
        if end - position >= MAX_TRANSCRIPT_TAIL or time.monotonic() > deadline:
            raise ScanBounds
        size = min(TRANSCRIPT_BLOCK, position)
        position -= size
        block = os.pread(fd, size, position)
        if len(block) != size:  # cut short while it is read: what is left is unknown
            raise ScanBounds
        parts = block.split(b"\n")
        pieces.append(parts[-1])
        length += len(parts[-1])
        if length > MAX_TRANSCRIPT_LINE:
            raise ScanBounds
        if len(parts) == 1:
            continue
        lines = [b"".join(reversed(pieces)), *reversed(parts[1:-1])]
        for line in lines:
            if time.monotonic() > deadline:
                raise ScanBounds
            if line.strip():
                yield line
        pieces, length = [parts[0]], len(parts[0])
    line = b"".join(reversed(pieces))
    if line.strip():
        yield line


def _entry(line: bytes) -> tuple[str | None, str | None, str]:
    """(role, message id, text) of one transcript line; role None if it is no message."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None, None, ""  # a torn or foreign line
    if not isinstance(entry, dict) or entry.get("isSidechain") is True:
        return None, None, ""
    message = entry.get("message")
    message = message if isinstance(message, dict) else {}
    role = message.get("role") or entry.get("type")
    if role not in ("assistant", "user"):
        return None, None, ""
    msg_id = message.get("id") if isinstance(message.get("id"), str) else None
    return role, msg_id, _text_of(message.get("content"))


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(
        block["text"]
        for block in content
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def transcript_last_assistant_text(
    path: Path, *, seconds: float = TRANSCRIPT_SECONDS
) -> str | None:
    """The text of the transcript's last assistant message ("" if it has none), or None.

    Claude Code may write one message as several lines (one per content block) sharing
    its ``message.id``; they are joined. A user entry or another assistant message ends
    the search, so a promise made earlier, or typed by the user, never counts.

    The scan is bounded (see ``_lines_from_end``). Reaching a bound once the last assistant
    message is found ends the search with the blocks read so far (a block left unread can
    only hide a promise, never invent one); reaching it before is None: the message cannot
    be read, and the promise counts as not met. OSError if the path is not a regular file
    (a FIFO would block, a device never ends).
    """
    texts: list[str] = []  # last first; reversed once at the end
    found, wanted = False, None
    fd = rs.open_regular(path)
    try:
        for line in _lines_from_end(fd, time.monotonic() + seconds):
            role, msg_id, text = _entry(line)
            if role is None:
                continue
            if found and (role != "assistant" or msg_id is None or msg_id != wanted):
                break
            if role == "assistant":
                found, wanted = True, msg_id
                texts.append(text)
    except ScanBounds:
        if not found:
            return None
    finally:
        os.close(fd)
    return "\n".join(t for t in reversed(texts) if t)


def last_message(event: StopEvent) -> str | None:
    """The final assistant message, or None if it cannot be read."""
    if event.last_message is not None:  # given by Claude Code: never behind the transcript
        return event.last_message
    if event.transcript_path is None:
        return None
    try:
        return transcript_last_assistant_text(Path(event.transcript_path))
    except (OSError, ValueError):
        return None


# -- the decision --------------------------------------------------------------------------


def judge(state: rs.LoopState, event: StopEvent) -> tuple[str, str]:
    """(END | HOLD | CONTINUE, why) for a Stop event of the loop's own session."""
    if not rs.vault_usable(state):
        return END, f"the vault {state.vault} has no {rs.DONE}/ folder (moved or unmounted?)"
    done = rs.finished_as(state)
    if done is not None:
        return END, f"the task is done: {done}"
    lost = rs.out_of_reach(state)
    if lost is not None:
        return END, f"the task can no longer reach {rs.DONE}/: it is {lost}"
    kept: bool | None = False
    if state.completion_promise is not None:
        message = last_message(event)
        kept = None if message is None else rs.promise_met(message, state.completion_promise)
    if kept:
        return END, f"the completion promise <promise>{state.completion_promise}</promise> was met"
    if state.iteration >= state.max_iterations:
        return END, f"the limit of {state.max_iterations} iterations was reached"
    if kept is None:
        return HOLD, (
            "the last assistant message cannot be read to check the promise (no transcript, "
            "not a regular file, or too large or slow to scan)"
        )
    return CONTINUE, "the task is not in Done/ yet"


def block_reason(state: rs.LoopState) -> str:
    ends = [
        f"the task file {state.task_file} is in {rs.DONE}/ (finish it through the vault "
        "tools, for example mcp__vault__complete_task)"
    ]
    if state.completion_promise is not None:
        ends.append(
            f"your final message contains <promise>{state.completion_promise}</promise> "
            "(write it only when it is completely true)"
        )
    ends.append(f"{state.max_iterations} iterations have run")
    return (
        f"{state.prompt}\n\n"
        f"[Ralph loop: iteration {state.iteration} of {state.max_iterations} on task "
        f"{state.task_file}] The loop ends when " + "; or when ".join(ends) + "."
    )


def decide(claude_dir: Path, event: StopEvent) -> str | None:
    """Under the lock: read the state, judge the event, store the outcome, say it."""
    try:
        state = rs.read_state(claude_dir)
    except rs.StateError as exc:
        rs.clear_state(claude_dir)
        rs.log_event(claude_dir, END, f"{exc}; state file removed, stop allowed")
        return None
    if state is None:
        return None
    bound = state.session_id is None
    if bound:
        state.session_id = event.session_id
        rs.log_event(claude_dir, "bind", "the first Stop event after the start", state)
    elif state.session_id != event.session_id:
        why = f"Stop event of another session ({event.session_id}); nothing changed"
        rs.log_event(claude_dir, "ignore", why, state)
        return None
    verdict, why = judge(state, event)
    active = " (stop_hook_active)" if event.stop_hook_active else ""
    if verdict == END:
        rs.clear_state(claude_dir)
        rs.log_event(claude_dir, END, f"{why}; state file removed, stop allowed{active}", state)
        return None
    if verdict == HOLD:
        if bound:
            rs.write_state(claude_dir, state)
        rs.log_event(claude_dir, "ignore", f"{why}; stop allowed, the loop stays{active}", state)
        return None
    state.iteration += 1
    rs.write_state(claude_dir, state)  # stored before Claude is told to go on
    rs.log_event(claude_dir, CONTINUE, f"{why}; blocked the stop{active}", state)
    return json.dumps({"decision": "block", "reason": block_reason(state)})


def project_dir(environ: Mapping[str, str]) -> Path:
    """CLAUDE_PROJECT_DIR as Claude Code sets it, else the project this file belongs to."""
    configured = environ.get("CLAUDE_PROJECT_DIR") or ""
    return Path(configured) if configured else Path(__file__).resolve().parents[2]


def run(data: bytes, environ: Mapping[str, str]) -> str | None:
    """What to print for this hook input (None: print nothing and let Claude stop)."""
    claude_dir = project_dir(environ) / ".claude"
    if not os.path.lexists(rs.state_path(claude_dir)):
        return None  # no loop: the common case, decided without reading anything else
    event = parse_event(data)
    if event is None:
        rs.log_event(claude_dir, "ignore", "the hook input is not a Stop event; stop allowed")
        return None
    try:
        with rs.locked(claude_dir, timeout=LOCK_TIMEOUT):
            return decide(claude_dir, event)
    except TimeoutError:
        rs.log_event(claude_dir, "ignore", "the loop state stayed locked; stop allowed")
        return None


def _read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        return b""
    return sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)


def main() -> int:
    """Always exit 0; print a block decision or nothing. Never a traceback."""
    if rs is None:
        return 0
    try:
        output = run(_read_stdin(), os.environ)
        if output:
            sys.stdout.write(output + "\n")
            sys.stdout.flush()
    except BaseException as exc:  # whatever happens, Claude Code is allowed to stop
        try:
            claude_dir = project_dir(os.environ) / ".claude"
            rs.log_event(claude_dir, "error", f"{type(exc).__name__}: {exc}; stop allowed")
        except BaseException:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
