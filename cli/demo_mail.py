"""``ai-employee demo --gmail URL [--live]``: the whole path on a throwaway vault, against a
Gmail stand-in on this machine.

Mail arrives -> tasks in ``Needs_Action/`` (a hostile email stays only a task) -> a file
dropped in ``Inbox/`` becomes a task -> a scheduler pass -> a template reply is put up for
approval -> the CEO approves -> the executor runs it once -> ``Done/`` -> ``Dashboard.md`` and
the audit trail. The product's own parts do every step, each daemon through its real one-pass
entry point (:mod:`cli.demo_steps`). By default the executor runs with ``DRY_RUN=true``: it
does everything but the send, and the stand-in's Sent folder stays empty. ``--live`` sends the
reply to the stand-in, exactly once. The URL must be loopback http, so the demo never touches a
real mailbox; it makes its own vault and secrets folder and reads none of the user's settings.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from cli import demo_steps
from cli.demo_steps import daemon_pass, fields, names
from core.actions import RegisterPayment, SendEmail
from core.approvals import approve, create_request
from core.config import Settings
from core.errors import AlreadyClaimedError, ConfigError
from core.fsutil import atomic_write
from core.policy import load_policy
from core.status import vault_status
from core.tasks import UNTRUSTED_HEADING, read_task_file
from core.vault import Vault, open_vault
from core.vault_init import init_vault
from daemons import approval_watcher, gmail_watcher
from servers.gmail_mcp.auth import SCOPES, token_path
from servers.gmail_mcp.gmail import GmailClient
from servers.gmail_mcp.mail import EmailMessage, clean_line

STEPS = 13
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
# Where a request may be on its way; a pass that changes none of them did nothing.
REQUEST_FOLDERS = ("Approved", "In_Progress", "Done", "Failed", "Rejected")


def _step(number: int, text: str) -> None:
    print(f"\n[{number}/{STEPS}] {text}", flush=True)


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


def demo_settings(root: Path, url: str, *, live: bool = False) -> Settings:
    """Settings built here, never from the environment or a .env file: a throwaway vault, a
    throwaway SECRETS_DIR next to it, the stand-in's URL, the local zone, a dry run unless
    ``live``."""
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
        dry_run=not live,
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

    def _request_files(self) -> list[str]:
        return sorted(
            str(path.relative_to(self.root))
            for folder in REQUEST_FOLDERS
            for path in (self.root / folder).rglob("*.md")
        )

    def _executor_pass(self) -> bool:
        return daemon_pass(
            "ai-employee run approval_watcher --once",
            lambda: approval_watcher.run(self.settings, once=True),
        )

    # -- the steps ------------------------------------------------------------------------
    def watch(self) -> bool:
        before = names(self.root / "Needs_Action", "EMAIL_*.md")
        ok = daemon_pass(
            "ai-employee run gmail_watcher --once",
            lambda: gmail_watcher.run(self.settings, once=True, client=self.client),
        )
        made = sorted(names(self.root / "Needs_Action", "EMAIL_*.md") - before)
        inbox, query = self.count("in:inbox"), self.settings.gmail_watch_query
        print(f"  the inbox holds {inbox} emails; {len(made)} match {query!r} and are now tasks:")
        for name in made:
            task = fields(self.root / "Needs_Action" / name)
            self.emails[name] = self.client.get_message(str(task["gmail_id"]))
            sender = clean_line(str(task.get("from", "")), 60)
            subject = clean_line(str(task.get("subject", "")), 60)
            print(f"  Needs_Action/{name}  from {sender}: {subject}")
        return ok and bool(made)

    def hostile(self) -> bool:
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
        return kept and not (pending or sent or drafts)

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
        if self.settings.dry_run:
            print("  DRY RUN: no Gmail draft is saved (--live saves one in the customer's thread)")
        else:
            saved = self.client.create_draft(
                reply, body, f"draft-{name[:-3]}", references=message.references
            )
            print(f"  Gmail draft {saved['draft_id']} in thread {saved['thread_id']}, ", end="")
            print(f"In-Reply-To {message.message_id}")
            print("  (the draft is for the CEO to see in Gmail; what is approved is what is sent)")
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
        print(f"  the CEO: {rel} -> {approved.relative_to(self.root)}")
        print("  (in real life the CEO drags the file from Pending_Approval/email/ to")
        print("   Approved/email/ in Obsidian, or runs `ai-employee approve FILE`)")
        return approved

    def execute(self) -> bool:
        before = names(self.root / "Done", "SEND_EMAIL_*.md")
        ok = self._executor_pass()
        done = sorted(names(self.root / "Done", "SEND_EMAIL_*.md") - before)
        if not (ok and len(done) == 1):
            print("  THE REQUEST DID NOT RUN")
            return False
        request = fields(self.root / "Done" / done[0])
        outcome, dry_run, result = request["outcome"], request["dry_run"], request["result"]
        print(f"  Done/{done[0]}: outcome {outcome}, dry_run {str(dry_run).lower()}")
        sent = self.count("in:sent")
        plural = "s" if sent != 1 else ""
        if dry_run:
            print(f"  it says what it would have done: {result['would']}")
            print(f"  the stand-in's Sent folder: {sent} message{plural}: DRY RUN, nothing sent")
            print("  (run with --live to send it to the stand-in; DRY_RUN=false sends for real)")
            return outcome == "done" and sent == 0
        print(f"  the stand-in's Sent folder: {sent} message{plural}")
        print(f"  Message-ID {result['message_id']}")
        print(f"  in the customer's thread {result['thread_id']}, as a reply to their email")
        return outcome == "done" and sent == 1

    def again(self) -> bool:
        before, sent_before = self._request_files(), self.count("in:sent")
        ok = self._executor_pass()
        nothing = self._request_files() == before
        sent = self.count("in:sent")
        print(f"  {'nothing to do' if nothing else 'UNEXPECTED WORK'}; Sent still holds {sent}")
        return ok and nothing and sent == sent_before

    def finish(self, name: str) -> bool:
        summary = "Reply approved; run as a dry run, so not sent"
        if not self.settings.dry_run:
            summary = "Replied (approved)"
        done = self.vault("local-agent").complete(name, "local", summary=summary)
        print(f"  {done.relative_to(self.root)}")
        vault = self.vault("demo")
        status = vault_status(vault, zone=self.settings.zone, dry_run=self.settings.dry_run)
        files = ", ".join(f"{folder} {count}" for folder, count in status.counts.items() if count)
        waiting, claimed = len(status.pending_approvals), len(status.claimed)
        print(f"  status: {files}; {waiting} waiting for approval, {claimed} claimed")
        return not (waiting or claimed)


def _setup(settings: Settings, url: str) -> None:
    root = settings.vault_path
    init_vault(root)
    open_vault(settings, actor="demo").record("vault", "init", ".")
    print(f"  vault: {root}")
    print(f"  a made-up Gmail token (mode 0600): {_write_demo_token(settings, url)}")
    print(f"  Gmail: the stand-in at {url}; nothing leaves this machine")
    if settings.dry_run:
        print("  the demo runs as a DRY RUN (DRY_RUN=true, ZONE=local): the executor does")
        print("  everything but the send, and the stand-in's Sent folder stays empty")
    else:
        print("  the demo runs LIVE (DRY_RUN=false, ZONE=local): the approved reply is")
        print("  sent to the stand-in, once")


def run_demo(settings: Settings, url: str) -> bool:
    """Every step in order; True if each one did what it should."""
    _step(1, "A throwaway vault, a throwaway secrets folder, and a Gmail on this machine")
    _setup(settings, url)
    demo = MailDemo(settings)
    _step(2, "Mail arrives: one pass of the Gmail watcher turns new mail into tasks")
    ok = demo.watch()
    _step(3, "The hostile email is only a task: its text is data, and nothing acted on it")
    ok = demo.hostile() and ok
    _step(4, "A file arrives: one pass of the inbox watcher files a dropped receipt as a task")
    ok = demo_steps.file_drop(settings) and ok
    _step(5, "The schedule: one pass of the scheduler, and what it will create when")
    ok = demo_steps.schedule(settings) and ok
    _step(6, "The local zone claims the customer's email; a second claim is refused")
    name = demo.claim()
    _step(7, "A reply is drafted from a template (no model) and put up for the CEO's approval")
    request = demo.draft(name)
    _step(8, "The CEO's move: approve the request")
    demo.ceo(request)
    how = "sends it, live, to the local stand-in" if not settings.dry_run else "runs it (DRY RUN)"
    _step(9, f"One pass of the approval watcher {how}")
    ok = demo.execute() and ok
    _step(10, "A second pass does nothing: an approval runs exactly once")
    ok = demo.again() and ok
    _step(11, "The customer's task moves to Done/")
    ok = demo.finish(name) and ok
    _step(12, "The dashboard: Dashboard.md rewritten from the vault (the local zone's job)")
    ok = demo_steps.dashboard(settings) and ok
    _step(13, "The audit trail: every change counted, and its hash chain checked")
    return demo_steps.audit_summary(settings) and ok


def cmd_demo_mail(args: argparse.Namespace) -> int:
    url = loopback_url(args.gmail)
    base = args.vault or Path(tempfile.mkdtemp(prefix="ai-employee-demo-")) / "vault"
    root = Path(base).expanduser().absolute()
    settings = demo_settings(root, url, live=bool(getattr(args, "live", False)))
    ok = False
    try:
        ok = run_demo(settings, url)
    finally:
        print(f"\nThe demo vault is at {root}: open it in Obsidian to look around.")
        print(f"Its made-up token is in {settings.secrets_dir}; delete both folders when done.")
    if not ok:
        print("THE DEMO FOUND A PROBLEM: see the step that says so above.")
    return 0 if ok else 1
