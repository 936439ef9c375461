"""Tests of the Gmail stand-in itself, driven through the real Google API client."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import threading
import time
from email.message import EmailMessage
from typing import Any

import google.auth.transport.requests
import google_auth_httplib2
import httplib2
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from tests.fakes.gmail import GmailStandIn


def client(gmail: GmailStandIn, creds: Credentials | None = None, timeout: float | None = None):
    creds = creds or Credentials(token="t")
    kwargs: dict[str, Any] = {"credentials": creds}
    if timeout is not None:
        http = httplib2.Http(timeout=timeout)
        kwargs = {"http": google_auth_httplib2.AuthorizedHttp(creds, http=http)}
    opts = {"api_endpoint": gmail.url}
    return build("gmail", "v1", static_discovery=True, client_options=opts, **kwargs).users()


def raw_of(
    to: str = "bob@example.com", subject: str = "Hi", message_id: str | None = None, **headers: str
) -> str:
    msg = EmailMessage()
    msg["From"] = "me@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hello Bob")
    return base64.urlsafe_b64encode(msg.as_bytes()).decode()


def ids(listing: dict[str, Any]) -> list[str]:
    return [m["id"] for m in listing.get("messages", [])]


def test_profile_and_unknown_path(gmail: GmailStandIn) -> None:
    users = client(gmail)
    profile = users.getProfile(userId="me").execute()
    assert profile == {
        "emailAddress": "me@example.com",
        "messagesTotal": 0,
        "threadsTotal": 0,
        "historyId": "1000",
    }
    conn = http.client.HTTPConnection("127.0.0.1", int(gmail.url.rsplit(":", 1)[1]), timeout=5)
    conn.request("GET", "/nope", headers={"Authorization": "Bearer t"})
    resp = conn.getresponse()
    assert resp.status == 404
    assert json.loads(resp.read())["error"]["status"] == "NOT_FOUND"


def test_list_with_queries_labels_and_pages(gmail: GmailStandIn) -> None:
    a = gmail.seed(sender="Alice <alice@a.com>", to="me@example.com", subject="Invoice 42")
    b = gmail.seed(sender="bob@b.com", to="me@example.com", subject="Lunch", labels=["INBOX"])
    c = gmail.seed(
        sender="carol@c.com", to="me@example.com", subject="Invoice 43", labels=["INBOX", "UNREAD"]
    )
    users = client(gmail)
    lst = users.messages().list

    assert ids(lst(userId="me").execute()) == [c, b, a]  # newest first
    assert ids(lst(userId="me", q="is:unread").execute()) == [c, a]
    assert ids(lst(userId="me", q="is:unread is:important").execute()) == [a]
    assert ids(lst(userId="me", q="subject:invoice from:alice").execute()) == [a]
    assert ids(lst(userId="me", q='subject:"invoice 43"').execute()) == [c]
    assert ids(lst(userId="me", q="-is:unread").execute()) == [b]
    assert ids(lst(userId="me", labelIds=["INBOX", "UNREAD"]).execute()) == [c, a]
    empty = lst(userId="me", q="from:nobody").execute()
    assert empty == {"resultSizeEstimate": 0}  # Gmail omits "messages" when there are none

    page1 = lst(userId="me", maxResults=2).execute()
    assert ids(page1) == [c, b] and page1["resultSizeEstimate"] == 3
    page2 = lst(userId="me", maxResults=2, pageToken=page1["nextPageToken"]).execute()
    assert ids(page2) == [a] and "nextPageToken" not in page2
    method, path, query, body, auth = gmail.requests[-1]
    assert (method, path, body, auth) == ("GET", "/gmail/v1/users/me/messages", None, "Bearer t")
    assert query["maxResults"] == "2" and query["alt"] == "json"


def test_get_full_metadata_raw_minimal_and_attachment(gmail: GmailStandIn) -> None:
    mid = gmail.seed(
        sender="alice@a.com",
        to="me@example.com",
        subject="Report",
        body_text="Numbers 'inside' & more",
        body_html="<p>Numbers</p>",
        attachments=[("r.csv", b"a,b\n1,2\n", "text/csv")],
        message_id_header="<rep@a.com>",
    )
    users = client(gmail)
    full = users.messages().get(userId="me", id=mid).execute()
    assert full["id"] == mid and full["threadId"] == mid
    assert full["labelIds"] == ["INBOX", "UNREAD", "IMPORTANT"]
    assert full["snippet"] == "Numbers &#39;inside&#39; &amp; more"
    assert full["historyId"] == "1001" and full["internalDate"].isdigit()
    pay = full["payload"]
    assert pay["mimeType"] == "multipart/mixed"
    headers = {h["name"]: h["value"] for h in pay["headers"]}
    assert headers["Subject"] == "Report" and headers["Message-ID"] == "<rep@a.com>"
    alt, att = pay["parts"]
    text = alt["parts"][0]
    assert text["partId"] == "0.0" and text["mimeType"] == "text/plain"
    assert base64.urlsafe_b64decode(text["body"]["data"]).startswith(b"Numbers 'inside'")
    assert att["filename"] == "r.csv" and "data" not in att["body"]
    got = users.messages().attachments()
    data = got.get(userId="me", messageId=mid, id=att["body"]["attachmentId"]).execute()
    assert base64.urlsafe_b64decode(data["data"]) == b"a,b\n1,2\n"

    meta = (
        users.messages()
        .get(userId="me", id=mid, format="metadata", metadataHeaders=["Subject"])
        .execute()
    )
    assert meta["payload"]["headers"] == [{"name": "Subject", "value": "Report"}]
    raw = users.messages().get(userId="me", id=mid, format="raw").execute()
    assert base64.urlsafe_b64decode(raw["raw"]) == gmail.message(mid)["raw"]
    assert "payload" not in raw
    minimal = users.messages().get(userId="me", id=mid, format="minimal").execute()
    assert "payload" not in minimal and "raw" not in minimal
    with pytest.raises(HttpError) as err:
        users.messages().get(userId="me", id="deadbeef").execute()
    assert err.value.resp.status == 404


def test_seed_raw_bytes(gmail: GmailStandIn) -> None:
    raw = b"From: x@x.com\r\nTo: me@example.com\r\nSubject: Raw one\r\n\r\nbody\r\n"
    mid = gmail.seed(sender="", to="", subject="", raw=raw)
    got = client(gmail).messages().get(userId="me", id=mid, format="raw").execute()
    assert base64.urlsafe_b64decode(got["raw"]) == raw


def test_send_then_find_by_rfc822msgid(gmail: GmailStandIn) -> None:
    users = client(gmail)
    sent = users.messages().send(userId="me", body={"raw": raw_of(message_id="<k1@ai>")}).execute()
    assert sent["labelIds"] == ["SENT"]
    assert [s["id"] for s in gmail.sent] == [sent["id"]]
    assert gmail.sent[0]["headers"]["Message-ID"] == "<k1@ai>"
    assert gmail.sent[0]["message"].get_content().strip() == "Hello Bob"
    for q in ("rfc822msgid:<k1@ai>", "rfc822msgid:k1@ai", "in:sent rfc822msgid:k1@ai"):
        assert ids(users.messages().list(userId="me", q=q).execute()) == [sent["id"]]
    assert ids(users.messages().list(userId="me", q="rfc822msgid:other@ai").execute()) == []

    for body in ({"raw": "not base64!!"}, {"raw": raw_of(to="")}, {}):
        with pytest.raises(HttpError) as err:
            users.messages().send(userId="me", body=body).execute()
        assert err.value.resp.status == 400
    assert len(gmail.sent) == 1


def test_send_reply_joins_thread_only_with_matching_headers(gmail: GmailStandIn) -> None:
    mid = gmail.seed(
        sender="alice@a.com", to="me@example.com", subject="Quote", message_id_header="<q1@a.com>"
    )
    users = client(gmail)
    reply = raw_of(subject="Re: Quote", In_Reply_To="<q1@a.com>", References="<q1@a.com>")
    joined = users.messages().send(userId="me", body={"raw": reply, "threadId": mid}).execute()
    assert joined["threadId"] == mid
    bare = users.messages().send(userId="me", body={"raw": raw_of(), "threadId": mid}).execute()
    assert bare["threadId"] != mid  # Gmail starts a new thread without References + Subject
    thread = users.threads().get(userId="me", id=mid).execute()
    assert [m["id"] for m in thread["messages"]] == [mid, joined["id"]]


def test_history_incremental_and_expiry(gmail: GmailStandIn) -> None:
    users = client(gmail)
    start = users.getProfile(userId="me").execute()["historyId"]
    a = gmail.seed(sender="a@a.com", to="me@example.com", subject="one")
    b = gmail.seed(sender="b@b.com", to="me@example.com", subject="two", labels=["SPAM"])
    hist = (
        users.history()
        .list(userId="me", startHistoryId=start, historyTypes=["messageAdded"])
        .execute()
    )
    added = [h["messagesAdded"][0]["message"]["id"] for h in hist["history"]]
    assert added == [a, b] and hist["historyId"] == str(gmail.history_id)
    inbox = users.history().list(userId="me", startHistoryId=start, labelId="INBOX").execute()
    assert [h["messages"][0]["id"] for h in inbox["history"]] == [a]
    page = users.history().list(userId="me", startHistoryId=start, maxResults=1).execute()
    assert len(page["history"]) == 1 and page["nextPageToken"]
    latest = users.history().list(userId="me", startHistoryId=hist["historyId"]).execute()
    assert latest == {"historyId": hist["historyId"]}

    gmail.expire_history_before(gmail.history_id)
    with pytest.raises(HttpError) as err:
        users.history().list(userId="me", startHistoryId=start).execute()
    assert err.value.resp.status == 404
    assert users.history().list(userId="me", startHistoryId=str(gmail.history_id)).execute()


def test_modify_labels_records_history(gmail: GmailStandIn) -> None:
    mid = gmail.seed(sender="a@a.com", to="me@example.com", subject="x")
    users = client(gmail)
    before = gmail.history_id
    out = (
        users.messages()
        .modify(
            userId="me", id=mid, body={"removeLabelIds": ["UNREAD"], "addLabelIds": ["STARRED"]}
        )
        .execute()
    )
    assert out == {"id": mid, "threadId": mid, "labelIds": ["INBOX", "IMPORTANT", "STARRED"]}
    assert ids(users.messages().list(userId="me", q="is:unread").execute()) == []
    hist = users.history().list(userId="me", startHistoryId=str(before)).execute()["history"]
    assert [next(k for k in h if k.startswith("labels")) for h in hist] == [
        "labelsAdded",
        "labelsRemoved",
    ]
    with pytest.raises(HttpError) as err:
        users.messages().modify(userId="me", id=mid, body={"addLabelIds": ["NOPE"]}).execute()
    assert err.value.resp.status == 400
    labels = {lab["id"] for lab in users.labels().list(userId="me").execute()["labels"]}
    assert {"INBOX", "SENT", "UNREAD", "DRAFT"} <= labels


def test_drafts_create_and_send(gmail: GmailStandIn) -> None:
    users = client(gmail)
    body = {"message": {"raw": raw_of(message_id="<d1@ai>")}}
    draft = users.drafts().create(userId="me", body=body).execute()
    assert draft["message"]["labelIds"] == ["DRAFT"]
    assert [d["id"] for d in gmail.drafts] == [draft["id"]] and gmail.sent == []
    lst = users.messages().list  # like Gmail, drafts show up in message searches
    assert ids(lst(userId="me", q="rfc822msgid:d1@ai").execute()) == [draft["message"]["id"]]
    assert ids(lst(userId="me", q="in:sent rfc822msgid:d1@ai").execute()) == []
    sent = users.drafts().send(userId="me", body={"id": draft["id"]}).execute()
    assert sent["labelIds"] == ["SENT"] and sent["threadId"] == draft["message"]["threadId"]
    assert gmail.drafts == [] and gmail.sent[0]["headers"]["Message-ID"] == "<d1@ai>"
    with pytest.raises(HttpError) as err:
        users.drafts().send(userId="me", body={"id": draft["id"]}).execute()
    assert err.value.resp.status == 404


@pytest.mark.parametrize("status", [401, 404, 429, 500, 503])
def test_injected_status_is_an_error(gmail: GmailStandIn, status: int) -> None:
    users = client(gmail)
    gmail.inject(status, path_contains="/profile")
    users.messages().list(userId="me").execute()  # not matching: unaffected
    if status == 401:  # the auth layer tries a refresh, which these credentials cannot do
        with pytest.raises(RefreshError):
            users.getProfile(userId="me").execute()
    else:
        with pytest.raises(HttpError) as err:
            users.getProfile(userId="me").execute()
        assert err.value.resp.status == status
        assert json.loads(err.value.content)["error"]["code"] == status
        if status == 429:
            assert err.value.resp["retry-after"] == "1"
    assert users.getProfile(userId="me").execute()["historyId"] == "1000"  # times=1 used up


def test_injected_429_is_retried_by_client_when_asked(gmail: GmailStandIn) -> None:
    gmail.inject(429, times=1)
    request = client(gmail).getProfile(userId="me")
    sleeps: list[float] = []
    request._sleep = sleeps.append  # the client's backoff ignores Retry-After
    assert request.execute(num_retries=1)["emailAddress"]
    assert len(gmail.requests) == 2 and len(sleeps) == 1


def test_drop_is_retried_once_by_httplib2(gmail: GmailStandIn) -> None:
    users = client(gmail)
    gmail.inject_drop(path_contains="/profile")
    assert users.getProfile(userId="me").execute()  # httplib2 silently retries once
    assert len(gmail.requests) == 2
    gmail.inject_drop(path_contains="/profile", times=2)
    with pytest.raises(ConnectionError):
        users.getProfile(userId="me").execute()


def test_drop_after_processing_a_send_duplicates_it(gmail: GmailStandIn) -> None:
    gmail.inject_drop(path_contains="/messages/send", after=True)
    users = client(gmail)
    users.messages().send(userId="me", body={"raw": raw_of(message_id="<dup@ai>")}).execute()
    assert len(gmail.sent) == 2  # the transport resent a POST that had already been done


def test_timeout_processes_then_delays(gmail: GmailStandIn) -> None:
    users = client(gmail, timeout=0.3)
    gmail.inject_timeout(2, path_contains="/messages/send")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        users.messages().send(userId="me", body={"raw": raw_of()}).execute()
    assert time.monotonic() - started < 1.5
    assert len(gmail.sent) == 1  # outcome unknown to the caller, but the mail went out


def test_token_refresh_and_required_token(gmail: GmailStandIn) -> None:
    creds = Credentials(
        token=None, refresh_token="r", client_id="c", client_secret="s", token_uri=gmail.token_url
    )
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token in gmail.valid_tokens and creds.expiry is not None
    method, path, _, form, _ = gmail.requests[-1]
    assert (method, path) == ("POST", "/token")
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "r",
        "client_id": "c",
        "client_secret": "s",
    }
    gmail.require_token("other")
    assert client(gmail, creds).getProfile(userId="me").execute()
    with pytest.raises(RefreshError):
        client(gmail).getProfile(userId="me").execute()  # "t" not accepted, cannot refresh

    gmail.inject(401, path_contains="/profile")  # refreshable credentials recover by themselves
    assert client(gmail, creds).getProfile(userId="me").execute()
    assert [r[1] for r in gmail.requests[-3:]][1] == "/token"


def test_revoked_token(gmail: GmailStandIn) -> None:
    creds = Credentials(
        token="old", refresh_token="r", client_id="c", client_secret="s", token_uri=gmail.token_url
    )
    gmail.revoke_token()
    with pytest.raises(RefreshError, match="invalid_grant"):
        client(gmail, creds).getProfile(userId="me").execute()
    assert gmail.requests[0][4] == "Bearer old"
    gmail.restore_token()
    assert client(gmail, creds).getProfile(userId="me").execute()


def test_concurrent_clients(gmail: GmailStandIn) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            users = client(gmail)  # httplib2.Http is not thread-safe: one client per thread
            for i in range(5):
                gmail.seed(sender=f"s{n}@x.com", to="me@example.com", subject=f"{n}-{i}")
                body = {"raw": raw_of(message_id=f"<{n}-{i}@ai>")}
                users.messages().send(userId="me", body=body).execute()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len({s["id"] for s in gmail.sent}) == 40
    assert gmail.history_id == 1000 + 80


def test_stop_is_fast_with_a_delayed_request_in_flight() -> None:
    gmail = GmailStandIn().start()
    url = gmail.url
    gmail.inject_timeout(30)
    worker = threading.Thread(target=lambda: _swallow(client(gmail).getProfile(userId="me")))
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    gmail.stop()
    assert time.monotonic() - started < 1
    worker.join(5)
    assert not worker.is_alive()
    with pytest.raises(OSError):
        http.client.HTTPConnection(url.removeprefix("http://"), timeout=1).connect()


def _swallow(request: Any) -> None:
    with contextlib.suppress(Exception):
        request.execute()
