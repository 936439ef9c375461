"""Google's OAuth endpoints as the Gmail stand-in serves them, for tests.

The consent page (``GET /o/oauth2/auth``) acts as a user who consents, or refuses when ``deny``
is set: it checks the request like Google does for a Desktop app client and redirects (302) to
the loopback ``redirect_uri`` with ``code`` and ``state``, or with ``error=access_denied``.
``POST /token`` exchanges a code once (client, redirect_uri and PKCE verifier checked) and
refreshes access tokens. A refresh token comes back only for ``access_type=offline`` on the
first consent or with ``prompt=consent``, as with Google. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

AUTH_PATH = "/o/oauth2/auth"
GMAIL_SCOPE_PREFIX = "https://www.googleapis.com/auth/gmail."
LOOPBACK = ("127.0.0.1", "localhost", "::1")
Answer = tuple[int, Any]


@dataclass(frozen=True)
class Redirect:
    """A 302 answer to the browser."""

    location: str


def _fail(error: str, description: str, status: int = 400) -> Answer:
    return status, {"error": error, "error_description": description}


def _one(q: dict[str, Any], name: str) -> str:
    value = q.get(name)
    return value if isinstance(value, str) else ""


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in LOOPBACK


class OAuthStandIn:
    """One Desktop app client (``client_id``, ``client_secret``) and one consenting user.

    Test switches: ``deny`` (the user clicks Cancel), ``grant`` (the scopes the user grants;
    ``None`` grants what was asked), ``refresh_tokens`` (``False``: never send one).
    """

    def __init__(self, mint_access_token: Callable[[], str]) -> None:
        self._mint = mint_access_token
        self.client_id = f"{secrets.token_hex(6)}-stand-in.apps.googleusercontent.com"
        self.client_secret = "GOC" + "SPX-" + secrets.token_urlsafe(18)
        self.deny = False
        self.grant: list[str] | None = None
        self.refresh_tokens = True
        self.issued: list[dict[str, Any]] = []  # every token answer, for leak checks
        self._codes: dict[str, dict[str, Any]] = {}
        self._consented: set[str] = set()

    # -- the consent page ----------------------------------------------------------------------
    def authorize(self, q: dict[str, Any]) -> Answer:
        """GET /o/oauth2/auth. Bad client or redirect: an error page; else a redirect."""
        redirect_uri = _one(q, "redirect_uri")
        if _one(q, "client_id") != self.client_id:
            return _fail("invalid_client", "The OAuth client was not found.", 401)
        if not _loopback(redirect_uri):
            return _fail("redirect_uri_mismatch", "Desktop clients redirect to a loopback address")
        problem = self._request_problem(q)
        if problem is not None:
            return self._redirect(redirect_uri, q, error=problem)
        if self.deny:
            return self._redirect(redirect_uri, q, error="access_denied")
        asked = _one(q, "scope").split()
        granted = list(self.grant) if self.grant is not None else asked
        offline = _one(q, "access_type") == "offline"
        fresh = "consent" in _one(q, "prompt").split() or self.client_id not in self._consented
        self._consented.add(self.client_id)
        code = "4/0" + secrets.token_urlsafe(24)
        self._codes[code] = {
            "redirect_uri": redirect_uri,
            "scopes": granted,
            "challenge": _one(q, "code_challenge"),
            "method": _one(q, "code_challenge_method") or "plain",
            "refresh": offline and fresh and self.refresh_tokens,
        }
        return self._redirect(redirect_uri, q, code=code, scope=" ".join(granted))

    @staticmethod
    def _request_problem(q: dict[str, Any]) -> str | None:
        if _one(q, "response_type") != "code":
            return "unsupported_response_type"
        scopes = _one(q, "scope").split()
        if not scopes or not all(s.startswith(GMAIL_SCOPE_PREFIX) for s in scopes):
            return "invalid_scope"
        if not _one(q, "state"):
            return "invalid_request"
        if _one(q, "code_challenge_method") not in ("", "plain", "S256"):
            return "invalid_request"
        return None

    @staticmethod
    def _redirect(redirect_uri: str, q: dict[str, Any], **params: str) -> Answer:
        query = urlencode({"state": _one(q, "state"), **params})
        glue = "&" if urlsplit(redirect_uri).query else "?"
        return 302, Redirect(f"{redirect_uri}{glue}{query}")

    # -- the token endpoint --------------------------------------------------------------------
    def token(self, form: dict[str, str], auth: str | None, *, revoked: bool) -> Answer:
        """POST /token: the authorization_code and refresh_token grants."""
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(form, auth)
        if grant_type != "refresh_token":
            return _fail("unsupported_grant_type", "Invalid grant_type")
        if not form.get("refresh_token") or not form.get("client_id"):
            return _fail("invalid_request", "Missing required parameter")
        if revoked:
            return _fail("invalid_grant", "Token has been expired or revoked.")
        scope = form.get("scope") or "https://www.googleapis.com/auth/gmail.modify"
        return 200, {
            "access_token": self._mint(),
            "expires_in": 3599,
            "token_type": "Bearer",
            "scope": scope,
        }

    def _client(self, form: dict[str, str], auth: str | None) -> tuple[str, str]:
        """The client id and secret, from HTTP Basic auth or the form."""
        if auth and auth.startswith("Basic "):
            try:
                pair = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except ValueError:
                return "", ""
            client_id, _, secret = pair.partition(":")
            return unquote(client_id), unquote(secret)
        return form.get("client_id", ""), form.get("client_secret", "")

    def _exchange(self, form: dict[str, str], auth: str | None) -> Answer:
        client_id, secret = self._client(form, auth)
        if client_id != self.client_id or not secrets.compare_digest(secret, self.client_secret):
            return _fail("invalid_client", "Unauthorized", 401)
        grant = self._codes.pop(form.get("code", ""), None)  # a code works once
        if grant is None:
            return _fail("invalid_grant", "Malformed auth code.")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return _fail("redirect_uri_mismatch", "Bad Request")
        if grant["challenge"]:
            verifier = form.get("code_verifier", "")
            if not verifier:
                return _fail("invalid_grant", "Missing code verifier.")
            made = _s256(verifier) if grant["method"] == "S256" else verifier
            if not secrets.compare_digest(made, grant["challenge"]):
                return _fail("invalid_grant", "Invalid code verifier.")
        answer: dict[str, Any] = {
            "access_token": self._mint(),
            "expires_in": 3599,
            "token_type": "Bearer",
            "scope": " ".join(grant["scopes"]),
        }
        if grant["refresh"]:
            answer["refresh_token"] = "1//0" + secrets.token_urlsafe(32)
        self.issued.append(answer)
        return 200, answer

    # -- for tests -----------------------------------------------------------------------------
    def client_secrets(self, base_url: str, **changes: Any) -> dict[str, Any]:
        """What Google Cloud console's Download JSON gives for a Desktop app client."""
        installed = {
            "client_id": self.client_id,
            "project_id": "stand-in",
            "auth_uri": base_url + AUTH_PATH,
            "token_uri": base_url + "/token",
            "client_secret": self.client_secret,
            "redirect_uris": ["http://localhost"],
            **changes,
        }
        return {"installed": installed}
