"""The inbox watcher killed (SIGKILL) at each of its fault points, once per drop.

For every fault point, a vault holds DROPS files in Inbox/. Children run
``python -m daemons.inbox_watcher --once`` with the fault armed: each dies the first time it
reaches the point, part way through one drop, and the next child has to pick up the pieces.
Children run until one exits cleanly, then one more runs without the fault. Afterwards each
drop is in Files/ exactly once, with exactly one task and one audit entry, nothing is left
in Inbox/ or half done in .state/, and the audit chain verifies.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.audit import AuditLog
from core.file_intake import INTENT, STATE, TAKEN
from core.tasks import read_task_file
from core.vault_init import init_vault
from tests.conftest import PRODUCT_ENV

REPO = Path(__file__).resolve().parents[2]
POINTS = (
    "inbox:after_intent",
    "inbox:after_move",
    "inbox:after_task",
    "inbox:after_audit",
    "inbox:after_index",
)
DROPS = {
    "invoice 1.pdf": b"%PDF-1.4 one",
    "Invoice 1.pdf": b"%PDF-1.4 other",  # differs only in case
    "photo.jpg": b"\xff\xd8\xff\xe0 photo",
    "notes.txt": b"",
}
CAP = len(DROPS) + 5
KILLED = -signal.SIGKILL


@dataclass(repr=False)
class Case:
    point: str
    root: Path
    home: Path
    rounds: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    final: subprocess.CompletedProcess[str] | None = None

    @property
    def kills(self) -> int:
        return sum(1 for proc in self.rounds if proc.returncode == KILLED)

    def __repr__(self) -> str:
        return f"Case({self.point}, rounds={len(self.rounds)}, kills={self.kills})"


def _run_child(case: Case, fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(HOME=str(case.home), VAULT_PATH=str(case.root), SECRETS_DIR=str(case.home / "s"))
    if fault is not None:
        env["AI_EMPLOYEE_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "daemons.inbox_watcher", "--once", "--settle", "0"],
        env=env,
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
        if proc.returncode != KILLED:
            break
    case.final = _run_child(case, None)
    return case


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    built = []
    for point in POINTS:
        base = tmp_path_factory.mktemp(point.split(":")[1])
        case = Case(point, base / "vault", base / "home")
        case.home.mkdir()
        (case.home / "s").mkdir(mode=0o700)
        init_vault(case.root)
        for name, data in DROPS.items():
            (case.root / "Inbox" / name).write_bytes(data)
        built.append(case)
    with ThreadPoolExecutor(max_workers=len(built)) as pool:
        return {case.point: case for case in pool.map(_crash_until_clean, built)}


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_killed_watcher_takes_every_drop_exactly_once(cases: dict[str, Case], point: str) -> None:
    case = cases[point]
    root = case.root
    codes = [proc.returncode for proc in case.rounds]
    *killed, last = case.rounds
    assert all(proc.returncode == KILLED for proc in killed), codes
    assert last.returncode == 0, f"{codes}\n{last.stderr}"
    assert case.kills == len(DROPS), f"each drop should pass {point} once: {codes}"
    assert case.final is not None and case.final.returncode == 0, case.final.stderr
    assert "new:" not in case.final.stdout  # the clean pass had finished everything

    # -- every drop in Files/ once, nothing left behind -----------------------------------
    assert [p.name for p in (root / "Inbox").iterdir()] == [".gitkeep"]
    kept = {p.name: p.read_bytes() for p in (root / "Files").iterdir() if p.name != ".gitkeep"}
    assert sorted(kept.values()) == sorted(DROPS.values()), sorted(kept)
    state = root / ".state" / STATE
    assert not (state / INTENT).exists()

    # -- one task per drop, naming the file that holds it ---------------------------------
    tasks = [read_task_file(p).meta for p in (root / "Needs_Action").glob("FILE_*.md")]
    assert len(tasks) == len(DROPS)
    for meta in tasks:
        extra = meta.model_extra or {}
        data = DROPS[extra["original_name"]]
        assert (root / extra["file"]).read_bytes() == data
        assert extra["sha256"] == hashlib.sha256(data).hexdigest()
    index = [json.loads(p.read_text()) for p in (state / TAKEN).glob("*.json")]
    assert sorted(entry["file"] for entry in index) == sorted(f"Files/{n}" for n in kept)

    # -- the audit trail: intact, one take per drop -----------------------------------------
    audit = AuditLog(root, "local")
    report = audit.verify()
    assert report.ok, report.problem
    takes = audit.query(category="inbox", action="take")
    assert sorted(e.target for e in takes) == sorted(f"Files/{n}" for n in kept)
    creates = [e for e in audit.query(category="vault", action="create")]
    assert len(creates) == len(DROPS)
