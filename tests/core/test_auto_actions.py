"""Actions the handbook allows unasked: only then, only in the local zone, at most once each.

The "service" here is a journal file: a call that reached it is in the file whatever happens to
the caller afterwards, as with a real service. Lookups read it back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.actions import SendEmail
from core.audit import AuditLog
from core.auto_actions import ApprovalNeededError, run_auto
from core.errors import ActionRefusedError, PolicyDeniedError, ZoneError
from core.ledger import ActionLedger
from core.vault import Vault
from core.vault_init import init_vault

REPO = Path(__file__).resolve().parents[2]
ANA = "ana@client.example"
REPLY = {"to": [ANA], "subject": "Re: Invoice", "thread_id": "t1"}


class Service:
    def __init__(self, path: Path) -> None:
        self.path = path

    def perform(self, key: str) -> dict[str, Any]:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key}) + "\n")
        return {"id": f"sent-{key[:6]}"}

    def lookup(self, key: str) -> dict[str, Any] | None:
        return {"id": f"sent-{key[:6]}"} if self.calls(key) else None

    def calls(self, key: str | None = None) -> int:
        if not self.path.exists():
            return 0
        lines = [json.loads(line) for line in self.path.read_text().splitlines()]
        return sum(1 for line in lines if key is None or line["key"] == key)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    root = Path(init_vault(tmp_path / "vault").vault)
    with (root / "Known_Contacts.md").open("a", encoding="utf-8") as f:
        f.write(f"- Ana <{ANA}>\n")
    return Vault(root, audit=AuditLog(root, "local"), actor="test")


@pytest.fixture
def service(tmp_path: Path) -> Service:
    return Service(tmp_path / "service.jsonl")


def send(vault: Vault, service: Service, body: str = "Thanks", *, dry_run: bool = False, **kw):
    params = SendEmail(**{**REPLY, **kw})
    return run_auto(
        vault,
        params,
        body,
        zone="local",
        dry_run=dry_run,
        perform=service.perform,
        lookup=service.lookup,
    )


def set_policy(vault: Vault, old: str, new: str) -> None:
    handbook = vault.root / "Company_Handbook.md"
    handbook.write_text(handbook.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def test_an_auto_action_runs_once_and_is_audited(vault: Vault, service: Service) -> None:
    first = send(vault, service)
    assert first.phase == "done" and not first.repeated and first.rule
    again = send(vault, service)
    assert again.repeated and again.key == first.key and again.result == first.result
    assert service.calls() == 1
    (entry,) = vault.audit.query(action="send_email", limit=5)  # type: ignore[union-attr]
    assert entry.details["key"] == first.key and entry.status == "ok"


def test_a_different_text_is_a_different_action(vault: Vault, service: Service) -> None:
    assert send(vault, service, "one").key != send(vault, service, "two").key
    assert service.calls() == 2


@pytest.mark.parametrize(
    "changes",
    [
        {"thread_id": None},  # not a reply
        {"to": ["bob@new.example"]},  # a new contact
        {"cc": ["bob@new.example"]},
        {"bcc": ["bob@new.example"]},
        {"body": "About the lawsuit"},  # a sensitive topic
        {"subject": "Re: your Refund"},
    ],
)
def test_anything_but_auto_is_refused_before_any_call(
    vault: Vault, service: Service, changes: dict[str, Any]
) -> None:
    body = changes.pop("body", "Thanks")
    with pytest.raises(ApprovalNeededError, match="request_approval"):
        send(vault, service, body, **changes)
    assert service.calls() == 0
    assert not (vault.state_dir / "ledger").exists()


def test_deny_is_refused_outright(vault: Vault, service: Service) -> None:
    set_policy(vault, "new_recipient: approve", "new_recipient: deny")
    with pytest.raises(PolicyDeniedError, match="denies"):
        send(vault, service, to=["bob@new.example"])
    assert service.calls() == 0


def test_the_cloud_zone_never_acts(vault: Vault, service: Service) -> None:
    with pytest.raises(ZoneError):
        run_auto(
            vault, SendEmail(**REPLY), "x", zone="cloud", dry_run=False, perform=service.perform
        )
    assert service.calls() == 0


def test_the_hourly_limit_holds(vault: Vault, service: Service) -> None:
    set_policy(vault, "  email: 10\n", "  email: 1\n")
    send(vault, service, "one")
    with pytest.raises(ActionRefusedError, match="hourly email limit"):
        send(vault, service, "two")
    assert send(vault, service, "one").repeated  # the same action is no new use
    assert service.calls() == 1


def test_a_dry_run_calls_nothing_and_keeps_its_own_ledger(vault: Vault, service: Service) -> None:
    rehearsal = send(vault, service, dry_run=True)
    assert rehearsal.dry_run and rehearsal.result["would"].startswith("send_email to")
    assert service.calls() == 0
    assert send(vault, service).phase == "done" and service.calls() == 1


def test_a_refusal_did_nothing_so_it_may_be_tried_again(vault: Vault, service: Service) -> None:
    def refuse(key: str) -> dict[str, Any]:
        raise ActionRefusedError("the service said no", "")

    params = SendEmail(**REPLY)
    args: dict[str, Any] = {"zone": "local", "dry_run": False, "lookup": service.lookup}
    failed = run_auto(vault, params, "x", perform=refuse, **args)
    assert failed.phase == "failed" and "said no" in (failed.error or "")
    assert run_auto(vault, params, "x", perform=service.perform, **args).phase == "done"
    assert service.calls() == 1


def test_a_broken_call_is_looked_up_never_redone(vault: Vault, service: Service) -> None:
    def sent_then_lost(key: str) -> dict[str, Any]:
        service.perform(key)
        raise TimeoutError("the answer was lost")

    params = SendEmail(**REPLY)
    outcome = run_auto(
        vault,
        params,
        "x",
        zone="local",
        dry_run=False,
        perform=sent_then_lost,
        lookup=service.lookup,
    )
    assert outcome.phase == "done" and outcome.result["reconciled"] is True
    blind = run_auto(
        vault, params, "y", zone="local", dry_run=False, perform=sent_then_lost, lookup=None
    )
    assert blind.phase == "unknown" and "check the service" in (blind.error or "")
    again = run_auto(
        vault, params, "y", zone="local", dry_run=False, perform=service.perform, lookup=None
    )
    assert again.repeated and again.phase == "unknown"
    assert service.calls() == 2


CHILD = """
import sys
from pathlib import Path
from core.actions import SendEmail
from core.audit import AuditLog
from core.auto_actions import run_auto
from core.vault import Vault
sys.path.insert(0, {tests!r})
from test_auto_actions import REPLY, Service
root = Path({root!r})
vault = Vault(root, audit=AuditLog(root, "local"), actor="child")
service = Service(Path({journal!r}))
run_auto(vault, SendEmail(**REPLY), "Thanks", zone="local", dry_run=False,
         perform=service.perform, lookup=service.lookup)
"""


@pytest.mark.parametrize("found", [True, False])
def test_a_process_killed_after_the_call_is_reconciled(
    vault: Vault, service: Service, found: bool
) -> None:
    code = CHILD.format(
        tests=str(Path(__file__).parent), root=str(vault.root), journal=str(service.path)
    )
    env = {**os.environ, "AI_EMPLOYEE_FAULT": "auto:after_call", "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert child.returncode == -signal.SIGKILL
    (path,) = (vault.state_dir / "ledger").glob("*.json")
    assert ActionLedger(vault.state_dir).get(path.stem, dry_run=False).phase == "intent"
    if not found:  # as if the call had never reached the service
        service.path.unlink()
    outcome = send(vault, service)
    assert outcome.phase == "done" and not outcome.repeated
    assert outcome.result.get("reconciled", False) is found
    assert service.calls() == 1
