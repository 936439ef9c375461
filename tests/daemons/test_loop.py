"""The loop every daemon shares: exit codes, a heartbeat per pass, reasons said once, clean stop."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

import pytest

from core.audit import AuditLog
from core.errors import ServiceError
from core.heartbeat import read_heartbeats
from core.vault import Vault
from core.vault_init import init_vault
from daemons.loop import run_loop


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    root = Path(init_vault(tmp_path / "vault").vault)
    return Vault(root, audit=AuditLog(root, "local"), actor="test")


def test_once_returns_the_pass_outcome_and_beats(vault: Vault) -> None:
    assert run_loop("scheduler", vault, lambda: None, zone="local", once=True, interval=5) == 0
    (hb,) = read_heartbeats(vault.state_dir)
    assert hb.ok and hb.interval == 0

    def broken() -> None:
        raise ServiceError("Gmail did not answer", "try later")

    assert run_loop("scheduler", vault, broken, zone="local", once=True, interval=5) == 1
    (hb,) = read_heartbeats(vault.state_dir)
    assert not hb.ok and "did not answer" in hb.detail


def test_a_loop_keeps_going_says_each_reason_once_and_stops(
    vault: Vault, capsys: pytest.CaptureFixture[str]
) -> None:
    stop, passes = threading.Event(), []

    def flaky() -> None:
        passes.append(1)
        if len(passes) >= 6:
            stop.set()
        if len(passes) <= 3:
            raise OSError(28, "No space left on device")

    code = run_loop(
        "inbox_watcher", vault, flaky, zone="local", once=False, interval=0.01, stop=stop
    )
    out = capsys.readouterr().out
    assert code == 0 and len(passes) == 6
    assert out.count("No space left") == 1 and out.rstrip().endswith("inbox_watcher: stopped")
    (hb,) = read_heartbeats(vault.state_dir)
    assert hb.ok and hb.interval == 0.01


def test_an_unexpected_error_is_not_swallowed(vault: Vault) -> None:
    def bug() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_loop("scheduler", vault, bug, zone="local", once=True, interval=1)


@pytest.mark.parametrize(
    "daemon", ["approval_watcher", "gmail_watcher", "inbox_watcher", "scheduler"]
)
def test_each_daemon_s_own_entry_says_what_is_wrong_in_one_line(
    daemon: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAULT_PATH", str(tmp_path / "missing"))
    main = importlib.import_module(f"daemons.{daemon}").main
    assert main(["--once"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{daemon}: no vault at") and "init" in err[0]
