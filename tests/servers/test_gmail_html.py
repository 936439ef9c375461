"""HTML mail as text: markup that never closes stays text, hidden parts stay hidden, and the
stray-end-tag and unclosed-tag shapes that made the conversion quadratic give the same text."""

from __future__ import annotations

import pytest

from servers.gmail_mcp.html_text import _escape_unclosed_tags, html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("a < b and c > d", "a < b and c > d"),
        ("<a <a <b>bold</b>", "<a <a bold"),
        ('<a title="<x" href=y>link</a> after', "link after"),
        ('<p title="x>y">kept</p>', "kept"),
        ("<!-- <b>not shown</b> --> shown", "shown"),
        ("<b>one</b> <i>two</i>", "one two"),
    ],
)
def test_text_is_what_a_reader_sees(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "html",
    [
        '<span style="display:none" title="<x">secret</span> visible',
        "<div hidden><b>secret</b></i></b></div> visible",
        "<div style='font-size:0'>" + "</p>" * 50 + "secret</div> visible",
        '<span style="display:none">secret <a <a </span> visible',
    ],
)
def test_hidden_text_stays_hidden(html: str) -> None:
    out = html_to_text(html)
    assert "secret" not in out and "visible" in out


def test_only_tags_that_never_close_are_escaped() -> None:
    assert _escape_unclosed_tags("<a <b>x</b>") == "&lt;a <b>x</b>"
    assert _escape_unclosed_tags('<a t="<b">x</a>') == '<a t="<b">x</a>'
    assert _escape_unclosed_tags('<a t="<b" <i>') == '&lt;a t="&lt;b" <i>'
    assert _escape_unclosed_tags("<p>ok</p><!-- <x") == "<p>ok</p><!-- <x"
    assert _escape_unclosed_tags("tail <a") == "tail &lt;a"


def test_deep_nesting_and_stray_end_tags_keep_their_meaning() -> None:
    deep = "<b>" * 3000 + "x" + "</i>" * 3000 + "</b>" * 3000 + " y"
    assert html_to_text(deep) == "x y"
    hidden = "<div hidden>" + "<b>" * 2000 + "secret" + "</div>" + " shown"
    assert html_to_text(hidden) == "shown"
