"""Create a vault from ``vault_template/``: its folders, starter pages and git repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pydantic import BaseModel

from core.errors import ConfigError
from core.fsutil import atomic_create
from core.vault import Vault

TEMPLATE = Path(__file__).resolve().parent.parent / "vault_template"
_MARKERS = ("Dashboard.md", "Needs_Action", "Company_Handbook.md")


class InitResult(BaseModel):
    vault: str
    created: list[str]
    kept: list[str]
    git: str


def _looks_like_vault(path: Path) -> bool:
    return any((path / marker).exists() for marker in _MARKERS)


def _copy_template(template: Path, root: Path) -> tuple[list[str], list[str]]:
    created: list[str] = []
    kept: list[str] = []
    for source in sorted(template.rglob("*")):
        rel = source.relative_to(template)
        target = root / rel
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        try:  # never through a link, never over anything that is there, even a dangling link
            atomic_create(target, source.read_bytes())
            created.append(str(rel))
        except FileExistsError:
            kept.append(str(rel))
    return created, kept


def _git_init(root: Path) -> str:
    if (root / ".git").exists():
        return "existing repository kept"
    if shutil.which("git") is None:
        return "git not found: install git, then run `git init` in the vault to enable sync"
    subprocess.run(
        ["git", "init", "--quiet", "--initial-branch=main", str(root)],
        check=True,
        capture_output=True,
    )
    return "initialized"


def init_vault(root: Path, template: Path = TEMPLATE) -> InitResult:
    """Create or complete a vault at ``root``; existing files are never replaced."""
    if not template.is_dir():
        raise ConfigError(
            f"the vault template {template} is missing", "run from a full clone of the repository"
        )
    root = root.expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file, not a folder", "choose a folder for the vault")
    if root.is_dir() and any(root.iterdir()) and not _looks_like_vault(root):
        raise ConfigError(
            f"{root} is not empty and does not look like a vault",
            "choose an empty or new folder, or an existing vault to complete",
        )
    root.mkdir(parents=True, exist_ok=True)
    created, kept = _copy_template(template, root)
    Vault(root).ensure_layout()
    return InitResult(vault=str(root), created=created, kept=kept, git=_git_init(root))
