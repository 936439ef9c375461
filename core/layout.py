"""The vault's layout: its folders, and what makes a task file name.

Both the vault and its claim moves use these; nothing here touches the disk.
"""

from __future__ import annotations

from core.config import ZONES
from core.errors import VaultError
from core.paths import split_relative

APPROVAL_KINDS = ("email", "payments", "social_media")
FOLDERS = (
    "Inbox",
    "Needs_Action",
    "In_Progress/cloud",
    "In_Progress/local",
    "Plans",
    *(f"Pending_Approval/{kind}" for kind in APPROVAL_KINDS),
    *(f"Approved/{kind}" for kind in APPROVAL_KINDS),
    "Rejected",
    "Done",
    "Failed",
    "Updates",
    "Signals",
    "Briefings",
    "Files",
    "Logs",
)
ADDED_LATER = ("Files",)  # made when missing, so vaults from earlier versions keep working
NEEDS_ACTION = "Needs_Action"
ANY_FILE_FOLDERS = ("Inbox", "Files", "Signals")  # drops, dropped files taken, JSON signals
CEO_ONLY = ("Approved", "Rejected")
DONE = "Done"


def task_name(name: str) -> str:
    parts = split_relative(name)
    if len(parts) != 1 or not name.endswith(".md"):
        raise VaultError(
            f"{name!r} is not a task file name", "give a name such as EMAIL_123.md, not a path"
        )
    return name


def check_zone(zone: str) -> str:
    if zone not in ZONES:
        raise VaultError(f"zone {zone!r} is unknown", "use 'local' or 'cloud'")
    return zone
