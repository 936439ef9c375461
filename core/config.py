"""Settings from the environment and an optional ``.env`` file kept outside the vault.

The real environment wins over the ``.env`` file. Every value is checked at
start: a bad one is a ConfigError that names the variable and says how to fix
it, before any work is done.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, SecretStr

from core.errors import ConfigError

ENV_FILE_VAR = "AI_EMPLOYEE_ENV_FILE"
ZONES = ("local", "cloud")
DEFAULT_VAULT = "~/AI_Employee_Vault"
DEFAULT_SECRETS = "~/.config/ai-employee"
DEFAULT_GMAIL_ENDPOINT = "https://gmail.googleapis.com"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class Settings(BaseModel):
    """Everything the product reads from its environment. Secrets never print."""

    model_config = ConfigDict(frozen=True)

    vault_path: Path
    zone: Literal["local", "cloud"] = "local"
    dry_run: bool = True
    secrets_dir: Path
    claim_lease_minutes: int = 60
    gmail_api_endpoint: str = DEFAULT_GMAIL_ENDPOINT
    gmail_watch_query: str = "is:unread is:important"
    odoo_url: str | None = None
    odoo_db: str | None = None
    odoo_user: str | None = None
    odoo_password: SecretStr | None = None
    social_urls: dict[str, str] = {}
    chromium_path: Path = Path("/usr/bin/chromium")
    tz: str = "UTC"


def parse_env_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines (comments, blank lines, ``export`` and quotes allowed)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if not match:
            raise ConfigError(f"{path}, line {number} is not KEY=VALUE", "fix or remove that line")
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value", f"set {name}=true or {name}=false")


def _zone(raw: str) -> Literal["local", "cloud"]:
    lowered = raw.strip().lower()
    if lowered in ZONES:
        return lowered  # type: ignore[return-value]
    raise ConfigError(
        f"ZONE={raw!r} is not a zone",
        "set ZONE=local on the owner's machine or ZONE=cloud on the cloud VM",
    )


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} is not a positive whole number", f"set {name}=60")
    return value


def _url(name: str, raw: str) -> str:
    # The value is never echoed: a mistyped URL may hold a password.
    if not re.match(r"^https?://[^\s/]+", raw):
        raise ConfigError(f"{name} is not an http(s) URL", f"set {name}=https://host[:port]")
    if "@" in raw.split("/")[2]:
        raise ConfigError(
            f"{name} has a user name or password in it",
            f"put only https://host[:port] in {name}; credentials go in their own settings",
        )
    return raw.rstrip("/")


def _one_line_text(name: str, raw: str | None) -> str | None:
    if raw is not None and (len(raw) > 500 or any(ord(c) < 32 for c in raw)):
        raise ConfigError(f"{name} must be one short line", f"fix {name}")
    return raw or None


def _path(raw: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(raw))).absolute()


def _env_file(environ: Mapping[str, str]) -> Path | None:
    explicit = environ.get(ENV_FILE_VAR)
    path = Path(explicit).expanduser() if explicit else Path.cwd() / ".env"
    if path.is_file():
        return path
    if explicit:
        raise ConfigError(
            f"{ENV_FILE_VAR} names {path}, which is not a file", "create it or unset the variable"
        )
    return None


def _inside(path: Path, folder: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base + os.sep)


def _refuse_env_inside_vault(env_file: Path, vault: Path) -> None:
    if _inside(env_file, vault):
        raise ConfigError(
            f"the .env file {env_file} is inside the vault, which is synced",
            "move it outside the vault (for example next to the repository)",
        )


def _timezone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"TZ={raw!r} is not a known time zone", "set TZ to a name such as Europe/London or UTC"
        ) from None
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``environ`` (default: os.environ) plus the optional .env file."""
    env = dict(os.environ if environ is None else environ)
    env_file = _env_file(env)
    # An empty variable counts as unset, so `${ZONE:-}` in .mcp.json leaves .env in charge.
    merged = {
        **(parse_env_file(env_file) if env_file else {}),
        **{k: v for k, v in env.items() if v},
    }
    vault = _path(merged.get("VAULT_PATH") or DEFAULT_VAULT)
    if env_file is not None:
        _refuse_env_inside_vault(env_file, vault)
    secrets_dir = _path(merged.get("SECRETS_DIR") or DEFAULT_SECRETS)
    if _inside(secrets_dir, vault):
        raise ConfigError(
            f"SECRETS_DIR {secrets_dir} is inside the vault, which is synced",
            "keep tokens outside the vault, for example in ~/.config/ai-employee",
        )
    get = merged.get
    password = get("ODOO_PASSWORD") or get("ODOO_API_KEY")
    return Settings(
        vault_path=vault,
        zone=_zone(get("ZONE") or "local"),
        dry_run=_bool("DRY_RUN", get("DRY_RUN") or "true"),
        secrets_dir=secrets_dir,
        claim_lease_minutes=_positive_int(
            "CLAIM_LEASE_MINUTES", get("CLAIM_LEASE_MINUTES") or "60"
        ),
        gmail_watch_query=_one_line_text("GMAIL_WATCH_QUERY", get("GMAIL_WATCH_QUERY"))
        or "is:unread is:important",
        gmail_api_endpoint=_url(
            "GMAIL_API_ENDPOINT", get("GMAIL_API_ENDPOINT") or DEFAULT_GMAIL_ENDPOINT
        ),
        odoo_url=_url("ODOO_URL", get("ODOO_URL")) if get("ODOO_URL") else None,
        odoo_db=get("ODOO_DB") or None,
        odoo_user=get("ODOO_USER") or None,
        odoo_password=SecretStr(password) if password else None,
        social_urls={
            key.removeprefix("SOCIAL_").removesuffix("_URL").lower(): _url(key, value)
            for key, value in merged.items()
            if key.startswith("SOCIAL_") and key.endswith("_URL") and value
        },
        chromium_path=_path(get("CHROMIUM_PATH") or "/usr/bin/chromium"),
        tz=_timezone(get("TZ") or "UTC"),
    )
