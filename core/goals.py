"""``Business_Goals.md`` read as text: goals, metric targets and deadlines.

The convention (the template shows it): headings name sections; each list item (``-``,
``*`` or ``1.``) is a goal; a goal with ``due YYYY-MM-DD`` (or ``deadline``, ``by``,
``until``, ``before``) has a deadline; a table whose first column is ``Metric`` lists
targets (``Metric | Target | Alert when``); in any other table a row is a goal, and a
``Due`` or ``Deadline`` column gives its date. Everything else is prose and is skipped.
Nothing here fails on a hand-edited page: what cannot be read is left out.
"""

from __future__ import annotations

import os
import re
from datetime import date

from pydantic import BaseModel

from core.errors import VaultError
from core.vault import Vault

GOALS_FILE = "Business_Goals.md"
MAX_ITEMS = 200
_FRONTMATTER = re.compile(r"\A---[ \t]*\r?\n.*?\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(?:\[[ xX]\]\s+)?(.+)$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_DUE = re.compile(
    r"\b(?:due|deadline|by|until|before)\b\s*:?\s*(\d{4}-\d{2}-\d{2})\b", re.IGNORECASE
)
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


class Goal(BaseModel):
    section: str
    text: str
    due: date | None


class Metric(BaseModel):
    name: str
    target: str
    alert: str


class Goals(BaseModel):
    problem: str | None = None  # why the page could not be read, if it could not
    goals: list[Goal] = []
    metrics: list[Metric] = []

    def in_section(self, name: str) -> list[Goal]:
        return [goal for goal in self.goals if goal.section.casefold() == name.casefold()]

    @property
    def deadlines(self) -> list[Goal]:
        return sorted((g for g in self.goals if g.due), key=lambda g: (g.due, g.text))


def _date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None  # 2026-02-30 and the like: no deadline rather than a wrong one


def due_in(text: str) -> date | None:
    """The date after ``due``/``deadline``/``by``/``until``/``before`` in ``text``."""
    match = _DUE.search(text)
    return _date(match.group(1)) if match else None


def _cells(line: str) -> list[str]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", inner)]


class _Parser:
    def __init__(self) -> None:
        self.section = ""
        self.header: list[str] | None = None
        self.goals: list[Goal] = []
        self.metrics: list[Metric] = []

    def line(self, line: str) -> None:
        if line.lstrip().startswith("|"):
            self.row(_cells(line), line)
            return
        self.header = None
        if heading := _HEADING.match(line):
            self.section = heading.group(2)
        elif item := _ITEM.match(line):
            text = item.group(1).strip()
            self.goals.append(Goal(section=self.section, text=text, due=due_in(text)))

    def row(self, cells: list[str], line: str) -> None:
        if self.header is None:
            self.header = [cell.casefold() for cell in cells]
        elif _SEPARATOR.match(line) or not any(cells):
            return
        elif self.header[0] == "metric":
            cells += ["", ""]
            self.metrics.append(Metric(name=cells[0], target=cells[1], alert=cells[2]))
        else:
            self.goals.append(
                Goal(section=self.section, text=" · ".join(cells), due=self.due(cells))
            )

    def due(self, cells: list[str]) -> date | None:
        for name, cell in zip(self.header or [], cells, strict=False):
            if name in ("due", "deadline", "due date") and (found := _DATE.search(cell)):
                return _date(found.group(1))
        return due_in(" ".join(cells))


def parse_goals(text: str) -> Goals:
    """Goals, metrics and deadlines from the page's text (frontmatter and code are skipped)."""
    parser, fenced = _Parser(), False
    for line in _FRONTMATTER.sub("", text, count=1).splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            parser.line(line)
    return Goals(goals=parser.goals[:MAX_ITEMS], metrics=parser.metrics[:MAX_ITEMS])


def read_goals(vault: Vault) -> Goals:
    """The vault's goals; a missing or unreadable page is a problem to report, not an error."""
    missing = Goals(problem=f"{GOALS_FILE} is missing: run `ai-employee init` to restore it")
    if not os.path.lexists(vault.root / GOALS_FILE):
        return missing
    try:
        return parse_goals(vault.read_text(GOALS_FILE))
    except FileNotFoundError:
        return missing
    except VaultError as exc:
        return Goals(problem=str(exc))
