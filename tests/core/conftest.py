"""Shared fixtures for core tests: a fresh vault laid out on real disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.audit import AuditLog
from core.tasks import TaskMeta, new_task_id, utc_now
from core.vault import Vault


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    v = Vault(tmp_path / "vault", audit=AuditLog(tmp_path / "vault", "local"), actor="test")
    v.ensure_layout()
    return v


def make_meta(task_type: str = "email", **extra: object) -> TaskMeta:
    return TaskMeta(id=new_task_id(task_type.upper()), type=task_type, created=utc_now(), **extra)


def tree_snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root (hidden ones too) with its content, for before/after checks."""
    snap: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            snap[rel] = f"-> {path.readlink()}"
        elif path.is_file():
            snap[rel] = path.read_bytes()
        else:
            snap[rel] = "<dir>" if path.is_dir() else "<special>"
    return snap
