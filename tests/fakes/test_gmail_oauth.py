"""The stand-in's OAuth endpoints are as strict as Google's, so sign-in tests prove something."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests.fakes.gmail import GmailStandIn

READ = "https://www.googleapis.com/auth/gmail.readonly"
REDIRECT = "http://127.0.0.1:8571/"


def authorize(gmail: GmailStandIn, **changes: str) -> requests.Response:
    verifier = changes.pop("verifier", "v" * 43)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": gmail.oauth.client_id,
        "redirect_uri": REDIRECT,
        "scope": READ,
        "state": "s1",
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
        "access_type": "offline",
        **changes,
    }
    return requests.get(gmail.auth_url, params=params, allow_redirects=False, timeout=10)


def answer(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


def exchange(
    gmail: GmailStandIn, code: str, secret: str | None = None, **changes: Any
) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": "v" * 43,
        **changes,
    }
    auth = (gmail.oauth.client_id, gmail.oauth.client_secret if secret is None else secret)
    return requests.post(gmail.token_url, data=form, auth=auth, timeout=10)


def test_consent_then_exchange_once(gmail: GmailStandIn) -> None:
    got = answer(authorize(gmail))
    assert got["state"] == "s1" and got["scope"] == READ
    token = exchange(gmail, got["code"]).json()
    assert token["scope"] == READ and token["refresh_token"] and token["expires_in"] > 0
    assert token["access_token"] in gmail.valid_tokens
    again = exchange(gmail, got["code"])  # a code works once
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"code_verifier": "w" * 43}, "invalid_grant"),
        ({"code_verifier": ""}, "invalid_grant"),
        ({"redirect_uri": "http://127.0.0.1:9/"}, "redirect_uri_mismatch"),
        ({"secret": "wrong"}, "invalid_client"),
    ],
)
def test_exchange_checks_verifier_redirect_and_client(
    gmail: GmailStandIn, changes: dict[str, str], error: str
) -> None:
    code = answer(authorize(gmail))["code"]
    refused = exchange(gmail, code, **changes)
    assert refused.status_code in (400, 401) and refused.json()["error"] == error


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"client_id": "other.apps.googleusercontent.com"}, 401, "invalid_client"),
        ({"redirect_uri": "http://example.com/cb"}, 400, "redirect_uri_mismatch"),
        ({"redirect_uri": "https://127.0.0.1:8571/"}, 400, "redirect_uri_mismatch"),
    ],
)
def test_a_bad_client_or_redirect_gets_an_error_page(
    gmail: GmailStandIn, changes: dict[str, str], status: int, error: str
) -> None:
    response = authorize(gmail, **changes)
    assert response.status_code == status and response.json()["error"] == error


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": ""}, "invalid_scope"),
        ({"scope": "https://www.googleapis.com/auth/drive"}, "invalid_scope"),
        ({"state": ""}, "invalid_request"),
    ],
)
def test_a_bad_request_is_answered_at_the_redirect(
    gmail: GmailStandIn, changes: dict[str, str], error: str
) -> None:
    assert answer(authorize(gmail, **changes))["error"] == error


def test_switches_deny_grant_less_and_refresh_tokens(gmail: GmailStandIn) -> None:
    gmail.oauth.deny = True
    assert answer(authorize(gmail)) == {"state": "s1", "error": "access_denied"}
    gmail.oauth.deny = False
    gmail.oauth.grant = []
    assert exchange(gmail, answer(authorize(gmail))["code"]).json()["scope"] == ""
    gmail.oauth.grant = None
    # consent given before and no prompt=consent: Google sends no new refresh token
    token = exchange(gmail, answer(authorize(gmail))["code"]).json()
    assert "refresh_token" not in token
    token = exchange(gmail, answer(authorize(gmail, prompt="consent"))["code"]).json()
    assert token["refresh_token"]
    gmail.oauth.refresh_tokens = False
    token = exchange(gmail, answer(authorize(gmail, prompt="consent"))["code"]).json()
    assert "refresh_token" not in token
