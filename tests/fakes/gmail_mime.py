"""MIME, search and wire-format helpers for the Gmail stand-in (tests/fakes/gmail.py)."""

from __future__ import annotations

import base64
import binascii
import re
import shlex
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from typing import Any

SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)


def b64url(data: bytes) -> str:
    """Base64url with padding, as Gmail returns it."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url (or standard base64) decode; padding optional. Raises ValueError."""
    if not isinstance(text, str) or not text:
        raise ValueError("empty or non-string value")
    norm = text.strip().replace("-", "+").replace("_", "/")
    norm += "=" * (-len(norm) % 4)
    try:
        return base64.b64decode(norm, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def build_mime(
    *,
    sender: str,
    to: str,
    subject: str,
    body_text: str | None,
    body_html: str | None,
    message_id_header: str | None,
    attachments: Iterable[Sequence[Any]],
) -> bytes:
    """An RFC 822 message; attachments are (filename, bytes) or (filename, bytes, mime_type)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id_header or make_msgid(domain="mail.example.com")
    if body_html is not None and body_text is None:
        msg.set_content(body_html, subtype="html")
    else:
        msg.set_content(body_text or "")
        if body_html is not None:
            msg.add_alternative(body_html, subtype="html")
    for att in attachments:
        filename, data = att[0], att[1]
        mime = att[2] if len(att) > 2 else "application/octet-stream"
        maintype, _, subtype = mime.partition("/")
        if isinstance(data, str):
            data = data.encode()
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=policy.SMTP)


def header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return str(value) if value is not None else ""


def headers_dict(msg: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in msg.items():
        out.setdefault(name, str(value))
    return out


def strip_id(value: str) -> str:
    return value.strip().strip("<>").strip()


def attachment_id(msg_id: str, part_id: str) -> str:
    return f"ANGjdJ_{msg_id}_{part_id.replace('.', '-') or 'root'}"


def iter_parts(msg: Message, part_id: str = ""):
    """Yield (part_id, part) for every part, Gmail numbering ("", "0", "1", "0.0", ...)."""
    yield part_id, msg
    if msg.is_multipart():
        for i, sub in enumerate(msg.get_payload()):
            yield from iter_parts(sub, f"{part_id}.{i}" if part_id else str(i))


def _leaf_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def payload(
    msg: Message,
    msg_id: str,
    part_id: str = "",
    *,
    metadata_only: bool = False,
    metadata_headers: Sequence[str] = (),
) -> dict[str, Any]:
    """Gmail's MessagePart for `msg` (format=full, or format=metadata when metadata_only)."""
    hdrs = [{"name": n, "value": str(v)} for n, v in msg.items()]
    if metadata_only:
        wanted = {h.lower() for h in metadata_headers}
        if wanted:
            hdrs = [h for h in hdrs if h["name"].lower() in wanted]
        return {"mimeType": msg.get_content_type(), "headers": hdrs}
    out: dict[str, Any] = {
        "partId": part_id,
        "mimeType": msg.get_content_type(),
        "filename": msg.get_filename() or "",
        "headers": hdrs,
    }
    if msg.is_multipart():
        out["body"] = {"size": 0}
        out["parts"] = [
            payload(sub, msg_id, f"{part_id}.{i}" if part_id else str(i))
            for i, sub in enumerate(msg.get_payload())
        ]
        return out
    data = _leaf_bytes(msg)
    if out["filename"]:
        out["body"] = {"attachmentId": attachment_id(msg_id, part_id), "size": len(data)}
    elif data:
        out["body"] = {"size": len(data), "data": b64url(data)}
    else:
        out["body"] = {"size": 0}
    return out


def find_attachment(msg: Message, msg_id: str, att_id: str) -> bytes | None:
    for pid, part in iter_parts(msg):
        if not part.is_multipart() and attachment_id(msg_id, pid) == att_id:
            return _leaf_bytes(part)
    return None


def text_of(msg: Message) -> str:
    """The plain text of the message (HTML with tags stripped if there is no text part)."""
    html = ""
    for _, part in iter_parts(msg):
        if part.is_multipart() or part.get_filename():
            continue
        ctype = part.get_content_type()
        raw = _leaf_bytes(part).decode(part.get_content_charset() or "utf-8", "replace")
        if ctype == "text/plain":
            return raw
        if ctype == "text/html" and not html:
            html = re.sub(r"<[^>]*>", " ", raw)
    return html


def snippet(msg: Message) -> str:
    """About 200 characters of body text, HTML-escaped the way Gmail escapes snippets."""
    text = " ".join(text_of(msg).split())[:200]
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;")):
        text = text.replace(a, b)
    return text


def date_ms(msg: Message) -> int | None:
    try:
        return int(parsedate_to_datetime(header(msg, "Date")).timestamp() * 1000)
    except (TypeError, ValueError, IndexError):
        return None


def _date_bound(value: str) -> float | None:
    if value.isdigit():
        return float(value)
    try:
        day = datetime.strptime(value.replace("-", "/"), "%Y/%m/%d")
    except ValueError:
        return None
    return day.replace(tzinfo=UTC).timestamp()


def _term_matches(key: str, value: str, rec: dict[str, Any]) -> bool:
    msg, labels = rec["msg"], rec["labelIds"]
    v = value.lower()
    if key == "is":
        wanted = {"unread": "UNREAD", "important": "IMPORTANT", "starred": "STARRED"}
        if v == "read":
            return "UNREAD" not in labels
        return wanted.get(v, v.upper()) in labels
    if key in ("in", "label", "category"):
        if v == "anywhere":
            return True
        name = f"CATEGORY_{v.upper()}" if key == "category" else v.upper()
        name = {"DRAFTS": "DRAFT"}.get(name, name)
        return name in labels or any(lab.lower() == v for lab in labels)
    if key == "rfc822msgid":
        return strip_id(header(msg, "Message-ID")) == strip_id(value)
    if key in ("from", "subject", "cc", "bcc"):
        return v in header(msg, key).lower()
    if key == "to":
        return v in (header(msg, "To") + " " + header(msg, "Cc")).lower()
    if key == "has" and v == "attachment":
        return any(part.get_filename() for _, part in iter_parts(msg))
    if key in ("after", "before"):
        bound = _date_bound(value)
        when = rec["internalDate"] / 1000
        return bound is not None and (when >= bound if key == "after" else when < bound)
    if key == "newer_than" and value[:-1].isdigit():
        unit = {"d": 86400, "m": 30 * 86400, "y": 365 * 86400, "h": 3600}.get(value[-1], 86400)
        return rec["internalDate"] / 1000 >= time.time() - int(value[:-1]) * unit
    text = " ".join((header(msg, "Subject"), header(msg, "From"), header(msg, "To"), text_of(msg)))
    return (f"{key}:{v}" if key else v) in text.lower()


KNOWN_KEYS = {
    "is",
    "in",
    "label",
    "category",
    "rfc822msgid",
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "has",
    "after",
    "before",
    "newer_than",
}


def matches(query: str, rec: dict[str, Any]) -> bool:
    """Gmail search subset: space-separated terms ANDed, `-term` negates, quotes group words."""
    try:
        terms = shlex.split(query)
    except ValueError:
        terms = query.split()
    for term in terms:
        neg = term.startswith("-") and len(term) > 1
        term = term[1:] if neg else term
        key, sep, value = term.partition(":")
        if not sep or key.lower() not in KNOWN_KEYS:
            key, value = "", term
        if _term_matches(key.lower(), value, rec) == neg:
            return False
    return True


STATUS = {
    400: ("INVALID_ARGUMENT", "global", "invalidArgument", "Invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "global",
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential.",
    ),
    403: ("PERMISSION_DENIED", "usageLimits", "userRateLimitExceeded", "User-rate limit exceeded."),
    404: ("NOT_FOUND", "global", "notFound", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "usageLimits", "rateLimitExceeded", "Too many requests."),
    500: ("INTERNAL", "global", "backendError", "Internal error encountered."),
    503: ("UNAVAILABLE", "global", "backendError", "The service is currently unavailable."),
}
HISTORY_TYPES = {
    "messageAdded": "messagesAdded",
    "messageDeleted": "messagesDeleted",
    "labelAdded": "labelsAdded",
    "labelRemoved": "labelsRemoved",
}
RE_PREFIX = re.compile(r"^((re|fwd?|aw|sv)\s*:\s*)+", re.IGNORECASE)


class GmailError(Exception):
    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """A Gmail-style JSON error body."""
    state, domain, reason, default = STATUS.get(status, ("UNKNOWN", "global", "error", "Error."))
    msg = message or default
    errors = [{"message": msg, "domain": domain, "reason": reason}]
    return {"error": {"code": status, "message": msg, "errors": errors, "status": state}}


def one(query: dict[str, Any], name: str, default: Any = None) -> Any:
    value = query.get(name, default)
    return value[-1] if isinstance(value, list) else value


def many(query: dict[str, Any], name: str) -> list[str]:
    value = query.get(name, [])
    return value if isinstance(value, list) else [value]


def _int(query: dict[str, Any], name: str, default: int, cap: int = 500) -> int:
    try:
        return max(1, min(cap, int(one(query, name, default))))
    except ValueError as exc:
        raise GmailError(400, f"Invalid value for {name}") from exc


def page(items: list[Any], query: dict[str, Any], default_size: int) -> tuple[list[Any], str]:
    size = _int(query, "maxResults", default_size)
    token = one(query, "pageToken") or "p0"
    if not re.fullmatch(r"p\d+", token):
        raise GmailError(400, "Invalid pageToken")
    start = int(token[1:])
    return items[start : start + size], (f"p{start + size}" if start + size < len(items) else "")


def resource(rec: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    fmt = one(query, "format", "full")
    if fmt not in ("full", "metadata", "raw", "minimal"):
        raise GmailError(400, f"Invalid value at 'format' ({fmt})")
    out = {
        "id": rec["id"],
        "threadId": rec["threadId"],
        "labelIds": list(rec["labelIds"]),
        "snippet": snippet(rec["msg"]),
        "sizeEstimate": len(rec["raw"]),
        "historyId": str(rec["historyId"]),
        "internalDate": str(rec["internalDate"]),
    }
    if fmt == "raw":
        out["raw"] = b64url(rec["raw"])
    elif fmt != "minimal":
        out["payload"] = payload(
            rec["msg"],
            rec["id"],
            metadata_only=fmt == "metadata",
            metadata_headers=many(query, "metadataHeaders"),
        )
    return out


def joins_thread(msg: Message, members: Sequence[Message]) -> bool:
    """Gmail's rule: References/In-Reply-To name a thread member and the Subjects agree."""
    refs = set(re.findall(r"<[^>]+>", header(msg, "References") + header(msg, "In-Reply-To")))
    ids = {f"<{strip_id(header(m, 'Message-ID'))}>" for m in members}
    subjects = {RE_PREFIX.sub("", header(m, "Subject")).strip().lower() for m in members}
    return (
        bool(refs & ids) and RE_PREFIX.sub("", header(msg, "Subject")).strip().lower() in subjects
    )


def history_entry(h: dict[str, Any]) -> dict[str, Any]:
    ref = h["item"]["message"]
    return {
        "id": str(h["id"]),
        "messages": [{"id": ref["id"], "threadId": ref["threadId"]}],
        h["kind"]: [h["item"]],
    }


def select_messages(recs: Iterable[dict[str, Any]], q: dict[str, Any]) -> list[dict[str, Any]]:
    """messages.list filtering: labelIds (all), q, and SPAM/TRASH unless includeSpamTrash."""
    labels, query = set(many(q, "labelIds")), one(q, "q", "")
    hidden = set() if one(q, "includeSpamTrash") == "true" else {"SPAM", "TRASH"}
    return [
        r
        for r in recs
        if labels <= set(r["labelIds"]) and not hidden & set(r["labelIds"]) and matches(query, r)
    ]


def select_history(history: list[dict[str, Any]], q: dict[str, Any], start: int) -> list[Any]:
    types = {HISTORY_TYPES.get(t, t) for t in many(q, "historyTypes")}
    label = one(q, "labelId")
    return [
        h
        for h in history
        if h["id"] > start
        and (not types or h["kind"] in types)
        and (not label or label in h["labels"])
    ]


def decode_raw(raw: Any, *, need_recipient: bool, sender: str) -> bytes:
    """The bytes of a `raw` field, plus the headers Gmail adds when they are missing."""
    if not raw:
        raise GmailError(
            400,
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        )
    try:
        data = b64url_decode(raw)
    except ValueError as exc:
        raise GmailError(400, f"Invalid value for ByteString: {str(raw)[:40]}") from exc
    msg = parse(data)
    if need_recipient and not any(msg.get(h) for h in ("To", "Cc", "Bcc")):
        raise GmailError(400, "Recipient address required")
    extra = b""
    if not msg.get("Message-ID"):
        extra += f"Message-ID: {make_msgid(domain='mail.gmail.com')}\r\n".encode()
    if not msg.get("From"):
        extra += f"From: {sender}\r\n".encode()
    return extra + data
