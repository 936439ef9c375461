"""HTML mail as plain text, with hidden text dropped (it may carry instructions meant for the
model and unseen by people): ``display:none``, ``visibility:hidden``, zero size or opacity, the
``hidden`` attribute, and head, style, script and template elements."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"head", "title", "style", "script", "template"})
_VOID_TAGS = "area base br col embed hr img input link meta param source track wbr"
_LINE_TAGS = (
    "address caption dd div dl dt fieldset figure footer form header li main nav section tr"
)
_PARAGRAPH_TAGS = "article aside blockquote h1 h2 h3 h4 h5 h6 hr ol p pre table ul"
_VOID, _PARAGRAPH = frozenset(_VOID_TAGS.split()), frozenset(_PARAGRAPH_TAGS.split())
_BLOCK = _PARAGRAPH | frozenset(_LINE_TAGS.split())
_HIDDEN_STYLE = re.compile(
    r"(?:^|;)(?:display:none|visibility:(?:hidden|collapse)|opacity:0(?:\.0*)?|mso-hide:all"
    r"|font-size:0(?:\.0*)?(?:px|pt|em|rem|%)?)(?:!important)?(?:;|$)"
)


def _hides(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    if tag in _SKIP:
        return True
    for name, value in attrs:
        if name == "hidden":
            return True
        if name == "style" and value and _HIDDEN_STYLE.search("".join(value.lower().split())):
            return True
    return False


class _TextExtractor(HTMLParser):
    """Visible text only. An element that hides is never closed implicitly, only by its own
    end tag, so malformed markup can hide too much text but never reveal hidden text. Every
    start and end tag costs constant time (amortized), whatever the nesting."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.open_at: dict[str, list[int]] = {}  # tag -> depths where it is open
        self.hiding_at: list[int] = []  # depths of open hiding elements
        self.pre = self.breaks = 0
        self.prefix = ""
        self.out: list[str] = []

    @property
    def hidden(self) -> bool:
        return bool(self.hiding_at)

    def _block(self, tag: str) -> None:
        if tag in _BLOCK and not self.hidden:
            self.breaks = max(self.breaks, 2 if tag in _PARAGRAPH else 1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self.breaks = min(self.breaks + 1, 2) if tag == "br" and not self.hidden else 0
            self._block(tag)
            return
        hides = _hides(tag, attrs)
        depth = len(self.stack)
        self.stack.append((tag, hides))
        self.open_at.setdefault(tag, []).append(depth)
        if hides:
            self.hiding_at.append(depth)
        self.pre += tag == "pre"
        self._block(tag)
        if not self.hidden and tag in ("li", "td", "th"):
            self.prefix = "- " if tag == "li" else " "

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # as browsers do: "<div hidden/>" opens a div

    def handle_endtag(self, tag: str) -> None:
        depths = self.open_at.get(tag)
        if not depths:
            return
        depth = depths[-1]
        if self.hiding_at and self.hiding_at[-1] > depth:
            return  # it would close a hiding element implicitly: ignore it
        while len(self.stack) > depth:
            name, hides = self.stack.pop()
            self.open_at[name].pop()
            if hides:
                self.hiding_at.pop()
            self.pre -= name == "pre"
        self._block(tag)

    def handle_data(self, data: str) -> None:
        text = data if self.pre else _squeeze(data)
        if self.hidden or not text.strip():
            if not self.hidden and data and self.out:
                self.out.append(" ")
            return
        if self.breaks and self.out:
            self.out.append("\n" * self.breaks)
        self.out.append(f"{self.prefix}{text}")
        self.breaks, self.prefix = 0, ""


_MARKUP = re.compile(r"<!--|[<>\"']")


def _escape_unclosed_tags(html: str) -> str:
    """Escape each ``<`` that opens a tag never closed before the next tag opens.

    The standard library's parser takes time growing with the square of the length on runs of
    unclosed tags (``<a <a <a ...``). Closed tags, comments and quoted attribute values (which
    may hold ``<``) pass unchanged, so hidden elements stay recognizable; a tag that never
    closes is text, quoted parts included. One linear pass.
    """
    escape: list[int] = []
    tag: int | None = None
    quote, inner, pos = "", [], 0
    while (found := _MARKUP.search(html, pos)) is not None:
        mark, pos = found.group(), found.end()
        if tag is None:
            if mark == "<!--":
                end = html.find("-->", pos)
                pos = len(html) if end == -1 else end + 3
            elif mark == "<":
                tag, inner = found.start(), []
        elif quote:
            if mark == quote:
                quote = ""
            elif mark.startswith("<"):
                inner.append(found.start())
                pos = found.start() + 1
        elif mark in "\"'" and _after_equals(html, tag, found.start()):
            quote = mark
        elif mark == ">":
            tag = None
        elif mark.startswith("<"):  # a new tag opens before this one closed
            escape += [tag, *inner]
            tag, inner = found.start(), []
            pos = tag + 1
    if tag is not None:
        escape += [tag, *inner]
    return _escaped(html, escape)


def _squeeze(data: str) -> str:
    """Runs of whitespace as one space, keeping one at either end (text comes in pieces)."""
    inner = " ".join(data.split())
    if not inner:
        return ""
    return f"{' ' if data[0].isspace() else ''}{inner}{' ' if data[-1].isspace() else ''}"


def _after_equals(html: str, tag: int, at: int) -> bool:
    """True if the quote at ``at`` opens an attribute value (``=`` before it, spaces aside)."""
    at -= 1
    while at > tag and html[at].isspace():
        at -= 1
    return html[at] == "="


def _escaped(html: str, positions: list[int]) -> str:
    if not positions:
        return html
    parts, last = [], 0
    for at in positions:
        parts += [html[last:at], "&lt;"]
        last = at + 1
    return "".join([*parts, html[last:]])


def html_to_text(html: str) -> str:
    """The text a reader would see; hidden elements, styles, scripts and the head dropped."""
    parser = _TextExtractor()
    try:
        parser.feed(_escape_unclosed_tags(html))
        parser.close()
    except Exception:  # keep what was read before the markup broke the parser
        parser.out.append("\n[the rest of this HTML could not be read]")
    lines = (" ".join(line.split()) for line in "".join(parser.out).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
