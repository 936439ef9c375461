"""Creating a vault from the template: folders, pages, .gitignore, git; never replacing files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.layout import FOLDERS
from core.vault_init import TEMPLATE, init_vault


def test_init_creates_the_whole_layout(tmp_path: Path) -> None:
    result = init_vault(tmp_path / "vault")
    root = Path(result.vault)
    for folder in FOLDERS:
        assert (root / folder).is_dir(), folder
        assert (root / folder / ".gitkeep").exists(), folder
    for page in (
        "Company_Handbook.md",
        "Business_Goals.md",
        "Dashboard.md",
        ".gitignore",
        ".gitattributes",
    ):
        assert (root / page).read_bytes() == (TEMPLATE / page).read_bytes()
    assert "```yaml policy" in (root / "Company_Handbook.md").read_text()
    assert result.git == "initialized"
    assert (root / ".git").is_dir()


def test_gitignore_keeps_state_and_secrets_out(tmp_path: Path) -> None:
    root = Path(init_vault(tmp_path / "vault").vault)
    for name in (
        ".state/cursor.json",
        ".env",
        "gmail.token",
        "token.json",
        "credentials.json",
        "browser_profiles/linkedin/Cookies",
        "Needs_Action/.EMAIL_1.md.abc123.tmp",
    ):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (root / "Needs_Action/EMAIL_1.md").write_text("task")
    out = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "-uall"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Needs_Action/EMAIL_1.md" in out
    for secret in (
        ".state",
        ".env",
        "gmail.token",
        "token.json",
        "credentials.json",
        "browser_profiles",
        ".tmp",
    ):
        assert secret not in out, secret


def test_init_twice_keeps_the_owners_edits(tmp_path: Path) -> None:
    root = Path(init_vault(tmp_path / "vault").vault)
    (root / "Business_Goals.md").write_text("my goals")
    shutil.rmtree(root / "Signals")
    result = init_vault(root)
    assert (root / "Signals/.gitkeep").exists()
    assert (root / "Business_Goals.md").read_text() == "my goals"
    assert "Business_Goals.md" in result.kept
    assert result.git == "existing repository kept"


def test_init_refuses_a_folder_that_is_not_a_vault(tmp_path: Path) -> None:
    target = tmp_path / "photos"
    target.mkdir()
    (target / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ConfigError, match="not empty"):
        init_vault(target)
    assert [p.name for p in target.iterdir()] == ["cat.jpg"]


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        init_vault(target)


def test_init_never_writes_through_a_link(tmp_path: Path) -> None:
    root = Path(init_vault(tmp_path / "vault").vault)
    outside = tmp_path / "outside.md"
    (root / "Dashboard.md").unlink()
    (root / "Dashboard.md").symlink_to(outside)  # dangling: a write would create outside.md
    result = init_vault(root)
    assert not outside.exists()
    assert "Dashboard.md" in result.kept
    assert (root / "Dashboard.md").is_symlink()
