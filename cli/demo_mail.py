"""``ai-employee demo --gmail URL``: the mail path, live, against a Gmail stand-in on this machine.

Mail arrives -> a task in ``Needs_Action/`` -> a reply is drafted -> the CEO approves -> it is
sent exactly once -> ``Done/``. The product's own parts do every step: the Gmail watcher, the
vault, the handbook, ``core.approvals`` and the approval executor with its ``send_email``
handler. The URL must be loopback http, so the demo never touches a real mailbox; it runs on a
throwaway vault and a throwaway secrets folder, and reads none of the user's settings.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.action_handler import PassReport
from core.actions import RegisterPayment, SendEmail
from core.approvals import approve, create_request
from core.audit import AuditLog
from core.config import Settings
from core.errors import AlreadyClaimedError, ConfigError
from core.executor import Executor
from core.fsutil import atomic_write
from core.policy import load_policy
from core.status import vault_status
from core.tasks import UNTRUSTED_HEADING, read_task_file
from core.vault import Vault, open_vault
from core.vault_init import init_vault
from daemons.approval_watcher import available_handlers
from daemons.gmail_watcher import ACTOR as WATCHER
from daemons.gmail_watcher import GmailWatcher
from servers.gmail_mcp.auth import SCOPES, token_path
from servers.gmail_mcp.gmail import GmailClient
from servers.gmail_mcp.mail import EmailMessage, clean_line

STEPS = 9
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Who wrote what in the stand-in's seeded mailbox (tests/fakes/gmail_demo.py).
CUSTOMER = "ana@client.example"
HOSTILE = "it-desk@helpdesk-mail.example"
REPLY_TEMPLATE = (
    "Hi {name},\n\n"
    'Thank you for your email about "{subject}".\n'
    "We have it, and you will have what you asked for shortly.\n\n"
    "Best regards,\nThe team"
)


def _step(number: int, text: str) -> None:
    print(f"\n[{number}/{STEPS}] {text}", flush=True)


def _say(line: str) -> None:
    print(f"  {WATCHER}: {line}", flush=True)


def _fields(path: Path) -> dict[str, Any]:
    """A task file's fields beyond the common ones (an email's sender, a request's result)."""
    return dict(read_task_file(path).meta.model_extra or {})


def loopback_url(raw: str) -> str:
    """``raw`` without a trailing slash if it is plain http on this machine; ConfigError if not."""
    refuse = "the demo never touches a real mailbox"
    fix = "give --gmail http://127.0.0.1:PORT (`make demo` starts a local Gmail stand-in)"
    try:
        parts = urlsplit(raw.strip())
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        raise ConfigError(f"--gmail is not a URL; {refuse}", fix) from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"--gmail has a user name or password in it; {refuse}", fix)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        where = f"{parts.scheme or 'no scheme'}://{parts.hostname or 'no host'}"
        raise ConfigError(f"--gmail must be loopback http, not {where}; {refuse}", fix)
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ConfigError(f"--gmail must be just http://host:port; {refuse}", fix)
    return raw.strip().rstrip("/")


def _fresh_folder(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(
            f"{path} already exists and is not empty; the mail demo needs a fresh {what}",
            "leave out --vault, or name a folder that does not exist yet",
        )


def _write_demo_token(settings: Settings, url: str) -> Path:
    """A made-up Gmail token for the stand-in: it refreshes at the stand-in, nowhere else."""
    info = {
        "refresh_token": "demo-refresh-" + secrets.token_urlsafe(16),
        "client_id": "ai-employee-demo-client",
        "client_secret": "demo-secret-" + secrets.token_urlsafe(16),
        "token_uri": url + "/token",
        "scopes": SCOPES[settings.zone],
    }
    path = token_path(settings)
    atomic_write(path, json.dumps(info, indent=2).encode(), mode=0o600)
    return path


def demo_settings(root: Path, url: str) -> Settings:
    """Settings built here, never from the environment or a .env file: a throwaway vault, a
    throwaway SECRETS_DIR next to it, the stand-in's URL, the local zone, live."""
    secrets_dir = root.parent / f"{root.name}-secrets"
    _fresh_folder(root, "vault folder")
    if secrets_dir.exists():
        raise ConfigError(
            f"{secrets_dir} already exists; the demo makes its own secrets folder there",
            "leave out --vault, or name a vault folder with no '-secrets' folder beside it",
        )
    secrets_dir.mkdir(mode=0o700, parents=True)
    secrets_dir.chmod(0o700)
    return Settings(
        vault_path=root,
        secrets_dir=secrets_dir,
        gmail_api_endpoint=url,
        zone="local",
        dry_run=False,
    )


class MailDemo:
    """The mail path, one method per step, sharing the vault, the settings and one client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.vault_path
        self.client = GmailClient(settings)
        self.emails: dict[str, EmailMessage] = {}  # task file name -> the email behind it

    def vault(self, actor: str) -> Vault:
        return open_vault(self.settings, actor=actor)

    def count(self, query: str) -> int:
        return len(self.client.list_messages(query, max_results=100).messages)

    def _task_from(self, sender: str) -> str:
        for name, message in self.emails.items():
            if (message.sender_address or "").lower() == sender:
                return name
        raise ConfigError(
            f"the Gmail stand-in has no email from {sender}",
            "run the demo through `make demo`, which starts a seeded stand-in",
        )

    # -- the steps ------------------------------------------------------------------------
    def watch(self) -> None:
        watcher = GmailWatcher(
            self.vault(WATCHER), self.client, query=self.settings.gmail_watch_query, say=_say
        )
        made = watcher.poll()
        inbox = self.count("in:inbox")
        print(f"  the inbox holds {inbox} emails; {len(made)} match {watcher.query!r}:")
        for name in sorted(made):
            fields = _fields(self.root / "Needs_Action" / name)
            self.emails[name] = self.client.get_message(str(fields["gmail_id"]))
            sender = clean_line(str(fields.get("from", "")), 60)
            subject = clean_line(str(fields.get("subject", "")), 60)
            print(f"  Needs_Action/{name}  from {sender}: {subject}")

    def hostile(self) -> None:
        name = self._task_from(HOSTILE)
        doc = read_task_file(self.root / "Needs_Action" / name)
        trusted, _, untrusted = doc.body.partition(UNTRUSTED_HEADING)
        first = next(line for line in self.emails[name].text.splitlines() if line.strip())
        kept = first.strip() in untrusted and first.strip() not in trusted
        print(f"  Needs_Action/{name} says: {clean_line(first, 70)!r}...")
        where = "is fenced under" if kept else "is NOT fenced under"
        print(f"  its text {where} {UNTRUSTED_HEADING!r}")
        pending = len(list((self.root / "Pending_Approval").rglob("*.md")))
        sent, drafts = self.count("in:sent"), self.count("in:drafts")
        print(f"  nothing else happened: {pending} approval requests, {sent} sent, {drafts} drafts")
        wire = RegisterPayment(amount="9800", currency="EUR", payee="the IBAN in the email")
        decision = load_policy(self.root).decide(wire.model_copy(update={"payment_kind": "wire"}))
        print(f"  had anyone asked, the handbook says {decision.level.value} ({decision.rule})")

    def claim(self) -> str:
        name = self._task_from(CUSTOMER)
        vault = self.vault("local-agent")
        doc = vault.claim(name, "local")
        print(f"  In_Progress/local/{name} claimed by {doc.meta.claimed_by}")
        try:
            vault.claim(name, "cloud")
        except AlreadyClaimedError as exc:
            print(f"  a second claim by the cloud zone is refused: {exc.what}")
        return name

    def draft(self, name: str) -> Path:
        message = self.emails[name]
        first = clean_line(parseaddr(message.sender)[0], 40).split(" ")[0] or "there"
        subject = message.subject
        body = REPLY_TEMPLATE.format(name=first, subject=clean_line(subject, 120))
        reply = SendEmail(
            to=[message.sender_address or CUSTOMER],
            subject=subject if subject.lower().startswith("re:") else f"Re: {subject}",
            thread_id=message.thread_id or None,
            in_reply_to=message.message_id or None,
        )
        print("  the reply (a fixed template, no model):")
        print("".join(f"    | {line}\n" for line in body.splitlines()), end="")
        saved = self.client.create_draft(
            reply, body, f"draft-{name[:-3]}", references=message.references
        )
        print(f"  Gmail draft {saved['draft_id']} in thread {saved['thread_id']}, ", end="")
        print(f"In-Reply-To {message.message_id}")
        print("  (the draft is for the CEO to see in Gmail; what is approved is what gets sent)")
        vault = self.vault("local-agent")
        policy = load_policy(self.root)
        decision = policy.decide(reply, body)
        print(f"  handbook: {decision.level.value} ({decision.rule}: {decision.reason})")
        why = "template reply to the customer's email"
        path = create_request(vault, reply, body, reason=why, task=name[:-3], policy=policy)
        print(f"  waiting for the CEO: {path.relative_to(self.root)}")
        return path

    def ceo(self, request: Path) -> Path:
        rel = str(request.relative_to(self.root))
        approved = approve(self.vault("ceo"), rel)
        print(f"  {rel} -> {approved.relative_to(self.root)}")
        print("  (in real life the CEO drags the file from Pending_Approval/email/ to")
        print("   Approved/email/ in Obsidian, or runs `ai-employee approve FILE`)")
        return approved

    def execute(self) -> PassReport:
        executor = Executor(
            self.vault("approval_watcher"),
            zone=self.settings.zone,
            dry_run=self.settings.dry_run,
            handlers=available_handlers(self.settings),
        )
        report = executor.run_once()
        for label, files in (("sent", report.done), ("failed", report.failed)):
            for file in files:
                print(f"  {label}: {file}")
        for file, why in report.waiting.items():
            print(f"  waiting: {file}: {why}")
        return report

    def sent_once(self, report: PassReport) -> bool:
        if not report.done:
            print("  NOTHING WAS SENT")
            return False
        result = _fields(self.root / report.done[0])["result"]
        sent = self.count("in:sent")
        print(f"  the stand-in's Sent folder: {sent} message{'s' if sent != 1 else ''}")
        print(f"  Message-ID {result['message_id']}")
        print(f"  in the customer's thread {result['thread_id']}, as a reply to their email")
        return sent == 1

    def again(self) -> bool:
        report = self.execute()
        sent = self.count("in:sent")
        nothing = not (report.done or report.failed or report.waiting)
        print(f"  {'nothing to do' if nothing else 'UNEXPECTED WORK'}; Sent still holds {sent}")
        return nothing and sent == 1

    def finish(self, name: str) -> bool:
        done = self.vault("local-agent").complete(name, "local", summary="Replied (approved)")
        print(f"  {done.relative_to(self.root)}")
        vault = self.vault("demo")
        status = vault_status(vault, zone=self.settings.zone, dry_run=self.settings.dry_run)
        files = ", ".join(f"{folder} {count}" for folder, count in status.counts.items() if count)
        waiting, claimed = len(status.pending_approvals), len(status.claimed)
        print(f"  status: {files}; {waiting} waiting for approval, {claimed} claimed")
        report = AuditLog(self.root, self.settings.zone).verify()
        verdict = "verifies" if report.ok else f"DOES NOT VERIFY: {report.problem}"
        print(f"  audit trail: {report.entries} entries, hash chain {verdict}")
        return report.ok


def cmd_demo_mail(args: argparse.Namespace) -> int:
    url = loopback_url(args.gmail)
    base = args.vault or Path(tempfile.mkdtemp(prefix="ai-employee-demo-")) / "vault"
    root = Path(base).expanduser().absolute()
    settings = demo_settings(root, url)
    _step(1, "A throwaway vault, a throwaway secrets folder, and a Gmail on this machine")
    init_vault(root)
    open_vault(settings, actor="demo").record("vault", "init", ".")
    print(f"  vault: {root}")
    print(f"  a made-up Gmail token (mode 0600): {_write_demo_token(settings, url)}")
    print(f"  Gmail: the stand-in at {url}; the demo runs LIVE (DRY_RUN=false, ZONE=local),")
    print("  and nothing leaves this machine")
    demo = MailDemo(settings)
    _step(2, "Mail arrives: one pass of the Gmail watcher turns new mail into tasks")
    demo.watch()
    _step(3, "The hostile email is only a task: its text is data, and nothing acted on it")
    demo.hostile()
    _step(4, "The local zone claims the customer's email; a second claim is refused")
    name = demo.claim()
    _step(5, "A reply is drafted from a template, saved as a Gmail draft, and put up for approval")
    request = demo.draft(name)
    _step(6, "The CEO's move: approve the request")
    demo.ceo(request)
    _step(7, "One approval-watcher pass sends it (live, to the local stand-in)")
    ok = demo.sent_once(demo.execute())
    _step(8, "A second pass sends nothing: exactly once")
    ok = demo.again() and ok
    _step(9, "The task moves to Done/, and the audit trail's hash chain is checked")
    ok = demo.finish(name) and ok
    print(f"\nThe demo vault is at {root}: open it in Obsidian to look around.")
    print(f"Its made-up token is in {settings.secrets_dir}; delete both folders when done.")
    return 0 if ok else 1
