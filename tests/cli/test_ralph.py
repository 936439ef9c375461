"""``ai-employee ralph start|status|cancel`` through ``cli.main.main``, on a real temp vault.

Every test runs with its own vault (``VAULT_PATH``), an empty ``.env`` file, a temp
``SECRETS_DIR`` (conftest) and a temp project folder as ``CLAUDE_PROJECT_DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from cli.ralph import DEFAULT_MAX_ITERATIONS, state_format
from core.vault import Vault
from core.vault_init import init_vault
from tests.core.conftest import make_meta

TASK = "EMAIL_1.md"
HOOK = Path(__file__).resolve().parents[2] / ".claude" / "hooks" / "ralph_wiggum.py"


@dataclass
class Setup:
    vault: Vault
    project: Path

    @property
    def claude(self) -> Path:
        return self.project / ".claude"

    @property
    def state_file(self) -> Path:
        return self.claude / "ralph_state.json"

    def state(self) -> Any:
        return state_format().read_state(self.claude)

    @property
    def log(self) -> str:
        return (self.claude / "ralph.log").read_text(encoding="utf-8")


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    root = init_vault(tmp_path / "vault").vault
    vault = Vault(root)
    vault.create("Needs_Action", TASK, make_meta())
    env_file = tmp_path / "empty.env"
    env_file.write_text("", encoding="utf-8")
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True)
    monkeypatch.setenv("VAULT_PATH", str(root))
    monkeypatch.setenv("AI_EMPLOYEE_ENV_FILE", str(env_file))
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    for name in ("CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_STOP_HOOK_BLOCK_CAP"):
        monkeypatch.delenv(name, raising=False)
    return Setup(vault, project)


def ralph(*args: str) -> int:
    return main(["ralph", *args])


def start(*args: str) -> int:
    return ralph("start", "Answer the customer's email.", *args)


# -- start -------------------------------------------------------------------------------------


def test_start_writes_the_loop_state(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert start("--task", TASK) == 0
    state = setup.state()
    assert state.prompt == "Answer the customer's email."
    assert (state.task_file, state.task_path) == (TASK, f"Needs_Action/{TASK}")
    assert state.vault == str(setup.vault.root)
    assert (state.iteration, state.max_iterations) == (0, DEFAULT_MAX_ITERATIONS)
    assert (state.completion_promise, state.session_id, state.done_before) == (None, None, [])
    assert state.started_at.endswith("Z")
    out = capsys.readouterr().out
    assert f"Ralph loop started on Needs_Action/{TASK}" in out
    assert "the first Claude Code session in this project to stop now takes the loop" in out
    assert "does not register the Stop hook" in out  # the temp project has no settings.json
    assert "start task=EMAIL_1.md" in setup.log


def test_start_takes_a_promise_and_a_limit(setup: Setup) -> None:
    assert start("--task", TASK, "--promise", "  ALL \n DONE ", "--max-iterations", "3") == 0
    state = setup.state()
    assert (state.completion_promise, state.max_iterations) == ("ALL DONE", 3)


def test_start_inside_claude_code_binds_its_session(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "session-abc")
    assert start("--task", TASK) == 0
    assert setup.state().session_id == "session-abc"
    assert "takes the loop" not in capsys.readouterr().out


def test_start_accepts_a_vault_path_or_an_absolute_path(setup: Setup) -> None:
    setup.vault.claim(TASK, "local")
    rel = f"In_Progress/local/{TASK}"
    assert start("--task", rel) == 0
    assert setup.state().task_path == rel
    assert ralph("cancel") == 0
    assert start("--task", str(setup.vault.root / rel)) == 0
    assert setup.state().task_path == rel


def test_start_records_same_named_files_already_in_done(setup: Setup) -> None:
    setup.vault.create("Done", TASK, make_meta())
    assert start("--task", TASK) == 0
    assert setup.state().done_before == [TASK]


def test_start_notes_claude_codes_cap_on_consecutive_blocks(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert start("--task", TASK, "--max-iterations", "20") == 0
    assert "CLAUDE_CODE_STOP_HOOK_BLOCK_CAP=20" in capsys.readouterr().out
    assert ralph("cancel") == 0
    monkeypatch.setenv("CLAUDE_CODE_STOP_HOOK_BLOCK_CAP", "50")
    assert start("--task", TASK, "--max-iterations", "20") == 0
    assert "CLAUDE_CODE_STOP_HOOK_BLOCK_CAP" not in capsys.readouterr().out


def test_start_refuses_while_a_loop_is_active(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert start("--task", TASK) == 0
    before = setup.state_file.read_bytes()
    assert start("--task", TASK, "--max-iterations", "2") == 1
    assert "already active on EMAIL_1.md" in capsys.readouterr().err
    assert setup.state_file.read_bytes() == before


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("NOPE.md", "not in Needs_Action/ or In_Progress/"),
        ("Needs_Action/NOPE.md", "not in the vault"),
        ("Plans/PLAN_1.md", "not in Needs_Action/ or In_Progress/"),
        ("Done/EMAIL_1.md", "not in Needs_Action/ or In_Progress/"),
        ("Pending_Approval/email/x.md", "not in Needs_Action/ or In_Progress/"),
        ("../EMAIL_1.md", "refused"),
        ("Needs_Action/../Done/x.md", "refused"),
        (".state/x.md", "refused"),
        ("/etc/passwd", "outside the vault"),
        ("EMAIL_1", "not a task file name"),
        ("", "refused"),
    ],
)
def test_start_refuses_a_task_that_is_not_a_waiting_task(
    setup: Setup, capsys: pytest.CaptureFixture[str], task: str, message: str
) -> None:
    assert start("--task", task) == 1
    assert message in capsys.readouterr().err
    assert not setup.state_file.exists()


def test_start_refuses_a_task_already_done(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.vault.create("Done", "EMAIL_9.md", make_meta())
    assert start("--task", "EMAIL_9.md") == 1
    assert "already in Done/" in capsys.readouterr().err


def test_start_refuses_a_linked_task(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("---\nid: X\n---\n", encoding="utf-8")
    (setup.vault.root / "Needs_Action" / "LINK.md").symlink_to(outside)
    assert start("--task", "LINK.md") == 1
    assert "symbolic link" in capsys.readouterr().err
    assert not setup.state_file.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-iterations", "0"], "out of range"),
        (["--max-iterations", "-3"], "out of range"),
        (["--max-iterations", "1001"], "out of range"),
        (["--promise", "<b>done</b>"], "without '<' or '>'"),
        (["--promise", "   "], "the promise must be"),
    ],
)
def test_start_refuses_bad_options(
    setup: Setup, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert start("--task", TASK, *args) == 1
    assert message in capsys.readouterr().err
    assert not setup.state_file.exists()


def test_start_refuses_an_empty_prompt(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert ralph("start", "  \n ", "--task", TASK) == 1
    assert "the prompt must be" in capsys.readouterr().err


def test_a_state_file_that_cannot_be_used_must_be_cancelled_first(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.state_file.write_text("{broken", encoding="utf-8")
    assert start("--task", TASK) == 1
    assert ralph("status") == 1
    assert "ralph cancel" in capsys.readouterr().err
    assert ralph("cancel") == 0
    assert start("--task", TASK) == 0


# -- status and cancel -------------------------------------------------------------------------


def test_status_without_a_loop(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert ralph("status") == 0
    assert capsys.readouterr().out == "No Ralph loop is active.\n"


def test_status_shows_the_loop(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert start("--task", TASK, "--promise", "DONE", "--max-iterations", "4") == 0
    capsys.readouterr()
    assert ralph("status") == 0
    out = capsys.readouterr().out
    assert f"Ralph loop on {TASK}" in out
    assert "iteration: 0 of 4" in out
    assert f"task now:  Needs_Action/{TASK}" in out
    assert "promise:   <promise>DONE</promise>" in out
    assert "session:   not bound yet" in out
    assert "prompt:    Answer the customer's email." in out


def test_cancel_clears_the_loop(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert start("--task", TASK) == 0
    assert ralph("cancel") == 0
    assert "Ralph loop on EMAIL_1.md after 0 iterations cancelled." in capsys.readouterr().out
    assert not setup.state_file.exists()
    assert "cancelled by `ai-employee ralph cancel`" in setup.log
    assert ralph("cancel") == 0
    assert capsys.readouterr().out == "No Ralph loop is active.\n"


# -- where .claude/ is -------------------------------------------------------------------------


def test_the_project_is_found_from_the_working_folder(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / ".claude").mkdir(parents=True)
    (repo / ".claude" / "settings.json").write_text("{}", encoding="utf-8")
    (repo / "docs" / "deep").mkdir(parents=True)
    monkeypatch.delenv("CLAUDE_PROJECT_DIR")
    monkeypatch.chdir(repo / "docs" / "deep")
    assert start("--task", TASK) == 0
    assert (repo / ".claude" / "ralph_state.json").exists()


def test_no_project_is_a_clear_refusal(
    setup: Setup,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = Path(os.environ["HOME"])
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text("{}", encoding="utf-8")  # the user's own
    (home / "work").mkdir()
    monkeypatch.delenv("CLAUDE_PROJECT_DIR")
    monkeypatch.chdir(home / "work")
    assert ralph("status") == 1
    assert "no Claude Code project found" in capsys.readouterr().err
    assert not (home / ".claude" / "ralph_state.json").exists()


def test_a_project_folder_without_claude_is_refused(
    setup: Setup,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(tmp_path / "nowhere"))
    assert start("--task", TASK) == 1
    assert "has no .claude/ folder" in capsys.readouterr().err


# -- with the hook ------------------------------------------------------------------------------


def stop(setup: Setup, session: str = "s1") -> dict[str, Any] | None:
    payload = {
        "session_id": session,
        "transcript_path": "",
        "cwd": str(setup.project),
        "hook_event_name": "Stop",
        "stop_hook_active": False,
    }
    env = {**os.environ, "CLAUDE_PROJECT_DIR": str(setup.project)}
    proc = subprocess.run(
        [sys.executable, "-S", str(HOOK)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    return json.loads(proc.stdout) if proc.stdout else None


def test_the_loop_runs_until_the_task_is_completed(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.vault.create("Done", TASK, make_meta())  # an older task of the same name
    assert start("--task", TASK) == 0
    first = stop(setup)
    assert first is not None and "iteration 1 of 8" in first["reason"]
    setup.vault.claim(TASK, "local")
    assert stop(setup) is not None
    assert stop(setup, "another-session") is None
    capsys.readouterr()
    assert ralph("status") == 0
    out = capsys.readouterr().out
    assert "iteration: 2 of 8" in out and "session:   s1" in out
    assert f"task now:  In_Progress/local/{TASK}" in out
    done = setup.vault.complete(TASK, "local")
    assert done.name == "EMAIL_1_1.md"
    assert stop(setup) is None
    assert not setup.state_file.exists()
    assert "the task is done: Done/EMAIL_1_1.md" in setup.log


def test_a_failed_task_ends_the_loop(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert start("--task", TASK) == 0
    assert stop(setup) is not None
    (setup.vault.root / "Needs_Action" / TASK).rename(setup.vault.root / "Failed" / TASK)
    capsys.readouterr()
    assert ralph("status") == 0
    out = capsys.readouterr().out
    assert f"task now:  in Failed/{TASK}: it can no longer reach Done/" in out
    assert stop(setup) is None
    assert not setup.state_file.exists()
    assert f"the task can no longer reach Done/: it is in Failed/{TASK}" in setup.log
