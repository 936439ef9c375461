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
    end tag, so malformed markup can hide too much text but never reveal hidden text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.hidden = self.pre = self.breaks = 0
        self.prefix = ""
        self.out: list[str] = []

    def _block(self, tag: str) -> None:
        if tag in _BLOCK and not self.hidden:
            self.breaks = max(self.breaks, 2 if tag in _PARAGRAPH else 1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self.breaks = min(self.breaks + 1, 2) if tag == "br" and not self.hidden else 0
            self._block(tag)
            return
        hides = _hides(tag, attrs)
        self.stack.append((tag, hides))
        self.hidden += hides
        self.pre += tag == "pre"
        self._block(tag)
        if not self.hidden and tag in ("li", "td", "th"):
            self.prefix = "- " if tag == "li" else " "

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # as browsers do: "<div hidden/>" opens a div

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            name, hides = self.stack[depth]
            if name == tag:
                break
            if hides:
                return  # it would close a hiding element implicitly: ignore it
        else:
            return
        for name, hides in self.stack[depth:]:
            self.hidden -= hides
            self.pre -= name == "pre"
        del self.stack[depth:]
        self._block(tag)

    def handle_data(self, data: str) -> None:
        text = data if self.pre else " ".join(data.split())
        if self.hidden or not text.strip():
            if not self.hidden and data and self.out:
                self.out.append(" ")
            return
        if self.breaks and self.out:
            self.out.append("\n" * self.breaks)
        self.out.append(f"{self.prefix}{text}")
        self.breaks, self.prefix = 0, ""


def html_to_text(html: str) -> str:
    """The text a reader would see; hidden elements, styles, scripts and the head dropped."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # keep what was read before the markup broke the parser
        parser.out.append("\n[the rest of this HTML could not be read]")
    lines = (" ".join(line.split()) for line in "".join(parser.out).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
