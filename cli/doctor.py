"""``ai-employee doctor``: is this machine ready? Each check says what is wrong and the fix."""

from __future__ import annotations

import argparse
import json
import stat
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from core.audit import AuditLog
from core.config import Settings, load_settings
from core.errors import AIEmployeeError
from core.policy import load_policy
from core.resilience import breaker_snapshots
from core.vault import Vault, open_vault

Verdict = Literal["ok", "warn", "fail"]


class Check(BaseModel):
    name: str
    verdict: Verdict
    detail: str


def _vault(settings: Settings) -> Check:
    vault = open_vault(settings, actor="doctor")
    vault.check_layout()
    return Check(name="vault", verdict="ok", detail=f"{vault.root}, every folder in place")


def _policy(settings: Settings) -> Check:
    policy = load_policy(settings.vault_path)
    known = len(policy.known_contacts)
    return Check(
        name="policy", verdict="ok", detail=f"handbook policy valid; {known} known contacts"
    )


def _audit(settings: Settings) -> Check:
    report = AuditLog(settings.vault_path, settings.zone).verify()
    if report.ok:
        return Check(name="audit", verdict="ok", detail=f"{report.entries} entries, chain verifies")
    return Check(name="audit", verdict="fail", detail=report.problem or "does not verify")


def _secrets(settings: Settings) -> Check:
    folder = settings.secrets_dir
    if not folder.exists():
        return Check(name="secrets", verdict="ok", detail=f"{folder} (not created yet)")
    if folder.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Check(
            name="secrets", verdict="fail", detail=f"{folder} is open to others: chmod 700 {folder}"
        )
    return Check(name="secrets", verdict="ok", detail=f"{folder}, private")


def _gmail(settings: Settings) -> Check:
    from servers.gmail_mcp.auth import load_credentials, token_path

    if not token_path(settings).is_file():
        return Check(
            name="gmail", verdict="warn", detail="not signed in: run `ai-employee auth gmail`"
        )
    creds = load_credentials(settings)
    scopes = ", ".join(sorted(scope.rsplit("/", 1)[-1] for scope in creds.scopes or []))
    return Check(name="gmail", verdict="ok", detail=f"token valid; scopes: {scopes}")


def _breakers(settings: Settings) -> Check:
    known = breaker_snapshots(Vault(settings.vault_path).state_dir)
    tripped = [snap.name for snap in known if snap.state.value != "closed"]
    if tripped:
        return Check(
            name="services",
            verdict="warn",
            detail=f"held off after failures: {', '.join(tripped)}; they retry on their own",
        )
    return Check(name="services", verdict="ok", detail=f"{len(known)} known, none held off")


CHECKS: tuple[Callable[[Settings], Check], ...] = (
    _vault,
    _policy,
    _audit,
    _secrets,
    _gmail,
    _breakers,
)


def run_checks(settings: Settings) -> list[Check]:
    results = []
    for check in CHECKS:
        name = check.__name__.lstrip("_")
        try:
            results.append(check(settings))
        except AIEmployeeError as exc:
            results.append(Check(name=name, verdict="fail", detail=str(exc)))
        except OSError as exc:
            results.append(Check(name=name, verdict="fail", detail=f"{exc.strerror}: check it"))
    return results


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = load_settings()
    results = run_checks(settings)
    if args.json:
        print(json.dumps([r.model_dump() for r in results], indent=2))
    else:
        print(f"zone={settings.zone}  {'DRY RUN' if settings.dry_run else 'LIVE'}")
        for r in results:
            print(f"  {r.verdict.upper():<4}  {r.name:<9} {r.detail}")
    return 1 if any(r.verdict == "fail" for r in results) else 0
