"""Settings: defaults, the environment, the optional .env file, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ENV_FILE_VAR, load_settings
from core.errors import ConfigError


def test_defaults_are_safe(isolated_env: Path) -> None:
    settings = load_settings({"HOME": str(isolated_env / "home")})
    assert settings.zone == "local"
    assert settings.dry_run is True
    assert settings.vault_path == isolated_env / "home" / "AI_Employee_Vault"
    assert settings.secrets_dir == isolated_env / "home" / ".config" / "ai-employee"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("off", False)],
)
def test_dry_run_values(raw: str, expected: bool) -> None:
    assert load_settings({"DRY_RUN": raw}).dry_run is expected


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"ZONE": "moon"}, "ZONE"),
        ({"DRY_RUN": "maybe"}, "DRY_RUN"),
        ({"CLAIM_LEASE_MINUTES": "-5"}, "CLAIM_LEASE_MINUTES"),
        ({"CLAIM_LEASE_MINUTES": "soon"}, "CLAIM_LEASE_MINUTES"),
        ({"GMAIL_API_ENDPOINT": "ftp://x"}, "GMAIL_API_ENDPOINT"),
        ({"ODOO_URL": "not a url"}, "ODOO_URL"),
        ({"SOCIAL_LINKEDIN_URL": "javascript:alert(1)"}, "SOCIAL_LINKEDIN_URL"),
        ({"TZ": "Mars/Olympus"}, "TZ"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert names in str(info.value)
    assert "Set" in str(info.value)


def test_zone_cloud_and_urls() -> None:
    settings = load_settings(
        {"ZONE": "cloud", "SOCIAL_LINKEDIN_URL": "http://127.0.0.1:9000/", "TZ": "Europe/London"}
    )
    assert settings.zone == "cloud"
    assert settings.social_urls == {"linkedin": "http://127.0.0.1:9000"}
    assert settings.tz == "Europe/London"


def test_env_file_is_read_and_environment_wins(isolated_env: Path) -> None:
    env_file = isolated_env / ".env"
    env_file.write_text(
        "# comment\nexport ZONE=cloud\nDRY_RUN='false'\nODOO_PASSWORD=\"s3cret-value\"\n"
    )
    settings = load_settings({"DRY_RUN": "true"})
    assert settings.zone == "cloud"
    assert settings.dry_run is True
    assert settings.odoo_password is not None
    assert settings.odoo_password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in str(settings.model_dump())


def test_explicit_env_file_must_exist(isolated_env: Path) -> None:
    with pytest.raises(ConfigError, match=ENV_FILE_VAR):
        load_settings({ENV_FILE_VAR: str(isolated_env / "missing.env")})


def test_malformed_env_file_names_the_line(isolated_env: Path) -> None:
    (isolated_env / ".env").write_text("ZONE=local\nthis is not an assignment\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_settings({})


def test_env_file_inside_the_vault_is_refused(isolated_env: Path) -> None:
    vault = isolated_env / "vault"
    vault.mkdir()
    (vault / ".env").write_text("ZONE=local\n")
    with pytest.raises(ConfigError, match="inside the vault"):
        load_settings({"VAULT_PATH": str(vault), ENV_FILE_VAR: str(vault / ".env")})


def test_env_file_naming_a_vault_that_contains_it(isolated_env: Path) -> None:
    (isolated_env / ".env").write_text(f"VAULT_PATH={isolated_env}\n")
    with pytest.raises(ConfigError, match="inside the vault"):
        load_settings({})


def test_secrets_dir_inside_the_vault_is_refused(isolated_env: Path) -> None:
    vault = isolated_env / "vault"
    with pytest.raises(ConfigError, match="SECRETS_DIR"):
        load_settings({"VAULT_PATH": str(vault), "SECRETS_DIR": str(vault / "tokens")})


def test_an_empty_variable_leaves_the_env_file_in_charge(tmp_path: Path) -> None:
    """What .mcp.json passes for an unset variable (``${ZONE:-}``) must not hide .env."""
    env_file = tmp_path / "settings.env"
    env_file.write_text("ZONE=cloud\nDRY_RUN=false\n")
    settings = load_settings(
        {"AI_EMPLOYEE_ENV_FILE": str(env_file), "ZONE": "", "DRY_RUN": "", "VAULT_PATH": ""}
    )
    assert (settings.zone, settings.dry_run) == ("cloud", False)
    assert settings.vault_path.name == "AI_Employee_Vault"
