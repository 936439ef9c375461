"""``ai-employee doctor`` through the real console script: each check, its verdict and its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.vault_init import init_vault
from tests.fakes.gmail import GmailStandIn
from tests.servers.test_gmail_client import make_settings, write_token

REPO = Path(__file__).resolve().parents[2]


def doctor(**env: str) -> tuple[int, dict[str, dict[str, str]]]:
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "doctor", "--json"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, {c["name"]: c for c in json.loads(proc.stdout)}


def test_a_fresh_vault_is_ready_except_for_gmail(tmp_path: Path) -> None:
    vault = init_vault(tmp_path / "vault").vault
    code, checks = doctor(VAULT_PATH=str(vault))
    assert code == 0
    assert {name: c["verdict"] for name, c in checks.items()} == {
        "vault": "ok",
        "policy": "ok",
        "audit": "ok",
        "secrets": "ok",
        "gmail": "warn",
        "services": "ok",
    }
    assert "ai-employee auth gmail" in checks["gmail"]["detail"]


def test_problems_fail_with_their_fix(tmp_path: Path) -> None:
    vault = Path(init_vault(tmp_path / "vault").vault)
    handbook = vault / "Company_Handbook.md"
    handbook.write_text(handbook.read_text().replace("version: 1", "version: 7"))
    (vault / "Logs" / "audit-local.jsonl").write_text('{"seq": 1, "broken": true}\n')
    secrets = tmp_path / "open-secrets"
    secrets.mkdir(mode=0o755)
    secrets.chmod(0o755)
    code, checks = doctor(VAULT_PATH=str(vault), SECRETS_DIR=str(secrets))
    assert code == 1
    assert checks["policy"]["verdict"] == "fail" and "version" in checks["policy"]["detail"]
    assert checks["audit"]["verdict"] == "fail"
    assert checks["secrets"]["verdict"] == "fail" and "chmod 700" in checks["secrets"]["detail"]


def test_a_signed_in_gmail_token_is_checked(tmp_path: Path, gmail: GmailStandIn) -> None:
    settings = make_settings(tmp_path, gmail)
    write_token(settings, gmail, expired=True)  # doctor refreshes it at the stand-in
    env = {"VAULT_PATH": str(settings.vault_path), "SECRETS_DIR": str(settings.secrets_dir)}
    code, checks = doctor(**env)
    assert code == 0 and checks["gmail"]["verdict"] == "ok"
    assert "gmail.send" in checks["gmail"]["detail"]
    assert any(path == "/token" for _, path, *_ in gmail.requests)


def test_a_revoked_gmail_token_fails_with_the_fix(tmp_path: Path, gmail: GmailStandIn) -> None:
    settings = make_settings(tmp_path, gmail)
    write_token(settings, gmail, expired=True)
    gmail.revoke_token()
    env = {"VAULT_PATH": str(settings.vault_path), "SECRETS_DIR": str(settings.secrets_dir)}
    code, checks = doctor(**env)
    assert code == 1 and checks["gmail"]["verdict"] == "fail"
    assert "auth gmail" in checks["gmail"]["detail"]
    assert "1//0" not in json.dumps(checks) and "GOCSPX" not in json.dumps(checks)
