"""``.claude/settings.json`` keeps Claude Code's own tools out of the CEO's folders and files.

Only the CEO moves requests into ``Approved/`` or ``Rejected/`` and edits the handbook and
the known-contacts and known-payees lists. The deny rules must say so for a vault at any
path, for the file tools (Edit, Write) and for shell commands. The rules are checked with a
small matcher that follows Claude Code's documented rule semantics:

- a rule is ``Tool`` (the whole tool) or ``Tool(pattern)``;
- file rules use gitignore patterns: ``//p`` is absolute from the filesystem root, ``~/p``
  is under the home folder, ``/p`` is relative to the project (where ``.claude/`` lives),
  ``p`` or ``./p`` is relative to the working directory; ``*`` stays inside one folder,
  ``**`` spans any number of folders, and a matched folder covers everything in it.
  ``Edit`` rules apply to every built-in tool that edits files (Write, MultiEdit, ...);
- Bash rules: ``*`` matches any characters (spaces too), ``prefix:*`` is a prefix match,
  and a compound command (``a && b``, ``a | b``, ``a; b``) is denied if any part is.
"""

from __future__ import annotations

import json
import posixpath
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SETTINGS = REPO / ".claude" / "settings.json"
PROJECT = "/home/ceo/ai-employee"  # where Claude Code runs (the repository checkout)
HOME = "/home/ceo"
EDITING_TOOLS = ("Edit", "Write", "MultiEdit", "NotebookEdit")
_RULE = re.compile(r"^(?P<tool>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<pattern>.*)\))?$", re.DOTALL)
_OPERATORS = re.compile(r"\s*(?:&&|\|\||;|\||\n)\s*")


# -- the matcher ---------------------------------------------------------------------------


def parse_rule(rule: str) -> tuple[str, str | None]:
    match = _RULE.match(rule)
    assert match, f"{rule!r} is not Tool or Tool(pattern)"
    return match["tool"], match["pattern"]


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A gitignore pattern (already relative to its base folder) as a regex on a rel path."""
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.strip("/")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i) and i + 2 == len(pattern) and pattern[i - 1 : i] in "/":
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body[:1] == "!" else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"  # no inner slash: a name at any depth
    return re.compile(prefix + "".join(out))


def file_rule_matches(pattern: str, path: str, *, cwd: str = PROJECT) -> bool:
    """Does a file-tool rule pattern match ``path`` (absolute, or relative to ``cwd``)?"""
    if pattern.startswith("//"):
        base, rel_pattern = "/", pattern[2:]
    elif pattern.startswith("~/"):
        base, rel_pattern = HOME, pattern[2:]
    elif pattern.startswith("/"):
        base, rel_pattern = PROJECT, pattern[1:]
    else:
        base, rel_pattern = cwd, pattern.removeprefix("./")
    target = posixpath.normpath(posixpath.join(cwd, path))
    rel = posixpath.relpath(target, base)
    if rel == ".." or rel.startswith("../"):
        return False  # outside the pattern's base folder
    regex = _glob_regex(rel_pattern)
    parts = rel.split("/")
    # The path itself, or a folder it is in (gitignore: a matched folder covers its contents).
    return any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1))


def _bash_pattern_matches(pattern: str, command: str) -> bool:
    if pattern.endswith(":*"):  # legacy prefix rule
        prefix = pattern[:-2]
        return command == prefix or command.startswith(prefix + " ")
    regex = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    if pattern.endswith(" *") and pattern.count("*") == 1:  # `ls *` also matches bare `ls`
        regex = re.escape(pattern[:-2]) + "(?: .*)?"
    return re.fullmatch(regex, command, re.DOTALL) is not None


def bash_rule_matches(pattern: str, command: str) -> bool:
    parts = [part for part in _OPERATORS.split(command.strip()) if part]
    return any(_bash_pattern_matches(pattern, cmd) for cmd in [command.strip(), *parts])


def denied(rules: list[str], tool: str, argument: str, *, cwd: str = PROJECT) -> list[str]:
    """The deny rules that block ``tool`` called with ``argument`` (a path or a command)."""
    hits = []
    for rule in rules:
        rule_tool, pattern = parse_rule(rule)
        applies = rule_tool == tool or (rule_tool == "Edit" and tool in EDITING_TOOLS)
        if not applies:
            continue
        if pattern is None or pattern in {"", "*"}:
            hits.append(rule)
        elif tool == "Bash":
            if bash_rule_matches(pattern, argument):
                hits.append(rule)
        elif file_rule_matches(pattern, argument, cwd=cwd):
            hits.append(rule)
    return hits


# -- the matcher follows the documented semantics --------------------------------------------


@pytest.mark.parametrize(
    ("rule", "tool", "arg", "expected"),
    [
        ("Edit(//tmp/*.md)", "Edit", "/tmp/a.md", True),
        ("Edit(//tmp/*.md)", "Edit", "/tmp/x/a.md", False),  # * stays in one folder
        ("Edit(//tmp/**/*.md)", "Edit", "/tmp/x/y/a.md", True),
        ("Edit(//tmp/**/*.md)", "Edit", "/tmp/a.md", True),  # ** may be no folder at all
        ("Edit(/tmp/a.md)", "Edit", "/tmp/a.md", False),  # one slash: relative to the project
        ("Edit(/docs/**)", "Edit", f"{PROJECT}/docs/x/y.md", True),
        ("Edit(docs/**)", "Edit", "docs/a.md", True),  # relative to the working folder
        ("Edit(docs/**)", "Edit", "/elsewhere/docs/a.md", False),
        ("Edit(**/docs/**)", "Edit", f"{PROJECT}/a/b/docs/c.md", True),
        ("Edit(**/docs/**)", "Edit", "/elsewhere/docs/a.md", False),  # outside the cwd
        ("Edit(~/.ssh/**)", "Edit", f"{HOME}/.ssh/id_ed25519", True),
        ("Edit(*.env)", "Edit", f"{PROJECT}/deep/er/prod.env", True),  # no slash: any depth
        ("Edit(//etc/secret)", "Edit", "/etc/secret/inside.txt", True),  # folder covers files
        ("Edit(//**/Approved/**)", "Edit", "/x/Not_Approved/a.md", False),
        ("Edit(//**/Approved/**)", "Write", "/x/Approved/a.md", True),  # Edit rules: all editors
        ("Write(//**/Approved/**)", "Edit", "/x/Approved/a.md", False),
        ("Edit", "Edit", "/anything", True),
        ("Bash(npm run:*)", "Bash", "npm run test", True),
        ("Bash(npm run:*)", "Bash", "npm install", False),
        ("Bash(git * main)", "Bash", "git push origin main", True),
        ("Bash(ls *)", "Bash", "ls", True),
        ("Bash(*secret*)", "Bash", "cat a b secret c", True),
        ("Bash(rm *)", "Bash", "cd /tmp && rm -rf x", True),  # each part of a compound command
        ("Bash(rm *)", "Bash", "echo rm", False),
    ],
)
def test_matcher_follows_claude_code_rule_semantics(
    rule: str, tool: str, arg: str, expected: bool
) -> None:
    assert bool(denied([rule], tool, arg)) is expected


# -- the project's settings ------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return json.loads(SETTINGS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def deny(settings: dict[str, Any]) -> list[str]:
    return settings["permissions"]["deny"]


def test_settings_are_valid_json_with_deny_rules(settings: dict[str, Any]) -> None:
    assert isinstance(settings, dict)
    permissions = settings.get("permissions")
    assert isinstance(permissions, dict)
    rules = permissions.get("deny")
    assert isinstance(rules, list) and rules
    assert all(isinstance(rule, str) for rule in rules)
    for rule in rules:
        parse_rule(rule)  # each one is Tool or Tool(pattern)
    for other in ("allow", "ask"):  # nothing elsewhere lets a denied write through silently
        for rule in permissions.get(other, []):
            assert isinstance(rule, str)


CEO_ONLY_PATHS = [
    # a vault anywhere, approved and rejected requests of every kind, at any depth
    "/home/ceo/AI_Employee_Vault/Approved/email/x.md",
    "/home/ceo/AI_Employee_Vault/Approved/payments/PAY_acme_2026-11-25.md",
    "/home/ceo/AI_Employee_Vault/Approved/social_media/POST_linkedin.md",
    "/home/ceo/AI_Employee_Vault/Approved/new.md",
    "/srv/vault/Rejected/y.md",
    "/srv/vault/Approved/email/nested/deeper/z.md",
    "/Users/ceo/Library/Mobile Documents/iCloud~md~obsidian/Vault/Approved/email/a b.md",
    "/Approved/email/root.md",
    f"{PROJECT}/vault/Approved/email/x.md",
    # the handbook and the CEO's lists
    "/home/ceo/AI_Employee_Vault/Company_Handbook.md",
    "/srv/vault/Known_Contacts.md",
    "/srv/vault/Known_Payees.md",
    "/srv/vault/Schedule.md",
    # dropped files: their tasks carry a hash that must keep matching
    "/srv/vault/Files/receipt.pdf",
    f"{PROJECT}/vault_template/Company_Handbook.md",
    # what only the executor writes: claimed requests and per-machine state
    "/home/ceo/AI_Employee_Vault/In_Progress/local/SEND_EMAIL_x.md",
    "/srv/vault/In_Progress/cloud/TASK_1.md",
    "/srv/vault/.state/rate_limits.json",
    "/srv/vault/.state/ledger/abc.json",
]
CEO_ONLY_RELATIVE = [
    # relative to the working folder (Claude Code runs in the project or in the vault)
    ("Approved/email/x.md", "/home/ceo/AI_Employee_Vault"),
    ("Rejected/y.md", "/home/ceo/AI_Employee_Vault"),
    ("./Approved/payments/p.md", "/srv/vault"),
    ("vault/Approved/social_media/p.md", PROJECT),
    ("../AI_Employee_Vault/Approved/email/x.md", PROJECT),
    ("../vault/Rejected/r.md", "/srv/tools"),
    ("Company_Handbook.md", "/srv/vault"),
    ("Known_Contacts.md", "/srv/vault"),
    ("sub/Known_Payees.md", "/srv"),
    ("Schedule.md", "/srv/vault"),
]


@pytest.mark.parametrize("tool", EDITING_TOOLS)
@pytest.mark.parametrize("path", CEO_ONLY_PATHS)
def test_file_tools_cannot_write_ceo_only_places_at_any_path(
    deny: list[str], tool: str, path: str
) -> None:
    for cwd in (PROJECT, "/", "/home/ceo/AI_Employee_Vault", "/tmp/elsewhere"):
        assert denied(deny, tool, path, cwd=cwd), f"{tool} on {path} from {cwd} is allowed"


@pytest.mark.parametrize("tool", EDITING_TOOLS)
@pytest.mark.parametrize(("path", "cwd"), CEO_ONLY_RELATIVE)
def test_file_tools_cannot_write_ceo_only_places_by_relative_path(
    deny: list[str], tool: str, path: str, cwd: str
) -> None:
    assert denied(deny, tool, path, cwd=cwd), f"{tool} on {path} from {cwd} is allowed"


@pytest.mark.parametrize("tool", ("Edit", "Write"))
def test_write_rules_do_not_lean_on_edit_rules_alone(deny: list[str], tool: str) -> None:
    """Each of Edit and Write has its own rules, so the protection holds either way round."""
    own = [rule for rule in deny if parse_rule(rule)[0] == tool]
    for path in CEO_ONLY_PATHS:
        assert denied(own, "Edit" if tool == "Edit" else "Write", path), (tool, path)


LEGIT_PATHS = [
    "/home/ceo/vault/Pending_Approval/email/x.md",
    "/home/ceo/vault/Plans/PLAN_1.md",
    "/home/ceo/vault/Plans/Not_Approved_yet.md",
    "/home/ceo/vault/Needs_Action/EMAIL_1.md",
    "/home/ceo/vault/Updates/Rejected_ideas.md",
    "/home/ceo/vault/Dashboard.md",
    "/home/ceo/vault/Business_Goals.md",
    "/home/ceo/vault/Briefings/2026-11-30_Monday_Briefing.md",
    f"{PROJECT}/core/approvals.py",
    f"{PROJECT}/docs/Approved_requests.md",
    "Plans/PLAN_2.md",
]


@pytest.mark.parametrize("path", LEGIT_PATHS)
def test_ordinary_vault_work_is_not_denied(deny: list[str], path: str) -> None:
    assert denied(deny, "Edit", path) == []
    assert denied(deny, "Write", path) == []


def test_reading_approved_requests_is_not_denied(deny: list[str]) -> None:
    assert denied(deny, "Read", "/home/ceo/vault/Approved/email/x.md") == []
    assert denied(deny, "Read", "/home/ceo/vault/Company_Handbook.md") == []


CEO_ONLY_COMMANDS = [
    "mv Pending_Approval/email/a.md Approved/email/",
    "mv /home/ceo/vault/Pending_Approval/payments/p.md /home/ceo/vault/Approved/payments/p.md",
    "cp x /home/ceo/vault/Rejected/",
    "cd /srv/vault && mv Pending_Approval/social_media/p.md Approved/social_media/",
    "git -C /srv/vault mv Pending_Approval/email/a.md Rejected/a.md",
    "echo 'status: approved' > /srv/vault/Approved/email/forged.md",
    "cat draft.md | tee /home/ceo/vault/Approved/email/x.md",
    "rsync -a drafts/ /home/ceo/vault/Approved/email/",
    "install -m 644 x.md /srv/vault/Rejected/x.md",
    "python3 -c \"import shutil; shutil.move('a.md', 'Approved/email/a.md')\"",
    "ai-employee approve Pending_Approval/email/a.md",
    "ai-employee approve /home/ceo/vault/Pending_Approval/payments/p.md",
    "VAULT_PATH=/srv/vault ai-employee approve Pending_Approval/email/a.md",
    "ai-employee reject Pending_Approval/email/a.md --reason spam",
    "python -m cli approve Pending_Approval/email/a.md",
    "/opt/ai-employee/.venv/bin/python -m cli reject Pending_Approval/email/a.md",
    "sed -i 's/approve_above: 100/approve_above: 100000/' Company_Handbook.md",
    "echo '- Eve <eve@evil.example>' >> /home/ceo/vault/Known_Contacts.md",
    "cp payees.md /srv/vault/Known_Payees.md",
    "sed -i 's/0 8/0 9/' /srv/vault/Schedule.md",
    "mv forged.md /srv/vault/In_Progress/local/",
    "rm /srv/vault/.state/rate_limits.json",
    "mv a.md approved/email/",
]


@pytest.mark.parametrize("command", CEO_ONLY_COMMANDS)
def test_shell_commands_cannot_move_or_write_into_ceo_only_places(
    deny: list[str], command: str
) -> None:
    assert denied(deny, "Bash", command), f"Bash {command!r} is allowed"


@pytest.mark.parametrize(
    "command",
    [
        "ai-employee status",
        "ai-employee status --json",
        "ai-employee run approval_watcher --once",
        "ls Pending_Approval/email",
        "git status",
        "python -m pytest -q",
    ],
)
def test_ordinary_commands_are_not_denied(deny: list[str], command: str) -> None:
    assert denied(deny, "Bash", command) == []
