"""``ai-employee auth gmail``: sign in with Google's installed-app flow; the token goes to
SECRETS_DIR with mode 0600.

Google answers by redirecting the browser to a loopback address (its out-of-band flow is gone).
By default a one-shot server on 127.0.0.1 catches that answer; ``--no-browser`` only prints the
address (open it yourself, through SSH port forwarding if need be). ``--console`` is for a
headless machine: open the address on any machine, then paste the address the browser was sent
to (or just its code). The state is checked, PKCE is used, and the token must hold exactly what
the zone needs before it is saved.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import secrets
import sys
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from core.config import load_settings
from core.errors import AIEmployeeError, ConfigError
from core.secret_scan import redact_text
from servers.gmail_mcp.auth import SCOPES, https_or_loopback, save_credentials, token_path
from servers.gmail_mcp.mail import clean_line

CLIENT_SECRETS_FILE = "gmail.client_secret.json"
CONSOLE_PORT = 8571  # --console: the loopback port the browser is sent to (nothing listens)
PERMISSIONS_URL = "https://myaccount.google.com/permissions"
CREDENTIALS_URL = "https://console.cloud.google.com/apis/credentials"
WAIT_SECONDS = 600
_INSECURE = "OAUTHLIB_INSECURE_TRANSPORT"
_AUTH_PREFIX = "https://www.googleapis.com/auth/"
_MAX_FILE = 64 * 1024
_REQUIRED = ("client_id", "client_secret", "auth_uri", "token_uri")
_AGAIN = "run `ai-employee auth gmail` again"


def port_number(raw: str) -> int:
    """argparse type for --port: 0 (any free port) to 65535."""
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number (0-65535)")
    return value


def cmd_auth(args: argparse.Namespace) -> int:
    settings = load_settings()
    path = Path(args.client_secrets or settings.secrets_dir / CLIENT_SECRETS_FILE)
    config = read_client_secrets(path)
    token = _sign_in(config, SCOPES[settings.zone], args)
    granted = _granted(token, SCOPES[settings.zone])
    _check_scopes(granted, settings.zone)
    if not token.get("refresh_token"):
        raise AIEmployeeError(
            "Google sent no refresh token, so the sign-in would not last; nothing was saved",
            f"remove this app's access at {PERMISSIONS_URL}, then {_AGAIN} "
            "(it asks for consent each time, which normally brings one)",
        )
    save_credentials(settings, _credentials(token, config, granted))
    print(f"Signed in to Gmail for the {settings.zone} zone.")
    print(f"  token saved to {token_path(settings)} (mode 600)")
    print(f"  scopes: {_names(granted)}")
    print("Check it with: ai-employee doctor")
    return 0


# -- the client secrets file ---------------------------------------------------------------
def _download_step(path: Path) -> str:
    return (
        f"in Google Cloud console ({CREDENTIALS_URL}) create an OAuth client ID of type "
        f"Desktop app, download its JSON and save it as {path}, or pass --client-secrets FILE"
    )


def read_client_secrets(path: Path) -> dict[str, str]:
    """The ``installed`` block of a client secrets file, checked; refused with the fix."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"there is no Gmail client secrets file at {path}", _download_step(path)
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"the Gmail client secrets file {path} cannot be read ({exc.strerror or exc})",
            f"check its permissions, or {_download_step(path)}",
        ) from None
    try:
        info = json.loads(data) if len(data) <= _MAX_FILE else None
    except ValueError:
        info = None
    if isinstance(info, dict) and "web" in info and "installed" not in info:
        raise ConfigError(
            f"the Gmail client secrets file {path} is for a web application",
            _download_step(path),
        )
    installed = info.get("installed") if isinstance(info, dict) else None
    if not isinstance(installed, dict):
        raise ConfigError(
            f"{path} is not a Google client secrets file for a Desktop app",
            _download_step(path),
        )
    missing = [k for k in _REQUIRED if not isinstance(installed.get(k), str) or not installed[k]]
    if missing:
        raise ConfigError(
            f"the Gmail client secrets file {path} lacks {', '.join(missing)}",
            _download_step(path),
        )
    for key in ("auth_uri", "token_uri"):
        if not https_or_loopback(installed[key]):
            raise ConfigError(
                f"the Gmail client secrets file {path} names a {key} that is neither https "
                "nor a loopback address",
                _download_step(path),
            )
    return {k: v for k, v in installed.items() if isinstance(v, str)}


@contextmanager
def plain_http_for_loopback(config: dict[str, str]) -> Iterator[None]:
    """oauthlib refuses any http endpoint unless OAUTHLIB_INSECURE_TRANSPORT is set. Set it only
    while a flow runs against loopback http endpoints (a local stand-in), and put it back after;
    Google's https endpoints never need it. Non-loopback http was refused when reading the file.
    """
    if all(urlsplit(config[k]).scheme == "https" for k in ("auth_uri", "token_uri")):
        yield
        return
    previous = os.environ.get(_INSECURE)
    os.environ[_INSECURE] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_INSECURE, None)
        else:
            os.environ[_INSECURE] = previous


# -- the flow ------------------------------------------------------------------------------
def _sign_in(config: dict[str, str], scopes: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Run the flow; the token answer as a dict (never printed)."""
    import requests
    from google_auth_oauthlib.flow import InstalledAppFlow
    from oauthlib.oauth2.rfc6749 import errors

    flow = InstalledAppFlow.from_client_config({"installed": config}, scopes=scopes)
    try:
        with plain_http_for_loopback(config):
            if args.console:
                _console(flow, args.port or CONSOLE_PORT)
            else:
                _local_server(flow, args.port, open_browser=not args.no_browser)
        return dict(flow.oauth2session.token)
    except Warning as changed:  # oauthlib: the granted scopes differ from those asked for
        token = getattr(changed, "token", None)
        if not isinstance(token, dict):
            raise
        return dict(token)
    except errors.AccessDeniedError:
        raise AIEmployeeError(
            "access was not allowed on Google's consent screen; nothing was saved",
            f"{_AGAIN} and choose Allow",
        ) from None
    except errors.MismatchingStateError:
        raise _state_mismatch() from None
    except errors.OAuth2Error as exc:
        raise AIEmployeeError(
            f"Google refused the sign-in ({_clean(exc.error or type(exc).__name__)}: "
            f"{_clean(exc.description or '')}); nothing was saved",
            f"check the client secrets file, then {_AGAIN}",
        ) from None
    except requests.RequestException as exc:
        raise AIEmployeeError(
            f"could not reach Google's token endpoint {config['token_uri']} "
            f"({type(exc).__name__}); nothing was saved",
            f"check the network, then {_AGAIN}",
        ) from None


def _local_server(flow: Any, port: int, *, open_browser: bool) -> None:
    from google_auth_oauthlib.flow import WSGITimeoutError

    if open_browser and not _browser_available():
        print("No web browser found here: open the address below yourself, or use --console.")
        open_browser = False
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)  # the address must show before the wait
    try:
        flow.run_local_server(
            host="127.0.0.1",
            port=port,
            open_browser=open_browser,
            authorization_prompt_message=(
                "Open this address in a browser and allow access:\n\n    {url}\n\n"
                "Waiting for the browser to come back to this machine "
                "(over SSH, forward the port with --port; on another machine use --console)."
            ),
            success_message="Signed in. You can close this tab and go back to the terminal.",
            timeout_seconds=WAIT_SECONDS,
            prompt="consent",
        )
    except WSGITimeoutError:
        raise AIEmployeeError(
            f"the browser did not come back within {WAIT_SECONDS // 60} minutes; nothing was saved",
            f"{_AGAIN}, or use --console",
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        raise AIEmployeeError(
            f"cannot listen on 127.0.0.1 port {port} ({exc.strerror})",
            "pass --port with a free port above 1023, or --port 0 for any free one",
        ) from None


def _browser_available() -> bool:
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def _console(flow: Any, port: int) -> None:
    flow.redirect_uri = f"http://127.0.0.1:{port}/"
    url, state = flow.authorization_url(prompt="consent")
    print("Open this address in a browser on any machine and allow access:\n")
    print(f"    {url}\n")
    print(
        f"The browser is then sent to http://127.0.0.1:{port}/ and shows that it cannot "
        "connect; that is expected.\nCopy the whole address from its address bar (or just "
        "the code in it) and paste it here."
    )
    print("Address or code: ", end="", flush=True)
    pasted = sys.stdin.readline(8192)
    flow.fetch_token(code=code_from_paste(pasted, state))


def code_from_paste(pasted: str, state: str) -> str:
    """The code from a pasted redirect address (its state must match) or a bare code."""
    text = pasted.strip()
    if not text:
        raise AIEmployeeError("nothing was pasted; nothing was saved", _AGAIN)
    if "?" in text or "=" in text:
        query = text.split("?", 1)[-1].split("#", 1)[0]
        params = dict(parse_qsl(query, keep_blank_values=True))
        if not secrets.compare_digest(params.get("state", "").encode(), state.encode()):
            raise _state_mismatch()
        if params.get("error") == "access_denied":
            raise AIEmployeeError(
                "access was not allowed on Google's consent screen; nothing was saved",
                f"{_AGAIN} and choose Allow",
            )
        if params.get("error"):
            raise AIEmployeeError(
                f"Google refused the sign-in ({_clean(params['error'])}); nothing was saved",
                f"check the client secrets file, then {_AGAIN}",
            )
        text = params.get("code", "")
    code = unquote(text)
    if not code or len(code) > 2048 or any(c.isspace() or ord(c) < 32 for c in code):
        raise AIEmployeeError(
            "the pasted text holds no authorization code; nothing was saved",
            f"{_AGAIN} and paste the whole address the browser was sent to after you allowed "
            "access",
        )
    return code


def _state_mismatch() -> AIEmployeeError:
    return AIEmployeeError(
        "the answer does not belong to this sign-in (its state differs); nothing was saved",
        f"{_AGAIN} and use the address it prints, once",
    )


# -- the token -----------------------------------------------------------------------------
def _granted(token: dict[str, Any], asked: list[str]) -> list[str]:
    """The granted scopes, the zone's first (a token answer without scope grants what was
    asked, as OAuth says)."""
    raw = token.get("scope")
    scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw or []]
    granted = set(scopes) if scopes else set(asked)
    return [s for s in asked if s in granted] + sorted(granted - set(asked))


def _check_scopes(granted: list[str], zone: str) -> None:
    need = SCOPES[zone]
    missing = [s for s in need if s not in granted]
    if missing:
        raise AIEmployeeError(
            f"Google granted no {_names(missing)}, which the {zone} zone needs; nothing was saved",
            f"{_AGAIN} and tick every Gmail permission on Google's consent screen",
        )
    extra = [s for s in granted if s not in need]
    if zone == "cloud" and extra:
        raise AIEmployeeError(
            f"Google also granted {_names(extra)}; the cloud zone may hold only read + compose, "
            "so nothing was saved",
            f"remove this app's access at {PERMISSIONS_URL}, then {_AGAIN} with ZONE=cloud",
        )


def _credentials(token: dict[str, Any], config: dict[str, str], granted: list[str]) -> Any:
    from google.oauth2.credentials import Credentials

    expires_at = token.get("expires_at")
    expiry = (
        datetime.fromtimestamp(float(expires_at), UTC).replace(tzinfo=None)
        if isinstance(expires_at, int | float)
        else None
    )
    return Credentials(
        token=token["access_token"],
        refresh_token=token["refresh_token"],
        token_uri=config["token_uri"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        scopes=granted,
        expiry=expiry,
    )


def _names(scopes: list[str]) -> str:
    return ", ".join(_clean(s.removeprefix(_AUTH_PREFIX)) for s in scopes)


def _clean(text: str) -> str:
    return redact_text(clean_line(str(text), 200))
