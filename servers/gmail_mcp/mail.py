"""MIME in and out for the Gmail client: safe outgoing messages, readable incoming ones.

Outgoing messages are built with the ``email`` library (``policy.SMTP``): every header value is
checked to be one line, addresses are plain, and the Message-ID comes from the executor's
idempotency key so a send can be found again after a crash. Incoming messages are parsed
leniently: the text comes from text/plain (or from HTML with its hidden parts dropped), decoded by
the declared charset, and attachments are listed by a sanitized name, never saved.
"""

from __future__ import annotations

import base64
import mimetypes
import re
import unicodedata
from collections.abc import Iterable, Sequence
from email import policy
from email.message import EmailMessage as MimeMessage
from email.message import Message
from email.parser import BytesParser
from email.utils import formatdate, getaddresses
from typing import Any, NamedTuple

from pydantic import BaseModel

from core.actions import SendEmail, normalize_address, one_line
from core.paths import safe_filename
from servers.gmail_mcp.html_text import html_to_text

MESSAGE_ID_DOMAIN = "ai-employee.invalid"
MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # what Gmail accepts for one message
MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 500_000  # converted in well under a second, whatever the markup
MAX_HEADER_CHARS = 998
MAX_HEADER_LINE = 8_192  # bytes; RFC 5322 allows 998
MAX_HEADER_BLOCK = 262_144
MAX_PARTS = 1_000
MAX_REFERENCES = 30
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MSG_ID = re.compile(r"<[!-;=?-~]{1,900}>")  # printable ASCII without spaces, '<' or '>'
_UNSEEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")  # no text file can hold these


class OutgoingFile(NamedTuple):
    """A file to attach: its name (sanitized again here) and its bytes."""

    name: str
    data: bytes


class AttachmentInfo(BaseModel):
    name: str
    size: int
    mime_type: str


class EmailMessage(BaseModel):
    """One received message as the product reads it. Every text field is untrusted."""

    id: str
    thread_id: str = ""
    labels: list[str] = []
    sender: str = ""
    sender_address: str | None = None
    to: list[str] = []
    cc: list[str] = []
    subject: str = ""
    date: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = []
    text: str = ""
    text_from_html: bool = False
    truncated: bool = False
    attachments: list[AttachmentInfo] = []
    problems: list[str] = []


class MessageRef(BaseModel):
    id: str
    thread_id: str


class MessagePage(BaseModel):
    messages: list[MessageRef]
    next_page_token: str | None = None
    result_size_estimate: int = 0


class Profile(BaseModel):
    email_address: str
    history_id: str
    messages_total: int = 0


class Label(BaseModel):
    id: str
    name: str
    type: str = "user"


# -- outgoing ------------------------------------------------------------------------------
def message_id_for(key: str) -> str:
    """The Message-ID a send under ``key`` carries: the same key, the same Message-ID."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("the idempotency key must be 1-128 letters, digits, '.', '_' or '-'")
    return f"<{key}@{MESSAGE_ID_DOMAIN}>"


def message_ids(text: str) -> list[str]:
    """The well-formed Message-IDs in a header value (commas, comments and junk dropped)."""
    return _MSG_ID.findall(text or "")


def normalize_message_id(value: str, what: str = "Message-ID") -> str:
    """``value`` as ``<id>``; ValueError if it is not one plain Message-ID."""
    value = value.strip() if isinstance(value, str) else ""
    value = value if value.startswith("<") else f"<{value}>"
    if not _MSG_ID.fullmatch(value):
        raise ValueError(f"{what} {value[:80]!r} is not a Message-ID such as <abc@example.com>")
    return value


def _one_line(value: str, what: str) -> str:
    try:
        return one_line(value)
    except ValueError:
        raise ValueError(f"the {what} {value[:80]!r} is not one plain line of text") from None


def _addresses(values: Iterable[str], what: str) -> str:
    try:
        return ", ".join(normalize_address(_one_line(value, what)) for value in values)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _body(body: str) -> str:
    if not isinstance(body, str):
        raise ValueError("the body must be text")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ValueError(f"the body is {len(body):,} characters; Gmail takes at most 25 MB")
    if "\x00" in body:
        raise ValueError("the body contains a NUL character")
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the body contains characters that are not valid Unicode") from None
    return body


def build_mime(
    *,
    to: Sequence[str],
    subject: str,
    body: str,
    message_id: str,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    attachments: Sequence[OutgoingFile] = (),
) -> bytes:
    """The RFC 5322 bytes of one plain-text message; ValueError saying what is wrong."""
    msg = MimeMessage(policy=policy.SMTP)
    if not to:
        raise ValueError("the message has no recipient")
    for name, values in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        if values:
            msg[name] = _addresses(values, name)
    msg["Subject"] = _one_line(subject, "subject")
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = normalize_message_id(message_id, "Message-ID")
    refs = [normalize_message_id(ref, "References") for ref in references][-MAX_REFERENCES:]
    if in_reply_to:
        reply = normalize_message_id(in_reply_to, "In-Reply-To")
        msg["In-Reply-To"] = reply
        refs = [*(ref for ref in refs if ref != reply), reply]
    if refs:
        msg["References"] = " ".join(refs)
    msg.set_content(_body(body))
    for item in attachments:
        name = safe_filename(item.name, default="attachment")
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(bytes(item.data), maintype=maintype, subtype=subtype, filename=name)
    data = msg.as_bytes()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"the message is {len(data) / 2**20:.1f} MB; Gmail takes at most 25 MB")
    return data


def gmail_message(
    params: SendEmail,
    body: str,
    key: str,
    references: Sequence[str] = (),
    attachments: Sequence[OutgoingFile] = (),
) -> tuple[dict[str, Any], str]:
    """The Gmail API ``message`` for a send or draft (raw MIME, thread), and its Message-ID."""
    message_id = message_id_for(key)
    raw = build_mime(
        to=params.to,
        cc=params.cc,
        bcc=params.bcc,
        subject=params.subject,
        body=body,
        message_id=message_id,
        in_reply_to=params.in_reply_to,
        references=references,
        attachments=attachments,
    )
    message: dict[str, Any] = {"raw": base64.urlsafe_b64encode(raw).decode("ascii")}
    if params.thread_id:
        message["threadId"] = params.thread_id
    return message, message_id


# -- incoming ------------------------------------------------------------------------------
def clean_line(text: str, limit: int = MAX_HEADER_CHARS) -> str:
    """Outside text as one visible line: control, format and line-break characters removed."""
    text = "".join(" " if unicodedata.category(c) in _UNSEEN else c for c in text)
    return " ".join(text.split())[:limit]


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
        return clean_line("" if value is None else str(value))
    except Exception:  # a header too broken to parse: show it raw
        raw = (str(v) for k, v in msg.raw_items() if k.lower() == name.lower())
        return clean_line(next(raw, ""))


def _address_list(msg: Message, name: str) -> list[str]:
    found = []
    for _, address in getaddresses([_header(msg, name)]):
        try:
            found.append(normalize_address(address))
        except ValueError:
            continue
    return found


def _decode(part: Message, problems: list[str]) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError):
        problems.append(f"unknown charset {clean_line(charset, 40)!r}: read as UTF-8")
        charset, text = "utf-8", data.decode("utf-8", errors="replace")
    text = _UNWRITABLE.sub("\ufffd", text)
    if "\ufffd" in text and b"\xef\xbf\xbd" not in data:
        problems.append(f"some bytes are not valid {clean_line(charset, 40)}; shown as \ufffd")
    return text


def _part_name(part: Message) -> str | None:
    try:
        filename = part.get_filename()
        attached = part.get_content_disposition() == "attachment"
    except Exception:  # a broken Content-Disposition: still an attachment
        return "attachment"
    if filename is None and not attached:
        return None
    name = filename or ""
    return safe_filename(clean_line(name, len(name)), default="attachment")  # keeps the extension


def _bytes_len(part: Message) -> int:
    data = part.get_payload(decode=True)
    return len(data) if isinstance(data, bytes) else 0


def _bounded_headers(raw: bytes) -> tuple[bytes, bool]:
    """``raw`` with each header line cut to MAX_HEADER_LINE bytes and the header block to
    MAX_HEADER_BLOCK: the parser's time grows faster than a header's length."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    lines = head.splitlines(keepends=True)
    if len(head) <= MAX_HEADER_BLOCK and all(len(line) <= MAX_HEADER_LINE for line in lines):
        return raw, False
    kept, size = [], 0
    for line in lines:
        if len(line) > MAX_HEADER_LINE:
            line = line[:MAX_HEADER_LINE] + b"\r\n"
        size += len(line)
        if size > MAX_HEADER_BLOCK:
            break
        kept.append(line)
    return b"".join(kept) + (sep or b"\r\n\r\n") + body, True


def parse_message(
    raw: bytes, *, id: str, thread_id: str = "", labels: Sequence[str] = ()
) -> EmailMessage:
    """Read raw RFC 822 bytes leniently; what could not be read is listed in ``problems``."""
    found = EmailMessage(id=id, thread_id=thread_id, labels=list(labels))
    raw, cut = _bounded_headers(raw)
    if cut:
        found.problems.append("some headers were too long and were cut")
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; this is a last resort
        found.problems.append(f"the message cannot be read as MIME ({type(exc).__name__})")
        return found
    sender = _header(msg, "From")
    senders = _address_list(msg, "From")
    found.sender, found.sender_address = sender, (senders[0] if senders else None)
    found.to, found.cc = _address_list(msg, "To"), _address_list(msg, "Cc")
    found.subject, found.date = _header(msg, "Subject"), _header(msg, "Date")
    found.message_id, found.in_reply_to = _header(msg, "Message-ID"), _header(msg, "In-Reply-To")
    found.references = _header(msg, "References").split()[-MAX_REFERENCES:]
    plain, html = _read_parts(msg, found)
    if plain is None and html is not None:
        if len(html) > MAX_HTML_CHARS:
            html, found.truncated = html[:MAX_HTML_CHARS], True
        plain, found.text_from_html = html_to_text(html), True
    text = plain or ""
    if len(text) > MAX_TEXT_CHARS:
        shown = f"the first {MAX_TEXT_CHARS:,} are shown"
        found.problems.append(f"the body has {len(text):,} characters; {shown}")
        text, found.truncated = text[:MAX_TEXT_CHARS], True
    found.text = text
    return found


def _read_parts(msg: Message, found: EmailMessage) -> tuple[str | None, str | None]:
    """The plain text and the first HTML of a message; attachments and problems into ``found``."""
    plain: list[str] = []
    html = None
    defects = {type(d).__name__ for d in msg.defects}
    try:
        parts = list(msg.walk())
    except Exception as exc:  # a structure too broken to walk: read the top part only
        parts = [msg]
        found.problems.append(f"the MIME structure cannot be followed ({type(exc).__name__})")
    leaves = [part for part in parts if not part.is_multipart()]
    if len(leaves) > MAX_PARTS:
        found.problems.append(
            f"the message has {len(leaves):,} parts; the first {MAX_PARTS:,} are read"
        )
    for part in parts:
        defects.update(type(d).__name__ for d in part.defects)
    for part in leaves[:MAX_PARTS]:
        try:
            name, ctype = _part_name(part), part.get_content_type()
            if name is None and ctype == "text/plain":
                plain.append(_decode(part, found.problems))
            elif name is None and ctype == "text/html":
                html = _decode(part, found.problems) if html is None else html
            else:
                size, kind = _bytes_len(part), clean_line(ctype, 100)
                info = AttachmentInfo(name=name or "attachment", size=size, mime_type=kind)
                found.attachments.append(info)
        except Exception as exc:  # one unreadable part does not hide the rest
            found.problems.append(f"a part could not be read ({type(exc).__name__})")
    if defects:
        found.problems.append(f"malformed MIME ({', '.join(sorted(defects))}); text may be partial")
    return ("\n\n".join(plain) if plain else None), html
