"""Four real processes race to claim the same 2,000 tasks: one owner each, none lost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from core import tasks
from core.vault import Vault

TASKS = 2000
WORKERS = 4

WORKER = textwrap.dedent(
    """
    import json, random, sys
    from core.errors import AlreadyClaimedError
    from core.vault import Vault

    root, zone, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    names = [f"TASK_{{i:05d}}.md" for i in range({tasks})]
    random.Random(seed).shuffle(names)
    vault = Vault(root)
    won, lost = [], 0
    for name in names:
        try:
            vault.claim(name, zone)
            won.append(name)
        except AlreadyClaimedError:
            lost += 1
    json.dump({{"won": won, "lost": lost}}, open(out, "w"))
    """
).format(tasks=TASKS)


def _seed_tasks(vault: Vault, count: int = TASKS) -> None:
    """Write the tasks directly (fast, no audit): the race, not the setup, is under test."""
    folder = vault.root / "Needs_Action"
    for i in range(count):
        meta = {"id": f"TASK_{i:05d}", "type": "test", "created": "2026-11-25T00:00:00Z"}
        (folder / f"TASK_{i:05d}.md").write_text(tasks.render(meta, f"task {i}"))


def test_four_processes_claim_each_task_exactly_once(tmp_path: Path) -> None:
    vault = Vault(tmp_path / "vault")
    vault.ensure_layout()
    _seed_tasks(vault)
    outs = [tmp_path / f"worker{i}.json" for i in range(WORKERS)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(vault.root),
                ("local", "cloud")[i % 2],
                str(i),
                str(outs[i]),
            ]
        )
        for i in range(WORKERS)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * WORKERS

    results = [json.loads(out.read_text()) for out in outs]
    owners: dict[str, int] = {}
    for worker, result in enumerate(results):
        for name in result["won"]:
            assert name not in owners, f"{name} claimed by workers {owners[name]} and {worker}"
            owners[name] = worker
    assert len(owners) == TASKS
    assert sum(len(r["won"]) + r["lost"] for r in results) == TASKS * WORKERS
    assert all(r["won"] for r in results), "every worker should win some tasks in a real race"

    assert vault.count("Needs_Action") == 0
    on_disk = {
        e.name: e.folder
        for z in ("local", "cloud")
        for e in vault.list_tasks(f"In_Progress/{z}", limit=None)
    }
    assert len(on_disk) == TASKS
    for name, worker in owners.items():
        zone = ("local", "cloud")[worker % 2]
        assert on_disk[name] == f"In_Progress/{zone}"
        meta = vault.read(f"In_Progress/{zone}/{name}").meta
        assert meta.claimed_by == zone and meta.claimed_at is not None


FALLBACK_WORKER = textwrap.dedent(
    """
    import json, random, sys
    from core import fsutil
    from core.errors import AlreadyClaimedError, TaskNotFoundError
    from core.vault import Vault

    fsutil._renameat2 = None  # the link + unlink path of kernels without RENAME_NOREPLACE
    root, zone, out = sys.argv[1], sys.argv[2], sys.argv[4]
    seed, count = int(sys.argv[3]), int(sys.argv[5])
    names = [f"TASK_{i:05d}.md" for i in range(count)]
    random.Random(seed).shuffle(names)
    vault = Vault(root)
    won = []
    for name in names:
        try:
            vault.claim(name, zone)
            won.append(name)
        except (AlreadyClaimedError, TaskNotFoundError):
            pass
    json.dump(won, open(out, "w"))
    """
)


def _where(vault: Vault, name: str) -> list[str]:
    folders = ("Needs_Action", "In_Progress/local", "In_Progress/cloud", "Done")
    return [f for f in folders if (vault.root / f / name).exists()]


def test_link_fallback_race_leaves_each_task_in_one_place(tmp_path: Path) -> None:
    count = 400
    vault = Vault(tmp_path / "vault")
    vault.ensure_layout()
    _seed_tasks(vault, count)
    outs = [tmp_path / f"w{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                FALLBACK_WORKER,
                str(vault.root),
                zone,
                str(i),
                str(outs[i]),
                str(count),
            ]
        )
        for i, zone in enumerate(("local", "cloud"))
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    won = [set(json.loads(out.read_text())) for out in outs]
    assert not won[0] & won[1]
    assert len(won[0] | won[1]) == count
    for name in won[0] | won[1]:
        zone = "local" if name in won[0] else "cloud"
        assert _where(vault, name) == [f"In_Progress/{zone}"], name


def test_release_racing_complete_never_duplicates(tmp_path: Path) -> None:
    count = 300
    vault = Vault(tmp_path / "vault")
    vault.ensure_layout()
    _seed_tasks(vault, count)
    for i in range(count):
        vault.claim(f"TASK_{i:05d}.md", "local")
    code = textwrap.dedent(
        """
        import sys
        from core.errors import VaultError
        from core.vault import Vault
        vault, action = Vault(sys.argv[1]), sys.argv[2]
        for i in range(int(sys.argv[3])):
            try:
                getattr(vault, action)(f"TASK_{i:05d}.md", "local")
            except VaultError:
                pass
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(vault.root), action, str(count)])
        for action in ("release", "complete")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    for i in range(count):
        places = _where(vault, f"TASK_{i:05d}.md")
        assert places in (["Needs_Action"], ["Done"]), (i, places)
        doc = vault.read(f"{places[0]}/TASK_{i:05d}.md")
        assert doc.meta.status == ("pending" if places == ["Needs_Action"] else "done")
