"""deploy/systemd/: one user unit per daemon that `ai-employee run` knows, each one correct
for systemd (``systemd-analyze verify``) and keeping the product's rules: settings from a file
outside the vault, no zone or DRY_RUN forced, restarts bounded, logs in the journal."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from cli.commands import DAEMONS
from core.config import DEFAULT_VAULT, load_settings, parse_env_file

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "systemd"
ENV_FILE = "%h/.config/ai-employee/env"  # %h: the user's home, as systemd spells it
VENV_BIN = "%h/ai-employee/.venv/bin/"
# Options that need user namespaces in a user unit (see deploy/systemd/README.md).
NAMESPACED = (
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateUsers",
    "PrivateDevices",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
)
Unit = dict[str, list[tuple[str, str]]]


def parse_unit(path: Path) -> Unit:
    """Sections of (key, value) pairs in order; every assignment kept (systemd allows repeats)."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: no continued lines"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}:{number}: not KEY=VALUE in a section"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def one(unit: Unit, section: str, key: str) -> str:
    [value] = values(unit, section, key)
    return value


def unit_name(daemon: str) -> str:
    return f"ai-employee-{daemon.replace('_', '-')}"


UNITS = {daemon: DEPLOY / f"{unit_name(daemon)}.service" for daemon in DAEMONS}


@pytest.fixture(params=sorted(DAEMONS))
def daemon(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def unit(daemon: str) -> Unit:
    return parse_unit(UNITS[daemon])


def test_every_daemon_has_a_unit_and_every_unit_a_daemon() -> None:
    assert sorted(DEPLOY.glob("*.service")) == sorted(UNITS.values())
    assert set(DAEMONS) == {"approval_watcher", "gmail_watcher", "inbox_watcher", "scheduler"}


def test_each_unit_runs_its_daemon_as_a_loop(daemon: str, unit: Unit) -> None:
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert argv == [f"{VENV_BIN}ai-employee", "run", daemon]  # no --once: a loop until stopped
    assert one(unit, "Service", "Type") in {"simple", "exec"}
    assert one(unit, "Install", "WantedBy") == "default.target"  # a user unit


def test_each_unit_restarts_on_failure_within_limits(unit: Unit) -> None:
    assert one(unit, "Service", "Restart") in {"on-failure", "always"}
    assert int(one(unit, "Service", "RestartSec")) >= 5
    assert int(one(unit, "Unit", "StartLimitIntervalSec")) > 0
    assert 1 <= int(one(unit, "Unit", "StartLimitBurst")) <= 10


def test_settings_come_from_the_documented_file_outside_the_vault(unit: Unit) -> None:
    assert values(unit, "Service", "EnvironmentFile") == [ENV_FILE]  # no '-': it must exist
    vault = DEFAULT_VAULT.replace("~", "%h")
    assert not ENV_FILE.startswith(vault + "/")
    environment = dict(
        assignment.split("=", 1)
        for line in values(unit, "Service", "Environment")
        for assignment in shlex.split(line)
    )
    assert environment.get("AI_EMPLOYEE_ENV_FILE") == ENV_FILE  # the product checks it too
    # The file says which zone this is and whether anything goes out; a unit never does.
    assert not {"ZONE", "DRY_RUN", "VAULT_PATH", "SECRETS_DIR"} & set(environment)


def test_each_unit_logs_to_the_journal_and_stops_on_sigterm(daemon: str, unit: Unit) -> None:
    assert one(unit, "Service", "StandardOutput") == "journal"
    assert one(unit, "Service", "StandardError") == "journal"
    assert one(unit, "Service", "SyslogIdentifier") == unit_name(daemon)
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    assert 10 <= int(one(unit, "Service", "TimeoutStopSec")) <= 120


def test_hardening_is_what_works_in_a_user_unit(unit: Unit) -> None:
    for key in ("NoNewPrivileges", "LockPersonality", "RestrictRealtime", "RestrictSUIDSGID"):
        assert one(unit, "Service", key) == "yes", key
    assert one(unit, "Service", "UMask") == "0077"
    used = {key for pairs in unit.values() for key, _ in pairs}
    assert not used & set(NAMESPACED)


def test_the_example_env_file_is_safe_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = DEPLOY / "env.example"
    example_values = parse_env_file(example)
    assert example_values["DRY_RUN"] == "true" and example_values["ZONE"] == "local"
    assert not [
        key for key in example_values if "PASSWORD" in key or "KEY" in key or "TOKEN" in key
    ]
    home = tmp_path / "someone"
    monkeypatch.setenv("HOME", str(home))
    installed = home / ".config" / "ai-employee" / "env"
    installed.parent.mkdir(parents=True)
    shutil.copy(example, installed)
    settings = load_settings({"AI_EMPLOYEE_ENV_FILE": str(installed)})
    assert settings.vault_path == home / "AI_Employee_Vault"
    assert settings.secrets_dir == installed.parent
    assert settings.dry_run is True and settings.zone == "local"
    assert settings.gmail_watch_query == "is:unread is:important"


def test_the_readme_says_how_to_install_run_and_read_them() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for path in UNITS.values():
        assert f"`{path.name}`" in readme
    for needed in (
        "~/.config/ai-employee/env",
        "install -m 600",
        "loginctl enable-linger",
        "journalctl --user -u ",
        "systemctl --user daemon-reload",
        "git pull",
    ):
        assert needed in readme, needed


def _verify(units: list[Path], home: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: apt-get install systemd"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run(
        [tool, "verify", "--user", *map(str, units)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify --user``: every key known, every value parsed, ExecStart found
    (under a stand-in home, where %h/ai-employee/.venv/bin/ai-employee is a stub)."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    runtime.mkdir(mode=0o700)
    stub = home / "ai-employee" / ".venv" / "bin" / "ai-employee"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = [shutil.copy(path, tmp_path / path.name) for path in UNITS.values()]
    proc = _verify([Path(unit) for unit in units], home, runtime)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    # The check is not vacuous: a unit with a mistake is reported.
    bad = tmp_path / "ai-employee-bad.service"
    text = UNITS["scheduler"].read_text().replace("Restart=on-failure", "Restart=sometimes")
    bad.write_text(text.replace("NoNewPrivileges=", "NoNewPrivilege="))
    proc = _verify([bad], home, runtime)
    assert "restart specifier" in proc.stderr and "NoNewPrivilege" in proc.stderr
