"""A stand-in for the Gmail REST API (v1) and Google's OAuth endpoints, for tests.

Real HTTP on 127.0.0.1 (ephemeral port), standard library only. Point the Google client at it:
    build("gmail", "v1", credentials=creds, static_discovery=True,
          client_options={"api_endpoint": gmail.url})
and OAuth refresh at `gmail.token_url`; sign-in uses `gmail.auth_url` and `gmail.oauth`
(tests/fakes/gmail_oauth.py). State is one mailbox (seeded, sent and draft messages;
`messages.list` searches all of them like Gmail does). The product never imports this.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from tests.fakes import gmail_mime as mm
from tests.fakes.gmail_oauth import AUTH_PATH, OAuthStandIn, Redirect

_API = re.compile(r"^/gmail/v1/users/(?P<user>[^/]+)(?P<rest>/.*)?$")


class GmailStandIn:
    def __init__(self, email_address: str = "me@example.com") -> None:
        self.email_address = email_address
        self.valid_tokens: set[str] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._strict = self._revoked = False
        self._messages: dict[str, dict[str, Any]] = {}  # insertion order = arrival order
        self._drafts: dict[str, str] = {}  # draft id -> message id
        self._history: list[dict[str, Any]] = []
        self._labels: dict[str, str] = {name: "system" for name in mm.SYSTEM_LABELS}
        self._faults: list[dict[str, Any]] = []
        self._requests: list[tuple[str, str, dict[str, Any], Any, str | None]] = []
        self._counter = 0
        self.history_id = 1000
        self._expired_before = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.oauth = OAuthStandIn(self._mint_access_token)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> GmailStandIn:
        stand_in = self

        class Handler(_Handler):
            owner = stand_in

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GmailStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "stand-in not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def auth_url(self) -> str:
        return self.url + AUTH_PATH

    def client_secrets(self, **changes: Any) -> dict[str, Any]:
        """A Desktop app client secrets file (`{"installed": ...}`) pointing at this stand-in."""
        return self.oauth.client_secrets(self.url, **changes)

    # -- test controls --------------------------------------------------------------------------
    def seed(
        self,
        *,
        sender: str,
        to: str,
        subject: str,
        body_text: str | None = None,
        body_html: str | None = None,
        labels: Sequence[str] = ("INBOX", "UNREAD", "IMPORTANT"),
        thread_id: str | None = None,
        message_id_header: str | None = None,
        attachments: Iterable[Sequence[Any]] = (),
        raw: bytes | None = None,
    ) -> str:
        """Deliver a message to the mailbox; returns its Gmail id."""
        if raw is None:
            raw = mm.build_mime(
                sender=sender,
                to=to,
                subject=subject,
                body_text=body_text,
                body_html=body_html,
                message_id_header=message_id_header,
                attachments=attachments,
            )
        with self._lock:
            for label in labels:
                self._labels.setdefault(label, "user")
            return self._store(raw, list(labels), thread_id)["id"]

    def expire_history_before(self, history_id: int) -> None:
        """history.list with an older startHistoryId now answers 404, as Gmail does."""
        with self._lock:
            self._expired_before = int(history_id)
            self._history = [h for h in self._history if h["id"] >= self._expired_before]

    def inject(
        self, status: int, *, path_contains: str = "", times: int = 1, retry_after: int = 1
    ) -> None:
        """The next `times` requests whose path+query contains `path_contains` get `status`."""
        self._add_fault("status", path_contains, times, status=status, retry_after=retry_after)

    def inject_timeout(self, seconds: float, path_contains: str = "", times: int = 1) -> None:
        """Process the request, then wait `seconds` before answering."""
        self._add_fault("timeout", path_contains, times, seconds=seconds)

    def inject_drop(self, path_contains: str = "", times: int = 1, *, after: bool = False) -> None:
        """Close the connection without answering (after processing the request if `after`)."""
        self._add_fault("drop", path_contains, times, after=after)

    def _add_fault(self, kind: str, path_contains: str, times: int, **extra: Any) -> None:
        with self._lock:
            self._faults.append({"kind": kind, "path": path_contains, "left": times, **extra})

    def revoke_token(self) -> None:
        with self._lock:
            self._revoked = True

    def restore_token(self) -> None:
        with self._lock:
            self._revoked = False

    def require_token(self, token: str) -> None:
        """From now on only tokens in `valid_tokens` (and tokens issued by /token) are accepted."""
        with self._lock:
            self._strict = True
            self.valid_tokens.add(token)

    # -- views ----------------------------------------------------------------------------------
    def _view(self, rec: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": rec["id"],
            "threadId": rec["threadId"],
            "labelIds": list(rec["labelIds"]),
            "raw": rec["raw"],
            "headers": mm.headers_dict(rec["msg"]),
            "message": rec["msg"],
        }

    @property
    def sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(r) for r in self._messages.values() if "SENT" in r["labelIds"]]

    @property
    def drafts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {**self._view(self._messages[m]), "id": d, "messageId": m}
                for d, m in self._drafts.items()
            ]

    @property
    def requests(self) -> list[tuple[str, str, dict[str, Any], Any, str | None]]:
        with self._lock:
            return list(self._requests)

    def message(self, msg_id: str) -> dict[str, Any]:
        with self._lock:
            return self._view(self._messages[msg_id])

    # -- state (call with the lock held) --------------------------------------------------------
    def _new_id(self) -> str:
        self._counter += 1
        return f"{0x18F0000000000000 + self._counter * 7919:016x}"

    def _record(self, kind: str, rec: dict[str, Any], labels: Sequence[str] = ()) -> None:
        self.history_id += 1
        rec["historyId"] = self.history_id
        ref = {"id": rec["id"], "threadId": rec["threadId"], "labelIds": list(rec["labelIds"])}
        item: dict[str, Any] = {"message": ref}
        if kind in ("labelsAdded", "labelsRemoved"):
            item["labelIds"] = list(labels)
        self._history.append(
            {
                "id": self.history_id,
                "kind": kind,
                "item": item,
                "labels": set(rec["labelIds"]) | set(labels),
            }
        )

    def _store(self, raw: bytes, labels: list[str], thread_id: str | None) -> dict[str, Any]:
        msg = mm.parse(raw)
        msg_id = self._new_id()
        now = int(time.time() * 1000)
        last = max((r["internalDate"] for r in self._messages.values()), default=0)
        rec = {
            "id": msg_id,
            "threadId": thread_id or msg_id,
            "labelIds": labels,
            "raw": raw,
            "msg": msg,
            "internalDate": max(now, last + 1),
        }
        self._messages[msg_id] = rec
        self._record("messagesAdded", rec)
        return rec

    def _get(self, msg_id: str) -> dict[str, Any]:
        if msg_id not in self._messages:
            raise mm.GmailError(404)
        return self._messages[msg_id]

    def _thread_for(self, raw: bytes, thread_id: str | None) -> str | None:
        """Gmail joins a thread only if threadId, References/In-Reply-To and Subject all agree."""
        if not thread_id:
            return None
        members = [r for r in self._messages.values() if r["threadId"] == thread_id]
        if not members:
            raise mm.GmailError(404)
        return thread_id if mm.joins_thread(mm.parse(raw), [r["msg"] for r in members]) else None

    def _send(self, raw_b64: Any, thread_id: str | None, *, draft: bool = False) -> dict[str, Any]:
        raw = mm.decode_raw(raw_b64, need_recipient=True, sender=self.email_address)
        rec = self._store(raw, ["SENT"], thread_id if draft else self._thread_for(raw, thread_id))
        return {"id": rec["id"], "threadId": rec["threadId"], "labelIds": ["SENT"]}

    # -- routes ---------------------------------------------------------------------------------
    def _route(self, method: str, user: str, rest: str, q: dict[str, Any], body: Any) -> Any:
        if user not in ("me", self.email_address):
            raise mm.GmailError(403, "Delegation denied for " + self.email_address)
        body = body if isinstance(body, dict) else {}
        parts = [p for p in rest.split("/") if p]
        key = (method, *(["*" if i % 2 else p for i, p in enumerate(parts)] if parts else []))
        if method == "GET" and parts == ["profile"]:
            return {
                "emailAddress": self.email_address,
                "messagesTotal": len(self._messages),
                "threadsTotal": len({r["threadId"] for r in self._messages.values()}),
                "historyId": str(self.history_id),
            }
        if method == "GET" and parts == ["messages"]:
            recs = mm.select_messages(reversed(self._messages.values()), q)
            page_, token = mm.page(recs, q, 100)
            out: dict[str, Any] = {"resultSizeEstimate": len(recs)}
            if page_:
                out["messages"] = [{"id": r["id"], "threadId": r["threadId"]} for r in page_]
            return {**out, "nextPageToken": token} if token else out
        if method == "POST" and parts == ["messages", "send"]:
            return self._send(body.get("raw"), body.get("threadId"))
        if key == ("GET", "messages", "*"):
            return mm.resource(self._get(parts[1]), q)
        if key == ("GET", "messages", "*", "attachments", "*"):
            data = mm.find_attachment(self._get(parts[1])["msg"], parts[1], parts[3])
            if data is None:
                raise mm.GmailError(404)
            return {"attachmentId": parts[3], "size": len(data), "data": mm.b64url(data)}
        if key == ("POST", "messages", "*", "modify"):
            rec = self._get(parts[1])
            add, remove = body.get("addLabelIds") or [], body.get("removeLabelIds") or []
            for label in [*add, *remove]:
                if label not in self._labels:
                    raise mm.GmailError(400, f"Invalid label: {label}")
            added = [x for x in add if x not in rec["labelIds"]]
            removed = [x for x in remove if x in rec["labelIds"] and x not in add]
            rec["labelIds"] = [x for x in rec["labelIds"] if x not in removed] + added
            if added:
                self._record("labelsAdded", rec, added)
            if removed:
                self._record("labelsRemoved", rec, removed)
            return {"id": rec["id"], "threadId": rec["threadId"], "labelIds": rec["labelIds"]}
        if method == "GET" and parts == ["history"]:
            return self._history_list(q)
        if method == "POST" and parts == ["drafts"]:
            message = body.get("message") or {}
            raw = mm.decode_raw(message.get("raw"), need_recipient=False, sender=self.email_address)
            rec = self._store(raw, ["DRAFT"], self._thread_for(raw, message.get("threadId")))
            draft_id = "r" + str(int(rec["id"], 16))
            self._drafts[draft_id] = rec["id"]
            ref = {"id": rec["id"], "threadId": rec["threadId"], "labelIds": ["DRAFT"]}
            return {"id": draft_id, "message": ref}
        if method == "POST" and parts == ["drafts", "send"]:
            if not body.get("id"):
                raise mm.GmailError(400, "Missing draft id")
            if body["id"] not in self._drafts:
                raise mm.GmailError(404)
            draft = self._messages[self._drafts[body["id"]]]
            raw_b64 = (body.get("message") or {}).get("raw") or mm.b64url(draft["raw"])
            out = self._send(raw_b64, draft["threadId"], draft=True)
            del self._drafts[body["id"]]
            self._record("messagesDeleted", self._messages.pop(draft["id"]))
            return out
        if method == "GET" and parts == ["labels"]:
            return {"labels": [{"id": n, "name": n, "type": t} for n, t in self._labels.items()]}
        if key == ("GET", "threads", "*"):
            recs = [r for r in self._messages.values() if r["threadId"] == parts[1]]
            if not recs:
                raise mm.GmailError(404)
            return {
                "id": parts[1],
                "historyId": str(max(r["historyId"] for r in recs)),
                "messages": [mm.resource(r, q) for r in recs],
            }
        raise mm.GmailError(404)

    def _history_list(self, q: dict[str, Any]) -> dict[str, Any]:
        start = mm.one(q, "startHistoryId")
        if not start or not str(start).isdigit():
            raise mm.GmailError(400, "Invalid startHistoryId")
        if int(start) < self._expired_before:
            raise mm.GmailError(404)
        recs = mm.select_history(self._history, q, int(start))
        page_, token = mm.page(recs, q, 100)
        out: dict[str, Any] = {"historyId": str(self.history_id)}
        if page_:
            out["history"] = [mm.history_entry(h) for h in page_]
        return {**out, "nextPageToken": token} if token else out

    def _mint_access_token(self) -> str:
        self._counter += 1
        token = f"ya29.stand-in-{self._counter}"
        self.valid_tokens.add(token)
        return token

    def _handle(
        self, method: str, target: str, body: bytes, auth: str | None
    ) -> tuple[int, Any, dict[str, Any] | None]:
        """Returns (status, json, fault) for one request."""
        split = urlsplit(target)
        q = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(split.query).items()}
        is_token = split.path == "/token"
        try:
            parsed: Any = (
                dict(parse_qsl(body.decode())) if is_token else json.loads(body) if body else None
            )
        except ValueError:
            parsed = body
        with self._lock:
            self._requests.append((method, split.path, q, parsed, auth))
            fault = next((f for f in self._faults if f["left"] > 0 and f["path"] in target), None)
            if fault is not None:
                fault["left"] -= 1
                if fault["kind"] == "status":
                    return fault["status"], mm.error_body(fault["status"]), fault
                if fault["kind"] == "drop" and not fault["after"]:
                    return 0, None, fault
            if is_token and method == "POST":
                form = parsed if isinstance(parsed, dict) else {}
                return (*self.oauth.token(form, auth, revoked=self._revoked), fault)
            if split.path == AUTH_PATH and method == "GET":
                return (*self.oauth.authorize(q), fault)
            match = _API.match(split.path)
            if match is None:
                return 404, mm.error_body(404), fault
            bearer = auth[7:].strip() if auth and auth.startswith("Bearer ") else ""
            if not bearer or self._revoked or (self._strict and bearer not in self.valid_tokens):
                return 401, mm.error_body(401), fault
            if body and not isinstance(parsed, dict):
                return 400, mm.error_body(400, "Invalid JSON payload received."), fault
            try:
                return (
                    200,
                    self._route(method, match["user"], match["rest"] or "", q, parsed),
                    fault,
                )
            except mm.GmailError as exc:
                return exc.status, mm.error_body(exc.status, exc.message), fault
            except Exception as exc:  # a bug in the stand-in: say so rather than hang up
                return 500, mm.error_body(500, f"stand-in error: {exc!r}"), fault


class _Handler(BaseHTTPRequestHandler):
    owner: GmailStandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.owner
        status, payload, fault = owner._handle(
            self.command, self.path, body, self.headers.get("Authorization")
        )
        if fault and fault["kind"] == "timeout":
            owner._stop.wait(fault["seconds"])
        if (fault and fault["kind"] == "drop") or owner._stop.is_set():
            self.close_connection = True
            return
        try:
            self._answer(status, payload, fault)
        except OSError:
            self.close_connection = True

    def _answer(self, status: int, payload: Any, fault: dict[str, Any] | None) -> None:
        self.send_response(status)
        if isinstance(payload, Redirect):
            self.send_header("Location", payload.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(payload).encode()
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 429 and fault:
            self.send_header("Retry-After", str(fault["retry_after"]))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
