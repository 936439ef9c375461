"""The approval executor killed (SIGKILL) at each of its fault points, many times over.

For every fault point and both kinds of handler, one vault holds REQUESTS approved
``send_email`` requests. A child process runs one live executor pass with the fault
armed; it dies the first time it arrives at the point, i.e. part way through one
request, and the next child has to pick up the pieces. Children are started until one
exits cleanly, then one more runs without the fault. Afterwards every request is in
exactly one place, nothing was sent twice, nothing is left half done, and the audit
chain verifies.

The ten (point, handler) cases are independent, so they run concurrently in a
module-scoped fixture; each parametrized test then checks the outcome of its case.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core import tasks
from core.actions import SendEmail
from core.approvals import approve, create_request
from core.audit import AuditLog
from core.policy import Level, load_policy
from core.vault import Vault
from core.vault_init import init_vault
from tests.conftest import PRODUCT_ENV
from tests.fakes.action_journal import Journal

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("executor_child.py")
POINTS = (
    "executor:after_claim",
    "executor:after_intent",
    "executor:after_call",
    "executor:after_result",
    "executor:after_move",
)
HANDLERS = ("recording", "blind")
# A crash here leaves an intent without a result: only a handler that can look the key
# up at the service may finish it; for the others the outcome is unknown.
BETWEEN_INTENT_AND_RESULT = {"executor:after_intent", "executor:after_call"}
REQUESTS = 20  # every request passes each fault point once: REQUESTS kills per case
CAP = REQUESTS + 10  # a crash loop stops here (and the test fails on the kill count)
KILLED = -signal.SIGKILL
KNOWN = [f"client{i}@known.example" for i in range(0, REQUESTS, 2)]


@dataclass(repr=False)
class Case:
    point: str
    handler: str
    root: Path
    journal: Path
    home: Path
    ids: dict[str, str] = field(default_factory=dict)  # request id -> its name when approved
    rounds: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    final: subprocess.CompletedProcess[str] | None = None

    @property
    def kills(self) -> int:
        return sum(1 for proc in self.rounds if proc.returncode == KILLED)

    def __repr__(self) -> str:  # short, for failure reports
        return f"Case({self.point}, {self.handler}, rounds={len(self.rounds)}, kills={self.kills})"


def _make_vault(root: Path) -> dict[str, str]:
    """A fresh vault with REQUESTS approved emails, half to known contacts, half to new people."""
    init_vault(root)
    handbook = root / "Company_Handbook.md"
    text = handbook.read_text()
    roomy = text.replace(
        "rate_limits_per_hour:\n  email: 10\n", "rate_limits_per_hour:\n  email: 1000\n"
    )
    assert roomy != text, "the template's email rate limit moved: update this test"
    handbook.write_text(roomy)  # the rate limit is not what is under test here
    contacts = root / "Known_Contacts.md"
    contacts.write_text(contacts.read_text() + "".join(f"- Client <{a}>\n" for a in KNOWN))

    vault = Vault(root, audit=AuditLog(root, "local"), actor="test")
    policy = load_policy(root)
    ids: dict[str, str] = {}
    for i in range(REQUESTS):
        known = i % 2 == 0
        to = f"client{i}@known.example" if known else f"stranger{i}@new.example"
        params = SendEmail(
            to=[to], subject=f"Invoice {i:02d}", thread_id=f"thread{i}" if known else None
        )
        payload = f"Hello {i},\n\nyour invoice {i}.\n"
        assert policy.decide(params, payload).level != Level.DENY  # every one must run
        path = create_request(vault, params, payload, reason="test", policy=policy)
        approved = approve(vault, str(path.relative_to(root)))
        ids[tasks.read_task_file(approved).meta.id] = approved.name
    assert len(ids) == REQUESTS
    return ids


def _child_env(case: Case, fault: str | None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in PRODUCT_ENV and not name.startswith("SOCIAL_")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(HOME=str(case.home), VAULT_PATH=str(case.root), ZONE="local", DRY_RUN="false")
    if fault is not None:
        env["AI_EMPLOYEE_FAULT"] = fault
    return env


def _run_child(case: Case, fault: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), str(case.root), str(case.journal), case.handler],
        env=_child_env(case, fault),
        cwd=case.home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _crash_until_clean(case: Case) -> Case:
    for _ in range(CAP):
        proc = _run_child(case, case.point)
        case.rounds.append(proc)
        if proc.returncode != KILLED:  # a clean exit, or an error the test reports
            break
    case.final = _run_child(case, None)
    return case


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Case]:
    built: list[Case] = []
    for point in POINTS:
        for handler in HANDLERS:
            base = tmp_path_factory.mktemp(f"{point.split(':')[1]}-{handler}")
            (base / "home").mkdir()
            case = Case(point, handler, base / "vault", base / "journal.jsonl", base / "home")
            case.ids = _make_vault(case.root)
            built.append(case)
    workers = min(len(built), 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(_crash_until_clean, built))
    return {(case.point, case.handler): case for case in done}


def _meta(path: Path) -> dict[str, Any]:
    doc = tasks.read_task_file(path)
    return {**doc.meta.model_dump(), **(doc.meta.model_extra or {})}


def _markdown_files(root: Path) -> list[Path]:
    skip = {".state", ".git"}
    return [
        path
        for path in root.rglob("*.md")
        if path.is_file() and not skip & set(path.relative_to(root).parts)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.parametrize("point", POINTS)
def test_killed_executor_recovers_without_doing_anything_twice(
    cases: dict[tuple[str, str], Case], point: str, handler: str
) -> None:
    case = cases[(point, handler)]
    root = case.root

    # -- first of all: the service never saw a key twice ---------------------------------
    assert case.final is not None and case.final.returncode == 0, case.final.stderr
    journal = Journal(case.journal)
    per_key = Counter(entry["key"] for entry in journal.entries())
    assert all(count == 1 for count in per_key.values()), f"sent more than once: {per_key}"

    # -- the children: killed once per request at the point, then a clean pass ----------
    *killed, last = case.rounds
    codes = [proc.returncode for proc in case.rounds]
    assert all(proc.returncode == KILLED for proc in killed), codes
    assert last.returncode == 0, f"{codes}\n{last.stderr}"
    assert case.kills == REQUESTS, f"each request should pass {point} exactly once: {codes}"
    nothing = {"done": [], "failed": [], "rejected": [], "waiting": {}}
    assert json.loads(case.final.stdout) == nothing  # the clean pass had finished everything

    # -- every request is in exactly one file, and none is left approved or claimed ------
    files = _markdown_files(root)
    texts = {path: path.read_text() for path in files}
    where: dict[str, Path] = {}
    for request_id in case.ids:
        holders = [path for path, text in texts.items() if request_id in text]
        assert len(holders) == 1, f"{request_id} is in {holders}"
        where[request_id] = holders[0]
    for folder in ("Approved/email", "Approved/payments", "Approved/social_media"):
        assert not list((root / folder).glob("*.md")), folder
    left = [p.name for p in (root / "In_Progress/local").iterdir() if p.name != ".gitkeep"]
    assert not left, left
    assert {path.parent.name for path in where.values()} <= {"Done", "Failed"}

    # -- outcomes: what each request says happened, and what the service saw -------------
    unknown_expected = handler == "blind" and point in BETWEEN_INTENT_AND_RESULT
    keys: set[str] = set()
    for request_id, path in where.items():
        meta = _meta(path)
        key = meta["idempotency_key"]
        keys.add(key)
        assert meta["id"] == request_id and meta["dry_run"] is False
        assert path.name == case.ids[request_id]
        if path.parent.name == "Done":
            assert not unknown_expected, f"{path.name} is done though it could not be checked"
            assert meta["status"] == "done" and meta["outcome"] == "done"
            assert per_key[key] == 1, f"{path.name} is done but the service saw it {per_key[key]}x"
            assert meta["result"]["message_id"] == f"<{key}@journal.test>"
            if handler == "recording" and point == "executor:after_call":
                assert meta["result"].get("reconciled") is True  # looked up, not redone
        else:
            assert unknown_expected, f"{path.name} failed: {meta.get('error')}"
            assert meta["status"] == "failed" and meta["outcome"] == "unknown"
            assert "not redone" in meta["error"]
            # The call never left before after_intent; it did before after_call.
            assert per_key[key] == (1 if point == "executor:after_call" else 0)
    assert set(per_key) <= keys, "the service saw a key no request carries"
    if handler == "recording":
        assert all(path.parent.name == "Done" for path in where.values())
        assert len(per_key) == REQUESTS

    # -- the ledger: one finished entry per request, none left at intent ----------------
    ledger = sorted((root / ".state/ledger").glob("*.json"))
    everything = [json.loads(path.read_bytes()) for path in ledger]
    # a done action's content is also noted, so the same content asked unasked is not redone
    noted = [e for e in everything if e["request_id"].startswith("AUTO-")]
    entries = [e for e in everything if not e["request_id"].startswith("AUTO-")]
    done_ids = {rid for rid, path in where.items() if path.parent.name == "Done"}
    assert sorted(e["result"]["via"] for e in noted) == sorted(done_ids)
    assert all(e["phase"] == "done" for e in noted)
    assert {entry["key"] for entry in entries} == keys and len(entries) == REQUESTS
    assert not [entry for entry in entries if entry["phase"] == "intent"]
    assert all(entry["dry_run"] is False for entry in entries)
    for request_id, path in where.items():
        entry = next(e for e in entries if e["request_id"] == request_id)
        assert entry["phase"] == _meta(path)["outcome"]

    # -- the audit trail: intact, one outcome entry per request ---------------------------
    audit = AuditLog(root, "local")
    report = audit.verify()
    assert report.ok, report.problem
    outcomes = Counter(
        entry.details.get("request")
        for entry in audit.query(category="action", action="send_email")
    )
    assert outcomes == Counter(dict.fromkeys(case.ids, 1))
