"""Gmail sign-in and error mapping: the token file in SECRETS_DIR, scopes per zone, and what
each failure of a call means (retry, refuse, outcome unknown).

Scopes are least privilege per zone. Google has no drafts-only scope: ``gmail.compose``, which
the cloud zone needs for drafts, also permits sending. So a cloud token holding more than read +
compose is refused, and the client refuses to send in the cloud zone whatever the token allows.
"""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.config import Settings
from core.errors import (
    AIEmployeeError,
    ConfigError,
    ServiceError,
)
from core.fsutil import atomic_write
from core.secret_scan import redact_text
from servers.gmail_mcp.mail import clean_line

_AUTH = "https://www.googleapis.com/auth/"
READONLY, COMPOSE, SEND, MODIFY = (
    f"{_AUTH}gmail.{s}" for s in ("readonly", "compose", "send", "modify")
)
SCOPES: dict[str, list[str]] = {
    "local": [READONLY, COMPOSE, SEND, MODIFY],  # modify: mark_read
    "cloud": [READONLY, COMPOSE],
}
TOKEN_FILE = "gmail.token.json"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
BREAKER = "gmail"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_STEP = "run `ai-employee auth gmail` to sign in again"
_MAX_TOKEN_FILE = 64 * 1024
GMAIL_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}


class GmailAuthError(ServiceError):
    """The Gmail token is expired or revoked."""


class GmailUnavailableError(ServiceError):
    """Gmail did not answer usefully: 429, 5xx, a timeout or a dropped connection."""


class GmailRequestError(ServiceError):
    """Gmail refused a read as malformed, not allowed or not found."""


class HistoryExpiredError(ServiceError):
    """Gmail no longer has history from the given id; a full resync is needed."""


class GmailOutcomeUnknownError(ServiceError):
    """A write got no clear answer: it may or may not have happened. Never retried."""


# -- credentials ---------------------------------------------------------------------------
def token_path(settings: Settings) -> Path:
    return settings.secrets_dir / TOKEN_FILE


def _read_token_file(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(f"there is no Gmail token at {path}", AUTH_STEP) from None
    except OSError as exc:
        if os.path.islink(path):
            raise ConfigError(
                f"the Gmail token {path} is a symbolic link, which is refused",
                f"put the real file there (`chmod 600 {path}`), or {AUTH_STEP}",
            ) from None
        why = f"the Gmail token {path} cannot be read ({exc.strerror})"
        raise ConfigError(why, AUTH_STEP) from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"the Gmail token {path} is not a regular file", AUTH_STEP)
        if st.st_mode & 0o077:
            raise ConfigError(
                f"the Gmail token {path} is readable by others (mode {st.st_mode & 0o777:o})",
                f"run `chmod 600 {path}`",
            )
        if st.st_uid != os.getuid():
            raise ConfigError(f"the Gmail token {path} belongs to another user", AUTH_STEP)
        data = handle.read(_MAX_TOKEN_FILE + 1)
    try:
        info = json.loads(data) if len(data) <= _MAX_TOKEN_FILE else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise ConfigError(f"the Gmail token {path} is not a token file", AUTH_STEP)
    missing = [k for k in ("refresh_token", "client_id", "client_secret") if not info.get(k)]
    if missing:
        raise ConfigError(f"the Gmail token {path} lacks {', '.join(missing)}", AUTH_STEP)
    return info


def https_or_loopback(uri: str) -> bool:
    """True for https, or plain http to this machine only (a local stand-in)."""
    parts = urlsplit(uri)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)


def _token_uri(info: dict[str, Any], path: Path) -> str:
    uri = str(info.get("token_uri") or GOOGLE_TOKEN_URI)
    if https_or_loopback(uri):
        return uri
    raise ConfigError(f"the Gmail token {path} names a token_uri that is not https", AUTH_STEP)


def _scopes(info: dict[str, Any], zone: str, path: Path) -> list[str]:
    granted = info.get("scopes") or []
    granted = set(granted.split() if isinstance(granted, str) else granted)
    allowed = SCOPES[zone]
    if zone == "cloud" and granted - set(allowed):
        names = ", ".join(sorted(s.removeprefix(_AUTH) for s in granted - set(allowed)))
        raise ConfigError(
            f"the Gmail token {path} grants {names}; the cloud zone may hold only read + compose",
            "sign in again with ZONE=cloud (`ai-employee auth gmail`) for a read + compose token",
        )
    return [s for s in allowed if s in granted] if granted else list(allowed)


def _expiry(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime(1970, 1, 1)  # unreadable: treat as expired, so it is refreshed
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def load_credentials(settings: Settings, *, timeout: float = 30.0) -> Any:
    """The Gmail OAuth credentials from SECRETS_DIR, refreshed (and saved back) if expired."""
    from google.oauth2.credentials import Credentials

    path = token_path(settings)
    info = _read_token_file(path)
    creds = Credentials(
        token=info.get("token") or None,
        refresh_token=info["refresh_token"],
        token_uri=_token_uri(info, path),
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        scopes=_scopes(info, settings.zone, path),
        expiry=_expiry(info.get("expiry")),
    )
    if not creds.valid:
        from google.auth.transport.requests import Request

        request = Request()
        try:
            creds.refresh(lambda *args, **kwargs: request(*args, **{"timeout": timeout, **kwargs}))
        except Exception as exc:
            raise read_error(exc) from None
        save_credentials(settings, creds)
    return creds


def save_credentials(settings: Settings, credentials: Any) -> None:
    """Write the token to SECRETS_DIR atomically, mode 0600, keeping the file's other fields."""
    path = token_path(settings)
    try:
        current = _read_token_file(path)
    except ConfigError:
        current = {}
    info = {**current, **json.loads(credentials.to_json())}
    settings.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, json.dumps(info, indent=2).encode(), mode=0o600)


# -- errors --------------------------------------------------------------------------------
def http_status(exc: BaseException) -> int | None:
    from googleapiclient.errors import HttpError

    return int(exc.resp.status) if isinstance(exc, HttpError) else None


def refused_auth(exc: BaseException) -> bool:
    from google.auth.exceptions import RefreshError

    return http_status(exc) == 401 or (
        isinstance(exc, RefreshError) and not getattr(exc, "retryable", False)
    )


def is_outage(exc: BaseException) -> bool:
    """True when Gmail (or the way to it) failed, as opposed to answering no."""
    from google.auth.exceptions import RefreshError, TransportError
    from httplib2 import HttpLib2Error

    status = http_status(exc)
    if status is not None:
        details = getattr(exc, "error_details", None) or []
        reasons = {d.get("reason") for d in details if isinstance(d, dict)}
        return status == 429 or status >= 500 or (status == 403 and bool(reasons & _RATE_REASONS))
    if isinstance(exc, RefreshError):
        return bool(getattr(exc, "retryable", False))
    if isinstance(exc, AIEmployeeError):
        return isinstance(exc, GmailUnavailableError)
    return isinstance(exc, OSError | TimeoutError | TransportError | HttpLib2Error)


def detail(exc: BaseException) -> str:
    status = http_status(exc)
    text = f"HTTP {status}: {getattr(exc, 'reason', '')}" if status else type(exc).__name__
    if not status and isinstance(exc, OSError):
        text = f"{text}: {exc}"
    return redact_text(clean_line(text, 300))


def read_error(exc: BaseException, not_found: ServiceError | None = None) -> BaseException:
    if isinstance(exc, AIEmployeeError):
        return exc
    if refused_auth(exc):
        return GmailAuthError("the Gmail token is expired or revoked", AUTH_STEP)
    if http_status(exc) == 404 and not_found is not None:
        return not_found
    if is_outage(exc):
        return GmailUnavailableError(
            f"Gmail did not answer ({detail(exc)})",
            "try again later; check the network and GMAIL_API_ENDPOINT if it persists",
        )
    if http_status(exc):
        return GmailRequestError(f"Gmail refused the request ({detail(exc)})", "check its input")
    return exc
