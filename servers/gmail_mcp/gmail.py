"""The Gmail client: reads retried with backoff, writes done once, every call through one breaker.

It runs google-api-python-client on the discovery document shipped in the package, pointed at
``GMAIL_API_ENDPOINT``, over a transport that makes exactly one attempt per request (httplib2
would silently resend a POST whose connection dropped). Google is imported on first use.

Sign-in, scopes and the meaning of each failure live in ``auth``; sending is refused here in
the cloud zone whatever the token allows.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from core.actions import SendEmail
from core.config import Settings
from core.errors import (
    ActionRefusedError,
    AIEmployeeError,
    CircuitOpenError,
    ServiceError,
    ZoneError,
)
from core.resilience import RetryPolicy, call_with_retry, get_breaker, repeatable
from servers.gmail_mcp.auth import (
    AUTH_STEP,
    BREAKER,
    GMAIL_ID,
    GmailOutcomeUnknownError,
    GmailRequestError,
    GmailUnavailableError,
    HistoryExpiredError,
    detail,
    http_status,
    is_outage,
    load_credentials,
    read_error,
    refused_auth,
    save_credentials,
)
from servers.gmail_mcp.mail import (
    EmailMessage,
    Label,
    MessagePage,
    MessageRef,
    OutgoingFile,
    Profile,
    clean_line,
    gmail_message,
    normalize_message_id,
    parse_message,
)

log = logging.getLogger(__name__)


class _Answer:
    """A refusal from a healthy Gmail, carried out of the breaker so it does not count."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _OneShotHttp:
    """The part of httplib2.Http that googleapiclient uses, over google-auth's requests session:
    one attempt per request (plus the token refresh after a 401), with a timeout."""

    def __init__(self, session: Any, timeout: float) -> None:
        self.session, self.timeout = session, timeout

    def request(
        self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any
    ) -> tuple[Any, bytes]:
        import httplib2

        reply = self.session.request(
            method, uri, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
        )
        info = {key.lower(): value for key, value in reply.headers.items()}
        response = httplib2.Response({**info, "status": str(reply.status_code)})
        response.reason = reply.reason
        return response, reply.content

    def close(self) -> None:
        self.session.close()


# -- the client ----------------------------------------------------------------------------
def _check_id(value: str, what: str = "message id") -> str:
    if not isinstance(value, str) or not GMAIL_ID.fullmatch(value):
        raise GmailRequestError(f"{value!r:.80} is not a Gmail {what}", "use an id Gmail returned")
    return value


class GmailClient:
    """One mailbox ("me"). Reads are retried; send, create_draft and mark_read never are."""

    def __init__(
        self,
        settings: Settings,
        credentials: Any = None,
        *,
        timeout: float = 30.0,
        tries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings, self.timeout, self._sleep = settings, timeout, sleep
        self._creds, self._persist = credentials, credentials is None
        self._saved_token: str | None = None
        self._policy = RetryPolicy(
            tries=tries, base=backoff, cap=max(backoff, 30.0), retry_on=(GmailUnavailableError,)
        )
        self.breaker = get_breaker(BREAKER, settings.vault_path / ".state")
        self._service: Any = None
        self._lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------
    def _users(self) -> Any:
        with self._lock:
            if self._service is None:
                from google.auth.transport.requests import AuthorizedSession
                from googleapiclient.discovery import build

                if self._creds is None:
                    self._creds = load_credentials(self.settings, timeout=self.timeout)
                self._saved_token = self._creds.token
                self._service = build(
                    "gmail",
                    "v1",
                    http=_OneShotHttp(AuthorizedSession(self._creds), self.timeout),
                    static_discovery=True,
                    cache_discovery=False,
                    client_options={"api_endpoint": self.settings.gmail_api_endpoint},
                )
            return self._service.users()

    def _keep_token(self) -> None:
        """Save a token google-auth refreshed during a call back to SECRETS_DIR (only there)."""
        token = getattr(self._creds, "token", None)
        if not self._persist or not token or token == self._saved_token:
            return
        try:
            save_credentials(self.settings, self._creds)
            self._saved_token = token
        except (OSError, AIEmployeeError) as exc:
            log.warning("could not save the refreshed Gmail token: %s", type(exc).__name__)

    def _attempt(self, make: Callable[[Any], Any]) -> Any:
        try:
            return make(self._users()).execute()
        except Exception as exc:
            if is_outage(exc):
                raise
            return _Answer(exc)
        finally:
            self._keep_token()

    def _through_breaker(self, make: Callable[[Any], Any]) -> Any:
        result = self.breaker.call(self._attempt, make)
        if isinstance(result, _Answer):
            raise result.exc
        return result

    def _read(self, make: Callable[[Any], Any], not_found: ServiceError | None = None) -> Any:
        @repeatable
        def once() -> Any:
            try:
                return self._through_breaker(make)
            except CircuitOpenError:
                raise
            except Exception as exc:
                mapped = read_error(exc, not_found)
                if mapped is exc:
                    raise
                raise mapped from None

        return call_with_retry(once, policy=self._policy, sleep=self._sleep)

    def _write(self, make: Callable[[Any], Any], what: str) -> Any:
        done = f"nothing was {what}"
        try:
            return self._through_breaker(make)
        except CircuitOpenError as exc:
            raise ActionRefusedError(f"{exc.what}; {done}", exc.next_step) from None
        except AIEmployeeError as exc:  # token missing, refused or expired: no call was made
            raise ActionRefusedError(f"{exc.what}; {done}", exc.next_step) from None
        except Exception as exc:
            if refused_auth(exc):
                raise ActionRefusedError(
                    f"Gmail refused: the token is expired or revoked; {done}", AUTH_STEP
                ) from None
            from google.auth.exceptions import GoogleAuthError  # the auth step failed: no send

            status = http_status(exc)
            if (status is not None and status < 500) or isinstance(exc, GoogleAuthError):
                raise ActionRefusedError(f"Gmail refused ({detail(exc)}); {done}", "") from None
            raise GmailOutcomeUnknownError(
                f"Gmail did not confirm it ({detail(exc)}): it may or may not have been {what}",
                "do not redo it blindly; check Gmail (Sent or Drafts) first",
            ) from exc

    # -- reads ---------------------------------------------------------------------------
    def profile(self) -> Profile:
        data = self._read(lambda u: u.getProfile(userId="me"))
        return Profile(
            email_address=data.get("emailAddress", ""),
            history_id=str(data.get("historyId", "")),
            messages_total=int(data.get("messagesTotal") or 0),
        )

    def list_messages(
        self, query: str = "", max_results: int = 20, page_token: str | None = None
    ) -> MessagePage:
        if len(query) > 2000 or clean_line(query, 2000) != " ".join(query.split()):
            raise GmailRequestError("the search query is too long or has control characters", "")
        size = max(1, min(int(max_results), 500))
        data = self._read(
            lambda u: u.messages().list(
                userId="me", q=query or None, maxResults=size, pageToken=page_token or None
            )
        )
        refs = [
            MessageRef(id=m["id"], thread_id=m.get("threadId", ""))
            for m in data.get("messages") or []
        ]
        return MessagePage(
            messages=refs,
            next_page_token=data.get("nextPageToken") or None,
            result_size_estimate=int(data.get("resultSizeEstimate") or 0),
        )

    def get_message(self, message_id: str) -> EmailMessage:
        msg_id = _check_id(message_id)
        missing = GmailRequestError(f"there is no message {msg_id}", "search again for its id")
        data = self._read(
            lambda u: u.messages().get(userId="me", id=msg_id, format="raw"), not_found=missing
        )
        found = {"id": data.get("id", msg_id), "thread_id": data.get("threadId", "")}
        try:
            raw = base64.urlsafe_b64decode(data.get("raw", "") + "==")
        except (binascii.Error, ValueError, TypeError):
            message = EmailMessage(**found, labels=data.get("labelIds") or [])
            message.problems.append("Gmail sent a message that is not base64; nothing to show")
            return message
        return parse_message(raw, **found, labels=data.get("labelIds") or [])

    def history(self, start_history_id: str | int, max_pages: int = 20) -> tuple[list[str], str]:
        """Ids of messages added since ``start_history_id``, and the history id to go on from."""
        start = str(start_history_id)
        if not start.isdigit():
            raise GmailRequestError(f"{start!r:.40} is not a Gmail history id", "")
        expired = HistoryExpiredError(
            f"Gmail no longer keeps history from {start}",
            "resync: read profile().history_id and list recent messages",
        )
        ids: list[str] = []
        newest, token = start, None
        for _ in range(max_pages):
            page = self._read(
                lambda u, t=token: u.history().list(
                    userId="me", startHistoryId=start, historyTypes=["messageAdded"], pageToken=t
                ),
                not_found=expired,
            )
            for item in page.get("history") or []:
                for added in item.get("messagesAdded") or []:
                    msg_id = (added.get("message") or {}).get("id")
                    if msg_id and msg_id not in ids:
                        ids.append(msg_id)
                newest = str(item.get("id") or newest)
            token = page.get("nextPageToken")
            if not token:
                return ids, str(page.get("historyId") or newest)
        return ids, newest  # more pages wait: go on from the last record read

    def find_sent(self, message_id_header: str) -> dict[str, Any] | None:
        """The sent message carrying this Message-ID header, or None."""
        try:
            wanted = normalize_message_id(message_id_header)
        except ValueError as exc:
            raise GmailRequestError(str(exc), "pass the Message-ID header as sent") from None
        page = self.list_messages(f"in:sent rfc822msgid:{wanted[1:-1]}", max_results=5)
        if not page.messages:
            return None
        ref = page.messages[0]
        return {"id": ref.id, "thread_id": ref.thread_id, "message_id": wanted}

    def labels(self) -> list[Label]:
        data = self._read(lambda u: u.labels().list(userId="me"))
        return [
            Label(id=item["id"], name=item.get("name", item["id"]), type=item.get("type", "user"))
            for item in data.get("labels") or []
        ]

    # -- writes (never retried) ----------------------------------------------------------
    @staticmethod
    def _message(
        params: SendEmail, body: str, key: str, refs: Sequence[str], files: Sequence[OutgoingFile]
    ) -> tuple[dict[str, Any], str]:
        try:
            return gmail_message(params, body, key, refs, files)
        except ValueError as exc:
            why = f"the email cannot be built: {exc}; nothing was done"
            raise ActionRefusedError(why, "fix it and ask again") from None

    def send(
        self,
        params: SendEmail,
        body: str,
        key: str,
        *,
        references: Sequence[str] = (),
        attachments: Sequence[OutgoingFile] = (),
    ) -> dict[str, Any]:
        """Send once with ``Message-ID: <key@ai-employee.invalid>``. ActionRefusedError when
        Gmail surely sent nothing; GmailOutcomeUnknownError when it may have: never retried."""
        if self.settings.zone != "local":
            raise ZoneError(
                f"the {self.settings.zone} zone never sends email",
                "write a draft or an approval request; the local zone sends",
            )
        message, message_id = self._message(params, body, key, references, attachments)
        sent = self._write(lambda u: u.messages().send(userId="me", body=message), "sent")
        return {"id": sent.get("id"), "thread_id": sent.get("threadId"), "message_id": message_id}

    def create_draft(
        self,
        params: SendEmail,
        body: str,
        key: str,
        *,
        references: Sequence[str] = (),
        attachments: Sequence[OutgoingFile] = (),
    ) -> dict[str, Any]:
        """Save a draft (allowed in both zones); its Message-ID comes from ``key`` too."""
        message, message_id = self._message(params, body, key, references, attachments)
        draft = self._write(
            lambda u: u.drafts().create(userId="me", body={"message": message}), "saved"
        )
        ref = draft.get("message") or {}
        return {
            "draft_id": draft.get("id"),
            "id": ref.get("id"),
            "thread_id": ref.get("threadId"),
            "message_id": message_id,
        }

    def mark_read(self, message_id: str) -> dict[str, Any]:
        msg_id = _check_id(message_id)
        change = {"removeLabelIds": ["UNREAD"]}
        data = self._write(
            lambda u: u.messages().modify(userId="me", id=msg_id, body=change), "changed"
        )
        return {"id": data.get("id", msg_id), "labels": data.get("labelIds") or []}
