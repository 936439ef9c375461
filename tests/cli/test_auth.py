"""``ai-employee auth gmail`` end to end against the Gmail stand-in, over real HTTP on 127.0.0.1.

The test plays the user's browser: it opens the printed address at the stand-in, which consents
and redirects to the flow's loopback address. With the one-shot local server the browser follows
that redirect; with --console the test pastes the address (or the code) on stdin.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from cli.auth import CLIENT_SECRETS_FILE, CONSOLE_PORT
from cli.main import main
from core.config import load_settings
from core.vault_init import init_vault
from servers.gmail_mcp.auth import COMPOSE, READONLY, SCOPES, SEND, TOKEN_FILE
from servers.gmail_mcp.gmail import GmailClient
from tests.fakes.gmail import GmailStandIn

REPO = Path(__file__).resolve().parents[2]
INSECURE = "OAUTHLIB_INSECURE_TRANSPORT"
ADDRESS = re.compile(r"^\s+(http://127\.0\.0\.1:\d+/o/oauth2/auth\?\S+)$", re.MULTILINE)
Paste = Callable[[str], str]  # the redirect address -> what the user pastes


# -- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture
def secrets_dir() -> Path:
    return Path(os.environ["SECRETS_DIR"])  # a temp folder, mode 700 (tests/conftest.py)


@pytest.fixture(autouse=True)
def product_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gmail: GmailStandIn) -> None:
    empty = tmp_path / "empty.env"  # an explicit, empty .env: no user file leaks in
    empty.write_text("")
    monkeypatch.setenv("VAULT_PATH", str(init_vault(tmp_path / "vault").vault))
    monkeypatch.setenv("ZONE", "local")
    monkeypatch.setenv("GMAIL_API_ENDPOINT", gmail.url)
    monkeypatch.setenv("AI_EMPLOYEE_ENV_FILE", str(empty))
    monkeypatch.delenv(INSECURE, raising=False)


def write_client_secrets(gmail: GmailStandIn, path: Path, **changes: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gmail.client_secrets(**changes)))
    return path


def consent(address: str) -> str:
    """The browser at the stand-in's consent page: where it is redirected to."""
    answer = requests.get(address, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def secret_values(gmail: GmailStandIn) -> list[str]:
    codes = [body["code"] for _, path, _, body, _ in gmail.requests if path == "/token"]
    issued = [v for t in gmail.oauth.issued for k, v in t.items() if k.endswith("_token")]
    return [gmail.oauth.client_secret, *codes, *issued]


def assert_no_secrets(gmail: GmailStandIn, *texts: str) -> None:
    for value in secret_values(gmail):
        assert all(value not in text for text in texts)


def auth_request(gmail: GmailStandIn) -> dict[str, Any]:
    return next(q for _, path, q, *_ in gmail.requests if path == "/o/oauth2/auth")


def token_requests(gmail: GmailStandIn) -> list[dict[str, Any]]:
    return [body for _, path, _, body, _ in gmail.requests if path == "/token"]


def saved_token(secrets_dir: Path) -> dict[str, Any]:
    return json.loads((secrets_dir / TOKEN_FILE).read_text())


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


class Subprocess:
    """The real command in its own process; the test reads its output like a person would."""

    def __init__(self, *args: str, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "auth", "gmail", *args],
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._watchdog = threading.Timer(180, self.proc.kill)
        self._watchdog.start()
        self.out = ""

    def address(self) -> str:
        assert self.proc.stdout is not None
        while not ADDRESS.search(self.out):
            line = self.proc.stdout.readline()
            assert line, f"no address printed: {self.out}{self.finish()[1]}"
            self.out += line
        return ADDRESS.search(self.out).group(1)  # type: ignore[union-attr]

    def finish(self, stdin: str = "") -> tuple[int, str]:
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        try:
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.out += self.proc.stdout.read()
        err = self.proc.stderr.read()
        code = self.proc.wait()
        self._watchdog.cancel()
        assert "Traceback" not in err, err
        return code, err


class Browser:
    """Stands in for `webbrowser`: open() consents at the stand-in from another thread and
    follows the redirect to the flow's one-shot server."""

    def __init__(self) -> None:
        self.page = ""
        self.threads: list[threading.Thread] = []
        self.route: Callable[[str], str] = lambda address: address  # where the browser goes

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        def visit() -> None:
            self.page = requests.get(self.route(url), timeout=60).text

        thread = threading.Thread(target=visit, daemon=True)
        thread.start()
        self.threads.append(thread)
        return True

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Browser:
    fake = Browser()
    monkeypatch.setattr("webbrowser.get", lambda using=None: fake)
    return fake


class PastingUser:
    """Stands in for stdin in --console mode: reads the printed address, consents, pastes."""

    def __init__(self, capsys: pytest.CaptureFixture[str], paste: Paste) -> None:
        self.capsys, self.paste = capsys, paste
        self.seen = ""
        self.insecure_while_waiting: str | None = None

    def readline(self, limit: int = -1) -> str:
        self.insecure_while_waiting = os.environ.get(INSECURE)
        self.seen += self.capsys.readouterr().out
        match = re.search(r"^\s+(https?://\S+/o/oauth2/auth\?\S+)$", self.seen, re.MULTILINE)
        assert match, self.seen
        return self.paste(match.group(1)) + "\n"


def run_console(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    paste: Paste,
    *args: str,
) -> tuple[int, str, str, PastingUser]:
    user = PastingUser(capsys, paste)
    monkeypatch.setattr("sys.stdin", user)
    code = main(["auth", "gmail", "--console", *args])
    captured = capsys.readouterr()
    return code, user.seen + captured.out, captured.err, user


def with_param(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {**dict(parse_qsl(parts.query)), **params}
    return parts._replace(query=urlencode(query)).geturl()


# -- signing in ------------------------------------------------------------------------------
def test_browser_sign_in_saves_a_private_working_token(
    gmail: GmailStandIn, secrets_dir: Path
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    cli = Subprocess("--no-browser")
    address = cli.address()
    page = requests.get(address, timeout=60)  # the browser follows the redirect to the CLI
    code, err = cli.finish()
    assert code == 0, err
    assert page.status_code == 200 and "Signed in" in page.text

    asked = auth_request(gmail)
    assert urlsplit(asked["redirect_uri"]).hostname == "127.0.0.1"
    assert asked["code_challenge_method"] == "S256" and asked["prompt"] == "consent"
    assert asked["access_type"] == "offline" and asked["scope"].split() == SCOPES["local"]
    assert token_requests(gmail)[0]["code_verifier"]

    path = secrets_dir / TOKEN_FILE
    token = saved_token(secrets_dir)
    assert mode(path) == 0o600
    assert token["refresh_token"] == gmail.oauth.issued[0]["refresh_token"]
    assert token["client_id"] == gmail.oauth.client_id
    assert token["token_uri"] == gmail.token_url and token["scopes"] == SCOPES["local"]
    assert str(path) in cli.out and "gmail.send" in cli.out
    assert_no_secrets(gmail, cli.out, err)
    assert INSECURE not in os.environ

    gmail.require_token("someone-else")  # from now on only tokens the stand-in issued work
    assert GmailClient(load_settings(), timeout=10).profile().email_address == "me@example.com"


def test_console_sign_in_by_pasting_the_address(gmail: GmailStandIn, tmp_path: Path) -> None:
    fresh = tmp_path / "new-secrets"  # does not exist yet
    secrets_file = write_client_secrets(gmail, tmp_path / "downloads" / "client.json")
    cli = Subprocess("--console", "--client-secrets", str(secrets_file), SECRETS_DIR=str(fresh))
    redirect = consent(cli.address())
    assert redirect.startswith(f"http://127.0.0.1:{CONSOLE_PORT}/?")
    code, err = cli.finish(redirect + "\n")
    assert code == 0, err
    assert mode(fresh) == 0o700 and mode(fresh / TOKEN_FILE) == 0o600
    assert sorted(p.name for p in fresh.iterdir()) == [TOKEN_FILE]
    assert saved_token(fresh)["refresh_token"] == gmail.oauth.issued[0]["refresh_token"]
    assert_no_secrets(gmail, cli.out, err)


def test_pasting_just_the_code_works_and_port_is_honoured(
    gmail: GmailStandIn,
    secrets_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)

    def paste_code(address: str) -> str:
        return dict(parse_qsl(urlsplit(consent(address)).query))["code"]

    code, out, err, user = run_console(capsys, monkeypatch, paste_code, "--port", "9123")
    assert code == 0, err
    assert auth_request(gmail)["redirect_uri"] == "http://127.0.0.1:9123/"
    assert token_requests(gmail)[0]["redirect_uri"] == "http://127.0.0.1:9123/"
    assert saved_token(secrets_dir)["scopes"] == SCOPES["local"]
    # plain http was allowed for the loopback stand-in during the flow only
    assert user.insecure_while_waiting == "1" and INSECURE not in os.environ
    assert_no_secrets(gmail, out, err)


def test_a_second_sign_in_replaces_the_token(
    gmail: GmailStandIn,
    secrets_dir: Path,
    browser: Browser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    assert main(["auth", "gmail"]) == 0
    browser.join()
    first = saved_token(secrets_dir)
    assert main(["auth", "gmail"]) == 0  # prompt=consent brings a new refresh token
    browser.join()
    second = saved_token(secrets_dir)
    assert second["refresh_token"] == gmail.oauth.issued[1]["refresh_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token"] != first["token"]
    assert mode(secrets_dir / TOKEN_FILE) == 0o600
    out, err = capsys.readouterr()
    assert "Signed in" in browser.page
    assert_no_secrets(gmail, out, err)

    assert main(["doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["gmail"]["verdict"] == "ok"
    assert "gmail.readonly" in checks["gmail"]["detail"]
    assert "gmail.send" in checks["gmail"]["detail"]


def test_cloud_zone_asks_for_and_keeps_read_and_compose_only(
    gmail: GmailStandIn,
    secrets_dir: Path,
    browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZONE", "cloud")
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    assert main(["auth", "gmail"]) == 0
    browser.join()
    assert set(auth_request(gmail)["scope"].split()) == {READONLY, COMPOSE}
    assert saved_token(secrets_dir)["scopes"] == [READONLY, COMPOSE]
    assert GmailClient(load_settings(), timeout=10).profile().email_address == "me@example.com"


def test_local_zone_keeps_extra_scopes_google_adds(
    gmail: GmailStandIn, secrets_dir: Path, browser: Browser
) -> None:
    labels = "https://www.googleapis.com/auth/gmail.labels"
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    gmail.oauth.grant = [labels, *reversed(SCOPES["local"])]
    assert main(["auth", "gmail"]) == 0
    browser.join()
    assert saved_token(secrets_dir)["scopes"] == [*SCOPES["local"], labels]


# -- refusals ----------------------------------------------------------------------------------
def test_missing_client_secrets_file_says_where_to_get_it(
    gmail: GmailStandIn, secrets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["auth", "gmail"]) == 1
    err = capsys.readouterr().err
    assert str(secrets_dir / CLIENT_SECRETS_FILE) in err
    assert "Desktop app" in err and "console.cloud.google.com" in err
    assert "--client-secrets" in err
    assert gmail.requests == [] and not (secrets_dir / TOKEN_FILE).exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json {", "not a Google client secrets file"),
        ("[]", "not a Google client secrets file"),
        ('{"web": {"client_id": "x"}}', "is for a web application"),
        ('{"installed": {"client_id": "x"}}', "lacks client_secret, auth_uri, token_uri"),
        ("x" * 70_000, "not a Google client secrets file"),
    ],
)
def test_malformed_client_secrets_are_refused(
    gmail: GmailStandIn,
    tmp_path: Path,
    secrets_dir: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    says: str,
) -> None:
    path = tmp_path / "client.json"
    path.write_text(content)
    assert main(["auth", "gmail", "--client-secrets", str(path)]) == 1
    err = capsys.readouterr().err
    assert says in err and "Desktop app" in err
    assert gmail.requests == [] and not (secrets_dir / TOKEN_FILE).exists()


def test_unreadable_client_secrets_and_plain_http_endpoints_are_refused(
    gmail: GmailStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["auth", "gmail", "--client-secrets", str(tmp_path)]) == 1
    assert "cannot be read" in capsys.readouterr().err
    remote = write_client_secrets(
        gmail, tmp_path / "remote.json", token_uri="http://oauth.example.com/token"
    )
    assert main(["auth", "gmail", "--client-secrets", str(remote)]) == 1
    assert "token_uri that is neither https nor a loopback" in capsys.readouterr().err
    assert gmail.requests == []


@pytest.mark.parametrize("how", ["browser", "console"])
def test_consent_denied_saves_nothing(
    gmail: GmailStandIn,
    secrets_dir: Path,
    browser: Browser,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    gmail.oauth.deny = True
    if how == "browser":
        assert main(["auth", "gmail"]) == 1
        browser.join()
        err = capsys.readouterr().err
    else:
        code, _, err, _ = run_console(capsys, monkeypatch, consent)
        assert code == 1
    assert "access was not allowed" in err and "Allow" in err
    assert token_requests(gmail) == [] and not (secrets_dir / TOKEN_FILE).exists()
    assert INSECURE not in os.environ


@pytest.mark.parametrize(
    ("paste", "says"),
    [
        (lambda a: with_param(consent(a), state="forged-state"), "state differs"),
        (lambda a: with_param(consent(a), state=""), "state differs"),
        (lambda a: a, "holds no authorization code"),  # the consent address itself
        (lambda a: "", "nothing was pasted"),
        (lambda a: "two words", "holds no authorization code"),
    ],
)
def test_a_foreign_or_empty_paste_is_refused(
    gmail: GmailStandIn,
    secrets_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    paste: Paste,
    says: str,
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    code, out, err, _ = run_console(capsys, monkeypatch, paste)
    assert code == 1 and says in err
    assert token_requests(gmail) == [] and not (secrets_dir / TOKEN_FILE).exists()
    assert_no_secrets(gmail, out, err)


def test_a_forged_answer_to_the_local_server_is_refused(
    gmail: GmailStandIn,
    secrets_dir: Path,
    browser: Browser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    browser.route = lambda address: with_param(consent(address), state="forged-state")
    assert main(["auth", "gmail"]) == 1
    browser.join()
    assert "state differs" in capsys.readouterr().err
    assert token_requests(gmail) == [] and not (secrets_dir / TOKEN_FILE).exists()


def test_missing_scopes_are_refused_and_the_old_token_kept(
    gmail: GmailStandIn,
    secrets_dir: Path,
    browser: Browser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    assert main(["auth", "gmail"]) == 0
    browser.join()
    before = (secrets_dir / TOKEN_FILE).read_text()
    gmail.oauth.grant = [READONLY, COMPOSE]  # the user unticked send and modify
    assert main(["auth", "gmail"]) == 1
    browser.join()
    err = capsys.readouterr().err
    assert "granted no gmail.send, gmail.modify" in err and "tick every Gmail permission" in err
    assert (secrets_dir / TOKEN_FILE).read_text() == before


def test_cloud_zone_refuses_a_token_that_can_send(
    gmail: GmailStandIn,
    secrets_dir: Path,
    browser: Browser,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZONE", "cloud")
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    gmail.oauth.grant = [READONLY, COMPOSE, SEND]  # earlier grants came along
    assert main(["auth", "gmail"]) == 1
    browser.join()
    err = capsys.readouterr().err
    assert "also granted gmail.send" in err and "only read + compose" in err
    assert "https://myaccount.google.com/permissions" in err
    assert not (secrets_dir / TOKEN_FILE).exists()
    assert_no_secrets(gmail, err)


def test_no_refresh_token_is_refused(
    gmail: GmailStandIn,
    secrets_dir: Path,
    browser: Browser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    gmail.oauth.refresh_tokens = False
    assert main(["auth", "gmail"]) == 1
    browser.join()
    err = capsys.readouterr().err
    assert "no refresh token" in err and "https://myaccount.google.com/permissions" in err
    assert not (secrets_dir / TOKEN_FILE).exists()
    assert_no_secrets(gmail, err)


def test_https_endpoints_never_relax_oauthlib(
    gmail: GmailStandIn,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        closed = f"https://127.0.0.1:{probe.getsockname()[1]}"
    path = write_client_secrets(
        gmail, tmp_path / "c.json", auth_uri=closed + "/o/oauth2/auth", token_uri=closed + "/token"
    )
    code, _, err, user = run_console(
        capsys, monkeypatch, lambda a: "4/0-some-code", "--client-secrets", str(path)
    )
    assert code == 1 and "could not reach Google's token endpoint" in err
    assert user.insecure_while_waiting is None


def test_a_busy_port_is_refused_with_the_fix(
    gmail: GmailStandIn, secrets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_client_secrets(gmail, secrets_dir / CLIENT_SECRETS_FILE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["auth", "gmail", "--no-browser", "--port", port]) == 1
    err = capsys.readouterr().err
    assert f"port {port}" in err and "--port" in err


def test_bad_port_and_service_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["auth", "gmail", "--port", "70000"], ["auth", "outlook"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    with pytest.raises(SystemExit):
        main(["auth", "gmail", "--console", "--no-browser"])
    capsys.readouterr()
