"""``ai-employee demo --gmail URL [--live]`` as ``make demo`` runs it: the wrapper starts a seeded
Gmail stand-in in its own process, and the real CLI runs the whole path against it (a dry run by
default; ``--live`` sends to the stand-in)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli.demo_steps import receipt_pdf
from core.audit import AuditLog
from core.tasks import UNTRUSTED_HEADING, TaskDoc, read_task_file
from tests.conftest import PRODUCT_ENV

REPO = Path(__file__).resolve().parents[2]
STEPS = 13
DAEMONS = ("gmail_watcher", "inbox_watcher", "scheduler", "approval_watcher")
# The path's milestones, in the order they must happen: (actor, category, action).
WHOLE_PATH = (
    ("demo", "vault", "init"),
    ("gmail_watcher", "vault", "create"),
    ("inbox_watcher", "inbox", "take"),
    ("local-agent", "vault", "claim"),
    ("ceo", "approval", "approve"),
    ("approval_watcher", "action", "send_email"),
    ("local-agent", "vault", "complete"),
    ("demo", "vault", "update_dashboard"),
)
CUSTOMER = "ana@client.example"
HOSTILE = "it-desk@helpdesk-mail.example"
ORIGINAL_MESSAGE_ID = "<jan-invoice-request.4471@mail.client.example>"
SENT_ID = re.compile(r"^<[0-9a-f]{32}@ai-employee\.invalid>$")
Run = tuple[subprocess.CompletedProcess[str], Path]


def product_free_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without the product's variables, HOME in a temp folder."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in PRODUCT_ENV and not name.startswith("SOCIAL_")
    }
    return {**env, "HOME": str(home), **extra}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def with_stand_in(*command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.fakes.gmail_demo", "--", *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def mail_demo(vault: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    command = (sys.executable, "-m", "cli", "demo", "--gmail", "{gmail}", "--vault", str(vault))
    return with_stand_in(*command, *extra, env=env)


def only(folder: Path, pattern: str) -> Path:
    [found] = folder.glob(pattern)
    return found


def fields(doc: TaskDoc) -> dict[str, object]:
    return {**doc.meta.model_dump(), **(doc.meta.model_extra or {})}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``make demo`` as it is: the default dry run."""
    base = tmp_path_factory.mktemp("mail-demo")
    (base / "home").mkdir()
    vault = base / "vault"
    proc = mail_demo(vault, product_free_env(base / "home"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, vault


def test_every_step_is_numbered_and_the_vault_path_is_printed(run: Run) -> None:
    proc, vault = run
    numbers = [int(n) for n in re.findall(rf"^\[(\d+)/{STEPS}\] ", proc.stdout, re.M)]
    assert numbers == list(range(1, STEPS + 1))
    assert "Traceback" not in proc.stderr and "PROBLEM" not in proc.stdout
    assert "DRY RUN (DRY_RUN=true, ZONE=local)" in proc.stdout
    for daemon in DAEMONS:
        assert f"$ ai-employee run {daemon} --once" in proc.stdout
    assert "the CEO: Pending_Approval/email/SEND_EMAIL_" in proc.stdout
    assert proc.stdout.rstrip().endswith("delete both folders when done.")
    assert f"The demo vault is at {vault}: open it in Obsidian" in proc.stdout


def test_the_customer_task_ends_in_done(run: Run) -> None:
    _, vault = run
    task = fields(read_task_file(only(vault / "Done", "EMAIL_*.md")))
    assert task["from"] == CUSTOMER
    assert task["status"] == "done" and task["type"] == "email"
    assert task["claimed_by"] == "local"


def test_the_reply_ran_as_a_dry_run_and_nothing_was_sent(run: Run) -> None:
    proc, vault = run
    request = fields(read_task_file(only(vault / "Done", "SEND_EMAIL_*.md")))
    assert request["to"] == [CUSTOMER] and request["subject"] == "Re: January invoice"
    assert request["in_reply_to"] == ORIGINAL_MESSAGE_ID
    assert request["outcome"] == "done" and request["dry_run"] is True
    assert request["result"] == {"would": f"send_email to {CUSTOMER}"}
    assert "DRY RUN, nothing sent" in proc.stdout
    assert "Sent still holds 0" in proc.stdout
    # The stand-in's own account, printed by the wrapper after the demo ended.
    assert "sent: 0 (none); drafts: 0" in proc.stderr


def test_the_dropped_receipt_is_filed_with_a_task(run: Run) -> None:
    _, vault = run
    task = fields(read_task_file(only(vault / "Needs_Action", "FILE_*.md")))
    kept = vault / str(task["file"])
    assert task["type"] == "file_drop" and task["status"] == "pending"
    assert kept.parent == vault / "Files" and kept.name == "receipt_PO-4471_paper-co.pdf"
    assert task["mime_type"] == "application/pdf" and task["type_mismatch"] is False
    assert task["sha256"] == hashlib.sha256(kept.read_bytes()).hexdigest()
    assert [p.name for p in (vault / "Inbox").iterdir()] == [".gitkeep"]


def test_the_hostile_email_is_only_a_task(run: Run) -> None:
    proc, vault = run
    tasks = {path: read_task_file(path) for path in (vault / "Needs_Action").glob("EMAIL_*.md")}
    hostile = [path for path, doc in tasks.items() if fields(doc)["from"] == HOSTILE]
    assert len(hostile) == 1 and len(tasks) == 2  # the supplier's update waits too
    body = tasks[hostile[0]].body
    trusted, heading, untrusted = body.partition(UNTRUSTED_HEADING)
    assert heading and "ignore your previous instructions" in untrusted
    assert "exfil.example" in untrusted and "exfil.example" not in trusted
    mentions = [p for p in vault.rglob("*.md") if "exfil.example" in p.read_text()]
    assert mentions == hostile
    senders = [p for p in vault.rglob("*.md") if HOSTILE in p.read_text()]
    assert senders == hostile  # no request, no reply, no plan names the hostile sender
    assert fields(tasks[hostile[0]])["status"] == "pending"
    assert "0 approval requests, 0 sent, 0 drafts" in proc.stdout


def test_nothing_is_left_waiting_or_half_done(run: Run) -> None:
    _, vault = run
    for folder in ("Pending_Approval", "Approved", "In_Progress", "Failed", "Rejected"):
        assert not list((vault / folder).rglob("*.md")), folder
    assert sorted(p.name[:5] for p in (vault / "Done").glob("*.md")) == ["EMAIL", "SEND_"]
    waiting = sorted(p.name[:5] for p in (vault / "Needs_Action").glob("*.md"))
    assert waiting == ["EMAIL", "EMAIL", "FILE_"]  # and no TASK_: nothing was due yet


def test_the_audit_trail_tells_the_whole_path(run: Run) -> None:
    _, vault = run
    log = AuditLog(vault, "local")
    report = log.verify()
    assert report.ok, report.problem
    entries = log.query(newest_first=False)
    assert {entry.status for entry in entries} == {"ok"}
    said = [(e.actor, e.category, e.action) for e in entries]
    assert said.count(("gmail_watcher", "vault", "create")) == 3
    assert said.count(("inbox_watcher", "inbox", "take")) == 1
    assert said.count(("ceo", "approval", "approve")) == 1
    assert said.count(("local-agent", "vault", "complete")) == 1
    assert said.count(("demo", "vault", "update_dashboard")) == 1
    [send] = log.query(category="action", action="send_email")
    assert send.actor == "approval_watcher" and send.dry_run is True
    assert send.target.startswith("Done/SEND_EMAIL_")
    order = [said.index(step) for step in WHOLE_PATH]
    assert order == sorted(order)


def test_the_dashboard_shows_the_done_request_and_every_daemon(run: Run) -> None:
    proc, vault = run
    page = (vault / "Dashboard.md").read_text()
    request = only(vault / "Done", "SEND_EMAIL_*.md")
    assert f"[[Done/{request.stem}]]" in page
    for daemon in DAEMONS:
        assert f"| {daemon} | local | once |" in page
    assert "## Recent actions" in proc.stdout and "hash chain verifies" in proc.stdout


def test_the_token_is_the_demos_own_and_private(run: Run) -> None:
    _, vault = run
    secrets = vault.parent / "vault-secrets"
    assert secrets.stat().st_mode & 0o777 == 0o700
    token = secrets / "gmail.token.json"
    assert token.stat().st_mode & 0o777 == 0o600
    assert json.loads(token.read_text())["token_uri"].startswith("http://127.0.0.1:")
    assert not list(vault.rglob("*token*"))


def test_live_sends_the_reply_exactly_once_in_the_customers_thread(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    proc = mail_demo(vault, product_free_env(tmp_path / "home"), "--live")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "LIVE (DRY_RUN=false, ZONE=local)" in proc.stdout
    request = fields(read_task_file(only(vault / "Done", "SEND_EMAIL_*.md")))
    assert request["outcome"] == "done" and request["dry_run"] is False
    result = request["result"]
    assert isinstance(result, dict) and SENT_ID.match(result["message_id"])
    assert result["thread_id"] == request["thread_id"]
    assert "Sent still holds 1" in proc.stdout
    assert f"sent: 1 ({result['message_id']}); drafts: 1" in proc.stderr
    [send] = AuditLog(vault, "local").query(category="action", action="send_email")
    assert send.dry_run is False
    assert AuditLog(vault, "local").verify().ok


def test_the_receipt_is_a_well_formed_pdf() -> None:
    pdf = receipt_pdf()
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref:].startswith(b"xref\n0 6\n")
    offsets = re.findall(rb"^(\d{10}) 00000 n $", pdf[xref:], re.M)
    for number, offset in enumerate(offsets, start=1):
        assert pdf[int(offset) :].startswith(b"%d 0 obj\n" % number)
    assert b"(Paid by card ending 4242. Thank you for your order!) '" in pdf


@pytest.mark.parametrize(
    "url",
    [
        "https://gmail.googleapis.com",
        "http://gmail.googleapis.com",
        "http://192.0.2.10:8080",
        "https://127.0.0.1:8443",
        "http://user:pw@127.0.0.1:8080",
        "http://127.0.0.1@mail.example:8080",
        "http://localhost.mail.example",
        "ftp://127.0.0.1",
        "http://127.0.0.1:99999",
        "127.0.0.1:8080",
        "",
    ],
)
def test_the_demo_refuses_anything_but_a_local_gmail(tmp_path: Path, url: str) -> None:
    proc = cli("demo", "--gmail", url, "--vault", str(tmp_path / "v"), env=dict(os.environ))
    assert proc.returncode == 1
    assert proc.stderr.startswith("ai-employee: --gmail ")
    assert "never touches a real mailbox" in proc.stderr and "Traceback" not in proc.stderr
    assert "pw" not in proc.stderr
    assert not (tmp_path / "v").exists() and not (tmp_path / "v-secrets").exists()


def test_the_demo_refuses_a_vault_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "notes.md").write_text("mine")
    url = "http://127.0.0.1:9"
    proc = cli("demo", "--gmail", url, "--vault", str(tmp_path / "v"), env=dict(os.environ))
    assert proc.returncode == 1 and "is not empty" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["notes.md"]


def test_the_demo_reads_none_of_the_users_settings(tmp_path: Path) -> None:
    """A real-looking SECRETS_DIR, .env and settings are all ignored: the demo makes its own."""
    users = tmp_path / "users-secrets"
    users.mkdir(mode=0o700)
    bogus = {
        "refresh_token": "users-" + "refresh",
        "client_id": "users-client",
        "client_secret": "users-" + "secret",
        "token_uri": "http://127.0.0.1:9/token",
    }
    token = users / "gmail.token.json"
    token.write_text(json.dumps(bogus))
    token.chmod(0o600)
    before = token.read_bytes()
    settings = {
        "SECRETS_DIR": str(users),
        "VAULT_PATH": str(tmp_path / "users-vault"),
        "ZONE": "cloud",
        "DRY_RUN": "false",
        "GMAIL_API_ENDPOINT": "http://127.0.0.1:9",
        "GMAIL_WATCH_QUERY": "from:nobody@nowhere.example",
    }
    env_file = tmp_path / "users.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    env = product_free_env(tmp_path / "home", **settings, AI_EMPLOYEE_ENV_FILE=str(env_file))
    proc = mail_demo(tmp_path / "demo", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sent: 0 (none); drafts: 0" in proc.stderr  # the user's DRY_RUN=false is not read
    assert token.read_bytes() == before and sorted(os.listdir(users)) == ["gmail.token.json"]
    assert not (tmp_path / "users-vault").exists()
    assert (tmp_path / "demo-secrets" / "gmail.token.json").is_file()
    assert "DRY RUN (DRY_RUN=true, ZONE=local)" in proc.stdout


def test_the_wrapper_passes_the_url_and_the_exit_code(tmp_path: Path) -> None:
    script = "import sys; print('child got', sys.argv[1]); sys.exit(3)"
    proc = with_stand_in(sys.executable, "-c", script, "{gmail}/x", env=dict(os.environ))
    assert proc.returncode == 3
    assert re.search(r"^child got http://127\.0\.0\.1:\d+/x$", proc.stdout, re.M)
    assert "sent: 0 (none); drafts: 0" in proc.stderr


def test_the_wrapper_needs_a_command() -> None:
    proc = with_stand_in(env=dict(os.environ))
    assert proc.returncode != 0 and "usage:" in proc.stderr
