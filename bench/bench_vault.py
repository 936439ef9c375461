"""Vault benchmarks: claims per second and listing the newest tasks of a big vault.

Baselines are measured in the same run on the same disk:
- claims: a raw ``os.link`` + ``os.unlink`` loop moving the same number of files;
- listing: a raw ``os.scandir`` + ``stat`` + ``heapq.nlargest`` over the same folder.
"""

from __future__ import annotations

import heapq
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.table import Row, best_of, print_table
from core import tasks
from core.audit import AuditLog
from core.vault import Vault

CLAIMS = 3000
NEEDS_ACTION_FILES = 10_000
DONE_FILES = 100_000
# On the repository's disk, never a tmpfs /tmp, so fsync and create costs are real.
BENCH_TMP = Path(__file__).resolve().parent.parent / ".bench_tmp"


def _seed(folder: Path, count: int, prefix: str = "TASK") -> None:
    text = tasks.render({"id": "X", "type": "test", "created": "2026-11-25T00:00:00Z"}, "body")
    for i in range(count):
        path = folder / f"{prefix}_{i:06d}.md"
        path.write_text(text)
        os.utime(path, ns=(1_700_000_000_000_000_000 + i * 1_000_000,) * 2)


def _raw_moves(src: Path, dst: Path, count: int) -> float:
    _seed(src, count, "RAW")
    start = time.perf_counter()
    for i in range(count):
        name = f"RAW_{i:06d}.md"
        os.link(src / name, dst / name)
        os.unlink(src / name)
    return count / (time.perf_counter() - start)


def _raw_atomic_rewrites(folder: Path, count: int) -> float:
    """The floor of a crash-safe stamp: a temp file written, fsynced, renamed over the old one."""
    _seed(folder, count, "RW")
    start = time.perf_counter()
    for i in range(count):
        tmp = folder / f".RW_{i:06d}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 300)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, folder / f"RW_{i:06d}.md")
    return count / (time.perf_counter() - start)


def _claims(vault: Vault, count: int) -> float:
    _seed(vault.root / "Needs_Action", count)
    start = time.perf_counter()
    for i in range(count):
        vault.claim(f"TASK_{i:06d}.md", "local")
    return count / (time.perf_counter() - start)


def bench_claims(base: Path) -> list[Row]:
    raw_dir = base / "raw"
    (raw_dir / "a").mkdir(parents=True)
    (raw_dir / "b").mkdir()
    raw = _raw_moves(raw_dir / "a", raw_dir / "b", CLAIMS)
    floor = _raw_atomic_rewrites(raw_dir / "b", CLAIMS)
    plain = Vault(base / "v1")
    plain.ensure_layout()
    claims = _claims(plain, CLAIMS)
    audited = Vault(base / "v2", audit=AuditLog(base / "v2", "local"), actor="bench")
    audited.ensure_layout()
    claims_audited = _claims(audited, CLAIMS // 3)
    raw_name = "os.link+os.unlink loop"
    return [
        Row(
            "claims/s (claim-by-move + stamp)",
            claims,
            "/s",
            raw_name,
            raw,
            "≥ 0.5x and ≥ 5,000/s",
            claims >= 5000 and claims / raw >= 0.5,
        ),
        Row(
            "claims/s (claim-by-move + stamp)",
            claims,
            "/s",
            "create+write+fsync+rename loop",
            floor,
            "(informative)",
            True,
        ),
        Row(
            "claims/s with durable audit entry",
            claims_audited,
            "/s",
            raw_name,
            raw,
            "(informative)",
            True,
        ),
    ]


def _raw_newest(folder: Path, limit: int) -> list[str]:
    stamped = []
    with os.scandir(folder) as it:
        for entry in it:
            st = entry.stat(follow_symlinks=False)
            stamped.append((st.st_mtime_ns, entry.name))
    return [name for _, name in heapq.nlargest(limit, stamped)]


def bench_listing(base: Path) -> list[Row]:
    vault = Vault(base / "big")
    vault.ensure_layout()
    _seed(vault.root / "Needs_Action", NEEDS_ACTION_FILES)
    _seed(vault.root / "Done", DONE_FILES, "DONE")
    folder = vault.root / "Needs_Action"
    expected = _raw_newest(folder, 50)
    got = [e.name for e in vault.list_tasks("Needs_Action", limit=50)]
    assert got == expected, "list_tasks disagrees with the raw baseline"
    ours = best_of(7, lambda: vault.list_tasks("Needs_Action", limit=50)) * 1000
    raw = best_of(7, lambda: _raw_newest(folder, 50)) * 1000
    bare = best_of(7, lambda: list(os.scandir(folder))) * 1000
    return [
        Row(
            "newest 50 of 10k (100k in Done)",
            ours,
            "ms",
            "os.scandir+stat+nlargest",
            raw,
            "≤ 50 ms and ≤ 3x",
            ours <= 50 and ours / raw <= 3,
        ),
        Row(
            "newest 50 of 10k (100k in Done)",
            ours,
            "ms",
            "bare os.scandir (names only)",
            bare,
            "(informative)",
            True,
        ),
    ]


def run() -> list[Row]:
    BENCH_TMP.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(dir=BENCH_TMP, prefix="vault-"))
    try:
        return bench_claims(base) + bench_listing(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    print_table("Vault", run())
