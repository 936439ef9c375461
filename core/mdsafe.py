"""Text that is safe to put in a generated markdown page (the dashboard, the briefing).

Names and titles come from outside (a file name, an email subject): nothing in them may
break a table row, close a link, start a heading, hide text or become a link to click.
Everything shown goes through :func:`text` (escaped, one line) or :func:`link` (an Obsidian
link to a vault file).
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from urllib.parse import quote

# ASCII punctuation that can change a page's structure or hide text in CommonMark, GFM
# tables or Obsidian: | cells, [] links, <> HTML, ` code, # tags, ^ block ids, %% comments,
# $ math, & entities. Emphasis marks (* _ ~ =) can only restyle their own cell: kept as is.
_SPECIAL = set("\\`[]<>|#$%^&")
# A wikilink is written only for a name with none of those: ] closes it, | starts its alias,
# # and ^ point into the note, and the rest could start a comment, a code span or HTML.
_NOT_IN_WIKILINK = _SPECIAL
_LINE_BREAKS = set("\n\r\x0b\x0c\x85\u2028\u2029")


def one_line(value: object, limit: int = 200) -> str:
    """``value`` as one line of plain characters: breaks become spaces, control and format
    characters become U+FFFD, runs of spaces shrink to one, and long text is cut with '…'."""
    chars = []
    for char in str(value):
        if char in _LINE_BREAKS or char == "\t":
            chars.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            chars.append("\ufffd")
        else:
            chars.append(char)
    flat = " ".join("".join(chars).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _breaks_autolink(flat: str, at: int) -> bool:
    """Whether ``flat[at]`` is where a bare link in outside text is broken with a backslash.

    Obsidian (its editor's GFM parser) and GFM renderers make a link of a bare URL with no
    markup: ``scheme://…`` (``https://evil.example/pay``), ``www.…`` in any case, and an email
    address (``a@evil.example``). A backslash before ``:``, ``.`` or ``@`` (ASCII punctuation)
    is an escape in CommonMark: the character shows as it is and the backslash does not show,
    but the link is no longer recognised. So ``://`` becomes ``\\://``, ``www.`` becomes
    ``www\\.`` and ``@`` becomes ``\\@``. (GitHub's own renderer still links an email address
    whatever is escaped; nothing short of changing the text stops that.)
    """
    char = flat[at]
    if char == ":":
        return flat.startswith("//", at + 1)
    if char == ".":
        return flat[max(at - 3, 0) : at].lower() == "www"
    return char == "@"


def text(value: object, limit: int = 200) -> str:
    """One line, with markdown's special characters escaped and bare links broken: safe in a
    paragraph or a cell, and no bare URL in it becomes a link."""
    flat = one_line(value, limit)
    return "".join(
        f"\\{char}" if char in _SPECIAL or _breaks_autolink(flat, at) else char
        for at, char in enumerate(flat)
    )


def _linkable(rel: str) -> bool:
    return (
        rel.endswith(".md")
        and one_line(rel, limit=len(rel) + 1) == rel
        and not (_NOT_IN_WIKILINK & set(rel))
        and "//" not in rel
    )


def link(rel: str) -> str:
    """An Obsidian link to the vault file ``rel`` (``Folder/NAME.md``).

    A plain name becomes ``[[Folder/NAME]]`` (Obsidian adds ``.md``, and a path from the
    vault's root resolves from any note). A name that would break a wikilink becomes a
    markdown link with the path percent-encoded and the shown text escaped.
    """
    if _linkable(rel):
        return f"[[{rel.removesuffix('.md')}]]"
    shown = text(rel.removesuffix(".md"), limit=120)
    return f"[{shown}]({quote(rel, safe='/')})"


def cell(value: str) -> str:
    """A table cell's text; an empty one shows a dash."""
    return value if value.strip() else "-"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A GFM table whose cells are already escaped (by :func:`text` or :func:`link`)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines


def duration(seconds: float) -> str:
    """A span for people: ``2 d 3 h``, ``5 h 12 min``, ``12 min``, ``under 1 min``."""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min" if mins else "under 1 min"


def moment(value: datetime | None) -> str:
    """A timestamp for people, in UTC to the minute; a dash when unknown."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
