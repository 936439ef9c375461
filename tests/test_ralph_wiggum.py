"""The Ralph Wiggum Stop hook, run as Claude Code runs it: a process with the event on stdin.

Each test builds a project folder (``.claude/`` with the loop state) and a vault folder in
tmp_path, and points the hook at the project with ``CLAUDE_PROJECT_DIR``.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cli.ralph import state_format

REPO = Path(__file__).resolve().parents[1]
HOOKS = REPO / ".claude" / "hooks"
HOOK = HOOKS / "ralph_wiggum.py"
SETTINGS = REPO / ".claude" / "settings.json"
TASK = "TASK_1.md"
PROMPT = "Work on TASK_1.md until it is done."
Payload = dict[str, Any] | bytes


@dataclass
class Project:
    root: Path
    vault: Path

    @property
    def claude(self) -> Path:
        return self.root / ".claude"

    @property
    def state_file(self) -> Path:
        return self.claude / "ralph_state.json"

    @property
    def log(self) -> str:
        path = self.claude / "ralph.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def state(self) -> Any:
        return state_format().read_state(self.claude)

    def start(self, **fields: Any) -> None:
        fmt = state_format()
        values: dict[str, Any] = {
            "prompt": PROMPT,
            "task_file": TASK,
            "task_path": f"Needs_Action/{TASK}",
            "vault": str(self.vault),
            "max_iterations": 3,
            "started_at": fmt.utc_now(),
        }
        values.update(fields)
        fmt.write_state(self.claude, fmt.LoopState(**values))

    def finish_task(self, name: str = TASK) -> None:
        (self.vault / "Needs_Action" / TASK).rename(self.vault / "Done" / name)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    (root / ".claude").mkdir(parents=True)
    vault = tmp_path / "vault"
    for folder in ("Needs_Action", "In_Progress/local", "In_Progress/cloud", "Done", "Failed"):
        (vault / folder).mkdir(parents=True)
    (vault / "Needs_Action" / TASK).write_text("---\nid: T1\n---\nbody\n", encoding="utf-8")
    return Project(root, vault)


def hook_env(project_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE")}
    if project_dir is not None:
        env["CLAUDE_PROJECT_DIR"] = str(project_dir)
    return env


def event(session: str = "s1", **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": "",
        "cwd": "/anywhere",
        "hook_event_name": "Stop",
        "stop_hook_active": False,
        **extra,
    }


def _bytes(payload: Payload) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def run_hook(project: Project, payload: Payload) -> subprocess.CompletedProcess[str]:
    """One Stop event through the hook, with ``-S``: no site-packages, standard library only."""
    proc = subprocess.run(
        [sys.executable, "-S", str(HOOK)],
        input=_bytes(payload).decode("utf-8", "surrogateescape"),
        capture_output=True,
        text=True,
        env=hook_env(project.root),
        timeout=60,
        errors="surrogateescape",
    )
    assert proc.returncode == 0
    assert proc.stderr == ""  # never a traceback, never a message on stderr
    return proc


def decision(proc: subprocess.CompletedProcess[str]) -> dict[str, Any] | None:
    """The printed decision, or None when the hook printed nothing (Claude may stop)."""
    if proc.stdout == "":
        return None
    printed = json.loads(proc.stdout)
    assert set(printed) == {"decision", "reason"} and printed["decision"] == "block"
    return printed


def transcript(tmp_path: Path, *entries: dict[str, Any], tail: str = "") -> str:
    path = tmp_path / "transcript.jsonl"
    lines = [json.dumps(entry) for entry in entries]
    path.write_text("\n".join(lines) + "\n" + tail, encoding="utf-8")
    return str(path)


def said(role: str, text: str, msg_id: str = "", **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "content": [{"type": "text", "text": text}]}
    if msg_id:
        message["id"] = msg_id
    return {"type": role, "message": message, **extra}


def tool_use(msg_id: str) -> dict[str, Any]:
    block = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}
    return {"type": "assistant", "message": {"role": "assistant", "id": msg_id, "content": [block]}}


def tool_result() -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
    return {"type": "user", "message": {"role": "user", "content": [block]}}


# -- continue, or let Claude stop --------------------------------------------------------------


def test_blocks_while_the_task_is_not_done(project: Project) -> None:
    project.start()
    printed = decision(run_hook(project, event()))
    assert printed is not None
    reason = printed["reason"]
    assert reason.startswith(PROMPT)
    assert "iteration 1 of 3" in reason and f"{TASK} is in Done/" in reason
    assert "<promise>" not in reason  # no promise was set
    state = project.state()
    assert (state.iteration, state.session_id) == (1, "s1")
    assert "bind" in project.log and "continue" in project.log


def test_each_stop_counts_one_iteration(project: Project) -> None:
    project.start()
    for expected in (1, 2, 3):
        printed = decision(run_hook(project, event()))
        assert printed is not None and f"iteration {expected} of 3" in printed["reason"]
        assert project.state().iteration == expected


def test_allows_the_stop_and_clears_the_loop_when_the_task_is_in_done(project: Project) -> None:
    project.start(session_id="s1", iteration=1)
    project.finish_task()
    assert decision(run_hook(project, event())) is None
    assert not project.state_file.exists()
    assert f"the task is done: Done/{TASK}" in project.log


def test_a_completed_task_renamed_with_a_suffix_ends_the_loop(project: Project) -> None:
    (project.vault / "Done" / TASK).write_text("an older task with the same name\n")
    project.start(done_before=[TASK])
    assert decision(run_hook(project, event())) is not None  # the old file does not count
    project.finish_task("TASK_1_1.md")
    assert decision(run_hook(project, event())) is None
    assert not project.state_file.exists()
    assert "Done/TASK_1_1.md" in project.log


def test_a_same_named_file_in_done_does_not_count_while_the_task_is_pending(
    project: Project,
) -> None:
    project.start()
    (project.vault / "Done" / TASK).write_text("another task with the same name\n")
    assert decision(run_hook(project, event())) is not None


def test_stop_events_of_other_sessions_change_nothing(project: Project) -> None:
    project.start(session_id="s1", iteration=1)
    before = project.state_file.read_bytes()
    assert decision(run_hook(project, event("s2"))) is None
    assert project.state_file.read_bytes() == before
    assert "another session (s2)" in project.log


def test_the_limit_ends_the_loop(project: Project) -> None:
    project.start(session_id="s1", iteration=3, max_iterations=3)
    assert decision(run_hook(project, event())) is None
    assert not project.state_file.exists()
    assert "limit of 3 iterations" in project.log


def test_the_vault_gone_ends_the_loop(project: Project, tmp_path: Path) -> None:
    project.start(vault=str(tmp_path / "unmounted"))
    assert decision(run_hook(project, event())) is None
    assert not project.state_file.exists()
    assert "has no Done/ folder" in project.log


@pytest.mark.parametrize("where", ["Failed", "Rejected", None])
def test_a_task_that_can_no_longer_reach_done_ends_the_loop(
    project: Project, where: str | None
) -> None:
    project.start(session_id="s1", iteration=1)
    source = project.vault / "Needs_Action" / TASK
    if where is None:
        source.unlink()
    else:
        (project.vault / where).mkdir(exist_ok=True)
        source.rename(project.vault / where / TASK)
    assert decision(run_hook(project, event())) is None
    assert not project.state_file.exists()
    assert "the task can no longer reach Done/: it is " in project.log
    expected = f"in {where}/{TASK}" if where else "not in Needs_Action/, In_Progress/ or Done/"
    assert expected in project.log


def test_a_task_gone_with_only_an_older_namesake_in_done_ends_the_loop(project: Project) -> None:
    (project.vault / "Done" / TASK).write_text("an older task with the same name\n")
    project.start(done_before=[TASK])
    (project.vault / "Needs_Action" / TASK).rename(project.vault / "Failed" / TASK)
    assert decision(run_hook(project, event())) is None
    assert not project.state_file.exists()
    assert f"it is in Failed/{TASK}" in project.log


def test_a_claimed_task_keeps_the_loop_going(project: Project) -> None:
    project.start()
    (project.vault / "Needs_Action" / TASK).rename(project.vault / "In_Progress" / "cloud" / TASK)
    assert decision(run_hook(project, event())) is not None
    assert project.state().iteration == 1


@pytest.mark.parametrize("active", [True, False])
def test_stop_hook_active_never_extends_the_loop_past_its_limit(
    project: Project, active: bool
) -> None:
    project.start(max_iterations=4)
    blocks = [decision(run_hook(project, event(stop_hook_active=active))) for _ in range(7)]
    assert [b is not None for b in blocks] == [True] * 4 + [False] * 3
    assert not project.state_file.exists()


# -- the completion promise --------------------------------------------------------------------


PROMISE = "ALL DONE"


def test_the_promise_in_the_last_assistant_message_ends_the_loop(
    project: Project, tmp_path: Path
) -> None:
    project.start(completion_promise=PROMISE)
    path = transcript(
        tmp_path,
        said("user", PROMPT),
        said("assistant", "Working on it.", "m1"),
        tool_use("m1"),
        tool_result(),
        said("assistant", "Finished.\n<promise>\n  ALL   DONE </promise>", "m2"),
        tool_use("m2"),  # a later content block of the same message
        {"type": "system", "content": "Stop hook running"},
    )
    assert decision(run_hook(project, event(transcript_path=path))) is None
    assert not project.state_file.exists()
    assert "<promise>ALL DONE</promise> was met" in project.log


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param(
            [
                said("assistant", f"<promise>{PROMISE}</promise>", "m1"),
                said("assistant", "More.", "m2"),
            ],
            id="only-in-an-earlier-message",
        ),
        pytest.param(
            [said("assistant", "Not yet.", "m1"), said("user", f"<promise>{PROMISE}</promise>")],
            id="only-in-a-user-message",
        ),
        pytest.param([said("assistant", "<promise>all done</promise>", "m1")], id="different-case"),
        pytest.param([said("assistant", f"I will say {PROMISE} later.", "m1")], id="no-tag"),
        pytest.param(
            [
                said("assistant", "Not yet.", "m1"),
                said("assistant", f"<promise>{PROMISE}</promise>", "sub", isSidechain=True),
            ],
            id="only-in-a-subagent",
        ),
        pytest.param([said("user", "Start.")], id="no-assistant-message-yet"),
    ],
)
def test_a_promise_anywhere_else_keeps_the_loop_going(
    project: Project, tmp_path: Path, entries: list[dict[str, Any]]
) -> None:
    project.start(completion_promise=PROMISE)
    path = transcript(tmp_path, *entries)
    printed = decision(run_hook(project, event(transcript_path=path)))
    assert printed is not None and f"<promise>{PROMISE}</promise>" in printed["reason"]
    assert project.state().iteration == 1


def test_long_lines_are_read_whole(project: Project, tmp_path: Path) -> None:
    """The transcript is read backwards in blocks; a line longer than a block stays whole."""
    project.start(completion_promise=PROMISE)
    long_result = tool_result()
    long_result["message"]["content"][0]["content"] = "y" * 300_000
    last = said("assistant", "x" * 200_000 + f"<promise>{PROMISE}</promise>" + "z" * 70_000, "m2")
    path = transcript(tmp_path, said("assistant", "start", "m1"), long_result, last)
    assert decision(run_hook(project, event(transcript_path=path))) is None


def test_a_torn_last_line_is_skipped(project: Project, tmp_path: Path) -> None:
    project.start(completion_promise=PROMISE)
    last = said("assistant", f"<promise>{PROMISE}</promise>", "m1")
    path = transcript(tmp_path, last, tail='{"type": "assistant", "message": {"ro')
    assert decision(run_hook(project, event(transcript_path=path))) is None


@pytest.mark.parametrize(
    ("message", "ends"), [(f"<promise>{PROMISE}</promise>", True), ("", False)]
)
def test_last_assistant_message_in_the_event_wins_over_the_transcript(
    project: Project, tmp_path: Path, message: str, ends: bool
) -> None:
    """Claude Code can run the hook before the transcript has the final message."""
    project.start(completion_promise=PROMISE)
    stale = said("assistant", "Not yet." if ends else f"<promise>{PROMISE}</promise>", "m1")
    path = transcript(tmp_path, stale)
    printed = decision(
        run_hook(project, event(transcript_path=path, last_assistant_message=message))
    )
    assert (printed is None) is ends


def test_an_unreadable_transcript_allows_the_stop_and_keeps_the_loop(
    project: Project, tmp_path: Path
) -> None:
    project.start(completion_promise=PROMISE)
    proc = run_hook(project, event(transcript_path=str(tmp_path / "missing.jsonl")))
    assert decision(proc) is None
    state = project.state()
    assert (state.iteration, state.session_id) == (0, "s1")
    assert "cannot be read" in project.log


def _assert_held(project: Project) -> None:
    """The stop was allowed and the loop stays as it was, bound to the session."""
    state = project.state()
    assert (state.iteration, state.session_id) == (0, "s1")
    assert "cannot be read" in project.log


def test_a_transcript_that_is_a_fifo_is_not_opened_for_reading(
    project: Project, tmp_path: Path
) -> None:
    """Opening a FIFO with no writer would block the hook (and its lock) forever."""
    project.start(completion_promise=PROMISE)
    fifo = tmp_path / "transcript.jsonl"
    os.mkfifo(fifo)
    assert decision(run_hook(project, event(transcript_path=str(fifo)))) is None
    _assert_held(project)


@pytest.mark.parametrize("name", ["link", "folder"])
def test_a_transcript_that_is_not_a_regular_file_is_not_read(
    project: Project, tmp_path: Path, name: str
) -> None:
    project.start(completion_promise=PROMISE)
    real = transcript(tmp_path, said("assistant", f"<promise>{PROMISE}</promise>", "m1"))
    other = tmp_path / name
    if name == "link":
        other.symlink_to(real)
    else:
        other.mkdir()
    assert decision(run_hook(project, event(transcript_path=str(other)))) is None
    _assert_held(project)


def _big_transcript(tmp_path: Path, *lines: bytes) -> str:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as handle:
        for line in lines:
            handle.write(line + b"\n")
    return str(path)


def _line(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry).encode()


def test_one_huge_line_is_not_parsed_and_the_promise_is_not_met(
    project: Project, tmp_path: Path
) -> None:
    """A line longer than the hook's bound (here 64 MiB with no line break, as a stuck
    writer could leave it) is given up on: the message cannot be read."""
    project.start(completion_promise=PROMISE)
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write(_line(said("assistant", f"<promise>{PROMISE}</promise>", "m1")) + b"\n")
        for _ in range(64):
            handle.write(b"a" * (1 << 20))
    assert decision(run_hook(project, event(transcript_path=str(path)))) is None
    _assert_held(project)


def test_a_last_message_longer_than_the_line_bound_cannot_be_read(
    project: Project, tmp_path: Path
) -> None:
    """Skipping it would make the message before it look like the last one."""
    project.start(completion_promise=PROMISE)
    path = _big_transcript(
        tmp_path,
        _line(said("assistant", f"<promise>{PROMISE}</promise>", "m1")),
        _line(said("assistant", "x" * (6 << 20), "m2")),
    )
    assert decision(run_hook(project, event(transcript_path=path))) is None
    _assert_held(project)


@pytest.mark.parametrize("kept", [True, False])
def test_a_huge_tool_result_before_the_last_message_does_not_hide_it(
    project: Project, tmp_path: Path, kept: bool
) -> None:
    project.start(completion_promise=PROMISE)
    result = tool_result()
    result["message"]["content"][0]["content"] = "y" * (20 << 20)
    final = f"Finished. <promise>{PROMISE}</promise>" if kept else "Still working."
    path = _big_transcript(
        tmp_path, _line(tool_use("m1")), _line(result), _line(said("assistant", final, "m2"))
    )
    printed = decision(run_hook(project, event(transcript_path=path)))
    assert (printed is None) is kept
    assert project.state_file.exists() is not kept


@pytest.mark.parametrize("kept", [True, False])
def test_many_lines_of_one_message_are_read_within_the_bounds(
    project: Project, tmp_path: Path, kept: bool
) -> None:
    """400,000 content blocks of one message (more than the hook reads from the end)."""
    project.start(completion_promise=PROMISE)
    block = _line(said("assistant", "x" * 100, "m1"))
    last = f"<promise>{PROMISE}</promise>" if kept else "not yet"
    path = _big_transcript(
        tmp_path,
        _line(said("user", "go")),
        *[block] * 400_000,
        _line(said("assistant", last, "m1")),
    )
    printed = decision(run_hook(project, event(transcript_path=path)))
    assert (printed is None) is kept
    if not kept:
        assert project.state().iteration == 1


def test_the_transcript_scan_gives_up_when_its_time_is_over(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook = _load_hook(monkeypatch)
    path = Path(transcript(tmp_path, said("assistant", f"<promise>{PROMISE}</promise>", "m1")))
    assert hook.transcript_last_assistant_text(path, seconds=-1.0) is None
    assert hook.transcript_last_assistant_text(path) == f"<promise>{PROMISE}</promise>"


def test_lines_are_read_back_whole_across_block_edges(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook = _load_hook(monkeypatch)
    size = hook.TRANSCRIPT_BLOCK
    lengths = [0, 1, size - 1, size, size + 1, 3, 2 * size, 0, 5, 3 * size + 7]
    lines = [(chr(ord("a") + n % 26) * length).encode() for n, length in enumerate(lengths)]
    path = tmp_path / "lines"
    path.write_bytes(b"\n".join(lines) + b"\n\n  \n" + b"tail")
    fd = os.open(path, os.O_RDONLY)
    try:
        read = list(hook._lines_from_end(fd, float("inf")))
    finally:
        os.close(fd)
    assert read == [b"tail", *reversed([line for line in lines if line])]


def test_without_a_promise_the_transcript_is_not_needed(project: Project, tmp_path: Path) -> None:
    project.start()
    missing = str(tmp_path / "missing.jsonl")
    assert decision(run_hook(project, event(transcript_path=missing))) is not None


# -- never in Claude Code's way ---------------------------------------------------------------


def test_no_loop_means_nothing_printed_and_nothing_written(project: Project) -> None:
    assert decision(run_hook(project, event())) is None
    assert sorted(p.name for p in project.claude.iterdir()) == []


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"Stop"',
        b"3",
        b"null",
        b'{"hook_event_name": "Stop"',
        json.dumps({**event(), "hook_event_name": "SubagentStop"}).encode(),
        json.dumps({k: v for k, v in event().items() if k != "session_id"}).encode(),
        json.dumps({**event(), "session_id": 7}).encode(),
        json.dumps({**event(), "session_id": ""}).encode(),
    ],
)
def test_bad_input_allows_the_stop_and_leaves_the_loop_alone(
    project: Project, payload: bytes
) -> None:
    project.start()
    before = project.state_file.read_bytes()
    assert decision(run_hook(project, payload)) is None
    assert project.state_file.read_bytes() == before


BAD_STATES = [
    b"{not json",
    b"\xff\xfe",
    b"[]",
    b"null",
    b'{"prompt": "x"}',
    b"",
]


def _valid_state(**changes: Any) -> bytes:
    data = {
        "prompt": PROMPT,
        "task_file": TASK,
        "task_path": f"Needs_Action/{TASK}",
        "vault": "/srv/vault",
        "max_iterations": 3,
        "started_at": "2026-11-25T00:00:00Z",
        **changes,
    }
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "content",
    [
        *BAD_STATES,
        _valid_state(max_iterations=0),
        _valid_state(iteration="2"),
        _valid_state(iteration=True),
        _valid_state(iteration=-1),
        _valid_state(vault="relative/vault"),
        _valid_state(task_file="../Done/x.md"),
        _valid_state(task_file="TASK_1.txt"),
        _valid_state(prompt="   "),
        _valid_state(completion_promise="a\nb"),
        _valid_state(session_id=""),
        _valid_state(done_before="TASK_1.md"),
        _valid_state(unknown_field=1),
        _valid_state(version=99),
    ],
)
def test_a_state_file_that_cannot_be_used_ends_the_loop_quietly(
    project: Project, content: bytes
) -> None:
    project.state_file.write_bytes(content)
    assert decision(run_hook(project, event())) is None
    assert not project.state_file.exists()
    assert "state file removed" in project.log


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_state_file_that_is_no_regular_file_is_not_read(project: Project, kind: str) -> None:
    """A FIFO with no writer would block the hook in open() for ever, holding the lock."""
    if kind == "fifo":
        os.mkfifo(project.state_file)
    else:
        project.state_file.mkdir()
    assert decision(run_hook(project, event())) is None
    if kind == "fifo":
        assert not project.state_file.exists()
        assert "(not a regular file); state file removed" in project.log
    assert decision(run_hook(project, event())) is None  # and again: nothing waits


def test_a_state_file_that_is_a_link_is_not_followed(project: Project, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(_valid_state(vault=str(project.vault)))
    project.state_file.symlink_to(elsewhere)
    assert decision(run_hook(project, event())) is None
    assert not project.state_file.is_symlink() and elsewhere.exists()


def test_a_failure_inside_the_hook_allows_the_stop(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A state that cannot be stored (full disk, read-only folder) must not block."""
    hook = _load_hook(monkeypatch)
    project.start()

    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hook.rs, "write_state", refuse)
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project.root))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(_bytes(event()))))
    assert hook.main() == 0
    assert capsys.readouterr() == ("", "")
    assert project.state().iteration == 0
    assert "error: OSError" in project.log


def _load(monkeypatch: pytest.MonkeyPatch, name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # removed again after the test
    spec.loader.exec_module(module)
    return module


def _load_hook(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The hook in this process, with its sibling module as Claude Code's run would find it."""
    _load(monkeypatch, "ralph_state", HOOKS / "ralph_state.py")
    return _load(monkeypatch, "ralph_wiggum_under_test", HOOK)


def test_the_hook_uses_the_standard_library_only() -> None:
    for path in (HOOK, HOOKS / "ralph_state.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "ralph_state", (path, name)


# -- concurrent stops ---------------------------------------------------------------------------


def _run_together(project: Project, payloads: list[bytes]) -> list[dict[str, Any] | None]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-S", str(HOOK)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=hook_env(project.root),
        )
        for _ in payloads
    ]
    results = []
    for proc, payload in zip(procs, payloads, strict=True):
        out, err = proc.communicate(payload, timeout=120)
        assert proc.returncode == 0 and err == b""
        results.append(json.loads(out) if out else None)
    return results


def test_concurrent_stops_of_one_session_never_exceed_the_limit(project: Project) -> None:
    project.start(session_id="s1", max_iterations=5)
    results = _run_together(project, [_bytes(event())] * 12)
    reasons = sorted(r["reason"] for r in results if r is not None)
    assert len(reasons) == 5
    assert [f"iteration {n} of 5" in reason for n, reason in enumerate(reasons, 1)] == [True] * 5
    assert not project.state_file.exists()
    assert project.log.count(" continue ") == 5 and "limit of 5 iterations" in project.log


def test_concurrent_first_stops_bind_exactly_one_session(project: Project) -> None:
    project.start(max_iterations=5)
    sessions = [f"s{n}" for n in range(8)]
    results = _run_together(project, [_bytes(event(s)) for s in sessions])
    blocked = [s for s, r in zip(sessions, results, strict=True) if r is not None]
    assert len(blocked) == 1
    state = project.state()
    assert (state.session_id, state.iteration) == (blocked[0], 1)


# -- registered in .claude/settings.json ---------------------------------------------------------


def _stop_hooks() -> list[dict[str, Any]]:
    settings = json.loads(SETTINGS.read_text(encoding="utf-8"))
    groups = settings["hooks"]["Stop"]
    return [hook for group in groups for hook in group["hooks"]]


def test_settings_register_the_hook_as_a_stop_command_with_a_timeout() -> None:
    hooks = [h for h in _stop_hooks() if "ralph_wiggum.py" in h.get("command", "")]
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook["type"] == "command"
    assert isinstance(hook["timeout"], int) and 0 < hook["timeout"] <= 60
    assert "$CLAUDE_PROJECT_DIR" in hook["command"] or "${CLAUDE_PROJECT_DIR" in hook["command"]


def _command() -> str:
    return next(h["command"] for h in _stop_hooks() if "ralph_wiggum.py" in h["command"])


def _copy_hooks(project: Project) -> None:
    target = project.claude / "hooks"
    target.mkdir()
    for name in ("ralph_wiggum.py", "ralph_state.py"):
        shutil.copy(HOOKS / name, target / name)


@pytest.mark.parametrize("how", ["CLAUDE_PROJECT_DIR", "empty CLAUDE_PROJECT_DIR", "cwd only"])
def test_the_registered_command_runs_the_hook(project: Project, how: str) -> None:
    """Claude Code runs the command through a shell from the project, with CLAUDE_PROJECT_DIR
    set (reported empty in some versions, hence the fallback to the working folder)."""
    _copy_hooks(project)
    project.start()
    env = hook_env(project.root if how == "CLAUDE_PROJECT_DIR" else None)
    if how.startswith("empty"):
        env["CLAUDE_PROJECT_DIR"] = ""
    proc = subprocess.run(
        ["/bin/sh", "-c", _command()],
        input=json.dumps(event()),
        capture_output=True,
        text=True,
        cwd=project.root,
        env=env,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert decision(proc) is not None
    assert project.state().iteration == 1


def test_the_registered_command_is_harmless_without_the_hook(tmp_path: Path) -> None:
    """A checkout without the hook (or a wrong project folder) must never block, and must
    never exit 2, which Claude Code would read as "block" with stderr as the reason."""
    proc = subprocess.run(
        ["/bin/sh", "-c", _command()],
        input=json.dumps(event()),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=hook_env(tmp_path),
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
