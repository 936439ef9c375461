"""Turning a fetched email into a task file: ``Needs_Action/EMAIL_<gmail id>.md``.

Creation is idempotent by name: a message whose task file exists anywhere in the task's life
(Needs_Action, In_Progress, Done, Failed) is never written again. Every value from the email
that goes into the frontmatter is a plain one-line string or a bool, rendered by the YAML
dumper; the text itself (and the attachment names) sit in the body under the untrusted heading.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from core.errors import TargetExistsError, TaskFileError
from core.paths import safe_filename
from core.tasks import ID_PATTERN, TaskMeta, untrusted_block, utc_now
from core.vault import Vault

TASK_FOLDERS = ("Needs_Action", "In_Progress/cloud", "In_Progress/local", "Done", "Failed")
_ID = re.compile(ID_PATTERN)
# Gmail search terms the watcher can check on a fetched message's labels; others are ignored
# when filtering history (the bootstrap list applies the whole query at Gmail).
_LABEL_TERMS = {
    "is:unread": "UNREAD",
    "is:important": "IMPORTANT",
    "is:starred": "STARRED",
    "in:inbox": "INBOX",
    "in:spam": "SPAM",
    "in:trash": "TRASH",
    "in:sent": "SENT",
}


class Attachment(Protocol):
    name: str
    size: int
    mime_type: str


class Email(Protocol):
    """What the watcher needs of ``servers.gmail_mcp.mail.EmailMessage``."""

    id: str
    thread_id: str
    labels: list[str]
    sender: str
    sender_address: str | None
    to: list[str]
    cc: list[str]
    subject: str
    date: str
    text: str
    truncated: bool
    attachments: list[Attachment]
    problems: list[str]


def task_file_name(gmail_id: str) -> str:
    """``EMAIL_<id>.md``; TaskFileError if the id cannot make a task id."""
    task_id = f"EMAIL_{gmail_id}"
    if not _ID.fullmatch(task_id):
        raise TaskFileError(f"the Gmail id {gmail_id!r:.60} cannot name a task", "")
    return f"{task_id}.md"


def already_have(vault: Vault, gmail_id: str) -> bool:
    """True if this message's task file exists in any folder of a task's life."""
    name = task_file_name(gmail_id)
    return any((vault.folder(folder) / name).exists() for folder in TASK_FOLDERS)


def label_conditions(query: str) -> tuple[frozenset[str], frozenset[str]]:
    """(labels required, labels refused) from the query's label terms (``is:unread``,
    ``-in:spam``, ``label:Work``...). Other terms (from:, subject:, words) are not checked."""
    try:
        terms = shlex.split(query)
    except ValueError:
        terms = query.split()
    need: set[str] = set()
    refuse: set[str] = set()
    for term in terms:
        negated = term.startswith("-") and len(term) > 1
        term = (term[1:] if negated else term).lower()
        label = _LABEL_TERMS.get(term)
        if label is None and term.startswith("label:") and len(term) > 6:
            label = term[6:].upper()
        if label is not None:
            (refuse if negated else need).add(label)
    return frozenset(need), frozenset(refuse)


def matches_labels(labels: Iterable[str], query: str) -> bool:
    have = {label.upper() for label in labels}
    need, refuse = label_conditions(query)
    return need <= have and not (refuse & have)


def _attachment_lines(message: Email) -> list[str]:
    lines = []
    for item in message.attachments:
        name = safe_filename(item.name, default="attachment")
        lines.append(f"- {name} ({item.size:,} bytes, {item.mime_type})")
    return lines or ["(none)"]


def email_body(message: Email) -> str:
    """The task body: a short trusted note, then the whole email fenced as untrusted."""
    outside = [
        f"From: {message.sender}",
        f"To: {', '.join(message.to)}",
        *([f"Cc: {', '.join(message.cc)}"] if message.cc else []),
        f"Subject: {message.subject}",
        f"Date: {message.date}",
        "Attachments (listed, not saved):",
        *_attachment_lines(message),
    ]
    if message.problems:
        outside += ["Problems reading this email:", *(f"- {p}" for p in message.problems)]
    outside += ["", message.text]
    note = "An email arrived in Gmail. Decide what it needs; reply only through an approval."
    if message.truncated:
        note += " The text was cut short; open it in Gmail for the rest."
    return f"# Email\n\n{note}\n\n{untrusted_block(chr(10).join(outside))}"


def email_meta(message: Email, known_contacts: frozenset[str]) -> TaskMeta:
    sender = (message.sender_address or "").lower()
    important = "IMPORTANT" in {label.upper() for label in message.labels}
    return TaskMeta.model_validate(
        {
            "id": task_file_name(message.id)[:-3],
            "type": "email",
            "source": "gmail",
            "created": utc_now(),
            "status": "pending",
            "priority": "high" if important else "normal",
            "gmail_id": message.id,
            "thread_id": message.thread_id,
            "from": message.sender_address or message.sender,
            "to": list(message.to),
            "subject": message.subject,
            "received": message.date,
            "known_contact": bool(sender) and sender in {c.lower() for c in known_contacts},
            "attachments": len(message.attachments),
            "problems": len(message.problems),
        }
    )


def write_email_task(vault: Vault, message: Email, known_contacts: frozenset[str]) -> Path | None:
    """Create ``Needs_Action/EMAIL_<id>.md``; None if the message already has a task file."""
    if already_have(vault, message.id):
        return None
    name = task_file_name(message.id)
    try:
        return vault.create(
            "Needs_Action", name, email_meta(message, known_contacts), email_body(message)
        )
    except TargetExistsError:  # another watcher wrote it first
        return None
